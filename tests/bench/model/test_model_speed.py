"""`bench model speed` (docs/service.md) times the committed models: its rows have the
features each model reads, and the command runs on the default (stateful) model."""

from click.testing import CliRunner

from bench.model.cli import model, speed_rows
from core.model import load_meta
from core.paths import default_model_path, stateless_model_path


def test_rows_have_each_models_features():
    for path in (default_model_path(), stateless_model_path()):
        meta, _ = load_meta(path)
        x = speed_rows(meta, 16)
        assert x.shape == (16, len(meta.feature_names)) and x.dtype.name == "float32", path


def test_speed_runs_on_the_default_model():
    result = CliRunner().invoke(model, ["speed", "--batch", "8", "--repeat", "1", "--no-xgboost"])
    assert result.exit_code == 0, result.output
    row = result.output.splitlines()[-1].split()
    assert row[0] == "8" and float(row[1]) > 0, result.output
