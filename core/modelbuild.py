"""Compiling a model's trees to a native library with tl2cgen, once per model hash, cached
under core.paths.home()/models/<key>/ (core.model loads it; without a compiler it falls back
to treelite.gtil). The generated code is tl2cgen's, plus a cache-blocked batch entry point."""

from __future__ import annotations

import hashlib
import logging
import os
import platform
import re
import shutil
import struct
import tempfile
import time
from pathlib import Path
from typing import Any

from core._exp_c import EXP_C, use_own_exp
from core.paths import home

__all__ = ["COMPILER_ENV", "NoCompiler", "compiled_library_path", "ensure_library", "library_problem"]

log = logging.getLogger(__name__)

# Name of the C compiler to use. "none" never runs a compiler: a library already in the cache
# is still used, otherwise scoring uses treelite.gtil.
COMPILER_ENV = "FRAUDSTREAM_CC"
_LIB_NAME = "predictor.so"
_FORMAT = 3   # bump when the generated library changes (it is part of the cache key)


def compiled_library_path(model_sha256: str) -> Path:
    """Where the compiled library of a model with this hash lives (it may not exist yet)."""
    return home() / "models" / _cache_key(model_sha256) / _LIB_NAME


class NoCompiler(Exception):
    """No compiler to build with (none found, or disabled by COMPILER_ENV)."""


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
        raise NoCompiler(f"compiling disabled by {COMPILER_ENV}={wanted!r}")
    for name in ([wanted] if wanted else ["gcc", "clang", "cc"]):
        if shutil.which(name):
            return name
    raise NoCompiler(f"no C compiler found on PATH (looked for "
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


_ELF64_HEADER = struct.Struct("<16sHHIQQQIHHHHHH")
_ELF64_PHDR = struct.Struct("<IIQQQQQQ")
_PT_LOAD = 1


def library_problem(data: bytes) -> str | None:
    """What makes `data` unsafe to dlopen as a 64-bit little-endian ELF library, or None.

    A truncated library is not refused by dlopen: it maps the segments past the file's end and
    the process dies of SIGBUS (exit 135, no message) when the loader touches them, so the
    file must hold every segment and the section headers it declares."""
    if len(data) < _ELF64_HEADER.size or data[:4] != b"\x7fELF":
        return "not an ELF shared library"
    if data[4:6] != b"\x02\x01":
        return "not a 64-bit little-endian ELF library"
    header = _ELF64_HEADER.unpack_from(data)
    phoff, shoff, phentsize, phnum, shentsize, shnum = header[5], header[6], header[9], header[10], header[11], header[12]
    ends = [phoff + phentsize * phnum, shoff + shentsize * shnum]
    if ends[0] <= len(data) and phentsize >= _ELF64_PHDR.size:
        for i in range(phnum):
            kind, _, offset, _, _, filesz, _, _ = _ELF64_PHDR.unpack_from(data, phoff + i * phentsize)
            if kind == _PT_LOAD:
                ends.append(offset + filesz)
    if max(ends) > len(data):
        return f"truncated: {len(data)} bytes, its headers need {max(ends)}"
    return None


_NOTICES: list = []   # the callbacks given to tl2cgen's library, kept alive


def _log_tl2cgen_notices() -> None:
    """Send tl2cgen's notices to this module's log instead of stdout, where its library
    print()s them (a service's stdout, an embedder's): "Parallel compilation enabled" at debug
    level, and at info the one that says the model was written by a newer treelite than the
    one tl2cgen bundles (the compiled scores are checked against treelite.gtil's by the tests).
    Uses tl2cgen's private _LIB: without it the notices print as before."""
    if _NOTICES:
        return
    import ctypes

    def callback(level: int) -> Any:
        return ctypes.CFUNCTYPE(None, ctypes.c_char_p)(
            lambda msg: log.log(level, "tl2cgen: %s", " ".join(msg.decode("utf-8", "replace").split())))

    try:
        from tl2cgen.libloader import _LIB

        notices = (callback(logging.DEBUG), callback(logging.INFO))
        if _LIB.TL2cgenRegisterLogCallback(notices[0]) == 0 and _LIB.TL2cgenRegisterWarningCallback(notices[1]) == 0:
            _NOTICES.extend(notices)
    except (ImportError, AttributeError, OSError):
        pass


def ensure_library(tl_model, model_sha256: str) -> Path:
    """The cached library for this model, compiled first if absent.

    Two processes may compile at once: each builds in its own temporary directory and
    renames it into place; the loser of the rename discards its copy and uses the winner's.
    """
    lib = compiled_library_path(model_sha256)
    if lib.is_file():
        return lib
    toolchain = _find_compiler()
    import tl2cgen  # noqa: F401 - missing, it fails here, before a build directory exists

    _log_tl2cgen_notices()

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
