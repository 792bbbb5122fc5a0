"""Where fraudstream keeps files it makes (the Kafka jars, broker state, compiled models) and
where it finds the committed models.

FRAUDSTREAM_HOME overrides everything. In a source checkout the default is the git-ignored
`.fraudstream/` beside pyproject.toml; an installed package uses ~/.cache/fraudstream.
The committed models are the checkout's `models/`; an installed package (`pip install .`)
carries them as data files in <prefix>/share/fraudstream/models (pyproject.toml).
"""

import os
import sysconfig
from pathlib import Path

__all__ = ["home", "repo_root", "models_dir", "default_model_path", "stateless_model_path"]

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


def models_dir() -> Path:
    """The committed models: the checkout's models/, else the installed package's data files
    (the environment's prefix, or the user's for `pip install --user`)."""
    if repo_root() is not None:
        return _REPO / "models"
    schemes = [sysconfig.get_default_scheme(), sysconfig.get_preferred_scheme("user")]
    places = [Path(sysconfig.get_path("data", scheme)) / "share" / "fraudstream" / "models" for scheme in schemes]
    return next((place for place in places if place.is_dir()), places[0])   # errors then name places[0]


def stateless_model_path() -> Path:
    """The committed model that needs no per-card state (for --no-state): 34 features."""
    return models_dir() / "fraud-model-stateless.meta.json"


def default_model_path() -> Path:
    """The committed model's metadata file (FRAUDSTREAM_MODEL overrides)."""
    env = os.environ.get("FRAUDSTREAM_MODEL")
    if env:
        return Path(env)
    return models_dir() / "fraud-model.meta.json"
