"""The soak benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Shrunk to seconds: it prints every figure and both goal lines, answers no request with a 5xx
and places every order it says it placed. Whether the memory goal is met is the machine's
business (a test never asserts a timing or a size).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tests.test_bench import ROOT, documented_command

KINDS = (
    "read /",
    "read /a/<slug>",
    "read /board",
    "read /shop/p/<slug>",
    "search",
    "post thread",
    "post answer",
    "purchase",
)


def with_values(args: list[str], values: dict[str, str]) -> list[str]:
    """`args` with each `--name value` set to the given value (added when missing)."""
    args = list(args)
    for flag, value in values.items():
        if flag in args:
            args[args.index(flag) + 1] = value
        else:
            args += [flag, value]
    return args


def test_soak_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command("bench/soak.py")
    assert command[:2] == [".venv/bin/python", "bench/soak.py"]
    args = with_values(
        command[2:],
        {
            "--minutes": "0.3",
            "--warm-up-seconds": "5",
            "--concurrency": "4",
            "--members": "40",
            "--articles": "30",
            "--jobs-every": "5",
        },
    )
    # A fresh SQLite file always: the suite's own PostgreSQL database is not for wiping.
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "soak.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(
        r"^soak benchmark: sqlite, \d+ gthread workers × \d+ threads \(deploy/gunicorn\.conf\.py\)"
        r", workers recycled after [\d,]+ \+ up to [\d,]+ requests, as deployed, app preloaded; "
        r"concurrency 4, 5 s warm-up \+ 0\.3 min$",
        out,
        re.M,
    ), out
    assert re.search(r"^seed: migrated, 30 articles indexed, 1 product .*, 40 members ", out, re.M)
    assert re.search(r"^log in: 40 members in [\d.]+ s \(untimed\), 0 failed$", out, re.M), out
    assert re.search(r"^run: [\d,]+ requests in [\d.]+ s, [\d,]+ requests/s ", out, re.M), out
    for kind in KINDS:
        assert re.search(
            rf"^  {re.escape(kind)} +[\d,]+  p50 [\d,]+ ms, p99 [\d,]+ ms  \[.+\]$", out, re.M
        ), (kind, out)
    # The periodic jobs ran beside the load, every command of the deployed unit, none failed.
    assert re.search(
        r"^jobs: every 5 s, shop release-holds × [1-9]\d* \([\d.]+ s each\), "
        r"search drain × [1-9]\d* \([\d.]+ s each\); 0 failed$",
        out,
        re.M,
    ), out
    assert re.search(r"^posts: [\d,]+ placed \(303\), [\d,]+ refused by the post limit ", out, re.M)
    # Every order answered as placed is in the database, and the stock counters add up.
    found = re.search(
        r"^database: ([\d,]+) pending orders \(([\d,]+) answered as placed\), product "
        r"available ([\d,]+) \+ held ([\d,]+) \+ sold 0; [\d,]+ threads, [\d,]+ posts$",
        out,
        re.M,
    )
    assert found, out
    pending, placed, available, held = (int(g.replace(",", "")) for g in found.groups())
    assert pending == placed == held > 0
    assert available + held == 1_000_000
    assert re.search(r"^CPU during the run: ", out, re.M), out
    assert re.search(r"^memory: gunicorn's master and its workers, (PSS|RSS) ", out, re.M), out
    assert re.search(
        r"^memory: before the load [\d,]+ MB, after warm-up [\d,]+ MB \(at \d+ s\), at the end "
        r"[\d,]+ MB \(at \d+ s\), peak [\d,]+ MB \(at \d+ s\), growth [+-][\d.]+%$",
        out,
        re.M,
    ), out
    assert re.search(r"^memory over time: .+ \(MB\)$", out, re.M), out
    # The search backlog: the Whoosh index's segments and the queue's rows, sampled.
    for name in ("segments", "queued rows"):
        assert re.search(
            rf"^search index: {name} before the load \d+, after warm-up \d+, at the end \d+, "
            r"peak [\d,]+ \(at \d+ s\), mean after warm-up [\d,]+\.\d$",
            out,
            re.M,
        ), out
    assert re.search(
        r"^search index over time: \d+ s \d+/\d+(, \d+ s \d+/\d+)* \(segments/", out, re.M
    ), out
    assert re.search(
        r"^workers: \d+ after warm-up, \d+ at the end; since gunicorn started: \d+ booted, ",
        out,
        re.M,
    ), out
    # Behaviour, not timing: no request is answered with a 5xx or left without an answer.
    assert re.search(r"^5xx: 0$", out, re.M), out + result.stderr
    assert re.search(r"^goal 0 × 5xx: met \(0\)$", out, re.M), out + result.stderr
    assert re.search(
        r"^goal memory at the end within 10% of after warm-up: (met|NOT met) "
        r"\([+-][\d.]+%: [\d,]+ MB -> [\d,]+ MB\)$",
        out,
        re.M,
    ), out


def test_a_stuck_request_shows_the_servers_threads_in_the_sites_code():
    """What the soak prints when a request waits and waits: py-spy's stacks of the server's
    threads that stand in the site's own files, and none of the others."""
    from bench import sampling

    if not sampling.available():
        pytest.skip("py-spy is installed with '.[bench]'")
    own = ROOT / "bench" / "sampling.py"  # a file of the site's: the frame claims to be in it
    program = (
        "import threading, time\n"
        f"exec(compile('def waits():\\n    time.sleep(60)\\n', {str(own)!r}, 'exec'))\n"
        "threading.Thread(target=lambda: time.sleep(60), daemon=True).start()\n"
        "print('ready', flush=True)\n"
        "waits()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", program], stdout=subprocess.PIPE, text=True
    ) as server:
        try:
            assert server.stdout is not None and server.stdout.readline() == "ready\n"
            lines = sampling.busy_threads(server.pid)
        finally:
            server.kill()
    assert lines[0].startswith("Thread ") and "MainThread" in lines[0], lines
    assert any(line.strip().startswith(f"waits ({own}:") for line in lines), lines
    assert sum(line.startswith("Thread ") for line in lines) == 1, lines  # not the sleeper
