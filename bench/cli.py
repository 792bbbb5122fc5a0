"""The `bench` command line. Subcommands live in their own modules and load lazily,
so `bench --help` stays fast and a missing optional piece breaks only its command."""

import importlib
import sys

import click

from core.errors import FraudstreamError

__all__ = ["cli", "main"]

# name -> "module:attribute" of a click command or group
COMMANDS = {
    "broker": "bench.broker.cli:broker",
    "model": "bench.model.cli:model",
    "topics": "bench.kafka.cli:topics",
    "passthrough": "bench.kafka.cli:passthrough",
    "score": "bench.flow.cli:score",
    "alerts": "bench.flow.cli:alerts",
    "produce": "bench.flow.cli:produce",
    "run": "bench.run.cli:run",
    "drain": "bench.drain.cli:drain",
    "report": "bench.report.cli:report",
}


class LazyGroup(click.Group):
    def list_commands(self, ctx):
        return sorted(COMMANDS)

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is None:
            return None
        module, attr = target.split(":")
        try:
            return getattr(importlib.import_module(module), attr)
        except ImportError as exc:  # one broken command must not take `bench --help` down
            return _unavailable(name, exc)


# Packages of the optional extras (pyproject.toml), and the extra that brings each.
_EXTRAS = {"rich": "bench", "matplotlib": "bench", "click": "bench",
           "xgboost": "train", "sklearn": "train"}


def _unavailable(name: str, exc: ImportError) -> click.Command:
    extra = _EXTRAS.get((exc.name or "").split(".")[0])
    why = f"{exc} (pip install 'fraudstream[{extra}]')" if extra else str(exc)

    def fail():
        raise click.ClickException(f"`bench {name}` is unavailable: {why}")

    return click.Command(name, callback=fail, help=f"(unavailable: {why})")


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli():
    """fraudstream benchmark harness.

    \b
    Example, on a fresh machine:
      bench broker up            # start a local Kafka (jars from Maven Central)
      bench topics create        # transactions, three output topics, the card-state changelog
      bench run scenarios/peak.yaml
    """


def main():
    """Entry point: project errors become one clear line and exit code 1, not a traceback."""
    try:
        code = cli.main(standalone_mode=False)   # a ctx.exit(n) comes back as n
        if isinstance(code, int) and code:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except FraudstreamError as exc:
        click.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
