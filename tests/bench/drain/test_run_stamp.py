"""bench drain's run stamp: two drains started within one second get topics of their own."""

import re

from bench.drain.cli import run_stamp


def test_two_stamps_of_one_second_differ_and_read_as_a_time():
    first, second = run_stamp(), run_stamp()
    assert first != second
    assert re.fullmatch(r"\d{8}-\d{6}-[0-9a-f]{4}", first)
