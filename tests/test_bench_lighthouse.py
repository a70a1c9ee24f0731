"""The Lighthouse benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Only that, on one page: a score for each of the four categories and a goal line for each. A
test never asserts a score, since the machine decides the performance one.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.test_bench import ROOT, documented_command
from tests.test_bench_flash_sale import shrunk

CHROMIUM = os.environ.get("CHROME_PATH") or os.environ.get("CHROMIUM", "/usr/bin/chromium")


def installed(script: str) -> None:
    """Run one of tests/tools/ensure_*.sh; the test fails with its output when it fails."""
    result = subprocess.run(
        ["bash", str(ROOT / "tests" / "tools" / script)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, f"{script} failed:\n{result.stdout}{result.stderr}"


def test_lighthouse_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command("bench/lighthouse.py")
    assert command[:2] == [".venv/bin/python", "bench/lighthouse.py"]
    installed("ensure_chromium.sh")
    if not os.access(CHROMIUM, os.X_OK):
        message = f"Chromium not found at {CHROMIUM} (tests/tools/ensure_chromium.sh as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    installed("ensure_lighthouse.sh")
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "lighthouse.py"), *shrunk(command[2:], pages=1)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(r"^machine: .+, \d+ CPUs, Python [\d.]+$", out, re.M), out
    # The first page is the home page.
    assert re.search(
        r"^lighthouse /: performance \d+, accessibility \d+, best-practices \d+, seo \d+$",
        out,
        re.M,
    ), out
    for goal in (
        "performance = 100",
        "accessibility >= 95",
        "best-practices = 100",
        "seo >= 95",
    ):
        assert re.search(
            rf"^goal Lighthouse {re.escape(goal)}: (met|NOT met) \(worst \d+ on /\)$", out, re.M
        ), out
    assert len(re.findall(r"^goal ", out, re.M)) == 4, out
