import gc

from core.gctune import GEN0_THRESHOLD, tune_gc_for_batches


def test_tuning_freezes_startup_objects_and_raises_the_young_threshold():
    before = gc.get_threshold()
    try:
        tune_gc_for_batches()
        assert gc.get_threshold() == (GEN0_THRESHOLD, before[1], before[2])
        assert gc.get_freeze_count() > 1000
        assert gc.isenabled()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
