"""bench produce's traffic: event time at the pace the model learned, distinct chunks, and so
an alert rate near the fraud rate (bench.flow.demo_traffic)."""

import numpy as np
import pytest

from bench.flow.demo_traffic import PAYMENTS_PER_CARD_DAY, demo_chunks
from bench.load.synth import Batch, generate

END = 1_796_000_000.0


def test_chunks_follow_each_other_end_now_and_run_at_the_training_pace():
    chunks = demo_chunks(120_000, cards=10_000, seed=3, end=END, chunk=50_000)
    assert [c.n for c in chunks] == [50_000, 50_000, 20_000]
    assert [c.id_offset for c in chunks] == [0, 50_000, 100_000]
    for a, b in zip(chunks, chunks[1:]):
        assert b.start == pytest.approx(a.start + a.span_s)
    span = chunks[-1].start + chunks[-1].span_s - chunks[0].start
    assert chunks[-1].start + chunks[-1].span_s == pytest.approx(END)
    assert 120_000 / 10_000 / (span / 86_400) == pytest.approx(PAYMENTS_PER_CARD_DAY)
    assert len({c.seed for c in chunks}) == 3
    # another --seed gives other chunks, not the same ones shifted by one
    assert not {c.seed for c in chunks} & {c.seed for c in demo_chunks(120_000, cards=10_000, seed=4, end=END)}
    assert demo_chunks(1, cards=1, seed=-5, end=END)[0].seed >= 0     # numpy refuses negative seeds


def test_more_history_than_since_1970_is_refused():
    with pytest.raises(ValueError, match="days of card history, more than since 1970: use more --cards"):
        demo_chunks(10 ** 9, cards=1, seed=0, end=END)


def _concat(batches):
    return Batch(*[np.concatenate([getattr(b, f) for b in batches]) for f in Batch.__dataclass_fields__])


def _legit_flagged(batches) -> float:
    from bench.model.velocity import velocity_features
    from core.model import load_model

    model = load_model()
    b = _concat(batches)
    flagged = model.predict(np.hstack([b.features(), velocity_features(b)])) >= model.threshold
    return float(flagged[b.label == 0].mean())


def test_the_default_model_flags_few_legit_payments_of_a_demo():
    # 15 s at 2,000/s on bench produce's default 10,000 cards. The chunk spanned by its send
    # time (the old way) gave every card a payment every ~5 s: 3.5 % of legit flagged.
    total, cards, tps = 30_000, 10_000, 2_000.0
    paced = [generate(c.n, seed=c.seed, fraud_rate=0.01, n_cards=cards, id_offset=c.id_offset,
                      start=c.start, span_s=c.span_s)
             for c in demo_chunks(total, cards=cards, seed=11, end=END)]
    rushed = [generate(total, seed=11, fraud_rate=0.01, n_cards=cards, start=END, span_s=total / tps)]
    assert _legit_flagged(paced) < 0.002 < 0.01 < _legit_flagged(rushed)
