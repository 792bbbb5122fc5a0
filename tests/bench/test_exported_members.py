"""Every bench module declares `__all__` and has every name in it (see
tests/core/test_exported_members.py for core's public API)."""

import pytest

import bench
from tests.core.test_exported_members import check_all, modules_of


@pytest.mark.parametrize("module_name", modules_of(bench))
def test_every_module_exports_what_it_has(module_name):
    check_all(module_name)
