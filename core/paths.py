"""Where fraudstream keeps files it makes: the Kafka jars, broker state, compiled models.

FRAUDSTREAM_HOME overrides everything. In a source checkout the default is the git-ignored
`.fraudstream/` beside pyproject.toml; an installed package uses ~/.cache/fraudstream.
"""

import os
from pathlib import Path

__all__ = ["home", "repo_root", "default_model_path", "stateless_model_path"]

_REPO = Path(__file__).resolve().parent.parent


def repo_root() -> Path | None:
    """The source checkout this package runs from, or None when installed elsewhere."""
    return _REPO if (_REPO / "pyproject.toml").is_file() else None


def home() -> Path:
    env = os.environ.get("FRAUDSTREAM_HOME")
    if env:
        path = Path(env)
    elif repo_root() is not None:
        path = _REPO / ".fraudstream"
    else:
        path = Path.home() / ".cache" / "fraudstream"
    path.mkdir(parents=True, exist_ok=True)
    return path


def stateless_model_path() -> Path:
    """The committed model that needs no per-card state (for --no-state): 34 features."""
    return _REPO / "models" / "fraud-model-stateless.meta.json"


def default_model_path() -> Path:
    """The committed model's metadata file (FRAUDSTREAM_MODEL overrides)."""
    env = os.environ.get("FRAUDSTREAM_MODEL")
    if env:
        return Path(env)
    return _REPO / "models" / "fraud-model.meta.json"
