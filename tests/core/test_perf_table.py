"""`python -m tests.perf.table` (docs/performance.md's hot-path table) runs with the shipped
models: it crashed once the default model needed per-card state (48 features, the table built 34)."""

import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_hot_path_table_runs_and_gives_every_batch_size():
    out = subprocess.run([sys.executable, "-m", "tests.perf.table", "--rounds", "1", "--markdown"],
                         cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "median of 1 interleaved rounds" in out.stdout
    rows = [line for line in out.stdout.splitlines() if re.match(r"^\| \d+ \|", line)]
    assert [r.split("|")[1].strip() for r in rows] == ["1", "64", "1024", "8192"]
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 7 and cells[-1].endswith("x"), row
        assert all(float(c) > 0 for c in cells[1:5]), row
