"""core's public surface: `__all__` is exactly the API its docstring documents, every exported
name resolves, and every module's `__all__` names things that exist (as httpx's
tests/test_exported_members.py guards its own)."""

import importlib
import pkgutil
import re
import types
from pathlib import Path

import pytest

import core

ROOT = Path(__file__).resolve().parents[2]


def modules_of(package: types.ModuleType) -> list[str]:
    """Every module of `package`, except `__main__` ones (scripts: core's installs signal
    handlers as it is imported)."""
    names = [package.__name__]
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith("__main__"):
            names.append(info.name)
    return names


def check_all(module_name: str) -> None:
    """The module declares `__all__`, without repeats, and every name in it exists."""
    module = importlib.import_module(module_name)
    exported = getattr(module, "__all__", None)
    if exported is None:
        assert module_name.endswith("__init__") or hasattr(module, "__path__"), f"{module_name} has no __all__"
        return
    assert len(exported) == len(set(exported)), f"{module_name}.__all__ repeats a name"
    missing = [name for name in exported if not hasattr(module, name)]
    assert not missing, f"{module_name}.__all__ names what it does not have: {missing}"


def documented_api() -> list[str]:
    """The names in the table of core/__init__.py's docstring."""
    return re.findall(r"^    ([A-Z]\w+)  ", core.__doc__, flags=re.M)


def test_all_is_exactly_the_documented_api():
    assert sorted(core.__all__) == sorted(documented_api())
    assert len(documented_api()) == 9, documented_api()      # the table itself was read


def test_every_exported_name_resolves_to_its_defining_module():
    for name in core.__all__:
        obj = getattr(core, name)
        home = importlib.import_module(obj.__module__)
        assert getattr(home, name) is obj and obj.__module__.startswith("core."), name
    assert set(core.__all__) <= set(dir(core))


def test_nothing_public_is_left_out_of_all():
    """Any public non-module attribute of `core` is exported (httpx's check)."""
    public = {name for name, value in vars(core).items()
              if not name.startswith("_") and not isinstance(value, types.ModuleType)}
    assert public <= set(core.__all__), public - set(core.__all__)


def test_a_missing_name_is_an_attribute_error():
    with pytest.raises(AttributeError, match="module 'core' has no attribute 'Scorers'"):
        core.Scorers  # noqa: B018


def test_the_docs_import_only_exported_names():
    """`from core import ...` and `core.Name` in README.md and docs/ use the public API."""
    texts = [p.read_text() for p in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))] if p.exists()]
    used = set()
    for text in texts:
        for group in re.findall(r"from core import ([\w, ]+)", text):
            used |= {n.strip() for n in group.split(",")}
        used |= set(re.findall(r"\bcore\.([A-Z]\w+)", text))
    assert used, "no use of core's API found in the docs"
    assert used <= set(core.__all__), used - set(core.__all__)


@pytest.mark.parametrize("module_name", modules_of(core))
def test_every_module_exports_what_it_has(module_name):
    check_all(module_name)
