"""core.model: compiled, gtil and XGBoost's own predictions agree; failures are ModelErrors.

The compiled library is cached under core.paths.home(), so only the first run anywhere pays the
compile (~20-30 s on 2 cores); later runs load it.
"""

import json
import re
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from core.errors import ModelError
from core.features import AMOUNT, HOUR, N_FEATURES, N_V, fill_derived
from core.model import ModelMeta, compiled_library_path, load_meta, load_model
from core.modelbuild import library_problem
from core.paths import default_model_path


@pytest.fixture(scope="module", autouse=True)
def _stateless(stateless_model):
    """These tests score without per-card state: the stateless model (tests/conftest.py)."""

SEED = 20261128


@pytest.fixture(scope="module")
def compiled():
    model = load_model()
    assert model.backend == "tl2cgen", "gcc is expected on the test machines"
    return model


@pytest.fixture(scope="module")
def gtil():
    return load_model(compile=False)


def random_rows(n: int, seed: int) -> np.ndarray:
    """Feature rows over and beyond the training range, derived columns filled as in serving."""
    print(f"random_rows seed={seed}")
    rng = np.random.default_rng(seed)
    x = np.empty((n, N_FEATURES), dtype=np.float32)
    x[:, :N_V] = rng.normal(0.0, 2.5, (n, N_V))
    x[:, AMOUNT] = np.round(np.exp(rng.uniform(np.log(0.01), np.log(20_000), n)), 2)
    x[:, HOUR] = rng.integers(0, 24, n)
    return fill_derived(x)


def test_compiled_gtil_and_xgboost_agree(compiled, gtil):
    import xgboost as xgb

    x = random_rows(5000, SEED)
    ours = compiled.predict(x)
    assert ours.shape == (5000,) and ours.dtype == np.float32
    assert ((ours >= 0) & (ours <= 1)).all()
    reference = xgb.Booster(model_file=str(default_model_path().parent / compiled.meta.model_file))
    theirs = reference.predict(xgb.DMatrix(x))
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(gtil.predict(x), theirs, rtol=0, atol=1e-5)
    assert ours.std() > 0.01, "a model that scores everything alike is not the trained model"


def test_nan_features_are_missing_values_as_in_xgboost(compiled, gtil):
    import xgboost as xgb

    x = random_rows(1000, SEED + 4)
    x[np.random.default_rng(SEED).random(x.shape) < 0.2] = np.nan
    reference = xgb.Booster(model_file=str(default_model_path().parent / compiled.meta.model_file))
    theirs = reference.predict(xgb.DMatrix(x, missing=np.nan))
    np.testing.assert_allclose(compiled.predict(x), theirs, rtol=0, atol=1e-5)
    np.testing.assert_allclose(gtil.predict(x), theirs, rtol=0, atol=1e-5)


@pytest.mark.parametrize("n", [1, 2, 63, 1024])
def test_batch_sizes_agree_with_one_big_batch(compiled, n):
    x = random_rows(1024, SEED + 1)
    whole = compiled.predict(x)
    parts = np.concatenate([compiled.predict(x[i:i + n]) for i in range(0, 1024, n)])
    np.testing.assert_array_equal(parts, whole)


def test_predict_rejects_wrong_shapes_and_handles_empty(compiled):
    assert compiled.predict(np.empty((0, N_FEATURES), np.float32)).shape == (0,)
    with pytest.raises(ValueError, match="float32"):
        compiled.predict(np.zeros((2, N_FEATURES), np.float64))
    with pytest.raises(ValueError):
        compiled.predict(np.zeros((2, N_FEATURES - 1), np.float32))


def test_non_contiguous_input_is_scored_correctly(compiled):
    x = random_rows(200, SEED + 2)
    wide = np.zeros((200, 2 * N_FEATURES), np.float32)
    wide[:, ::2] = x
    np.testing.assert_array_equal(compiled.predict(wide[:, ::2]), compiled.predict(x))


def test_meta_is_the_committed_model(compiled):
    meta = compiled.meta
    assert isinstance(meta, ModelMeta)
    assert meta.model_version.startswith("xgb-") and meta.model_version[4:] in meta.model_sha256
    assert compiled.library_path == compiled_library_path(meta.model_sha256)
    assert compiled.library_path.is_file()
    assert compiled.risk.threshold == meta.threshold == meta.bands.high


# -- failures -------------------------------------------------------------------------------

@pytest.fixture
def model_copy(tmp_path) -> Path:
    """A copy of the committed model and metadata in tmp_path; returns the metadata path."""
    src = default_model_path()
    meta = json.loads(src.read_bytes())
    shutil.copy(src.parent / meta["model_file"], tmp_path / meta["model_file"])
    shutil.copy(src, tmp_path / src.name)
    return tmp_path / src.name


def test_missing_metadata(tmp_path):
    with pytest.raises(ModelError, match=r"cannot read model metadata .*nope\.json"):
        load_model(tmp_path / "nope.json")


def test_a_missing_metadata_file_says_where_its_path_came_from(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelError, match=rf"nope\.json: No such file or directory \(relative to the current "
                                         rf"directory {re.escape(str(tmp_path))}\)$"):
        load_model("models/nope.json")
    monkeypatch.setenv("FRAUDSTREAM_MODEL", str(tmp_path / "env.json"))
    with pytest.raises(ModelError, match=r"env\.json: No such file or directory \(set by FRAUDSTREAM_MODEL\)$"):
        load_model()
    with pytest.raises(ModelError, match=r"abs\.json: No such file or directory$"):
        load_model(tmp_path / "abs.json")


def test_corrupt_metadata(model_copy):
    model_copy.write_bytes(b'{"model_version": 3')
    with pytest.raises(ModelError, match="corrupt model metadata"):
        load_model(model_copy)


def test_metadata_with_a_wrong_field(model_copy):
    meta = json.loads(model_copy.read_bytes())
    meta["threshold"] = "high"
    model_copy.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match=r"threshold"):
        load_model(model_copy)


def test_metadata_with_other_features(model_copy):
    meta = json.loads(model_copy.read_bytes())
    meta["feature_names"] = meta["feature_names"][::-1]
    model_copy.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="lists features"):
        load_model(model_copy)


def test_metadata_of_another_format_version(model_copy):
    meta = json.loads(model_copy.read_bytes())
    meta["format_version"] = 2
    model_copy.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="has format_version 2, this code reads 1"):
        load_model(model_copy)


def test_missing_model_file(model_copy):
    meta, model_path = load_meta(model_copy)
    model_path.unlink()
    with pytest.raises(ModelError, match="cannot read model file"):
        load_model(model_copy)


def test_model_file_that_does_not_match_its_metadata(model_copy):
    _, model_path = load_meta(model_copy)
    model_path.write_bytes(model_path.read_bytes().replace(b'"base_score"', b'"base_score" '))
    with pytest.raises(ModelError, match="do not belong together"):
        load_model(model_copy)


def test_corrupt_model_file_with_matching_hash(model_copy):
    import hashlib

    _, model_path = load_meta(model_copy)
    garbage = b'{"learner": 17}'
    model_path.write_bytes(garbage)
    meta = json.loads(model_copy.read_bytes())
    meta["model_sha256"] = hashlib.sha256(garbage).hexdigest()
    model_copy.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="treelite cannot load"):
        load_model(model_copy)


def test_truncated_model_file_with_matching_hash_is_one_line(model_copy):
    """treelite's message goes on for two more lines (the JSON around the error, a ~~~ marker)."""
    import hashlib

    _, model_path = load_meta(model_copy)
    truncated = model_path.read_bytes()[:1000]
    model_path.write_bytes(truncated)
    meta = json.loads(model_copy.read_bytes())
    meta["model_sha256"] = hashlib.sha256(truncated).hexdigest()
    model_copy.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="treelite cannot load") as caught:
        load_model(model_copy)
    assert "\n" not in str(caught.value) and "~~~" not in str(caught.value)


# -- the gtil fallback, in a subprocess so the environment is really without a compiler -------

_FALLBACK = textwrap.dedent("""
    import logging, sys
    import numpy as np
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
    from core.model import load_model
    m = load_model()
    x = np.load(sys.argv[1])
    np.save(sys.argv[2], m.predict(x))
    print("BACKEND", m.backend)
""")


_BROKEN_CC = """#!/bin/sh
[ "$1" = "--version" ] && exit 0
echo "broken compiler" >&2
exit 1
"""


@pytest.mark.parametrize("case", ["disabled", "no compiler on PATH", "compiler fails"])
def test_gtil_fallback_without_compiler(tmp_path, compiled, case):
    x = random_rows(2000, SEED + 3)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, FRAUDSTREAM_HOME=str(tmp_path / "home"))
    env.pop("FRAUDSTREAM_CC", None)
    if case == "disabled":
        env["FRAUDSTREAM_CC"] = "none"
    elif case == "no compiler on PATH":
        env["PATH"] = ""
    else:
        cc = tmp_path / "broken-cc"
        cc.write_text(_BROKEN_CC)
        cc.chmod(0o755)
        env["FRAUDSTREAM_CC"] = str(cc)
    proc = subprocess.run([sys.executable, "-c", _FALLBACK, str(tmp_path / "x.npy"),
                           str(tmp_path / "y.npy")], env=env, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "BACKEND gtil" in proc.stdout
    warnings = [l for l in proc.stderr.splitlines() if l.startswith("WARNING")]
    assert len(warnings) == 1 and "treelite.gtil" in warnings[0], proc.stderr
    np.testing.assert_allclose(np.load(tmp_path / "y.npy"), compiled.predict(x), atol=1e-5)
    assert not any((tmp_path / "home").glob("models/*/predictor.so"))


def test_compile_false_is_gtil_without_warning(caplog):
    with caplog.at_level("WARNING"):
        model = load_model(compile=False)
    assert model.backend == "gtil" and model.library_path is None
    assert not caplog.records


_COMPILE = textwrap.dedent("""
    from core.model import load_model
    m = load_model()
    print("BACKEND", m.backend, m.library_path)
""")


@pytest.mark.slow
def test_two_processes_compiling_at_once_share_one_library(tmp_path):
    """Both compile (a fresh cache), one rename wins, both end up on the same library."""
    env = dict(os.environ, FRAUDSTREAM_HOME=str(tmp_path))
    env.pop("FRAUDSTREAM_CC", None)
    procs = [subprocess.Popen([sys.executable, "-c", _COMPILE], env=env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (out, err) in zip(procs, outs):
        assert p.returncode == 0, err
        assert "BACKEND tl2cgen" in out, err
    libs = {out.split()[-1] for out, _ in outs}
    assert len(libs) == 1
    assert [p.name for p in (tmp_path / "models").iterdir()] == [Path(libs.pop()).parent.name]


def test_compiling_prints_nothing_on_stdout(tmp_path):
    """tl2cgen's library print()s its notices ("Parallel compilation enabled"): they go to the
    log, not to the stdout of a service or of the program embedding the scorer."""
    env = dict(os.environ, FRAUDSTREAM_HOME=str(tmp_path))
    env.pop("FRAUDSTREAM_CC", None)
    done = subprocess.run([sys.executable, "-c", _COMPILE], env=env, text=True, capture_output=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:-1] == [] and done.stdout.startswith("BACKEND tl2cgen"), done.stdout


def test_generated_code_gets_the_cache_blocked_entry_point(tmp_path):
    """If tl2cgen's output changes shape, scoring silently falls back to the slower row-wise
    entry point; this test notices."""
    import tl2cgen
    import treelite

    from core import modelbuild

    tl = treelite.frontend.load_xgboost_model(default_model_path().parent / "fraud-model.json",
                                              format_choice="json")
    units = modelbuild._units(tl)
    assert units > 1
    tl2cgen.generate_c_code(tl, tmp_path, params={"parallel_comp": units})
    source = modelbuild._blocked_source((tmp_path / "main.c").read_text(), tl.num_feature)
    assert source is not None
    assert source.count("predict_unit") == units


def _another_models_library() -> bytes:
    """The compiled library of the stateful model: a valid library with other trees and widths."""
    return load_model(default_model_path().parent / "fraud-model.meta.json").library_path.read_bytes()


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["not a library", "truncated", "another model's"])
def test_a_damaged_cached_library_is_rebuilt_and_used(tmp_path, compiled, damage):
    """Whatever is in the cache entry, the service scores with a rebuilt library after one
    warning. Before: a truncated library killed the process with SIGBUS in dlopen (exit 135,
    no message, in every restarted worker), and for another model's library the rebuilt one
    was never loaded (dlopen handed back the library it had already loaded under that name):
    treelite.gtil, ~10x slower, and a warning that compiling had failed."""
    home = tmp_path / "home"
    lib = home / compiled.library_path.relative_to(compiled.library_path.parents[2])
    lib.parent.mkdir(parents=True)
    lib.write_bytes({"not a library": lambda: b"not a shared library",
                     "truncated": lambda: compiled.library_path.read_bytes()[:3000],
                     "another model's": _another_models_library}[damage]())
    x = random_rows(500, SEED + 5)
    np.save(tmp_path / "x.npy", x)
    env = dict(os.environ, FRAUDSTREAM_HOME=str(home))
    env.pop("FRAUDSTREAM_CC", None)
    proc = subprocess.run([sys.executable, "-c", _FALLBACK, str(tmp_path / "x.npy"), str(tmp_path / "y.npy")],
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "BACKEND tl2cgen" in proc.stdout, proc.stderr
    warnings = [line for line in proc.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1 and warnings[0].endswith(": rebuilding it"), proc.stderr
    np.testing.assert_array_equal(np.load(tmp_path / "y.npy"), compiled.predict(x))


def test_library_problem_finds_what_dlopen_would_die_of(compiled):
    good = compiled.library_path.read_bytes()
    assert library_problem(good) is None
    assert library_problem(b"not a shared library") == "not an ELF shared library"
    for size in (64, 3000, len(good) // 2, len(good) - 1):
        assert library_problem(good[:size]).startswith(f"truncated: {size} bytes, its headers need ")


def test_the_default_model_is_stateful_and_scores_the_velocity_columns_too():
    """The committed default model reads the 34 transaction features then the velocity
    features (core.velocity); the loader sizes its checks and its compiled entry point by
    the metadata, and still rejects any other list."""
    from core.paths import stateless_model_path
    from core.velocity import VELOCITY_FEATURES

    meta, _ = load_meta(Path(__file__).resolve().parents[2] / "models" / "fraud-model.meta.json")
    width = N_FEATURES + len(VELOCITY_FEATURES)
    assert meta.feature_names[N_FEATURES:] == VELOCITY_FEATURES and len(meta.feature_names) == width
    stateful = load_model(stateless_model_path().parent / "fraud-model.meta.json")
    x = np.zeros((3, width), np.float32)
    x[:, 34:] = np.nan
    assert stateful.predict(x).shape == (3,)
    with pytest.raises(ValueError, match="expected float32"):
        stateful.predict(np.zeros((3, N_FEATURES), np.float32))
