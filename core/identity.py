"""Who a service is to Kafka: its instance id, and whether an error means another process took it.

Worker slot `i` of a service uses ``<group>.<instance id>-<i>`` as its transactional.id and
group.instance.id. The ids must be unique among all live services of the group, on every host,
without any coordination between them, and stable when a slot or the service restarts (the
restarted slot then fences its dead predecessor and aborts its open transaction at once).

- An explicit instance id (``--instance-id``, config ``instance_id``) is used as given; a
  second service with the same id on this host (same FRAUDSTREAM_HOME) is refused at start-up.
- Otherwise the service takes the lowest free lock ``<home>/run/<group>.<k>.lock`` and the
  random id persisted beside it (``<group>.<k>.id``, made once): two services on one home
  differ by k, two homes (hosts, containers, checkouts) by the random part, and a service
  restarted after a crash takes its k and so its id back. A home copied to a second machine
  copies its ids too: the supervisor then reports the collision (see core.slots).
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import socket
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaError, KafkaException

from core.config import INSTANCE_ID_PATTERN
from core.errors import ConfigError, PipelineError
from core.paths import home

__all__ = ["claim_instance_id", "lock_explicit_id", "is_fenced", "kafka_error_of", "CREDENTIAL_CODES"]

_MAX_INSTANCES = 1000

# The producer learns it was fenced as _FENCED (or the broker's codes); a static consumer
# replaced by another with its group.instance.id gets _FATAL with this text (librdkafka).
_FENCED_CODES = frozenset({KafkaError._FENCED, KafkaError.PRODUCER_FENCED, KafkaError.INVALID_PRODUCER_EPOCH,
                           KafkaError.FENCED_INSTANCE_ID})
CREDENTIAL_CODES = frozenset({
    KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
    KafkaError.GROUP_AUTHORIZATION_FAILED, KafkaError.CLUSTER_AUTHORIZATION_FAILED,
    KafkaError.TRANSACTIONAL_ID_AUTHORIZATION_FAILED})


def _lock(path: Path) -> Any:
    """An open file holding an exclusive flock on `path`, or None when another process holds it."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return handle
    except OSError:
        handle.close()
        return None


def _new_id() -> str:
    host = re.sub(r"[^A-Za-z0-9-]", "-", socket.gethostname().split(".")[0])[:40] or "host"
    return f"{host}-{secrets.token_hex(4)}"


def claim_instance_id(group_id: str) -> tuple[str, Any]:
    """(instance id, lock handle to keep open) for a service of `group_id` without an explicit id."""
    run = home() / "run"
    run.mkdir(parents=True, exist_ok=True)
    for k in range(_MAX_INSTANCES):
        handle = _lock(run / f"{group_id}.{k}.lock")
        if handle is None:
            continue
        id_file = run / f"{group_id}.{k}.id"
        try:
            instance = id_file.read_text().strip()
        except FileNotFoundError:
            instance = ""
        if not re.fullmatch(INSTANCE_ID_PATTERN, instance):
            instance = _new_id()
            tmp = id_file.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(instance + "\n")
            os.replace(tmp, id_file)   # never a half-written id after a crash
        return instance, handle
    raise PipelineError(f"more than {_MAX_INSTANCES} services of group {group_id} on this host")


def lock_explicit_id(group_id: str, instance_id: str) -> Any:
    """Lock handle for an explicit instance id; ConfigError when a service on this home has it."""
    run = home() / "run"
    run.mkdir(parents=True, exist_ok=True)
    handle = _lock(run / f"{group_id}.id-{instance_id}.lock")
    if handle is None:
        raise ConfigError(f"instance id {instance_id!r} of group {group_id} is already used by another "
                          f"service on this host ({run}): give each service its own --instance-id")
    return handle


def kafka_error_of(exc: BaseException | None) -> KafkaError | None:
    """The KafkaError behind `exc` (itself, or along its chain of causes), if any."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
            return exc.args[0]
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def is_fenced(error: KafkaError | None) -> bool:
    """True when `error` says another process took this worker's transactional or member id."""
    if error is None:
        return False
    return error.code() in _FENCED_CODES or (error.code() == KafkaError._FATAL and "fenced" in error.str())
