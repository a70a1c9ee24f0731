"""Run every benchmark of the issue's table and write bench/RESULTS.md: `make bench`.

    .venv/bin/python bench/run.py

`make bench` runs it inside tests/tools/with_postgres.sh, so TEST_DATABASE_URL names a
throwaway PostgreSQL cluster on 127.0.0.1 for the PostgreSQL rows; without one those rows say
they were not run. Each benchmark is a script of its own in bench/, run one after another (never
two at once: they would measure each other), bounded in time, its output kept whole. Every
`goal NAME: met (FIGURE)` or `goal NAME: NOT met (FIGURE)` line a script prints becomes a row
of the results table. `--only` picks benchmarks by name, `--quick` shrinks every one of them to
check the harness (its figures mean nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_LINE = re.compile(
    r"^goal (?P<name>.+?): (?P<met>met|NOT met) \((?P<figure>.*?)\)(?P<note>.*)$"
)
# A database URL is never written out: it may hold a password.
DATABASE_URL = re.compile(r"postgres(?:ql)?(?:\+\w+)?://\S+")


@dataclass(frozen=True)
class Bench:
    name: str
    title: str
    args: list[str]
    quick: list[str]  # replaces `args` with --quick
    database: str = "sqlite"  # or "postgresql"
    minutes: float = 15  # the longest it may take
    # Run once more with this flag when a goal is missed, for the profile only (the figures
    # come from the run without the sampler).
    profile: str | None = None


BENCHES = [
    Bench(
        "serving",
        "Signed-in article vs the /healthz floor; anonymous article through nginx vs static",
        ["bench/serving.py", "--profile"],
        ["bench/serving.py", "--seconds", "1", "--connections", "4"],
    ),
    Bench(
        "flash-sale-sqlite",
        "Flash sale: 500 stock, 2,000 buyers, 200 concurrent (SQLite)",
        ["bench/flash_sale.py"],
        ["bench/flash_sale.py", "--stock", "10", "--buyers", "30", "--concurrency", "5"],
        profile="--profile",
    ),
    Bench(
        "flash-sale-postgresql",
        "Flash sale: 500 stock, 2,000 buyers, 200 concurrent (PostgreSQL)",
        ["bench/flash_sale.py"],
        ["bench/flash_sale.py", "--stock", "10", "--buyers", "30", "--concurrency", "5"],
        profile="--profile",
        database="postgresql",
    ),
    Bench(
        "enrollment-sqlite",
        "Enrollment opening: 5,000 seats, 20,000 attempts (SQLite)",
        ["bench/enrollment.py"],
        ["bench/enrollment.py", "--seats", "10", "--attempts", "40", "--concurrency", "5"],
        profile="--profile",
        minutes=25,
    ),
    Bench(
        "enrollment-postgresql",
        "Enrollment opening: 5,000 seats, 20,000 attempts (PostgreSQL)",
        ["bench/enrollment.py"],
        ["bench/enrollment.py", "--seats", "10", "--attempts", "40", "--concurrency", "5"],
        profile="--profile",
        database="postgresql",
        minutes=25,
    ),
    Bench(
        "search-whoosh",
        "Search at 10,000 articles and 50,000 board posts (Whoosh, SQLite)",
        ["bench/search.py", "--docs", "10000", "--posts", "50000"],
        ["bench/search.py", "--docs", "30", "--posts", "60", "--queries", "10"],
        minutes=40,
    ),
    Bench(
        "search-postgresql",
        "Search at 10,000 articles and 50,000 board posts (PostgreSQL)",
        ["bench/search.py", "--docs", "10000", "--posts", "50000"],
        ["bench/search.py", "--docs", "30", "--posts", "60", "--queries", "10"],
        database="postgresql",
        minutes=40,
    ),
    Bench(
        "page-weight",
        "Page weight of /, an article, a product, /join, a thread (gzip)",
        ["bench/page_weight.py"],
        ["bench/page_weight.py"],
        minutes=5,
    ),
    Bench(
        "lighthouse",
        "Lighthouse, mobile, on the same pages",
        ["bench/lighthouse.py"],
        ["bench/lighthouse.py", "--pages", "1"],
        minutes=20,
    ),
    Bench(
        "soak",
        "Soak: 10 minutes of mixed reads, searches, posts and purchases",
        ["bench/soak.py"],
        ["bench/soak.py", "--minutes", "0.2", "--warm-up-seconds", "3", "--concurrency", "2"],
        minutes=20,
    ),
]


@dataclass
class Outcome:
    bench: Bench
    command: list[str]
    output: str = ""
    exit_code: int | None = None
    seconds: float = 0.0
    goals: list[tuple[str, bool, str]] = field(default_factory=list)
    skipped: str = ""
    profile: str = ""  # the `profile:` lines of the sampled run


def run_one(bench: Bench, quick: bool, postgres: str) -> Outcome:
    outcome = _run(bench, bench.quick if quick else bench.args, postgres)
    missed = any(not ok for _, ok, _ in outcome.goals)
    if missed and bench.profile and not quick and not outcome.skipped:
        print(f"\n=== {bench.name} again with {bench.profile}, for where the time goes")
        sampled = _run(bench, [*bench.args, bench.profile], postgres)
        outcome.profile = "".join(
            line for line in sampled.output.splitlines(keepends=True) if line.startswith("profile")
        )
    return outcome


def _run(bench: Bench, args: list[str], postgres: str) -> Outcome:
    env = {k: v for k, v in os.environ.items() if k not in ("TEST_DATABASE_URL", "DATABASE_URL")}
    if bench.database == "postgresql":
        if not postgres:
            return Outcome(bench, args, skipped="no PostgreSQL (run it through `make bench`)")
        env["TEST_DATABASE_URL"] = postgres  # every script takes it from there (not argv)
    command = [sys.executable, *args]
    shown = [".venv/bin/python", *args]
    print(f"\n=== {bench.name}: {' '.join(shown)}", flush=True)
    outcome = Outcome(bench, shown)
    start = time.monotonic()
    lines: list[str] = []
    stopped = threading.Event()
    with subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
    ) as process:
        assert process.stdout is not None

        def stop() -> None:  # however quiet the script is when its time is up
            stopped.set()
            _signal_group(process, signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)

        watchdog = threading.Timer(bench.minutes * 60, stop)
        watchdog.daemon = True
        watchdog.start()
        try:
            for line in process.stdout:
                print(line, end="", flush=True)
                lines.append(line)
            process.wait()
        finally:
            watchdog.cancel()
    if stopped.is_set():
        lines.append(f"(stopped: still running after {bench.minutes:g} minutes)\n")
    outcome.seconds = time.monotonic() - start
    outcome.output = "".join(lines)
    outcome.exit_code = process.returncode
    for line in lines:
        found = GOAL_LINE.match(line.strip())
        if found:
            figure = found.group("figure") + found.group("note")
            outcome.goals.append((found.group("name"), found.group("met") == "met", figure))
    return outcome


def _signal_group(process: subprocess.Popen, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)  # the script and the servers it started


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
    except OSError:
        return "unknown (no git)"
    return (done.stdout.strip() or "unknown") + (" (with uncommitted changes)" if dirty else "")


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def results(outcomes: list[Outcome], quick: bool, started: datetime, code: str) -> str:
    rows = []
    met = total = 0
    for o in outcomes:
        if o.skipped:
            rows.append(f"| {o.bench.title} | (not run) | {o.skipped} | **not run** |")
            continue
        if not o.goals:
            rows.append(
                f"| {o.bench.title} | (no figures) | exit {o.exit_code}, see its output | "
                "**NOT met** |"
            )
            total += 1
            continue
        failed = o.exit_code != 0
        if failed:  # what it printed before failing is shown, but nothing counts as met
            rows.append(
                f"| {o.bench.title} | (the script) | exit {o.exit_code}, see its output | "
                "**NOT met** |"
            )
            total += 1
        for name, ok, figure in o.goals:
            ok = ok and not failed
            total += 1
            met += ok
            verdict = "met" if ok else "**NOT met**"
            rows.append(f"| {o.bench.title} | {name} | {figure.replace('|', '/')} | {verdict} |")
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    lines = [
        "# Benchmark results",
        "",
        f"Written by `make bench` (`bench/run.py`{' --quick' if quick else ''}) on "
        f"{started:%Y-%m-%d %H:%M} UTC from commit {code}.",
        f"Machine: {platform.system()} {platform.machine()}, {cpus} CPUs ({cpu_model()}), "
        f"Python {platform.python_version()}. Everything ran on 127.0.0.1, one benchmark at a "
        "time; docs/BENCHMARKS.md says what each one does.",
        "",
    ]
    if quick:
        lines += [
            "**A --quick run: tiny sizes to check the harness; the figures mean nothing.**",
            "",
        ]
    lines += [
        f"{met} of {total} goals met.",
        "",
        "| benchmark | goal | measured | result |",
        "| --- | --- | --- | --- |",
        *rows,
        "",
        "Where a goal is not met, the output below shows where the time goes (the `profile:`",
        "lines of py-spy where the script samples the server).",
        "",
    ]
    for o in outcomes:
        lines += [f"## {o.bench.name}: {o.bench.title}", ""]
        if o.skipped:
            lines += [f"Not run: {o.skipped}.", ""]
            continue
        command = " ".join(o.command)
        if o.bench.database == "postgresql":
            command = f"TEST_DATABASE_URL=... {command}"
        lines += [
            f"`{command}`: exit {o.exit_code}, {o.seconds:,.0f} s.",
            "",
            "```text",
            DATABASE_URL.sub("$TEST_DATABASE_URL", o.output.rstrip()),
            "```",
            "",
        ]
        if o.profile:
            lines += [
                f"Where the time goes: the same run again with `{o.bench.profile}` (py-spy "
                "sampling the server during the race):",
                "",
                "```text",
                o.profile.rstrip(),
                "```",
                "",
            ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    names = [b.name for b in BENCHES]
    parser.add_argument("--only", help=f"comma-separated, of: {', '.join(names)}")
    parser.add_argument("--quick", action="store_true", help="tiny runs to check the harness")
    parser.add_argument(
        "--output", type=Path, default=ROOT / "bench" / "RESULTS.md", help="(bench/RESULTS.md)"
    )
    args = parser.parse_args(argv)
    chosen = BENCHES
    if args.only:
        wanted = args.only.split(",")
        unknown = set(wanted) - set(names)
        if unknown:
            parser.error(f"unknown benchmarks: {', '.join(sorted(unknown))}")
        chosen = [b for b in BENCHES if b.name in wanted]
    started = datetime.now(UTC)
    code = commit()  # what is measured: the tree as the run starts
    postgres = os.environ.get("TEST_DATABASE_URL", "")
    outcomes = [run_one(bench, args.quick, postgres) for bench in chosen]
    text = results(outcomes, args.quick, started, code)
    args.output.write_text(text + "\n")
    print(f"\n{text}")
    print(f"\nwritten: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
