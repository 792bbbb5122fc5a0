"""`bench report A.json [--compare B.json]`: a saved run, or two side by side."""

from pathlib import Path

import click

__all__ = ["report"]


@click.command()
@click.argument("result_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--compare", "other", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              default=None, help="A second result to put side by side (B), with B/A ratios.")
@click.option("--plot", "plot_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="With --compare: write a comparison PNG here.")
def report(result_file, other, plot_path):
    """Print a saved `bench run` result, or two side by side.

    \b
    Example:
      bench report results/peak-20261128-101500/result.json
      bench report results/A/result.json --compare results/B/result.json --plot ab.png
    """
    from bench.report import text as rep
    from bench.report.result import read_result

    if plot_path is not None and other is None:
        raise click.UsageError("--plot needs --compare (a run's own plots are next to its result.json)")
    if plot_path is not None:
        try:
            plot_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise click.BadParameter(f"cannot create {plot_path.parent}: {exc.strerror}",
                                     param_hint="--plot") from None
    a = read_result(result_file)
    if other is None:
        rep.print_result(a)
        return
    b = read_result(other)
    rep.print_comparison(a, b)
    if plot_path is not None:
        from bench.report.plots import plot_compare
        click.echo(f"plot: {plot_compare(a, b, plot_path)}")
