"""The enrollment-opening benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Only that, on a tiny window: every seat is taken, none over the cap, and the seat counters add
up. A test never asserts a timing, since the machine decides those.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.test_bench import ROOT, documented_command
from tests.test_bench_flash_sale import shrunk


def test_enrollment_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command("bench/enrollment.py")
    assert command[:2] == [".venv/bin/python", "bench/enrollment.py"]
    args = shrunk(command[2:], seats=100, attempts=400, concurrency=40, workers=2, timeout=60)
    # A fresh SQLite file always: the suite's own PostgreSQL database is not for wiping.
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "enrollment.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(
        r"^enrollment benchmark: sqlite, 2 sync workers, 100 seats, 400 attempts, "
        r"concurrency 40$",
        out,
        re.M,
    ), out
    assert re.search(r"^log in: 400 readers in [\d.]+ s \(untimed\), 0 failed$", out, re.M), out
    assert re.search(r"^opening: 400 attempts in [\d.]+ s, [\d,]+ attempts/s$", out, re.M), out
    assert re.search(
        r"^seats: 100 joined, the last at [\d.]+ s: [\d,]+ seats/s while seats lasted ", out, re.M
    ), out
    assert re.search(r"^latency: p50 \d+ ms, p90 \d+ ms, p99 \d+ ms, max \d+ ms$", out, re.M), out
    # Every seat taken once, every other reader told the tier is full.
    assert re.search(r"^answers: 100 joined \(303\), 300 full \(409\), 0 errors$", out, re.M), out
    assert re.search(r"^by status: 303 × 100, 409 × 300$", out, re.M), out
    assert re.search(
        r"^seat counters: cap 100 = available 0 \+ held 100 \+ sold 0: adds up$", out, re.M
    ), out
    assert re.search(
        r"^database: 100 pending and 0 paid seat orders; seats taken 100 of 100; "
        r"100 answered as joined$",
        out,
        re.M,
    ), out
    assert re.search(r"^readers with more than one seat: 0$", out, re.M), out
    assert re.search(r"^OVER THE CAP: 0$", out, re.M), out
    assert re.search(r"^invariant: holds$", out, re.M), out
    assert re.search(r"^goal 0 over the cap: met \(0\)$", out, re.M), out
    assert re.search(r"^goal p99 <= 250 ms: (met|NOT met) ", out, re.M), out
