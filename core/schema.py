"""The wire contract as msgspec Structs: what flows on each topic (see shared/DESIGN.md).

The hot path never builds these Structs for valid events (core.decode scans the bytes straight
into the feature matrix); they are the reference decoding, used for the rare slow path, alerts,
tests and anyone consuming the topics.

Dead letters carry a reason "<kind>: <detail>" where <kind> is one of DEAD_KINDS, e.g.
"missing field: `amount`" or "wrong type: `V7` expected float, got str".
"""

from typing import Annotated, Literal

import msgspec

from core.features import N_V

__all__ = [
    "Transaction", "ScoreFields", "ScoredEvent", "Reason", "Alert", "V_FIELDS",
    "SCORE_FIELD_NAMES", "REASONS_FIELD", "CARD_FIELD", "RESERVED_FIELD_NAMES",
    "REQUIRED_FIELDS", "RISK_LEVELS", "MAX_VALUE_BYTES", "MAX_AMOUNT", "DEAD_KINDS",
    "TOO_LARGE", "BAD_UTF8", "BAD_JSON", "NOT_OBJECT", "MISSING_FIELD", "WRONG_TYPE",
    "NON_FINITE", "OUT_OF_RANGE", "BAD_TIMESTAMP", "RESERVED_FIELD", "DUPLICATE_FIELD",
]

V_FIELDS = tuple(f"V{i}" for i in range(1, N_V + 1))
RISK_LEVELS = ("LOW", "MEDIUM", "HIGH", "CRITICAL")

# A transaction is ~0.5-1 KiB; anything this big is a producer bug or an attack, not a payment.
MAX_VALUE_BYTES = 64 * 1024
# Above any card payment; also keeps amount exactly representable enough in float32 features.
MAX_AMOUNT = 1e9

# Dead-letter reason kinds (the part before the first colon of every reason).
TOO_LARGE = "value too large"
BAD_UTF8 = "invalid UTF-8"
BAD_JSON = "invalid JSON"
NOT_OBJECT = "not a JSON object"
MISSING_FIELD = "missing field"
WRONG_TYPE = "wrong type"
NON_FINITE = "non-finite number"
OUT_OF_RANGE = "out of range"
BAD_TIMESTAMP = "bad timestamp"
RESERVED_FIELD = "reserved field"
# A contract field named twice: parsers disagree on which one counts (last wins here, first
# wins elsewhere), so the amount scored could differ from the amount a reader of fraud-scores
# sees. Unknown fields named twice are carried through as they came.
DUPLICATE_FIELD = "duplicate field"
DEAD_KINDS = (TOO_LARGE, BAD_UTF8, BAD_JSON, NOT_OBJECT, MISSING_FIELD, WRONG_TYPE,
              NON_FINITE, OUT_OF_RANGE, BAD_TIMESTAMP, RESERVED_FIELD, DUPLICATE_FIELD)

_NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]

Transaction = msgspec.defstruct(
    "Transaction",
    [("transaction_id", _NonEmpty), ("card_hash", _NonEmpty), ("amount", float),
     ("timestamp", str), ("merchant_category", str)]
    + [(name, float) for name in V_FIELDS]
    + [("synthetic_label", int | None, msgspec.field(default=None, name="_synthetic_label"))],
    frozen=True, gc=False, module=__name__,
)
Transaction.__doc__ = """A card transaction on the `transactions` topic.

`timestamp` is ISO-8601 UTC ending in `Z`; `_synthetic_label` (0/1) exists only in synthetic
test data and is never a model input. Unknown fields are ignored here and carried through
untouched to `fraud-scores` by the scorer (producers evolve before consumers).
"""

REQUIRED_FIELDS = Transaction.__struct_encode_fields__[:-1]


class ScoreFields(msgspec.Struct, frozen=True, gc=False):
    """The fields the scorer adds to a transaction on `fraud-scores`."""

    fraud_score: float  # in [0, 1], rounded to 6 decimals
    is_fraud: bool  # fraud_score >= threshold
    risk_level: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    threshold: float
    scored_at: str  # ISO-8601 UTC, when the batch was scored
    scoring_latency_ms: float  # time the batch spent in score_batch before encoding
    model_version: str


SCORE_FIELD_NAMES = ScoreFields.__struct_fields__


class Reason(msgspec.Struct, frozen=True, gc=False):
    """Why a flagged transaction scored high: one of its top contributions (core.reasons)."""

    code: str  # stable, e.g. AMOUNT, AMOUNT_MICRO, HOUR_OF_DAY, BEHAVIOUR_V14
    value: float  # the feature's value in this transaction (amount, hour, 0/1 flag, Vk)
    contribution: float  # its share of the score, in log-odds (> 0: towards fraud)
    text: str  # for a person, e.g. "micro amount of 0.15 (1.00 or less), as in card testing"


# Written after the score fields on flagged events only (their top reasons, as on the alert).
REASONS_FIELD = "reasons"
# With state on, written before the score fields: the core.velocity features the event was
# scored with, names without `card_` (tx_1m, amount_1m, ..., secs_since_micro; null: none).
CARD_FIELD = "card"
# Fields a producer may not send: the scorer writes them (a duplicate key would be ambiguous).
RESERVED_FIELD_NAMES = SCORE_FIELD_NAMES + (REASONS_FIELD, CARD_FIELD)

ScoredEvent = msgspec.defstruct(
    "ScoredEvent",
    [(name, ScoreFields.__annotations__[name]) for name in SCORE_FIELD_NAMES]
    + [(REASONS_FIELD, tuple[Reason, ...], ()), (CARD_FIELD, dict[str, float | None] | None, None)],
    bases=(Transaction,), kw_only=True, frozen=True, gc=False, module=__name__,
)
ScoredEvent.__doc__ = """A value on `fraud-scores`: the transaction's fields plus ScoreFields,
`reasons` (up to 3) when is_fraud, and `card` (the velocity features) with state on."""


class Alert(msgspec.Struct, frozen=True, gc=False):
    """A value on `fraud-alerts`, one per transaction with is_fraud."""

    alert_id: str  # "alert_" + transaction_id
    transaction_id: str
    card_hash: str
    amount: float
    fraud_score: float
    risk_level: Literal["LOW", "MEDIUM", "HIGH", "CRITICAL"]
    merchant_category: str
    timestamp: str
    alert_time: str  # ISO-8601 UTC
    action_required: Literal["BLOCK", "REVIEW"]  # BLOCK when CRITICAL
    model_version: str
    reasons: tuple[Reason, ...]  # up to 3, largest contribution first
