"""`make bench` and bench/run.py, as docs/BENCHMARKS.md documents them: the harness runs the
benchmarks it is given and writes a results table with a row per goal. Only --quick runs, whose
figures mean nothing: a test never asserts a timing."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_bench import ROOT, documented_command, without_databases


def test_the_quick_run_writes_a_row_for_every_goal(tmp_path):
    command = documented_command("bench/run.py")
    assert command[:2] == [".venv/bin/python", "bench/run.py"]
    assert "--quick" in command and "--only" in command
    assert set(command[command.index("--only") + 1].split(",")) == {"page-weight", "serving"}
    out = tmp_path / "RESULTS.md"
    result = subprocess.run(
        [sys.executable, *command[1:], "--output", str(out)],
        cwd=ROOT,
        env=without_databases(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr
    text = out.read_text()
    assert text.startswith("# Benchmark results")
    assert "A --quick run" in text
    rows = re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \| (met|\*\*NOT met\*\*) \|$", text, re.M)
    goals = {goal for _, goal, _, _ in rows}
    assert {
        "page weight <= 35 KB each",
        "HTML <= 14 KB each",
        "no request to another host",
        "signed-in article >= 0.75x the /healthz floor",
        "signed-in article p99 <= 50 ms",
        "anonymous article via nginx >= 0.5x static",
    } <= goals, rows
    assert re.search(r"^\d+ of 6 goals met\.$", text, re.M)
    # Each benchmark's whole output follows the table, and run.py printed the file too.
    assert "## serving: " in text and "## page-weight: " in text
    assert re.search(r"^/healthz \(the floor\): [\d,]+ req/s", text, re.M)
    assert "# Benchmark results" in result.stdout


def test_make_bench_runs_the_harness_inside_a_throwaway_postgresql():
    dry = subprocess.run(
        ["make", "-n", "bench"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    assert any("ensure_wrk.sh" in line for line in lines)
    assert any("ensure_lighthouse.sh" in line for line in lines)
    assert any(
        line.startswith("bash tests/tools/with_postgres.sh") and "bench/run.py" in line
        for line in lines
    ), lines
    assert "make bench" in (ROOT / "docs" / "BENCHMARKS.md").read_text()
