"""`bench model`: train the fraud model, check the committed one, compile it ahead of time."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from core.paths import repo_root

__all__ = ["model"]

_DEFAULT_OUT = (repo_root() or Path.cwd()) / "models"


@click.group()
def model():
    """Train, check and compile the fraud model.

    \b
    Example:
      bench model train              # re-create both models (stateful, stateless) in models/
      bench model train --check      # retrain and verify the committed artifacts match
      bench model compile            # build the native library once, before workers start
    """


@model.command()
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              default=_DEFAULT_OUT, show_default=False,
              help="Directory for the artifacts  [default: models/ of this checkout; outside one, ./models].")
@click.option("--check", is_flag=True,
              help="Write nothing; fail if retraining does not reproduce the artifacts in --out.")
@click.option("--seed", type=int, default=None, help="Override the training seed.")
@click.option("--kind", type=click.Choice(["both", "stateful", "stateless"]), default="both",
              show_default=True,
              help="Which model: with the per-card velocity features, without, or both.")
def train(out_dir: Path, check: bool, seed: int | None, kind: str):
    """Generate synthetic data, train XGBoost, pick threshold and bands, write the model.

    Both models train on the same data and are measured on the same holdout: the stateful
    one with the per-card velocity features (core.velocity), the stateless one without.
    Files: fraud-model.json and fraud-model.meta.json (stateful, the default model),
    fraud-model-stateless.json and fraud-model-stateless.meta.json.

    \b
    Example:
      bench model train --out /tmp/model --seed 7
      bench model train --kind stateless --check
    """
    import dataclasses

    from bench.model.train import TrainConfig, artifact_names, check_artifacts, write_artifacts

    cfg = TrainConfig() if seed is None else TrainConfig(seed=seed)
    problems = []
    for stateful in ((True, False) if kind == "both" else (kind == "stateful",)):
        one = dataclasses.replace(cfg, stateful=stateful)
        click.echo(f"{'stateful' if stateful else 'stateless'} model "
                   f"({artifact_names(stateful)[0]}):")
        result = _train_one(one)
        if check:
            found = check_artifacts(result, out_dir)
            for p in found:
                click.secho(f"  mismatch: {p}", fg="red", err=True)
            problems += found
        else:
            model_path, meta_path = write_artifacts(result, out_dir)
            click.echo(f"wrote {model_path} ({model_path.stat().st_size:,} bytes) and {meta_path}")
    if check:
        if problems:
            raise click.ClickException(f"the artifacts in {out_dir} are not what training "
                                       f"produces ({len(problems)} difference(s))")
        click.echo(f"ok: {out_dir} matches training bit for bit")


def _train_one(cfg):
    from bench.model.train import train as run

    t0 = time.perf_counter()
    result = run(cfg, progress=lambda msg: click.echo(f"  {msg} ...", err=True))
    total = time.perf_counter() - t0
    meta = result.meta
    click.echo(f"model {meta.model_version}: {len(meta.feature_names)} features, threshold "
               f"{meta.threshold:.6g}, bands MEDIUM>={meta.bands.medium:.6g} "
               f"HIGH>={meta.bands.high:.6g} CRITICAL>={meta.bands.critical:.6g}")
    for name, m in meta.metrics.items():
        click.echo(f"  {name:29s} rows {m.rows:>7,} frauds {m.frauds:>5,}  ROC-AUC {m.roc_auc:.4f}"
                   f"  PR-AUC {m.pr_auc:.4f}  precision {m.precision:.3f}  recall {m.recall:.3f}")
    stages = ", ".join(f"{k} {v:.1f} s" for k, v in result.seconds.items())
    click.echo(f"  time: {stages} (total {total:.1f} s)")
    return result


@model.command("compile")
@click.option("--meta", "meta_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Model metadata file (default: the committed model).")
def compile_(meta_path: Path | None):
    """Compile the model with tl2cgen into the cache (no-op when already cached).

    \b
    Example:
      bench model compile --meta models/fraud-model.meta.json
    """
    from core.model import load_model

    t0 = time.perf_counter()
    m = load_model(meta_path)
    click.echo(f"{m.meta.model_version}: backend {m.backend}"
               + (f", library {m.library_path}" if m.library_path else "")
               + f" ({time.perf_counter() - t0:.1f} s)")
    if m.backend != "tl2cgen":
        sys.exit(1)


@model.command()
@click.option("--meta", "meta_path", type=click.Path(dir_okay=False, path_type=Path),
              default=None, help="Model metadata file (default: the committed model).")
@click.option("--batch", "batches", type=click.IntRange(min=1), multiple=True, default=(1, 64, 1024, 8192),
              show_default=True, help="Batch sizes to measure (repeatable).")
@click.option("--repeat", type=click.IntRange(min=1), default=5, show_default=True,
              help="Timed rounds per measurement; the best round counts.")
@click.option("--xgboost/--no-xgboost", "with_xgb", default=True, show_default=True,
              help="Also time the training library's own inplace_predict.")
def speed(meta_path: Path | None, batches: tuple[int, ...], repeat: int, with_xgb: bool):
    """Time model predict per row at several batch sizes, one thread, per backend.

    Wall time is the best of --repeat rounds of ~0.2 s; CPU time is this process's, which
    a busy machine disturbs less. Compare backends from one run, not across machines.

    \b
    Example:
      bench model speed --batch 1 --batch 1024
    """
    import os

    import numpy as np

    from core.model import load_model

    models = {"tl2cgen": load_model(meta_path), "gtil": load_model(meta_path, compile=False)}
    if models["tl2cgen"].backend != "tl2cgen":
        del models["tl2cgen"]
    if with_xgb:
        models["xgboost"] = _XgbAdapter(models["gtil"])
    x_all = speed_rows(models["gtil"].meta, max(batches))
    click.echo(f"model {models['gtil'].meta.model_version}, load average "
               f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores; us per row (wall / cpu)")
    click.echo("batch   " + "".join(f"{name:>22s}" for name in models))
    for bs in batches:
        x = np.ascontiguousarray(x_all[:bs])
        cells = [_time_predict(m.predict, x, repeat) for m in models.values()]
        click.echo(f"{bs:<8d}" + "".join(f"{w:>13.2f} /{c:>7.2f}" for w, c in cells))


def speed_rows(meta, n: int):
    """n synthetic rows with the features `meta`'s model reads: the 34 of every model, then,
    for a stateful one (the default), the per-card velocity features as training computes
    them (the rows of the stateless features alone made the default model refuse the matrix)."""
    import numpy as np

    from bench.load.synth import generate

    batch = generate(n, seed=1, fraud_rate=0.01)
    x = batch.features()
    if len(meta.feature_names) > x.shape[1]:
        from bench.model.velocity import velocity_features

        x = np.hstack([x, velocity_features(batch)])
    return np.ascontiguousarray(x, dtype=np.float32)


class _XgbAdapter:
    def __init__(self, model):
        import xgboost as xgb

        from core.paths import default_model_path

        meta_dir = default_model_path().parent
        self.booster = xgb.Booster(model_file=str(meta_dir / model.meta.model_file))
        self.booster.set_param({"nthread": 1})

    def predict(self, x):
        return self.booster.inplace_predict(x)


def _time_predict(predict, x, repeat: int) -> tuple[float, float]:
    """(best wall us/row, best cpu us/row) over `repeat` rounds."""
    predict(x)
    t0 = time.perf_counter()
    predict(x)
    calls = max(1, int(0.2 / max(time.perf_counter() - t0, 1e-7)))
    walls, cpus = [], []
    for _ in range(repeat):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            predict(x)
        walls.append(time.perf_counter() - w0)
        cpus.append(time.process_time() - c0)
    per_row = 1e6 / (calls * len(x))
    return min(walls) * per_row, min(cpus) * per_row
