from bench.measure.writeback import writeback_hint, writeback_settings


def test_settings_are_read_as_integers(tmp_path):
    (tmp_path / "dirty_expire_centisecs").write_text("3000\n")
    (tmp_path / "dirty_writeback_centisecs").write_text("500\n")
    assert writeback_settings(tmp_path) == {"dirty_expire_centisecs": 3000, "dirty_writeback_centisecs": 500}


def test_hint_only_for_a_long_expiry():
    hint = writeback_hint({"dirty_expire_centisecs": 3000})
    assert hint is not None and "vm.dirty_expire_centisecs=300" in hint and "~30 s" in hint
    assert writeback_hint({"dirty_expire_centisecs": 300}) is None
    assert writeback_hint({}) is None
