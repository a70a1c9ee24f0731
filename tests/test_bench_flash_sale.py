"""The flash-sale benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Only that, on a tiny sale: nothing is oversold and the stock counters add up. A test never
asserts a timing, since the machine decides those.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys

from tests.test_bench import ROOT, documented_command


def shrunk(args: list[str], **values: int) -> list[str]:
    """`args` with each `--name value` set to the given value (added when missing)."""
    args = list(args)
    for name, value in values.items():
        flag = f"--{name}"
        if flag in args:
            args[args.index(flag) + 1] = str(value)
        else:
            args += [flag, str(value)]
    return args


def test_flash_sale_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command("bench/flash_sale.py")
    assert command[:2] == [".venv/bin/python", "bench/flash_sale.py"]
    args = shrunk(command[2:], stock=20, buyers=60, concurrency=10, workers=2)
    # A fresh SQLite file always: the suite's own PostgreSQL database is not for wiping.
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "flash_sale.py"), *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert re.search(
        r"^flash sale benchmark: sqlite, 2 sync workers, stock 20, 60 buyers, concurrency 10$",
        out,
        re.M,
    ), out
    assert re.search(r"^log in: 60 buyers in [\d.]+ s \(untimed\), 0 failed$", out, re.M), out
    assert re.search(r"^race: 60 requests in [\d.]+ s, [\d,]+ requests/s$", out, re.M), out
    assert re.search(
        r"^orders: 20 placed, the last at [\d.]+ s: [\d,]+ orders/s while stock lasted ",
        out,
        re.M,
    ), out
    assert re.search(r"^latency: p50 \d+ ms, p90 \d+ ms, p99 \d+ ms, max \d+ ms$", out, re.M), out
    # Every unit sold once, every other buyer told it is sold out.
    assert re.search(r"^answers: 20 ordered \(303\), 40 sold out \(422\), 0 errors$", out, re.M)
    assert re.search(r"^stock: 20 = available 0 \+ held 20 \+ sold 0: adds up$", out, re.M), out
    assert re.search(
        r"^database: 20 pending or paid orders, 20 units, stock 20; 20 answered as placed$",
        out,
        re.M,
    ), out
    assert re.search(r"^members over the limit of 1: 0$", out, re.M), out
    assert re.search(r"^OVERSOLD: 0$", out, re.M), out
    assert re.search(r"^invariant: holds$", out, re.M), out
    assert re.search(r"^goal p99 <= 250 ms: (met|NOT met) ", out, re.M), out
    assert re.search(r"^goal 0 oversold: met \(0\)$", out, re.M), out
    assert re.search(r"^goal >= 800 orders/s while stock lasts: (met|NOT met) ", out, re.M), out


def test_the_servers_cpu_counts_a_worker_that_has_exited():
    """A worker recycled after max_requests has exited by the end of a run: its CPU is the
    server's still (its master reaped it), not the machine's other processes'."""
    from bench.flash_sale import cpu_times

    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    master = (
        "import subprocess, sys, time\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}], check=True)\n"
        "print('reaped', flush=True)\n"
        "time.sleep(30)\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", master], stdout=subprocess.PIPE, text=True, start_new_session=True
    ) as server:
        try:
            assert server.stdout is not None and server.stdout.readline() == "reaped\n"
            used = cpu_times(server.pid)
            assert used is not None and used.server >= 0.3
        finally:
            server.kill()
