"""CI: `core` scores with its runtime dependencies alone (pyproject's `dependencies`).

Run by .ci/run in a fresh venv where only `pip install .` was done, no extras: the harness's
and training's packages must be absent, and the scorer must still load its model, score a
batch, flag fraud and dead-letter bad input.
"""

import importlib.util
import subprocess
import sys

EXTRAS_ONLY = ["xgboost", "sklearn", "matplotlib", "rich", "pytest"]


def transaction(i: int, amount: float, v: float) -> bytes:
    vs = ",".join(f'"V{k}":{v if k in (4, 11) else -v:.4f}' for k in range(1, 29))
    return (f'{{"transaction_id":"tx-{i}","card_hash":"c{i % 7}","amount":{amount},'
            f'"timestamp":"2026-12-05T03:{i % 60:02d}:00Z","merchant_category":"online",{vs}}}').encode()


def main() -> None:
    present = [m for m in EXTRAS_ONLY if importlib.util.find_spec(m) is not None]
    assert not present, f"extras-only packages installed in the runtime-only venv: {present}"

    from core import Scorer

    scorer = Scorer.load()
    batch = [transaction(i, 10.0 + i, 0.1) for i in range(200)]
    batch += [transaction(1000 + i, 2500.0, 6.0) for i in range(20)]   # far out: should flag
    batch += [b"not json", b'{"transaction_id":"x"}']
    result = scorer.score_batch(batch)
    assert len(result.scored) == 220, result
    assert len(result.dead) == 2, result.dead
    assert result.alerts, "no transaction flagged, even the far-out ones"
    print(f"core alone: {result!r}, model {scorer.model_version}")

    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--bootstrap" in out.stdout, out.stderr
    print("core alone: python -m core --help ok")


if __name__ == "__main__":
    main()
