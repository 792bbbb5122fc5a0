"""The fraud model: metadata, and tree inference compiled to native code.

`load_model()` reads models/fraud-model.meta.json, checks the XGBoost JSON beside it against
the hash the metadata records, loads it into treelite and compiles it with tl2cgen into a
shared library (core.modelbuild), ONCE per model hash: the library is cached under
core.paths.home()/models/<hash>/ and later loads (other processes, restarts) just open it.
Without a C compiler, or when compiling fails, scoring falls back to treelite.gtil (about 10x
slower, same answers) after one warning. The same JSON gives the per-feature contributions that
reason codes are made of (core.contrib, built at load). A missing or corrupt model raises
ModelError at start-up, never at the first message.

Example:
    model = load_model()                  # the committed model
    scores = model.predict(x)             # x: float32 (n, N_FEATURES) -> float32 (n,)
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from core.contrib import Contributions
from core.errors import ModelError
from core.modelbuild import COMPILER_ENV, NoCompiler, compiled_library_path, ensure_library, library_problem
from core.features import FEATURE_NAMES
from core.velocity import VELOCITY_FEATURES
from core.paths import default_model_path
from core.risk import Bands, RiskBands

__all__ = ["FORMAT_VERSION", "Metrics", "ModelMeta", "FraudModel", "load_model", "load_meta", "warm_compile",
           "compiled_library_path", "COMPILER_ENV"]

log = logging.getLogger(__name__)

FORMAT_VERSION = 1   # of the metadata file



class Metrics(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Quality of the model on one data set, at the metadata's threshold."""

    rows: int
    frauds: int
    roc_auc: float
    pr_auc: float
    precision: float
    recall: float
    f1: float


class ModelMeta(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """models/fraud-model.meta.json: everything needed to use and audit the model."""

    model_version: str
    model_file: str                  # relative to the metadata file
    model_sha256: str
    feature_names: tuple[str, ...]
    threshold: float
    threshold_rule: str
    bands: Bands
    metrics: dict[str, Metrics]      # "validation", "holdout"
    training: dict[str, Any]         # generator and XGBoost settings, seed, data sizes
    format_version: int = 1          # FORMAT_VERSION when written by this code


def _path_origin(given: Any, path: Path) -> str:
    """Where a path that could not be read came from, when the path alone does not say."""
    origin = ["set by FRAUDSTREAM_MODEL"] if given is None and os.environ.get("FRAUDSTREAM_MODEL") else []
    if not path.is_absolute():
        origin.append(f"relative to the current directory {Path.cwd()}")
    return f" ({', '.join(origin)})" if origin else ""


def load_meta(meta_path: str | os.PathLike | None = None) -> tuple[ModelMeta, Path]:
    """(metadata, path of the model file it describes); ModelError when unusable."""
    path = Path(meta_path) if meta_path is not None else default_model_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model metadata {path}: {exc.strerror or exc}"
                         f"{_path_origin(meta_path, path)}") from exc
    try:
        meta = msgspec.json.decode(raw, type=ModelMeta)
    except msgspec.DecodeError as exc:
        raise ModelError(f"corrupt model metadata {path}: {exc}") from exc
    if meta.format_version != FORMAT_VERSION:   # its fields may mean something else
        raise ModelError(f"model metadata {path} has format_version {meta.format_version}, this code reads "
                         f"{FORMAT_VERSION}: use the fraudstream that wrote it, or retrain (bench model train)")
    if tuple(meta.feature_names) not in _KNOWN_FEATURES:
        raise ModelError(f"model metadata {path} lists features {list(meta.feature_names)}, "
                         f"but this code builds {list(FEATURE_NAMES)}, optionally followed by "
                         f"the velocity features {list(VELOCITY_FEATURES)}")
    try:
        RiskBands.from_meta(meta)
    except ValueError as exc:
        raise ModelError(f"model metadata {path}: {exc}") from exc
    return meta, path.parent / meta.model_file


# A stateless model reads the transaction's own features; a stateful one also the per-card
# velocity features (core.velocity), appended in this order.
_KNOWN_FEATURES = (FEATURE_NAMES, FEATURE_NAMES + VELOCITY_FEATURES)


class FraudModel:
    """A loaded model: `predict` scores a float32 feature matrix; `contributions` explains
    rows of it (Saabas, core.contrib)."""

    __slots__ = ("meta", "backend", "risk", "library_path", "contributions", "_predict")

    def __init__(self, meta: ModelMeta, backend: str, predict, library_path: Path | None,
                 contributions: Contributions):
        self.meta = meta
        self.backend = backend               # "tl2cgen" or "gtil"
        self.risk = RiskBands.from_meta(meta)
        self.library_path = library_path
        self.contributions = contributions
        self._predict = predict

    @property
    def model_version(self) -> str:
        return self.meta.model_version

    @property
    def threshold(self) -> float:
        return self.meta.threshold

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Fraud scores in [0, 1], float32 (n,), for x float32 C-contiguous (n, features)."""
        n_features = len(self.meta.feature_names)
        if x.dtype != np.float32 or x.ndim != 2 or x.shape[1] != n_features:
            raise ValueError(f"expected float32 (n, {n_features}), got {x.dtype} {x.shape}")
        if x.shape[0] == 0:
            return np.empty(0, dtype=np.float32)
        return self._predict(np.ascontiguousarray(x))

    def __repr__(self) -> str:
        return f"FraudModel({self.meta.model_version!r}, backend={self.backend!r})"


def load_model(meta_path: str | os.PathLike | None = None, *, compile: bool = True) -> FraudModel:
    """Load the model described by meta_path (default: the committed model).

    compile=True uses (and if needed builds) the cached native library; when that is
    impossible it logs one warning and uses treelite.gtil. compile=False uses gtil silently.
    """
    meta, model_path = load_meta(meta_path)
    raw = _check_model_file(model_path, meta)
    n_features = len(meta.feature_names)
    tl_model = _treelite_model(model_path, n_features)
    contributions = Contributions.from_xgboost_json(raw, n_features)
    if compile:
        try:
            lib = ensure_library(tl_model, meta.model_sha256)
            try:
                predict = _native_predict(str(lib), n_features)
            except ModelError as exc:  # a damaged cache entry: rebuild it once
                log.warning("%s: rebuilding it", exc)
                shutil.rmtree(lib.parent, ignore_errors=True)
                lib = ensure_library(tl_model, meta.model_sha256)
                # dlopen returns the library it already loaded under the same name (the
                # damaged one, if it loaded): the name spelled with "/./" is new to it.
                predict = _native_predict(f"{lib.parent}/./{lib.name}", n_features)
            return FraudModel(meta, "tl2cgen", predict, lib, contributions)
        except NoCompiler as exc:
            log.warning("%s: scoring with treelite.gtil instead (same scores, ~10x slower)", exc)
        except Exception as exc:  # a broken toolchain must not stop scoring: gtil is exact
            detail = " ".join(str(exc).split())[:300]   # compiler output: keep one line
            log.warning("compiling the model with tl2cgen failed (%s: %s): scoring with "
                        "treelite.gtil instead (same scores, ~10x slower)",
                        type(exc).__name__, detail)
    return FraudModel(meta, "gtil", _gtil_predict(tl_model), None, contributions)


def warm_compile(meta_path: str | os.PathLike | None = None) -> Path | None:
    """Build the cached native library once (e.g. in a supervisor before workers start).

    Returns the library path, or None when no compiler is available.
    """
    model = load_model(meta_path, compile=True)
    return model.library_path


# -- loading ------------------------------------------------------------------------------

def _check_model_file(model_path: Path, meta: ModelMeta) -> bytes:
    """The model file's bytes, once they match the hash the metadata records."""
    try:
        raw = model_path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model file {model_path}: {exc.strerror or exc}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != meta.model_sha256:
        raise ModelError(f"model file {model_path} has sha256 {digest[:12]}..., but its "
                         f"metadata expects {meta.model_sha256[:12]}...: the model and its "
                         f"metadata do not belong together")
    return raw


def _treelite_model(model_path: Path, n_features: int):
    import treelite

    try:
        model = treelite.frontend.load_xgboost_model(model_path, format_choice="json")
    except Exception as exc:  # treelite raises its own TreeliteError and ValueErrors
        # its message goes on with the JSON around the error and a ~~~ marker: keep the first line
        raise ModelError(f"treelite cannot load {model_path}: {str(exc).strip().splitlines()[0]}") from exc
    if model.num_feature != n_features:
        raise ModelError(f"model {model_path} expects {model.num_feature} features, "
                         f"its metadata lists {n_features}")
    return model


def _gtil_predict(tl_model):
    import treelite

    gtil_predict = treelite.gtil.predict

    def predict(x: np.ndarray) -> np.ndarray:
        return gtil_predict(tl_model, x, nthread=1).reshape(-1)

    return predict


def _native_predict(lib: str, n_features: int):
    """predict() calling the library's batch entry point through ctypes: one foreign call
    per batch (tl2cgen.Predictor's DMatrix costs ~50 us per call, too much for small batches)."""
    import ctypes

    try:
        problem = library_problem(Path(lib).read_bytes())
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem:
        raise ModelError(f"cannot load the compiled model {lib}: {problem}")
    try:
        handle = ctypes.CDLL(lib)
        batch = handle.fraudstream_predict_batch
        n_feature = handle.get_num_feature()
    except (OSError, AttributeError) as exc:
        raise ModelError(f"cannot load the compiled model {lib}: {exc}") from exc
    if n_feature != n_features:
        raise ModelError(f"compiled model {lib} expects {n_feature} features, not {n_features}")
    batch.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p)
    batch.restype = None
    empty = np.empty

    def predict(x: np.ndarray) -> np.ndarray:
        out = empty(x.shape[0], dtype=np.float32)
        batch(x.ctypes.data, x.shape[0], out.ctypes.data)
        return out

    predict.handle = handle   # keep the library loaded as long as predict lives
    return predict
