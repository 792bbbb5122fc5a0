"""Configuration of the scoring service: one frozen msgspec Struct, loaded from YAML or flags.

Kafka client settings pass through untouched as librdkafka's own dotted keys in `kafka`
(TLS and SASL included). The few keys the exactly-once loop must control itself are refused
with an error naming the key, and secrets never appear in a repr or a log line.

    >>> cfg = ScoringConfig(bootstrap_servers="broker:9092",
    ...                     kafka={"security.protocol": "SASL_SSL", "sasl.password": "s3cret"})
    >>> "s3cret" in repr(cfg)
    False
"""

from __future__ import annotations

import contextvars
import re
import socket
from pathlib import Path, PurePath
from typing import Annotated, Any, Literal

import msgspec
from msgspec import Meta

from core.errors import ConfigError
from core.topics import TopicNames

__all__ = ["ScoringConfig", "redact", "load_config", "yaml_error_text", "RESERVED_KAFKA_KEYS", "MAX_WORKERS",
           "INSTANCE_ID_PATTERN", "check_consumer_args", "kafka_bool", "kafka_int"]

MAX_WORKERS = 256   # scoring processes one service may start
INSTANCE_ID_PATTERN = r"[A-Za-z0-9._-]{1,64}"   # becomes part of Kafka ids and of file names

# Keys the transactional loop sets itself: letting a passthrough override them would
# silently turn exactly-once into at-least-once (or worse).
RESERVED_KAFKA_KEYS = frozenset({
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "group.instance.id",
    "transactional.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "isolation.level",
    "enable.idempotence",
    "auto.offset.reset",
})
# Reserved keys that have a ScoringConfig field of their own (metadata.broker.list is
# librdkafka's other name for bootstrap.servers).
_FIELD_FOR_KEY = {"bootstrap.servers": "bootstrap_servers", "metadata.broker.list": "bootstrap_servers",
                  "group.id": "group_id", "auto.offset.reset": "offset_reset"}
# Passthrough values the loop cannot work with, and why. Its rebalance callbacks assign()
# eagerly: under an incremental protocol librdkafka refuses that ("Failed to set assignment:
# Erroneous state") in every worker, forever (core.txn says why the assignment is eager).
_INCOMPATIBLE_VALUES = {
    "partition.assignment.strategy": (lambda v: "cooperative" in v.lower(),
                                      "the scoring loop assigns partitions eagerly: use range or roundrobin "
                                      "(the default)"),
    "group.protocol": (lambda v: v.strip().lower() != "classic",
                       "the scoring loop needs the classic group protocol (eager rebalances)"),
}
# librdkafka's spellings of a bool (case-insensitive). confluent-kafka reads
# delivery.report.only.error in Python, so librdkafka never sees (and never refuses) a bad one.
_TRUE, _FALSE = frozenset({"true", "t", "1"}), frozenset({"false", "f", "0"})
_PYTHON_BOOL_KEYS = frozenset({"delivery.report.only.error"})
# Set while msgspec decodes a config (which checks types and ranges, then calls __post_init__):
# __post_init__ runs that check itself only for a config built directly.
_VALIDATING: contextvars.ContextVar[bool] = contextvars.ContextVar("scoring_config_validating", default=False)

_SECRET_KEY = re.compile(r"password|secret|token|credential|private|\.key\.pem|sasl\.oauthbearer\.config"
                         r"|sasl\.jaas|ssl\.key\b|keystore|\.key$", re.IGNORECASE)
_REDACTED = "***"


def redact(settings: dict[str, Any]) -> dict[str, Any]:
    """A copy of `settings` with the values of secret-looking keys replaced by ``***``."""
    return {k: (_REDACTED if _SECRET_KEY.search(k) else v) for k, v in settings.items()}


class ScoringConfig(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    """Everything one scoring process needs. Frozen: derive variants with `replace()`.

    batch_max_records / batch_max_wait_ms: a transaction closes when the batch is full or the
    deadline passes, whichever comes first. Measured here (2 cores, 6 workers): a transaction
    costs the broker ~4 ms CPU whatever its size, so a backlog drains 13% faster at 8000
    records than at 2000 (16000 gains nothing more); the deadline bounds latency at live
    rates, where it also caps the transaction rate at workers / deadline.
    instance_id: names this service instance in its worker ids: slot `i` uses
    ``<group_id>.<instance_id>-<i>`` as its transactional.id and group.instance.id, so a
    restarted worker fences its killed predecessor and takes over its partitions at once. Every
    live service of a group needs its own. Default (the service): a random id made once and
    kept in FRAUDSTREAM_HOME (see core.identity), unique across hosts without coordination.
    transactional_id_prefix: the whole ``<prefix>`` of ``<prefix>-<i>``, overriding the above
    (for embedding ScoringConsumer; without either the prefix is ``<group_id>.<hostname>``).
    state: per-card velocity state on (the default): each partition's cards are kept in
    memory, their changes written to the compacted `topics.state` changelog in the same Kafka
    transaction as the outputs, and restored from it when a partition is assigned; scored
    events carry the `card` object. False (`--no-state`) scores every transaction alone; the
    service (core.service.build_config) then defaults to the stateless model, and a model that
    uses velocity features refuses to start (ConfigError).
    state_snapshot_s: how often each partition's changed cards go to the changelog (a snapshot
    in one of its batch transactions, with a marker of the input offset it is at; 0: every
    transaction). A restore reads the snapshot and replays the input since then, so this
    bounds the replay (seconds of that partition's input) against the changelog writes (one
    record per distinct card changed per interval). 5 s: the replay applies the input at
    ~3.4 us of CPU per record, 3-4x faster than scoring it (10-13 us in `bench drain`; Intel
    Xeon, 2026-12-06), so it adds at most about a second and a half to a restore, while a
    card that transacts every few seconds is written once per interval, not once per batch.
    exactly_once: False switches to at-least-once (produce, flush, store the offsets; the
    consumer commits them every 5 s). It exists only to show that the kill -9 test can
    fail; never run production with it.
    offset_reset: where an input partition starts when the group's committed offset for it is
    missing or out of range (expired after offsets.retention.minutes, deleted, or behind the
    log start after retention). "refuse" (default): a new group (no outputs written yet) starts at
    the earliest record, but a group that has committed before (or a new one on topics that
    already hold outputs: core.offsets) leaves such a partition paused with an error line
    and the fraudstream_offset_reset_refused counter, instead of re-scoring and re-alerting
    all retained input; "earliest" / "latest": reset silently to that end, as librdkafka's
    auto.offset.reset does (see core.offsets).
    topic_guard: before each commit, once the transaction's records are acknowledged, ask
    whether a topic was deleted or created again since the process started, and if so abort
    and stop instead of committing the old topics' batch into the new ones (core.topicids).
    One metadata request per transaction: at small batches it costs latency and CPU (figures
    in docs/service.md); false for a deployment whose topics are never deleted under it.
    """

    bootstrap_servers: str = "127.0.0.1:9092"
    topics: TopicNames = TopicNames()
    group_id: str = "fraudstream-scoring"
    batch_max_records: Annotated[int, Meta(ge=1, le=100_000)] = 8000
    batch_max_wait_ms: Annotated[int, Meta(ge=0, le=60_000)] = 25
    instance_id: Annotated[str, Meta(pattern=f"^{INSTANCE_ID_PATTERN}$")] | None = None
    transactional_id_prefix: str | None = None
    exactly_once: bool = True
    state: bool = True
    state_snapshot_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 5.0
    static_membership: bool = True
    kafka: dict[str, str] = {}
    model_path: str | None = None
    metrics_port: Annotated[int, Meta(ge=0, le=65_535)] = 0
    stats_interval_s: Annotated[float, Meta(ge=0.0, le=3600.0)] = 10.0
    offset_reset: Literal["refuse", "earliest", "latest"] = "refuse"
    topic_guard: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.model_path, PurePath):   # what an embedder naturally passes
            msgspec.structs.force_setattr(self, "model_path", str(self.model_path))
        if not _VALIDATING.get():
            # ScoringConfig(...) itself checks no type or range (msgspec does that on decoding
            # only): an embedder's batch_max_records=0 would otherwise reach the loop.
            checked = _convert(msgspec.to_builtins(self))
            wrong = [f for f in self.__struct_fields__ if isinstance(getattr(checked, f), msgspec.Struct)
                     and type(getattr(self, f)) is not type(getattr(checked, f))]
            if wrong:   # topics={...}: a dict that decodes, but is not a TopicNames
                raise ConfigError(f"invalid scoring config: {wrong[0]}: expected "
                                  f"{type(getattr(checked, wrong[0])).__name__}, got {type(getattr(self, wrong[0])).__name__}")
        if not self.bootstrap_servers.strip():
            raise ConfigError("bootstrap_servers: must not be empty")
        if not self.group_id.strip():
            raise ConfigError("group_id: must not be empty")
        problem = self.topics.problem(self.state)
        if problem:
            raise ConfigError(problem)
        for key in self.kafka:
            if key in RESERVED_KAFKA_KEYS:
                raise ConfigError(
                    f"kafka.{key}: set by the scoring loop itself; use the ScoringConfig field "
                    f"{_FIELD_FOR_KEY[key]} instead" if key in _FIELD_FOR_KEY else
                    f"kafka.{key}: reserved, the exactly-once loop controls it")
            if key in _PYTHON_BOOL_KEYS and kafka_bool(self.kafka[key]) is None:
                raise ConfigError(f"kafka.{key}={self.kafka[key]}: expected true or false")
            if key in _INCOMPATIBLE_VALUES and _INCOMPATIBLE_VALUES[key][0](self.kafka[key]):
                raise ConfigError(f"kafka.{key}={self.kafka[key]}: not supported, {_INCOMPATIBLE_VALUES[key][1]}")

    def __repr__(self) -> str:
        fields = []
        for name in self.__struct_fields__:
            value = getattr(self, name)
            if name == "kafka":
                value = redact(value)
            fields.append(f"{name}={value!r}")
        return f"ScoringConfig({', '.join(fields)})"

    __str__ = __repr__

    def __rich_repr__(self):
        for name in self.__struct_fields__:
            value = getattr(self, name)
            yield name, redact(value) if name == "kafka" else value

    def txn_id_prefix(self) -> str:
        """The transactional.id prefix in effect: explicit, from the instance id, or per host."""
        if self.transactional_id_prefix:
            return self.transactional_id_prefix
        return f"{self.group_id}.{self.instance_id or socket.gethostname()}"

    def replace(self, **changes: Any) -> "ScoringConfig":
        """A copy with `changes` applied and validated again."""
        return _convert({**msgspec.to_builtins(self),
                         **{k: msgspec.to_builtins(v, enc_hook=_path_text) for k, v in changes.items()}})

    def redacted(self) -> dict[str, Any]:
        """Plain dict for logs and reports, secrets replaced by ``***``."""
        out = msgspec.to_builtins(self)
        out["kafka"] = redact(out["kafka"])
        return out


def kafka_bool(value: Any) -> bool | None:
    """A librdkafka bool setting's value as a bool; None when librdkafka would refuse it."""
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


_STRTOL = re.compile(r"\s*([+-]?)(0[xX][0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)")


def kafka_int(value: Any) -> int | None:
    """An integer setting as librdkafka reads it (C strtol, base 0: "60000ms" is 60000, "0x7530"
    30000, "010" 8), or None when it starts with no number."""
    match = _STRTOL.match(str(value))
    if match is None:
        return None
    sign, digits = match.groups()
    base = 16 if digits[:2].lower() == "0x" else 8 if digits.startswith("0") else 10
    return int(sign + digits, base)


def _convert(data: dict[str, Any]) -> ScoringConfig:
    if isinstance(data.get("kafka"), dict):
        # YAML gives ints and bools; librdkafka wants strings, bools spelled true/false.
        data = {**data, "kafka": {str(k): _kafka_str(v) for k, v in data["kafka"].items()}}
    token = _VALIDATING.set(True)   # msgspec checks types and ranges as it decodes
    try:
        return msgspec.convert(data, ScoringConfig)
    except msgspec.ValidationError as exc:
        raise ConfigError(f"invalid scoring config: {_describe(exc)}") from None
    finally:
        _VALIDATING.reset(token)


def _kafka_str(value: Any) -> Any:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    return value


def _describe(exc: msgspec.ValidationError) -> str:
    # msgspec says "... - at `$.batch_max_records`": put the field name first.
    text = str(exc)
    match = re.search(r" - at `\$\.?([^`]*)`$", text)
    if match:
        return f"{match.group(1) or '(root)'}: {text[:match.start()]}"
    return text


def yaml_error_text(error: BaseException | None, default: BaseException | None = None) -> str:
    """What a YAML parser found wrong and where, on one line: "did not find expected ',' or
    ']' (line 3, column 1) while parsing a flow sequence". Without PyYAML's details (`error`
    None or not a parser error), the first line of `default` (or of `error`)."""
    problem = getattr(error, "problem", None)
    if problem is None:
        return str(default if default is not None else error).splitlines()[0]
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
    context = getattr(error, "context", None)
    return f"{problem}{where}" + (f" {context}" if context else "")


def _path_text(value: Any) -> str:
    """msgspec's enc_hook: a path (model_path) as its text."""
    if isinstance(value, PurePath):
        return str(value)
    raise NotImplementedError(f"Encoding objects of type {type(value).__name__} is unsupported")


def load_config(path: str | Path | None = None, **overrides: Any) -> ScoringConfig:
    """Config from a YAML file (optional) with keyword overrides on top (None values ignored).

    `namespace="ns"` is accepted as an override and expands to namespaced topic names.
    """
    data: dict[str, Any] = {}
    if path is not None:
        import yaml

        try:
            loaded = yaml.safe_load(Path(path).read_text())
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc.strerror}") from None
        except UnicodeDecodeError as exc:
            raise ConfigError(f"config {path} is not UTF-8 text (byte {exc.start}): a YAML file is expected") from None
        except yaml.YAMLError as exc:
            raise ConfigError(f"config {path} is not valid YAML: {yaml_error_text(exc)}") from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError(f"config {path}: expected a mapping at the top level")
        data = dict(loaded or {})
    namespace = overrides.pop("namespace", None)
    kafka_extra = overrides.pop("kafka", None)
    data.update({k: msgspec.to_builtins(v, enc_hook=_path_text) for k, v in overrides.items() if v is not None})
    if kafka_extra:
        data["kafka"] = {**(data.get("kafka") or {}), **kafka_extra}
    if namespace is not None:
        if not namespace.strip():   # `--namespace "$NS"` with NS unset would score the default topics
            raise ConfigError("namespace: empty; leave it out for the default topics")
        data["topics"] = msgspec.to_builtins(TopicNames.namespaced(namespace))
    try:
        return _convert(data)
    except ConfigError as exc:
        field = re.match(r"invalid scoring config: (\w+)", str(exc))
        given = {k for k, v in overrides.items() if v is not None}
        if path is not None and (field is None or field.group(1) not in given):   # the file's value
            raise ConfigError(f"{exc} (in {path})") from None
        raise


def check_consumer_args(config: Any, scorer: Any, slot: Any) -> None:
    """ConfigError naming an embedder's wrong argument to core.ScoringConsumer, at construction
    rather than as an AttributeError in run()."""
    if not isinstance(config, ScoringConfig):
        raise ConfigError(f"config: expected a core.ScoringConfig, got {type(config).__name__}")
    if not callable(getattr(scorer, "score_batch", None)):
        raise ConfigError(f"scorer: expected a core.Scorer (Scorer.load()), got {type(scorer).__name__}")
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0:
        raise ConfigError(f"slot: expected an int >= 0, got {slot!r}")
