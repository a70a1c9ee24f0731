"""The search benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Only that: a test never asserts a timing, since the machine decides those.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def documented_command(script: str = "bench/search.py") -> list[str]:
    """The first command running `script` that docs/BENCHMARKS.md shows."""
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    lines = [
        line.strip()
        for block in re.findall(r"```(?:sh|bash)\n(.*?)```", text, re.S)
        for line in block.splitlines()
        if script in line
    ]
    assert lines, f"docs/BENCHMARKS.md shows no {script} command"
    return shlex.split(lines[0])


def test_search_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command()
    assert command[:2] == [".venv/bin/python", "bench/search.py"]
    args = command[2:]
    assert "--docs" in args
    # The documented run, shrunk: few articles and queries.
    args[args.index("--docs") + 1] = "50"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search.py"), *args, "--queries", "10"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "insert articles: 50 " in out
    assert re.search(r"^build index \(reindex\): 50 docs in [\d.]+ s, [\d,]+ docs/s$", out, re.M)
    assert re.search(r"^index size on disk: [\d.]+ MB$", out, re.M)
    figures = r"p50 [\d.]+ ms, p95 [\d.]+ ms, max [\d.]+ ms \(10 queries\)"
    assert re.search(rf"^keyword lookup: {figures}, 0 not found$", out, re.M), out
    assert re.search(rf"^full-text search: {figures}, ", out, re.M), out
    assert re.search(r"^goal full-text search p95 <= 20 ms: (met|NOT met) ", out, re.M)
    assert re.search(r"^goal keyword lookup p95 <= 5 ms: (met|NOT met) ", out, re.M)
