"""Features and scores of a row do not depend on the batch it arrives in, nor on the CPU.

The batch tests compare bit patterns (uint32 views), not values: an ulp is a difference.
The CPU cannot be varied here, so the other tests check the construction that makes the
results CPU-independent: the feature kernel has no call (libm picks CPU-specific code at
run time), no FMA and no fast-math flag in what numba compiles for this machine
(core/features.py says why), and the compiled model's sigmoid does not call the C library's
expf (core/_exp_c.py).
"""

import ctypes
import json
import re

import numba as nb
import numpy as np
import pytest

from bench.load.synth import generate
from core import Scorer, features
from core._exp_c import use_own_exp
from core.decode import decode_batch
from core.features import AMOUNT, LOG_AMOUNT, empty_matrix, fill_derived


@pytest.fixture(scope="module", autouse=True)
def _stateless(stateless_model):
    """These tests score without per-card state: the stateless model (tests/conftest.py)."""

SEED = 4242
N_ROWS = 8192
BATCH_SIZES = (1, 7, 300, 8192)
# amounts that stress log1p and the pattern thresholds, besides the random ones below
_EDGE_AMOUNTS = [0, 0.01, 0.99, 1, 1.01, 99.99, 100, 100.5, 499.99, 500, 4999.99, 1e9,
                 1e-40, 3.5e-45, 2.5e-7, 123456.78, 999999999.99]


@pytest.fixture(scope="module")
def rows() -> list[bytes]:
    """8,192 valid transactions: synthetic ones, a quarter with amounts spread over the
    whole accepted range, an eighth that the scanner hands to the msgspec path."""
    print(f"rows: bench.load.synth.generate({N_ROWS}, seed={SEED}) with amounts from seed {SEED}")
    rng = np.random.default_rng(SEED)
    wide = rng.integers(0, np.float32(1e9).view(np.uint32), N_ROWS // 4, dtype=np.uint32)
    amounts = _EDGE_AMOUNTS + [float(a) for a in wide.view(np.float32)]
    out = []
    for i, value in enumerate(generate(N_ROWS, seed=SEED, fraud_rate=0.05).payloads()):
        if i % 4 == 1 or i % 8 == 2:
            tx = json.loads(value)
            if i % 4 == 1:
                tx["amount"] = amounts[(i // 4) % len(amounts)]
            else:
                tx["merchant_category"] = "caf\u00e9"   # an escape: the msgspec path
            value = json.dumps(tx).encode()
        out.append(value)
    return out


def _in_batches(values, size: int, step) -> np.ndarray:
    parts = [step(values[i:i + size]) for i in range(0, len(values), size)]
    return np.concatenate(parts)


def _features(batch) -> np.ndarray:
    d = decode_batch(batch)
    assert d.dead == [], d.dead[:3]
    return fill_derived(d.x)


def test_features_are_bit_identical_at_any_batch_size(rows):
    whole = _in_batches(rows, N_ROWS, _features).view(np.uint32)
    assert whole.shape == (N_ROWS, features.N_FEATURES)
    assert len(np.unique(whole[:, LOG_AMOUNT])) > N_ROWS // 4   # many distinct amounts seen
    for size in BATCH_SIZES[:-1]:
        split = _in_batches(rows, size, _features).view(np.uint32)
        differ = np.nonzero((split != whole).any(axis=1))[0]
        assert differ.size == 0, (f"batch size {size}: rows {differ[:5].tolist()} differ in "
                                  f"columns {np.nonzero(split[differ[0]] != whole[differ[0]])}")


def test_scores_are_bit_identical_at_any_batch_size(rows):
    scorer = Scorer.load()

    def scores(batch):
        result = scorer.score_batch(batch)
        assert result.dead == []
        return result.scores

    whole = _in_batches(rows, N_ROWS, scores).view(np.uint32)
    assert whole.shape == (N_ROWS,) and len(np.unique(whole)) > N_ROWS // 2
    for size in BATCH_SIZES[:-1]:
        split = _in_batches(rows, size, scores).view(np.uint32)
        assert np.array_equal(split, whole), f"batch size {size}: scores differ"


def test_a_row_alone_in_a_strided_view_gets_the_same_features():
    """numpy's log1p took three paths here (one element, strided, contiguous); the kernel
    takes one whatever the layout."""
    rng = np.random.default_rng(SEED)
    x = empty_matrix(1000)
    x[:] = rng.normal(size=x.shape).astype(np.float32)
    x[:, AMOUNT] = np.round(rng.lognormal(4, 2, 1000), 2)
    whole = fill_derived(x.copy())
    for i in range(1000):
        alone = x[i:i + 1].copy()
        assert np.array_equal(fill_derived(alone).view(np.uint32), whole[i:i + 1].view(np.uint32))


def test_log_amount_is_the_correctly_rounded_float32():
    """Against log1p in x87 extended precision: every cent to 10,000 and 400,000 random
    float32 in the accepted amount range, plus the special values."""
    if np.finfo(np.longdouble).nmant < 63:
        pytest.skip("needs an extended-precision long double for the reference")
    rng = np.random.default_rng(SEED)
    amounts = np.concatenate([
        (np.arange(1_000_001, dtype=np.float64) / 100).astype(np.float32),
        rng.integers(0, np.float32(1e9).view(np.uint32), 400_000, dtype=np.uint32)
        .view(np.float32),
        np.array([-0.5, -0.0, 1e-45, 3.4e38, np.inf], dtype=np.float32)])
    x = np.zeros((amounts.size, features.N_FEATURES), dtype=np.float32)
    x[:, AMOUNT] = amounts
    got = fill_derived(x)[:, LOG_AMOUNT]
    want = np.log1p(amounts.astype(np.longdouble)).astype(np.float32)
    wrong = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
    assert wrong.size == 0, f"amounts {amounts[wrong[:5]]}: {got[wrong[:5]]} != {want[wrong[:5]]}"
    special = np.zeros((3, features.N_FEATURES), dtype=np.float32)
    special[:, AMOUNT] = [-1.0, -2.0, np.nan]
    log_amount = fill_derived(special)[:, LOG_AMOUNT]
    assert log_amount[0] == -np.inf and np.isnan(log_amount[1:]).all()


def test_pattern_flags_follow_their_thresholds():
    amounts = np.array([0, 1, np.nextafter(np.float32(1), 2), 99.99, 100, 100.5, 101, 500,
                        499.99, np.inf, np.nan], dtype=np.float32)
    x = np.zeros((amounts.size, features.N_FEATURES), dtype=np.float32)
    x[:, AMOUNT] = amounts
    fill_derived(x)
    assert x[:, features.IS_MICRO].tolist() == [1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]
    assert x[:, features.IS_ROUND].tolist() == [0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0]
    assert x[:, features.IS_HIGH].tolist() == [0, 0, 0, 0, 0, 0, 0, 1, 0, 1, 0]


def test_fill_derived_rejects_a_matrix_of_another_type():
    with pytest.raises(ValueError, match="float32"):
        fill_derived(np.zeros((2, features.N_FEATURES)))
    with pytest.raises(ValueError, match="float32"):
        fill_derived(np.zeros((2, 3), dtype=np.float32))


def test_the_kernel_calls_nothing_and_fuses_nothing():
    """Compiled afresh (numba cannot show cached code) with the kernel's own options."""
    options = {k: v for k, v in features._fill_derived.targetoptions.items()
               if k != "nopython"}
    assert "fastmath" not in options
    kernel = nb.njit(**options)(features._fill_derived.py_func)
    kernel(empty_matrix(3))
    sig = kernel.signatures[0]
    name = kernel.overloads[sig].fndesc.mangled_name
    llvm = re.search(rf"^define [^\n]*@{re.escape(name)}\(.*?^}}", kernel.inspect_llvm(sig),
                     re.S | re.M).group(0)
    # floor is exact in any implementation; nothing else may be called
    assert set(re.findall(r"call [^@]*@([\w.$]+)", llvm)) <= {"llvm.floor.f32"}
    assert not re.search(r"\b(fast|contract|reassoc|afn|arcp)\b", llvm)
    asm = re.search(rf"^{re.escape(name)}:\n(.*?)^\.Lfunc_end", kernel.inspect_asm(sig),
                    re.S | re.M).group(1)
    ops = {line.split()[0] for line in asm.splitlines()
           if line.startswith("\t") and not line.startswith("\t.")}
    assert len(ops) > 10                                    # the body was found
    assert {"vdivsd", "divsd"} & ops                        # and it is this kernel
    assert not {op for op in ops if op.startswith("call") or "fma" in op or "fnm" in op}


def test_the_compiled_sigmoid_is_correctly_rounded_without_the_c_librarys_expf():
    """postprocess() of the compiled model against 1 / (1 + exp(-m)) with exp in extended
    precision rounded to float: 200,000 margins, the saturated ends and NaN."""
    model = Scorer.load().model
    assert model.backend == "tl2cgen" and model.library_path is not None
    assert b"\x00expf\x00" not in model.library_path.read_bytes()   # not even imported
    postprocess = ctypes.CDLL(str(model.library_path)).postprocess
    postprocess.argtypes = (ctypes.c_void_p,)
    rng = np.random.default_rng(SEED)
    margins = np.concatenate([rng.uniform(-30, 30, 100_000), rng.normal(0, 3, 100_000),
                              [0, 88.7, 89, -88, -104, -110, 1e6, -1e6, np.inf, -np.inf]])
    got = margins.astype(np.float32)
    for i in range(got.size):
        postprocess(got.ctypes.data + 4 * i)
    with np.errstate(over="ignore"):   # exp(1e6) is inf, as in float
        e = np.exp(-margins.astype(np.float32).astype(np.longdouble)).astype(np.float32)
    want = np.float32(1) / (np.float32(1) + e)
    wrong = np.nonzero(got.view(np.uint32) != want.view(np.uint32))[0]
    assert wrong.size == 0, f"margins {margins[wrong[:5]]}: {got[wrong[:5]]} != {want[wrong[:5]]}"
    nan = np.array([np.nan], dtype=np.float32)
    postprocess(nan.ctypes.data)
    assert np.isnan(nan[0])


def test_own_exp_replaces_the_one_expf_call_or_declines():
    main_c = '#include "header.h"\nvoid postprocess(float* r) { r[0] = 1 / (1 + expf(-r[0])); }\n'
    patched = use_own_exp(main_c)
    assert "expf(" not in patched and "fraudstream_exp(-r[0])" in patched
    assert patched.index("static float fraudstream_exp") < patched.index("void postprocess")
    assert use_own_exp(main_c.replace("expf(", "exp(")) is None
    assert use_own_exp(main_c + "float g(float x) { return expf(x); }\n") is None
