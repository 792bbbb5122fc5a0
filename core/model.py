"""The fraud model: metadata, and tree inference compiled to native code.

`load_model()` reads models/fraud-model.meta.json, checks the XGBoost JSON beside it against
the hash the metadata records, loads it into treelite and compiles it with tl2cgen into a
shared library, ONCE per model hash: the library is cached under
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
import platform
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import msgspec
import numpy as np

from core._exp_c import EXP_C, use_own_exp
from core.contrib import Contributions
from core.errors import ModelError
from core.features import FEATURE_NAMES
from core.velocity import VELOCITY_FEATURES
from core.paths import default_model_path, home
from core.risk import Bands, RiskBands

__all__ = ["Metrics", "ModelMeta", "FraudModel", "load_model", "load_meta", "warm_compile",
           "compiled_library_path", "COMPILER_ENV"]

log = logging.getLogger(__name__)

# Name of the C compiler to use. "none" never runs a compiler: a library already in the cache
# is still used, otherwise scoring uses treelite.gtil.
COMPILER_ENV = "FRAUDSTREAM_CC"
_LIB_NAME = "predictor.so"
_FORMAT = 3   # bump when the generated library changes (it is part of the cache key)


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
    format_version: int = 1


def load_meta(meta_path: str | os.PathLike | None = None) -> tuple[ModelMeta, Path]:
    """(metadata, path of the model file it describes); ModelError when unusable."""
    path = Path(meta_path) if meta_path is not None else default_model_path()
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ModelError(f"cannot read model metadata {path}: {exc.strerror or exc}") from exc
    try:
        meta = msgspec.json.decode(raw, type=ModelMeta)
    except msgspec.DecodeError as exc:
        raise ModelError(f"corrupt model metadata {path}: {exc}") from exc
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
            lib = _ensure_library(tl_model, meta.model_sha256)
            try:
                predict = _native_predict(lib, n_features)
            except ModelError as exc:  # a damaged cache entry: rebuild it once
                log.warning("%s: rebuilding it", exc)
                shutil.rmtree(lib.parent, ignore_errors=True)
                lib = _ensure_library(tl_model, meta.model_sha256)
                predict = _native_predict(lib, n_features)
            return FraudModel(meta, "tl2cgen", predict, lib, contributions)
        except _NoCompiler as exc:
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


def compiled_library_path(model_sha256: str) -> Path:
    """Where the compiled library of a model with this hash lives (it may not exist yet)."""
    return home() / "models" / _cache_key(model_sha256) / _LIB_NAME


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
        raise ModelError(f"treelite cannot load {model_path}: {exc}") from exc
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


def _native_predict(lib: Path, n_features: int):
    """predict() calling the library's batch entry point through ctypes: one foreign call
    per batch (tl2cgen.Predictor's DMatrix costs ~50 us per call, too much for small batches)."""
    import ctypes

    try:
        handle = ctypes.CDLL(str(lib))
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


# -- compiling ----------------------------------------------------------------------------

class _NoCompiler(Exception):
    pass


def _cache_key(model_sha256: str) -> str:
    import tl2cgen

    # The library depends on the model, the code generator, how it was compiled and the
    # machine it was built for.
    build = hashlib.sha256(repr((_CFLAGS, _TREES_PER_UNIT, EXP_C)).encode()).hexdigest()[:8]
    return (f"{model_sha256[:16]}-tl2cgen{tl2cgen.__version__}-{platform.machine()}"
            f"-b{_FORMAT}-{build}")


def _find_compiler() -> str:
    wanted = os.environ.get(COMPILER_ENV)
    if wanted is not None and wanted.lower() in ("", "none", "0"):
        raise _NoCompiler(f"compiling disabled by {COMPILER_ENV}={wanted!r}")
    for name in ([wanted] if wanted else ["gcc", "clang", "cc"]):
        if shutil.which(name):
            return name
    raise _NoCompiler(f"no C compiler found on PATH (looked for "
                      f"{wanted if wanted else 'gcc, clang, cc'})")


# Appended to tl2cgen's main.c: score a whole C-contiguous float32 matrix in one call. NaN
# becomes tl2cgen's "missing" marker, so a NaN feature follows the trees' default branch as
# in XGBoost itself.
#
# Cache blocking: tl2cgen's predict() runs every tree for one row; a large ensemble is more
# branchy code per row than the L1 instruction cache holds (~400 KB for 250 trees of depth 5).
# The trees are split into translation units of _TREES_PER_UNIT trees (predict_unit0..N), and
# the batch entry point runs each unit over a block of 64 rows while its code is hot: ~30 %
# less time per row for that ensemble, measured; harmless for small ones. Per row the
# additions happen in predict()'s order (units in order, then the base score), so the scores
# are bit-identical to predict()'s.
_TREES_PER_UNIT = 10
# After tl2cgen's own -O3, so this wins: on this tree code -O1 scored exactly as fast as -O2,
# -O3 and -O3 -march=native (bit-identical results) for ~40 % less compiler CPU time. The
# time goes to mispredicted branches, which no flag removes (models/README.md).
# -ffp-contract=off: a*b+c never becomes an FMA, whatever the target (core._exp_c says why).
_CFLAGS = ["-O1", "-ffp-contract=off"]
_BLOCKED_C = """
#define FS_BLOCK 64
static void fs_base_score(float* result) {
%(base)s
}
void fraudstream_predict_batch(const float* x, size_t n, float* out) {
  union Entry rows[FS_BLOCK][%(n)d];
  for (size_t r0 = 0; r0 < n; r0 += FS_BLOCK) {
    size_t m = n - r0 < FS_BLOCK ? n - r0 : FS_BLOCK;
    for (size_t i = 0; i < m; ++i) {
      const float* xi = x + (r0 + i) * %(n)d;
      for (int j = 0; j < %(n)d; ++j) {
        if (isnan(xi[j])) { rows[i][j].missing = -1; } else { rows[i][j].fvalue = xi[j]; }
      }
      out[r0 + i] = 0.0f;
    }
%(units)s
    for (size_t i = 0; i < m; ++i) {
      fs_base_score(out + r0 + i);
      postprocess(out + r0 + i);
    }
  }
}
"""
# The simple form, when tl2cgen's generated code does not look as _blocked_source expects.
_ROWWISE_C = """
void fraudstream_predict_batch(const float* x, size_t n, float* out) {
  union Entry row[%(n)d];
  for (size_t i = 0; i < n; ++i) {
    const float* xi = x + i * %(n)d;
    for (int j = 0; j < %(n)d; ++j) {
      if (isnan(xi[j])) { row[j].missing = -1; } else { row[j].fvalue = xi[j]; }
    }
    float score = 0.0f;
    predict(row, 0, &score);
    out[i] = score;
  }
}
"""
_BASE_SCORE = re.compile(r"// Apply base_scores\n(.*?)\n\s*// Apply postprocessor", re.S)
_UNIT_CALL = re.compile(r"^\s*predict_unit(\d+)\(data, result\);$", re.M)


def _blocked_source(main_c: str, n_features: int) -> str | None:
    """The cache-blocked batch entry point for this generated main.c, or None when predict()
    is not the expected sequence "units in order; base score; postprocess"."""
    base = _BASE_SCORE.search(main_c)
    units = [int(u) for u in _UNIT_CALL.findall(main_c)]
    if base is None or not units or units != list(range(len(units))):
        return None
    calls = "\n".join(f"    for (size_t i = 0; i < m; ++i) predict_unit{u}(rows[i], out + r0 + i);"
                      for u in units)
    return _BLOCKED_C % {"base": base.group(1), "n": n_features, "units": calls}


def _units(tl_model) -> int:
    """How many translation units (of _TREES_PER_UNIT trees) tl2cgen generates."""
    return max(1, -(-tl_model.num_tree // _TREES_PER_UNIT))


def _build(tl_model, toolchain: str, build_dir: Path) -> Path:
    """Generate C with tl2cgen, add the batch entry point, compile into build_dir."""
    import tl2cgen

    src = build_dir / "src"
    tl2cgen.generate_c_code(tl_model, src, params={"parallel_comp": _units(tl_model)})
    main_c = (src / "main.c").read_text()
    own_exp = use_own_exp(main_c)
    if own_exp is None:
        log.warning("tl2cgen's postprocess() is not as expected: scores use the C library's "
                    "expf, which may round differently on another CPU")
    else:
        main_c = own_exp
    entry = _blocked_source(main_c, tl_model.num_feature)
    if entry is None:
        log.info("tl2cgen's main.c is not as expected: using the row-by-row batch entry point")
        entry = _ROWWISE_C % {"n": tl_model.num_feature}
    (src / "main.c").write_text(main_c + entry)
    built = Path(tl2cgen.create_shared(toolchain, src, nthread=os.cpu_count() or 1,
                                       long_build_time_warning=False, options=_CFLAGS))
    os.replace(built, build_dir / _LIB_NAME)
    shutil.rmtree(src, ignore_errors=True)
    return build_dir / _LIB_NAME


def _ensure_library(tl_model, model_sha256: str) -> Path:
    """The cached library for this model, compiled first if absent.

    Two processes may compile at once: each builds in its own temporary directory and
    renames it into place; the loser of the rename discards its copy and uses the winner's.
    """
    lib = compiled_library_path(model_sha256)
    if lib.is_file():
        return lib
    toolchain = _find_compiler()
    import tl2cgen

    lib.parent.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=lib.parent.parent))
    try:
        t0 = time.perf_counter()
        _build(tl_model, toolchain, tmp)
        log.info("compiled the model with tl2cgen/%s in %.1f s -> %s", toolchain,
                 time.perf_counter() - t0, lib.parent)
        try:
            os.rename(tmp, lib.parent)
        except OSError:
            if not lib.is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lib
