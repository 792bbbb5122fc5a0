"""CI: `core` scores with its runtime dependencies alone (pyproject's `dependencies`).

Run by .ci/run in a fresh venv where only `pip install .` was done, no extras: the harness's
and training's packages must be absent, and the scorer must still load its models (the default
one with per-card state, and the stateless one), score a batch, flag fraud and dead-letter bad
input.
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

    import numpy as np

    from core import Scorer
    from core.cardbatch import batch_velocity
    from core.paths import default_model_path
    from core.velocity import CardStore

    batch = [transaction(i, 10.0 + i, 0.1) for i in range(200)]
    batch += [transaction(1000 + i, 2500.0, 6.0) for i in range(20)]   # far out: should flag
    batch += [b"not json", b'{"transaction_id":"x"}']
    keys = [b"c%d" % (i % 7) for i in range(len(batch))]
    stateful = Scorer.load()      # the default model: per-card velocity features, state on
    # an installed package has no models/ of its own: both come from FRAUDSTREAM_MODEL's folder
    stateless = Scorer.load(default_model_path().with_name("fraud-model-stateless.meta.json"))
    for scorer, velocity in ((stateful, batch_velocity({0: CardStore()}, np.zeros(len(batch), np.int64), keys)),
                             (stateless, None)):
        result = scorer.score_batch(batch, velocity) if velocity else scorer.score_batch(batch)
        assert len(result.scored) == 220, result
        assert len(result.dead) == 2, result.dead
        assert result.alerts, "no transaction flagged, even the far-out ones"
        print(f"core alone: {result!r}, model {scorer.model_version}")

    out = subprocess.run([sys.executable, "-m", "core", "--help"], capture_output=True, text=True)
    assert out.returncode == 0 and "--bootstrap" in out.stdout, out.stderr
    print("core alone: python -m core --help ok")


if __name__ == "__main__":
    main()
