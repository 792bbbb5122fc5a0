"""The one strict-YAML loader of scenario and target files.

A file decodes straight into a frozen Struct; whatever is wrong with it (unreadable, not
YAML, a field of the wrong type or unknown) is one `ConfigError` line naming the file and,
for a bad field, its path (`- at $.rate.tps`).
"""

from pathlib import Path
from typing import TypeVar

import msgspec
import msgspec.yaml

from core.config import yaml_error_text
from core.errors import ConfigError

__all__ = ["decode_yaml", "read_yaml", "validation_message"]

T = TypeVar("T")


def validation_message(source: str, exc: Exception) -> str:
    """msgspec's message on one line, always ending in the field's path (`$` = top level)."""
    text = str(exc).replace("`", "").splitlines()[0]
    return f"{source}: {text}" + ("" if " - at $" in text else " - at $")


def decode_yaml(text: str | bytes, type_: type[T], source: str) -> T:
    """`text` decoded as `type_`; errors are one ConfigError line naming `source`."""
    try:
        return msgspec.yaml.decode(text, type=type_)
    except msgspec.ValidationError as exc:
        raise ConfigError(validation_message(source, exc)) from None
    except msgspec.DecodeError as exc:
        raise ConfigError(f"{source}: not valid YAML: "
                          f"{yaml_error_text(exc.__cause__ or exc.__context__, exc)}") from None


def read_yaml(path: str | Path, type_: type[T], what: str) -> T:
    """The file at `path` decoded as `type_`; `what` names the kind of file in a read error."""
    path = Path(path)
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from None
    return decode_yaml(text, type_, str(path))
