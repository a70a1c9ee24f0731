"""The search benchmark documented in docs/BENCHMARKS.md runs and prints its figures.

Only that: a test never asserts a timing, since the machine decides those.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine
from sqlalchemy import text as sql
from sqlalchemy.engine import make_url

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


def run_search_bench(args: list[str], env: dict[str, str]) -> str:
    # The documented run, shrunk: few articles, posts and queries.
    args = list(args)
    args[args.index("--docs") + 1] = "50"
    args[args.index("--posts") + 1] = "80"
    result = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "search.py"), *args, "--queries", "10"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "insert articles: 50 " in out
    assert re.search(r"^insert board posts: 80 in \d+ threads in [\d.]+ s$", out, re.M), out
    assert re.search(r"^build index \(reindex\): 130 docs in [\d.]+ s, [\d,]+ docs/s$", out, re.M)
    assert re.search(r"^index size on disk: [\d.]+ MB$", out, re.M)
    figures = r"p50 [\d.]+ ms, p95 [\d.]+ ms, max [\d.]+ ms \(10 queries\)"
    assert re.search(rf"^keyword lookup: {figures}, 0 not found$", out, re.M), out
    assert re.search(rf"^full-text search: {figures}, ", out, re.M), out
    assert re.search(r"^goal full-text search p95 <= 20 ms: (met|NOT met) ", out, re.M)
    assert re.search(r"^goal keyword lookup p95 <= 5 ms: (met|NOT met) ", out, re.M)
    return out


def without_databases() -> dict[str, str]:
    """The environment without the suite's PostgreSQL (a benchmark wipes its database)."""
    return {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}


def test_search_benchmark_runs_as_documented_and_prints_its_figures():
    command = documented_command()
    assert command[:2] == [".venv/bin/python", "bench/search.py"]
    out = run_search_bench(command[2:], without_databases())
    assert out.startswith("search benchmark (Whoosh)")


@pytest.mark.skipif(not os.environ.get("TEST_DATABASE_URL"), reason="needs PostgreSQL")
def test_search_benchmark_runs_on_postgresql_as_documented():
    """The documented PostgreSQL run, on a database of its own beside the suite's."""
    text = (ROOT / "docs" / "BENCHMARKS.md").read_text()
    [line] = [
        ln
        for ln in text.splitlines()
        if ln.startswith("bash tests/tools/with_postgres.sh") and "bench/search.py" in ln
    ]
    command = shlex.split(line)[2:]
    assert command[:2] == [".venv/bin/python", "bench/search.py"]
    url = make_url(os.environ["TEST_DATABASE_URL"])
    admin = create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sql("DROP DATABASE IF EXISTS chendu_bench_search"))
        conn.execute(sql("CREATE DATABASE chendu_bench_search"))
    try:
        env = {
            **without_databases(),
            "TEST_DATABASE_URL": str(
                url.set(database="chendu_bench_search").render_as_string(hide_password=False)
            ),
        }
        out = run_search_bench(command[2:], env)
        assert out.startswith("search benchmark (PostgreSQL)")
    finally:
        with admin.connect() as conn:
            conn.execute(sql("DROP DATABASE IF EXISTS chendu_bench_search WITH (FORCE)"))
        admin.dispose()
