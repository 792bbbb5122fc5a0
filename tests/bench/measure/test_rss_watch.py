"""bench.measure.procs.RssWatch: the summed RSS of a group of processes, from /proc."""

import os

import numpy as np

from bench.measure.procs import RssWatch, rss_bytes


def test_a_process_own_rss_is_read_and_a_gone_one_is_none():
    assert rss_bytes(os.getpid()) > 10 << 20
    assert rss_bytes(2 ** 22 + 12_345) is None   # above pid_max's default: no such process


def test_first_peak_and_last_follow_the_memory_and_the_count():
    watch = RssWatch(every_s=0.0)
    watch.sample([os.getpid()], 100)
    held = np.ones(64 << 20, dtype=np.uint8)   # 64 MB touched
    watch.sample([os.getpid()], 250)
    del held
    watch.sample([os.getpid()], 400)
    (first, n0), (last, n1) = watch.first, watch.last
    assert (n0, n1) == (100, 400)
    assert watch.peak >= first + (60 << 20) and watch.peak > last


def test_samples_closer_than_every_s_are_skipped_unless_forced():
    watch = RssWatch(every_s=3600.0)
    watch.sample([os.getpid()], 1)
    watch.sample([os.getpid()], 2)
    assert watch.last[1] == 1
    watch.sample([os.getpid()], 3, force=True)
    assert watch.last[1] == 3


def test_gone_processes_leave_no_sample():
    watch = RssWatch(every_s=0.0)
    watch.sample([2 ** 22 + 12_345], 5)
    assert watch.first is None and watch.last is None
