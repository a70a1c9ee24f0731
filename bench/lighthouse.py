"""Lighthouse on the pages readers land on: home, an article, a product, /join, a board thread.

    .venv/bin/python bench/lighthouse.py

Builds a fresh demo site the way bench/flash_sale.py builds its site (SQLite in a temporary
data directory, `flask --app app db upgrade`, then `flask --app app demo load`), serves it with
gunicorn on 127.0.0.1 (the Flask app sends the static files itself), and runs Lighthouse
(tests/tools/ensure_lighthouse.sh installs it in bench/.lighthouse/) with Debian's Chromium
on each page as an anonymous reader: Lighthouse's default mobile run (a phone's screen,
simulated slow 4G and a 4× slower CPU), the four categories performance, accessibility,
best practices and SEO. It prints each page's scores, one `goal` line per category for the
worst page, and for a page under a goal the audits it did not pass. It exits 0 when every page
was scored, goals met or not; no test asserts a score (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Run as `python bench/lighthouse.py` from anywhere: the site's modules live one level up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


from app import db  # noqa: E402
from bench.flash_sale import (  # noqa: E402
    BIN,
    Database,
    ServerSetup,
    goal,
    gunicorn,
    machine_line,
    migrate,
    run_in_temporary_dir,
    server_env,
    site,
)
from bench.page_weight import landing_pages as weighed_pages  # noqa: E402
from bench.serving import behind_nginx  # noqa: E402

LIGHTHOUSE = ROOT / "bench" / ".lighthouse" / "node_modules" / ".bin" / "lighthouse"
INSTALLER = "bash tests/tools/ensure_lighthouse.sh"
CHROME_PATH = os.environ.get("CHROME_PATH") or os.environ.get("CHROMIUM") or "/usr/bin/chromium"
CHROME_FLAGS = "--headless=new --no-sandbox --disable-gpu"
# Lighthouse's category ids, in its report's order, with the goal of each (from the issue):
# the least score, 0..100 as Lighthouse shows it.
GOALS = {"performance": 100, "accessibility": 95, "best-practices": 100, "seo": 95}
PAGE_NAMES = ("home", "article", "product", "join", "thread")
# How gunicorn serves the pages: a phone fetches the page and its assets at once.
SETUP = ServerSetup(workers=2, worker_class="gthread", threads=4)
DEMO_TIMEOUT = 300  # seconds, for `flask demo load`
PAGE_TIMEOUT = 240  # seconds, for Lighthouse on one page (Chromium's start included)
VERSION_TIMEOUT = 60
# The informative audits that tell why a category lost points.
EXPLAINERS = {"performance": ("largest-contentful-paint-element", "layout-shifts", "long-tasks")}
SHOWN_ITEMS = 5  # of each failing audit's details (elements, URLs)
SHOWN_STDERR = 20  # lines of Lighthouse's own output when it fails


# --- the site ------------------------------------------------------------------------------


def demo_load(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "demo", "load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=DEMO_TIMEOUT,
    )
    if result.returncode != 0:
        raise SystemExit(f"flask --app app demo load failed:\n{result.stdout}{result.stderr}")


def landing_pages(env: dict[str, str]) -> dict[str, str]:
    """The paths of the pages readers land on, as bench/page_weight.py picks them."""
    app = site(env)
    with app.app_context():
        pages = weighed_pages()
        db.session.rollback()
        db.engine.dispose()
    return pages


# --- Lighthouse ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    path: str
    scores: dict[str, int | None]  # category id -> 0..100, None when Lighthouse gave none
    report: dict  # Lighthouse's JSON report


def lighthouse_env(where: Path) -> dict[str, str]:
    """Lighthouse's environment: Debian's Chromium, its profile in the temporary directory."""
    tmp = where / "tmp"
    tmp.mkdir(exist_ok=True)
    env = dict(os.environ)
    env.update(CHROME_PATH=CHROME_PATH, TMPDIR=str(tmp))
    return env


def lighthouse_command(url: str, output: Path) -> list[str]:
    return [
        str(LIGHTHOUSE),
        url,
        # Lighthouse's default is the mobile run; said explicitly, with its default screen
        # emulation and simulated throttling.
        "--form-factor=mobile",
        f"--chrome-flags={CHROME_FLAGS}",
        f"--only-categories={','.join(GOALS)}",
        "--output=json",
        f"--output-path={output}",
        "--quiet",
        "--no-enable-error-reporting",
    ]


def run_bounded(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, str]:
    """Run `command` in its own process group, whatever it leaves running (a Chromium) ended
    afterwards, the whole group killed after `timeout` seconds; its exit status (-1 when
    killed) and what it wrote."""
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        try:
            out, _ = process.communicate(timeout=timeout)
            return process.returncode, out
        except subprocess.TimeoutExpired:
            kill_group(process)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.communicate(timeout=15)
            return -1, f"killed: it did not finish within {timeout:g} s"
    finally:
        kill_group(process)
        if process.stdout is not None:
            process.stdout.close()


def kill_group(process: subprocess.Popen) -> None:
    """Whatever is left of the process group of `process` (a Chromium it started) is ended."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, signal.SIGKILL)
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=15)


def lighthouse_version(env: dict[str, str]) -> str:
    status, out = run_bounded([str(LIGHTHOUSE), "--version"], env, VERSION_TIMEOUT)
    if status != 0:
        raise SystemExit(f"lighthouse --version failed:\n{out}")
    return out.strip()


def chromium_version() -> str:
    try:
        result = subprocess.run(
            [CHROME_PATH, "--version"],
            capture_output=True,
            text=True,
            timeout=VERSION_TIMEOUT,
        )
    except (OSError, subprocess.TimeoutExpired) as error:
        raise SystemExit(f"Chromium does not run at {CHROME_PATH}: {error}") from error
    found = [line for line in result.stdout.splitlines() if "chrom" in line.lower()]
    return found[-1].strip() if found else f"{CHROME_PATH} (version unknown)"


def audit_page(port: int, path: str, output: Path, env: dict[str, str]) -> Report | str:
    """Lighthouse's report on one page, or why there is none."""
    url = f"http://127.0.0.1:{port}{path}"
    output.unlink(missing_ok=True)
    status, out = run_bounded(lighthouse_command(url, output), env, PAGE_TIMEOUT)
    if status != 0 or not output.exists():
        tail = "\n".join(f"  {line}" for line in out.strip().splitlines()[-SHOWN_STDERR:])
        return f"lighthouse exited {status} on {path}" + (f":\n{tail}" if tail else "")
    try:
        report = json.loads(output.read_text())
    except ValueError as error:
        return f"lighthouse wrote no JSON report on {path}: {error}"
    runtime_error = report.get("runtimeError")
    if runtime_error:
        return f"lighthouse could not audit {path}: {runtime_error.get('code')}"
    scores: dict[str, int | None] = {}
    for category in GOALS:
        score = report.get("categories", {}).get(category, {}).get("score")
        # As Lighthouse shows it (Math.round: half up).
        scores[category] = None if score is None else math.floor(score * 100 + 0.5)
    return Report(path, scores, report)


def score_text(score: int | None) -> str:
    return "none" if score is None else str(score)


def failing_audits(report: dict, category: str) -> list[str]:
    """The audits of `category` this page did not pass, those weighing in the score first (a
    weight 0 audit is a diagnostic: it explains, it costs no points): a line each, with a few
    of the elements or URLs they name."""
    refs = report["categories"][category]["auditRefs"]
    audits = report["audits"]
    found = []
    for ref in refs:
        audit = audits.get(ref["id"], {})
        score = audit.get("score")
        mode = audit.get("scoreDisplayMode")
        if score is None or score >= 1 or mode in ("notApplicable", "manual", "informative"):
            continue
        found.append((ref.get("weight", 0), ref["id"], audit))
    found.sort(key=lambda item: -item[0])
    lines = []
    for weight, audit_id, audit in found:
        shown = audit.get("displayValue")
        extra = f", {shown}" if shown else ""
        lines.append(
            f"  audit {audit_id}: {audit.get('title', '')} "
            f"(score {audit['score']:.2f}, weight {weight:g}{extra})"
        )
        lines += [f"    {item}" for item in detail_items(audit)]
    if not lines:
        lines.append("  (none listed)")
    return lines


def detail_items(audit: dict) -> list[str]:
    """A few of the elements or URLs an audit names (its `details.items`, tables within a
    list of tables included)."""
    items = (audit.get("details") or {}).get("items") or []
    if not isinstance(items, list):  # a checklist: {name: {label, value}}
        items = [v for v in items.values() if isinstance(v, dict) and v.get("value") is False]
    rows: list[dict] = []
    for item in items:
        if not isinstance(item, dict):
            continue
        inner = item.get("items")
        rows += [r for r in inner if isinstance(r, dict)] if isinstance(inner, list) else [item]
    shown = []
    for row in rows[:SHOWN_ITEMS]:
        node = row.get("node")
        if isinstance(node, dict) and node.get("type") == "node":
            text = f"{node.get('selector') or ''} {node.get('snippet') or ''}".strip()
            label = " ".join((node.get("nodeLabel") or "").split())
            if label:
                text += f" 「{label[:40]}」"
            explanation = (node.get("explanation") or "").strip().splitlines()
            if explanation:
                text += f" ({explanation[-1].strip()})"
            rest = {k: v for k, v in row.items() if k != "node" and isinstance(v, int | float)}
            if rest:
                text += " " + json.dumps(rest)
            shown.append(text[:300])
        else:
            brief = {
                k: v
                for k, v in row.items()
                if isinstance(v, str | int | float) and k not in ("type", "description")
            }
            if brief:
                shown.append(json.dumps(brief, ensure_ascii=False)[:300])
    if len(rows) > SHOWN_ITEMS:
        shown.append(f"... and {len(rows) - SHOWN_ITEMS} more")
    return shown


def explanations(report: dict, category: str) -> list[str]:
    """What the report says about why the category lost points beyond its audits' scores:
    for performance, the largest contentful paint's element, what shifted, the long tasks."""
    lines = []
    for audit_id in EXPLAINERS.get(category, ()):
        audit = report["audits"].get(audit_id)
        items = detail_items(audit) if audit else []
        if items:
            lines.append(f"  why, {audit_id}: {audit.get('title', '')}")
            lines += [f"    {item}" for item in items]
    return lines


def goal_name(category: str) -> str:
    least = GOALS[category]
    return f"Lighthouse {category} {'=' if least == 100 else '>='} {least}"


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    pages: int
    keep: bool


def run(options: Options, where: Path) -> int:
    if not os.access(LIGHTHOUSE, os.X_OK):
        print(f"Lighthouse is not installed at {LIGHTHOUSE}: run {INSTALLER}", file=sys.stderr)
        return 2
    if not os.access(CHROME_PATH, os.X_OK):
        print(
            f"Chromium is not at {CHROME_PATH} (bash tests/tools/ensure_chromium.sh installs "
            "it; CHROME_PATH names another)",
            file=sys.stderr,
        )
        return 2
    env_lighthouse = lighthouse_env(where)
    # A fresh SQLite file always: the database barely shows in a page's load, and the
    # PostgreSQL of TEST_DATABASE_URL is not this benchmark's to wipe.
    database = Database("sqlite", f"sqlite:///{where / 'chendu.db'}")
    env = server_env(where, database, secrets.token_hex(16))
    print(
        f"lighthouse benchmark: {options.pages} of {len(PAGE_NAMES)} pages, {database.kind}, "
        f"{SETUP.describe()}, mobile (Lighthouse's default emulation and throttling)"
    )
    print(machine_line())
    print(f"lighthouse {lighthouse_version(env_lighthouse)}, {chromium_version()}")

    start = time.perf_counter()
    migrate(env)
    demo_load(env)
    pages = landing_pages(env)
    paths = [pages[name] for name in PAGE_NAMES[: options.pages]]
    print(f"site: migrated, demo data loaded in {time.perf_counter() - start:.1f} s")

    reports: list[Report] = []
    failures: list[str] = []
    log_path = where / "gunicorn.log"
    started = time.perf_counter()
    # As phones get the pages: through the shipped nginx site (gzip, cached static files,
    # the micro-cache for anonymous pages), in front of gunicorn.
    with gunicorn(env, SETUP, log_path) as server, behind_nginx(where, server.port) as port:
        for n, path in enumerate(paths):
            found = audit_page(port, path, where / f"page-{n}.report.json", env_lighthouse)
            if isinstance(found, str):
                print(found)
                failures.append(path)
                continue
            reports.append(found)
            scores = ", ".join(f"{c} {score_text(s)}" for c, s in found.scores.items())
            print(f"lighthouse {path}: {scores}")
    print(f"audited: {len(reports)} of {len(paths)} pages in {time.perf_counter() - started:.0f} s")

    for category, least in GOALS.items():
        scored = [(r.scores[category], r.path) for r in reports if r.scores[category] is not None]
        unscored = [r.path for r in reports if r.scores[category] is None] + failures
        worst: int | None = None
        measured = []
        if scored:
            worst, where_worst = min(scored, key=lambda item: item[0])
            measured.append(f"worst {worst} on {where_worst}")
        if unscored:
            measured.append(f"no score on {', '.join(unscored)}")
        met = worst is not None and worst >= least and not unscored
        print(goal(goal_name(category), met, "; ".join(measured)))

    for report in reports:
        for category, least in GOALS.items():
            score = report.scores[category]
            if score is not None and score < least:
                print(f"{report.path}: {category} {score} < {least}; the audits not passed:")
                for line in failing_audits(report.report, category):
                    print(line)
                for line in explanations(report.report, category):
                    print(line)

    if options.keep:
        print(f"kept: {where} (page-N.report.json: Lighthouse's reports, gunicorn.log)")
    return 1 if failures or any(None in r.scores.values() for r in reports) else 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--pages",
        type=int,
        default=len(PAGE_NAMES),
        help=f"how many of the pages ({', '.join(PAGE_NAMES)}) to audit, in that order (5)",
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the temporary directory and the reports"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.pages <= len(PAGE_NAMES):
        parser.error(f"--pages must be 1..{len(PAGE_NAMES)}")
    options = Options(pages=args.pages, keep=args.keep)
    return run_in_temporary_dir(args.keep, "chendu-lighthouse-", lambda where: run(options, where))


if __name__ == "__main__":
    sys.exit(main())
