"""The callback benchmark documented in docs/BENCHMARKS.md runs and prints its figures (a
test never asserts a timing: the machine decides those)."""

from __future__ import annotations

import re
import subprocess
import sys

from tests.test_bench import ROOT, documented_command


def test_callback_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command("bench/wechat_callback.py")
    assert command[:2] == [".venv/bin/python", "bench/wechat_callback.py"]
    args = command[2:]
    args[args.index("--messages") + 1] = "60"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "wechat_callback.py"), *args, "--articles", "5"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert re.search(r"^messages: 60 in [\d.]+ s, \d+/s, ", out, re.M), out
    assert re.search(r"^latency: p50 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms$", out, re.M)
    assert re.search(r"^answered after WeChat's 5 s: \d+; errors: 0$", out, re.M)
    assert re.search(r"^retried MsgIds: \d+, answered differently: 0$", out, re.M)
