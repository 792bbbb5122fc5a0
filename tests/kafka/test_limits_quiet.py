"""Reading the output topics' configs at a worker's start prints nothing on stderr: the
AdminClient it ends used to leave librdkafka's notice "Purging 1 unserved events from
background queue" (BGQUEUE) in the service's output, a line a user takes for a problem."""

import subprocess
import sys

import pytest

from tests.kafka.eos_harness import REPO

pytestmark = [pytest.mark.kafka, pytest.mark.timeout(120)]

# 60 reads: the notice came in about 1 read of 5 before the fix (a regression passes 0.8^60, ~1e-6)
READS = """
import gc, sys
from core.limits import read_topic_configs
for _ in range(60):
    read_topic_configs({"bootstrap.servers": sys.argv[1]}, tuple(sys.argv[2:]))
    gc.collect()
"""


def test_reading_topic_configs_leaves_no_librdkafka_notice(kafka_bootstrap, fresh_topics):
    names = fresh_topics("quiet")
    out = subprocess.run([sys.executable, "-c", READS, kafka_bootstrap, *names.every()[1:]], cwd=REPO,
                         capture_output=True, text=True, timeout=100)
    assert out.returncode == 0, out.stderr
    assert "BGQUEUE" not in out.stderr, out.stderr
