"""Soak the real site: minutes of mixed reads, searches, posts and purchases under gunicorn.

    .venv/bin/python bench/soak.py

Builds a fresh site the way bench/flash_sale.py does (SQLite in a temporary data directory,
or PostgreSQL with --database-url or TEST_DATABASE_URL; `flask --app app db upgrade`), seeds
generated articles (indexed for search), one live product with stock for the whole run and
`--members` members by bulk inserts, and serves it with gunicorn on 127.0.0.1 as
deploy/gunicorn.conf.py sizes it: gthread workers and threads from the CPUs, workers recycled
after max_requests (+ jitter), as deployed. It logs every member in over HTTP (untimed), then
`--concurrency` clients send requests back to back for `--warm-up-seconds` and then
`--minutes` more: 60% reads (home, articles, board, product page; half of them signed in),
20% searches (half signed in), 10% board posts (new threads and answers, spread over the
members so that the per-member post limit rarely answers 429; a 429 is counted apart) and 10%
purchases (the buy form: an order placed). Every few seconds it sums the proportional set size
(PSS) of gunicorn's master and workers. It prints the requests per kind, their answers, p50
and p99 after the warm-up, every 5xx (the first ones with their bodies, and the tail of
gunicorn's log), the memory after the warm-up, at the end and at its peak, and two goal lines.
The periodic jobs run beside the load as deployed: every command of
deploy/systemd/chendu-jobs.service, at its timer's interval (the search job merges the index's
segments that requests leave alone).
It exits 0 when it ran; no test asserts a timing (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import html
import random
import re
import runpy
import secrets
import shlex
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

# Run as `python bench/soak.py` from anywhere: the site's modules live one level up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, insert, select, update  # noqa: E402
from sqlalchemy.exc import SQLAlchemyError  # noqa: E402

from app import db, write_transaction  # noqa: E402
from bench import sampling  # noqa: E402
from bench.flash_sale import (  # noqa: E402
    BIN,
    BUY_PATH,
    ERROR_SAMPLES,
    PAY_RE,
    REQUEST_TIMEOUT,
    SLUG,
    Buyer,
    Connection,
    Database,
    ServerSetup,
    buy_form,
    choose_database,
    cpu_line,
    cpu_times,
    goal,
    log_in,
    machine_line,
    migrate,
    percentile,
    print_log_tail,
    run_in_temporary_dir,
    seed,
    server_env,
    site,
    wipe_postgres,
)
from bench.flash_sale import gunicorn as serve  # noqa: E402
from bench.search import TOPICS, generate, queries  # noqa: E402
from board.models import Post, Section, Thread  # noqa: E402
from content import search  # noqa: E402
from content.models import Article, ArticleKeyword, Column, SearchQueue  # noqa: E402
from shop.models import HOLDING, Order, Product  # noqa: E402

GOAL_GROWTH_PERCENT = 10.0  # memory at the end at most this much above the memory after warm-up
DEPLOY_CONFIG = ROOT / "deploy" / "gunicorn.conf.py"
JOBS_UNIT = ROOT / "deploy" / "systemd" / "chendu-jobs.service"
JOBS_TIMER = ROOT / "deploy" / "systemd" / "chendu-jobs.timer"
STOCK = 1_000_000  # units of the product: far more than any run buys
SAMPLE_SECONDS = 5.0  # between two memory samples
SIGNED_IN_SHARE = 0.5  # of reads and searches; posts and purchases are always signed in
MAX_REQUESTS_PER_CLIENT = 1_000_000  # a bound on every client's loop besides its time
JOIN_SECONDS = REQUEST_TIMEOUT + 5  # a client's last request must end within this
RATE_MARGIN_SECONDS = 30  # a member posts again only this long after the limit's window
SEARCHES = 500  # distinct queries to draw from
STUCK_SECONDS = 10.0  # a request in flight this long has the server's threads dumped...
STUCK_DUMPS = 2  # ...this many times in a run at most
MB = 1024 * 1024
THREAD_RE = re.compile(r"/board/t/(\d+)$")
TAG_RE = re.compile(r"<[^>]+>")


@dataclass(frozen=True)
class Kind:
    name: str  # as printed
    weight: int  # percent of all requests
    expected: int  # the status of a request that did what it asked


# The mix: 60% reads, 20% searches, 10% posts, 10% purchases.
KINDS = (
    Kind("read /", 15, 200),
    Kind("read /a/<slug>", 30, 200),
    Kind("read /board", 9, 200),
    Kind("read /shop/p/<slug>", 6, 200),
    Kind("search", 20, 200),
    Kind("post thread", 5, 303),
    Kind("post answer", 5, 303),
    Kind("purchase", 10, 303),
)
KIND_NAMES = [k.name for k in KINDS]
KIND_WEIGHTS = [k.weight for k in KINDS]
EXPECTED = {k.name: k.expected for k in KINDS}
POSTS = ("post thread", "post answer")


# --- gunicorn as deployed ------------------------------------------------------------------


@dataclass(frozen=True)
class Deployed:
    """What deploy/gunicorn.conf.py sets on this machine (its environment included)."""

    workers: int
    threads: int
    max_requests: int
    max_requests_jitter: int
    preload: bool = False


def deployed() -> Deployed:
    settings = runpy.run_path(str(DEPLOY_CONFIG))
    return Deployed(
        workers=int(settings["workers"]),
        threads=int(settings["threads"]),
        max_requests=int(settings.get("max_requests", 0)),
        max_requests_jitter=int(settings.get("max_requests_jitter", 0)),
        preload=bool(settings.get("preload_app", False)),
    )


def gunicorn_args(max_requests: int, jitter: int) -> str:
    """GUNICORN_CMD_ARGS: deploy/gunicorn.conf.py itself (its preloading and its hooks: the
    workers' own database connections, the frozen garbage collector), recycling after
    `max_requests` (0: never), no access log. bench/flash_sale.py's command line sets the
    workers, threads, address and timeouts, and wins over both."""
    return (
        f"-c {shlex.quote(str(DEPLOY_CONFIG))} --access-logfile /dev/null "
        f"--max-requests {max_requests} --max-requests-jitter {jitter if max_requests else 0}"
    )


def describe_recycling(max_requests: int, jitter: int, as_deployed: bool) -> str:
    if max_requests <= 0:
        return "workers never recycled" + ("" if as_deployed else " (deployed: recycled)")
    said = f"workers recycled after {max_requests:,} + up to {jitter:,} requests"
    return said + (", as deployed" if as_deployed else ", NOT as deployed")


def deployed_jobs() -> tuple[list[list[str]], float]:
    """The periodic jobs' commands (chendu-jobs.service's ExecStart lines, run by this
    checkout's flask) and the timer's interval in seconds."""
    commands = []
    for line in JOBS_UNIT.read_text().splitlines():
        if line.startswith("ExecStart="):
            program, *args = shlex.split(line.removeprefix("ExecStart="))
            commands.append([str(BIN / Path(program).name), *args])
    timer = re.search(r"^OnUnitActiveSec=(\d+)min$", JOBS_TIMER.read_text(), re.M)
    if not commands or timer is None:
        raise SystemExit(f"no jobs or no interval in {JOBS_UNIT.name} / {JOBS_TIMER.name}")
    return commands, int(timer.group(1)) * 60.0


@dataclass
class Jobs:
    """The periodic jobs, run one after another every `interval` seconds until stopped, as
    the systemd timer runs them beside the site."""

    env: dict[str, str]
    commands: list[list[str]]
    interval: float
    stop: threading.Event = field(default_factory=threading.Event)
    runs: Counter[str] = field(default_factory=Counter)
    seconds: Counter[str] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        while not self.stop.wait(self.interval):
            for command in self.commands:
                name = " ".join(command[3:])
                begun = time.monotonic()
                try:
                    done = subprocess.run(
                        command,
                        cwd=ROOT,
                        env=self.env,
                        capture_output=True,
                        text=True,
                        timeout=REQUEST_TIMEOUT * 4,
                    )
                    if done.returncode != 0:
                        self.failures.append(
                            f"{name}: exit {done.returncode}: {done.stderr[-300:]}"
                        )
                except subprocess.TimeoutExpired:
                    self.failures.append(f"{name}: still running after {REQUEST_TIMEOUT * 4:g} s")
                self.runs[name] += 1
                self.seconds[name] += time.monotonic() - begun

    def describe(self) -> str:
        done = ", ".join(
            f"{name} × {n} ({self.seconds[name] / n:.1f} s each)" for name, n in self.runs.items()
        )
        return f"jobs: every {self.interval:g} s, {done or 'none ran'}; {len(self.failures)} failed"


# --- the site ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seeded:
    slugs: list[str]  # the articles'
    titles: list[str]  # their titles and summaries, for the posts' text
    summaries: list[str]
    searches: list[str]
    sections: list[int]  # the board's section ids
    post_limit: int  # posts per member per `post_minutes`
    post_minutes: int


def seed_content(env: dict[str, str], articles: int, rng: random.Random) -> Seeded:
    """`articles` generated articles (bench/search.py's, dated over the last hours), indexed
    for search; the product given stock for the whole run and no per-member limit."""
    rows, keywords, _names = generate(articles, rng)
    now = datetime.now(UTC)
    app = site(env)
    with app.app_context():
        columns = list(db.session.scalars(select(Column.id).order_by(Column.id)))
        for n, row in enumerate(rows, start=1):
            at = now - timedelta(hours=n)
            row.update(publish_at=at, created_at=at, updated_at=at)
            row["column_id"] = columns[n % len(columns)] if columns else None
        with write_transaction() as session:
            session.execute(insert(Article), rows)
            session.execute(insert(ArticleKeyword), keywords)
            session.execute(
                update(Product)
                .where(Product.slug == SLUG)
                .values(
                    per_member_limit=None,
                    description_md="会员专享，不限购。",
                    description_html="<p>会员专享，不限购。</p>",
                )
            )
        search.reindex()
        sections = list(db.session.scalars(select(Section.id).order_by(Section.id)))
        limit, minutes = app.config["BOARD_POST_LIMIT"], app.config["BOARD_POST_MINUTES"]
        db.session.rollback()
        db.engine.dispose()
    return Seeded(
        slugs=[r["slug"] for r in rows],
        titles=[r["title"] for r in rows],
        summaries=[r["summary"] for r in rows],
        searches=queries(SEARCHES, rng),
        sections=sections,
        post_limit=limit,
        post_minutes=minutes,
    )


@dataclass(frozen=True)
class Held:
    """What the database holds after the run."""

    orders: int  # pending or paid orders
    available: int
    held: int
    sold: int
    threads: int
    posts: int


def held(env: dict[str, str]) -> Held:
    app = site(env)
    with app.app_context():
        product = db.session.scalars(select(Product).where(Product.slug == SLUG)).one()
        found = Held(
            orders=db.session.scalar(
                select(func.count()).select_from(Order).where(Order.status.in_(HOLDING))
            )
            or 0,
            available=product.available or 0,
            held=product.held,
            sold=product.sold,
            threads=db.session.scalar(select(func.count()).select_from(Thread)) or 0,
            posts=db.session.scalar(select(func.count()).select_from(Post)) or 0,
        )
        db.session.rollback()
        db.engine.dispose()
    return found


# --- memory --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sample:
    at: float  # seconds since the load began
    pss: int  # bytes, summed over gunicorn's master and workers (0 when unreadable)
    rss: int  # the same, resident set sizes
    workers: frozenset[int]  # the workers' pids
    segments: int | None = None  # the Whoosh index's segments (None on PostgreSQL)
    queued: int | None = None  # rows in the search queue (None when unreadable)

    def size(self, measure: str) -> int:
        return self.pss if measure == "PSS" else self.rss


def children(master: int) -> list[int]:
    """The pids whose parent is `master`: gunicorn's workers."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[1]) == master:  # ppid
            found.append(int(stat.parent.name))
    return found


def process_memory(pid: int) -> tuple[int, int] | None:
    """(PSS, RSS) of one process in bytes, from /proc/<pid>/smaps_rollup (PSS 0 when the
    kernel has none: RSS from /proc/<pid>/status then); None when it is gone."""
    values: dict[str, int] = {}
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except FileNotFoundError:
        text = ""
        if not Path(f"/proc/{pid}").exists():
            return None
    except OSError:
        return None
    if not text:
        try:
            text = Path(f"/proc/{pid}/status").read_text()
        except OSError:
            return None
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in ("Pss", "Rss", "VmRSS") and rest.strip().endswith("kB"):
            values[name] = int(rest.split()[0]) * 1024
    return values.get("Pss", 0), values.get("Rss", values.get("VmRSS", 0))


class Backlog:
    """What the search index has still to do: its segments (Whoosh, in the data directory)
    and the rows queued for it. Every search and every searcher refresh works per segment,
    and a request that finds rows queued drains some of them."""

    def __init__(self, data_dir: Path, database: Database) -> None:
        self.index = data_dir / "search" / f"v{search.SCHEMA_VERSION}"
        self.postgres = database.kind == "postgresql"
        self.engine = create_engine(database.url)

    def segments(self) -> int | None:
        return None if self.postgres else len(list(self.index.glob("*.seg")))

    def queued(self) -> int | None:
        try:
            with self.engine.connect() as connection:
                return connection.scalar(select(func.count()).select_from(SearchQueue))
        except SQLAlchemyError:
            return None

    def close(self) -> None:
        self.engine.dispose()


def sample(master: int, at: float, backlog: Backlog) -> Sample:
    pss = rss = 0
    workers = []
    for pid in [master, *children(master)]:
        found = process_memory(pid)
        if found is None:
            continue
        pss, rss = pss + found[0], rss + found[1]
        if pid != master:
            workers.append(pid)
    return Sample(at, pss, rss, frozenset(workers), backlog.segments(), backlog.queued())


def measure_of(first: Sample) -> str:
    """PSS when the kernel gives it (each shared page counted once over the group), else RSS
    (shared pages counted in every process that maps them)."""
    return "PSS" if first.pss else "RSS"


def mb(size: int) -> str:
    return f"{size / MB:,.0f} MB"


def growth(before: int, after: int) -> float:
    return (after - before) / before * 100 if before else 0.0


# --- the clients ---------------------------------------------------------------------------


@dataclass
class Member:
    """A logged-in member, owned by one client thread (its cookies change under it)."""

    buyer: Buyer
    posted: list[float] = field(default_factory=list)  # when its posts were sent


@dataclass
class Tally:
    """Every answer, by kind; shared by the clients."""

    warm_end: float  # monotonic time the warm-up ends
    lock: threading.Lock = field(default_factory=threading.Lock)
    statuses: dict[str, Counter[int]] = field(
        default_factory=lambda: {name: Counter() for name in KIND_NAMES}
    )
    ms: dict[str, list[float]] = field(default_factory=lambda: {name: [] for name in KIND_NAMES})
    no_answer: Counter[str] = field(default_factory=Counter)  # by kind and error
    server_errors: list[str] = field(default_factory=list)  # the first 5xx, described
    unexpected: Counter[str] = field(default_factory=Counter)  # other surprises, described
    threads: list[int] = field(default_factory=list)  # the board threads started
    lost: list[str] = field(default_factory=list)  # the first requests without an answer
    # Requests in flight for STUCK_SECONDS, and what the server's threads were doing then.
    stuck: list[tuple[str, list[str]]] = field(default_factory=list)

    def answered(
        self, kind: str, what: str, status: int, begun: float, ended: float, body: bytes, note: str
    ) -> None:
        with self.lock:
            self.statuses[kind][status] += 1
            if begun >= self.warm_end:
                self.ms[kind].append((ended - begun) * 1000)
            if status >= 500:
                if len(self.server_errors) < ERROR_SAMPLES:
                    self.server_errors.append(f"{what} -> {status}: {excerpt(body)}")
            elif status != EXPECTED[kind] and not (kind in POSTS and status == 429):
                self.unexpected[f"{kind}: {status}{note}"] += 1

    def failed(self, kind: str, what: str, begun: float, error: BaseException) -> None:
        """A request without an answer, with the wall-clock second it was sent at (UTC, to
        set beside gunicorn's log) and how long it waited."""
        waited = time.monotonic() - begun
        sent = datetime.fromtimestamp(time.time() - waited, UTC).strftime("%H:%M:%S")
        with self.lock:
            self.no_answer[f"{kind}: {type(error).__name__}"] += 1
            if len(self.lost) < ERROR_SAMPLES:
                self.lost.append(
                    f"{what} sent at {sent} UTC, {type(error).__name__} after {waited:.1f} s"
                )


def excerpt(body: bytes, size: int = 200) -> str:
    text = html.unescape(TAG_RE.sub(" ", body.decode(errors="replace")))
    return " ".join(text.split())[:size]


@dataclass
class Client:
    """One client thread's requests: back to back until `end` (or `stop`)."""

    port: int
    members: list[Member]
    seeded: Seeded
    tally: Tally
    rng: random.Random
    end: float
    stop: threading.Event
    anonymous: Buyer = field(default_factory=lambda: Buyer(""))  # keeps no cookies
    next_poster: int = 0
    flying: tuple[float, str] | None = None  # the request on its way: when it began, what

    def run(self) -> None:
        conn = Connection(self.port)
        try:
            for _ in range(MAX_REQUESTS_PER_CLIENT):
                if self.stop.is_set() or time.monotonic() >= self.end:
                    break
                self.one(conn)
        finally:
            conn.close()

    def reader(self) -> Buyer:
        if self.rng.random() < SIGNED_IN_SHARE:
            return self.rng.choice(self.members).buyer
        return self.anonymous

    def poster(self, now: float) -> Member:
        """The next member who may post without hitting the limit (or, when none may, the
        next one: the answer is a 429, counted apart)."""
        window = self.seeded.post_minutes * 60 + RATE_MARGIN_SECONDS
        count = len(self.members)
        for step in range(count):
            member = self.members[(self.next_poster + step) % count]
            member.posted = [t for t in member.posted if now - t < window]
            if len(member.posted) < self.seeded.post_limit:
                self.next_poster = (self.next_poster + step + 1) % count
                return member
        member = self.members[self.next_poster]
        self.next_poster = (self.next_poster + 1) % count
        return member

    def request(
        self, kind: str
    ) -> tuple[str, str, Buyer, dict[str, str] | None, Member | None, str]:
        """The method, path, who sends it, the form, the member who posts (for a post), and a
        note for an unexpected answer."""
        rng, seeded = self.rng, self.seeded
        if kind == "read /":
            return "GET", "/", self.reader(), None, None, ""
        if kind == "read /a/<slug>":
            return "GET", f"/a/{rng.choice(seeded.slugs)}", self.reader(), None, None, ""
        if kind == "read /board":
            with self.tally.lock:
                thread = rng.choice(self.tally.threads) if self.tally.threads else None
            path = f"/board/t/{thread}" if thread and rng.random() < 0.5 else "/board/"
            return "GET", path, self.reader(), None, None, ""
        if kind == "read /shop/p/<slug>":
            return "GET", f"/shop/p/{SLUG}", self.reader(), None, None, ""
        if kind == "search":
            path = "/search?" + urlencode({"q": rng.choice(seeded.searches)})
            return "GET", path, self.reader(), None, None, ""
        if kind == "purchase":
            buyer = rng.choice(self.members).buyer
            return "POST", BUY_PATH, buyer, buy_form(buyer), None, ""
        member = self.poster(time.monotonic())
        token = member.buyer.token
        body = f"{rng.choice(seeded.summaries)}\n\n{rng.choice(seeded.summaries)}"
        with self.tally.lock:
            thread = rng.choice(self.tally.threads) if self.tally.threads else None
        if kind == "post answer" and thread is not None:
            form = {"csrf_token": token, "body": body}
            return "POST", f"/board/t/{thread}/answer", member.buyer, form, member, ""
        form = {
            "csrf_token": token,
            "section": str(rng.choice(seeded.sections)),
            "title": rng.choice(seeded.titles)[:80],
            "tags": " ".join(rng.sample(TOPICS[:40], 2)),
            "body": body,
            "article": "",
        }
        said = " (a new thread: none to answer yet)" if kind == "post answer" else ""
        return "POST", "/board/new", member.buyer, form, member, said

    def one(self, conn: Connection) -> None:
        kind = self.rng.choices(KIND_NAMES, KIND_WEIGHTS)[0]
        method, path, who, form, member, said = self.request(kind)
        begun = time.monotonic()
        self.flying = (begun, f"{method} {path}")
        try:
            response, body = conn.request(method, path, who, form)
        except Exception as error:  # no answer: timeout, refused, reset...
            self.tally.failed(kind, f"{method} {path}", begun, error)
            return
        finally:
            self.flying = None
        ended = time.monotonic()
        if who is not self.anonymous:
            who.keep_cookies(response)
        status = response.status
        location = response.headers.get("Location", "")
        note = said
        if status == 303 and kind == "purchase" and not PAY_RE.search(location):
            status, note = -303, f" to {location!r}"  # a redirect elsewhere: not an order
        if status == 303 and kind in POSTS:
            found = THREAD_RE.search(location.split("#", 1)[0])
            if member is not None:
                member.posted.append(begun)
            if found and path == "/board/new":
                with self.tally.lock:
                    self.tally.threads.append(int(found.group(1)))
        self.tally.answered(kind, f"{method} {path}", status, begun, ended, body, note)


def load(
    port: int,
    master: int,
    members: Sequence[Buyer],
    seeded: Seeded,
    concurrency: int,
    warm_up: float,
    soak: float,
    seed_value: int,
    backlog: Backlog,
) -> tuple[Tally, list[Sample], Sample, float]:
    """`concurrency` clients for `warm_up` + `soak` seconds while memory and the search
    backlog are sampled every SAMPLE_SECONDS: the answers, the samples, the one at the end of
    the warm-up, the wall time."""
    start = time.monotonic()
    warm_end, end = start + warm_up, start + warm_up + soak
    tally = Tally(warm_end)
    stop = threading.Event()
    owned = [[Member(b) for b in members[i::concurrency]] for i in range(concurrency)]
    clients = [
        Client(port, own, seeded, tally, random.Random(seed_value * 1_000 + i), end, stop)
        for i, own in enumerate(owned)
    ]
    threads = [threading.Thread(target=c.run, daemon=True) for c in clients]
    for thread in threads:
        thread.start()
    times = sorted(
        {start + k * SAMPLE_SECONDS for k in range(int(warm_up + soak) // int(SAMPLE_SECONDS) + 1)}
        | {warm_end, end}
    )
    samples: list[Sample] = []
    warm: Sample | None = None
    try:
        for at in times:
            if at > end:
                break
            time.sleep(max(0.0, at - time.monotonic()))
            taken = sample(master, time.monotonic() - start, backlog)
            samples.append(taken)
            if at == warm_end:
                warm = taken
            if len(tally.stuck) < STUCK_DUMPS:
                late = stuck(clients, time.monotonic())
                if late:
                    tally.stuck.append(("; ".join(late), sampling.busy_threads(master)))
            if not Path(f"/proc/{master}").exists():
                break  # gunicorn is gone: the caller says so
    finally:
        stop.set()
        for thread in threads:
            thread.join(max(0.0, end + JOIN_SECONDS - time.monotonic()) + 1)
    wall = time.monotonic() - start
    return tally, samples, warm or samples[-1], wall


def stuck(clients: Sequence[Client], now: float) -> list[str]:
    """The requests in flight for STUCK_SECONDS or more."""
    late = []
    for client in clients:
        flying = client.flying
        if flying is not None and now - flying[0] >= STUCK_SECONDS:
            late.append(f"{flying[1]} for {now - flying[0]:.0f} s")
    return late


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    minutes: float
    warm_up: float
    concurrency: int
    members: int
    articles: int
    max_requests: int | None  # None: as deploy/gunicorn.conf.py says
    jobs_every: float | None  # None: as deploy/systemd/chendu-jobs.timer says
    database_url: str | None
    wipe_allowed: bool
    keep: bool
    seed: int


def run(options: Options, where: Path) -> int:
    """The whole benchmark in `where`; the exit status."""
    database = choose_database(options.database_url, where, options.wipe_allowed)
    env = server_env(where, database, secrets.token_hex(16))
    shipped = deployed()
    max_requests = shipped.max_requests if options.max_requests is None else options.max_requests
    jitter = shipped.max_requests_jitter if max_requests == shipped.max_requests else 0
    as_deployed = (max_requests, jitter) == (shipped.max_requests, shipped.max_requests_jitter)
    env["GUNICORN_CMD_ARGS"] = gunicorn_args(max_requests, jitter)
    setup = ServerSetup(shipped.workers, "gthread", shipped.threads)
    soak = options.minutes * 60
    print(
        f"soak benchmark: {database.kind}, {setup.describe()} (deploy/gunicorn.conf.py), "
        f"{describe_recycling(max_requests, jitter, as_deployed)}"
        f"{', app preloaded' if shipped.preload else ''}; concurrency "
        f"{options.concurrency}, {options.warm_up:g} s warm-up + {options.minutes:g} min"
    )
    print(machine_line())
    print(
        "mix: " + ", ".join(f"{k.weight}% {k.name}" for k in KINDS) + f"; reads and searches "
        f"{SIGNED_IN_SHARE:.0%} signed in"
    )

    start = time.perf_counter()
    if database.kind == "postgresql":
        wipe_postgres(database.url)
    migrate(env)
    emails = seed(env, STOCK, options.members)
    seeded = seed_content(env, options.articles, random.Random(options.seed))
    print(
        f"seed: migrated, {len(seeded.slugs):,} articles indexed, 1 product (stock {STOCK:,}, "
        f"no per-member limit), {len(emails):,} members in {time.perf_counter() - start:.1f} s"
    )

    log_path = where / "gunicorn.log"
    members = [Buyer(email) for email in emails]
    with serve(env, setup, log_path) as server:
        begun = time.perf_counter()
        failures = log_in(server.port, members, BUY_PATH)
        ready = [m for m in members if m.token]
        print(
            f"log in: {len(ready):,} members in {time.perf_counter() - begun:.1f} s (untimed), "
            f"{len(members) - len(ready)} failed"
        )
        for line in failures[:ERROR_SAMPLES]:
            print(f"  {line}")
        if len(ready) < options.concurrency:
            print_log_tail(log_path, "too few members could log in")
            return 1
        commands, interval = deployed_jobs()
        jobs = Jobs(env, commands, interval if options.jobs_every is None else options.jobs_every)
        runner = threading.Thread(target=jobs.run, daemon=True)
        backlog = Backlog(where, database)
        first = sample(server.pid, 0.0, backlog)
        cpu, before = time.process_time(), cpu_times(server.pid)
        runner.start()
        tally, samples, warm, wall = load(
            server.port,
            server.pid,
            ready,
            seeded,
            options.concurrency,
            options.warm_up,
            soak,
            options.seed,
            backlog,
        )
        backlog.close()
        client_cpu, after = time.process_time() - cpu, cpu_times(server.pid)
        jobs.stop.set()
        runner.join(REQUEST_TIMEOUT * 4 * len(jobs.commands) + 5)
        alive = Path(f"/proc/{server.pid}").exists()

    report(tally, wall, options, seeded, env, log_path)
    print(jobs.describe())
    for line in jobs.failures[:ERROR_SAMPLES]:
        print(f"  {line}")
    print(f"CPU during the run: {cpu_line(before, after, client_cpu, wall, database.kind)}")
    measure = measure_of(first)
    memory_report(first, samples, warm, measure, log_path, max_requests)
    backlog_report(first, samples, warm)
    errors = sum(n for s in tally.statuses.values() for status, n in s.items() if status >= 500)
    lost = sum(tally.no_answer.values())
    measured = f"{errors + lost}" + (f": {errors} × 5xx, {lost} without an answer" if lost else "")
    print(goal("0 × 5xx", errors + lost == 0, measured))
    rise = growth(warm.size(measure), samples[-1].size(measure))
    print(
        goal(
            f"memory at the end within {GOAL_GROWTH_PERCENT:g}% of after warm-up",
            rise <= GOAL_GROWTH_PERCENT,
            f"{rise:+.1f}%: {mb(warm.size(measure))} -> {mb(samples[-1].size(measure))}",
        )
    )
    if options.keep:
        print(f"kept: {where} (gunicorn.log, chendu.db for SQLite)")
    if not alive:
        print("gunicorn's master was gone before the end of the run", file=sys.stderr)
        return 1
    return 0


def answer_counts(statuses: Counter[int]) -> str:
    """`200 × 1,234, 303 × 56`; -303 stands for a redirect that is not an order's."""
    return ", ".join(
        f"{status if status > 0 else '303 elsewhere'} × {n:,}"
        for status, n in sorted(statuses.items())
    )


def report(
    tally: Tally,
    wall: float,
    options: Options,
    seeded: Seeded,
    env: dict[str, str],
    log_path: Path,
) -> None:
    total = sum(sum(s.values()) for s in tally.statuses.values()) + sum(tally.no_answer.values())
    print(
        f"run: {total:,} requests in {wall:.1f} s, {total / wall:,.0f} requests/s "
        f"({options.warm_up:g} s warm-up included; p50 and p99 after it)"
    )
    width = max(len(name) for name in KIND_NAMES)
    for kind in KIND_NAMES:
        statuses = tally.statuses[kind]
        lost = sum(n for said, n in tally.no_answer.items() if said.startswith(f"{kind}:"))
        answers = answer_counts(statuses)
        if lost:
            answers += f", no answer × {lost:,}"
        ms = tally.ms[kind]
        print(
            f"  {kind:<{width}}  {sum(statuses.values()) + lost:>8,}  "
            f"p50 {percentile(ms, 50):,.0f} ms, p99 {percentile(ms, 99):,.0f} ms  "
            f"[{answers or 'none'}]"
        )
    everything: Counter[int] = Counter()
    for statuses in tally.statuses.values():
        everything.update(statuses)
    lost = sum(tally.no_answer.values())
    print(f"answers: {answer_counts(everything)}" + (f", no answer × {lost:,}" if lost else ""))
    placed = sum(tally.statuses[k][303] for k in POSTS)
    limited = sum(tally.statuses[k][429] for k in POSTS)
    print(
        f"posts: {placed:,} placed (303), {limited:,} refused by the post limit (429: "
        f"{seeded.post_limit} per {seeded.post_minutes} minutes per member; not an error)"
    )
    orders = tally.statuses["purchase"][303]
    found = held(env)
    print(
        f"database: {found.orders:,} pending orders ({orders:,} answered as placed), product "
        f"available {found.available:,} + held {found.held:,} + sold {found.sold:,}; "
        f"{found.threads:,} threads, {found.posts:,} posts"
    )
    for said, n in tally.unexpected.most_common(ERROR_SAMPLES):
        print(f"  unexpected: {n:,} × {said}")
    for said, n in tally.no_answer.most_common(ERROR_SAMPLES):
        print(f"  no answer: {n:,} × {said}")
    for said in tally.lost:
        print(f"  no answer: {said}")
    for late, threads in tally.stuck:
        print(
            f"  in flight for {STUCK_SECONDS:g} s or more: {late}; the server's threads in the "
            "site's code then (py-spy dump, innermost frame first):"
        )
        for line in threads:
            print(f"    {line}")
    errors = sum(n for s in tally.statuses.values() for status, n in s.items() if status >= 500)
    print(f"5xx: {errors:,}")
    for said in tally.server_errors:
        print(f"  5xx: {said}")
    if errors or tally.no_answer:
        print_log_tail(log_path, "5xx or requests without an answer", lines=30)


def spread(samples: Sequence[Sample]) -> list[Sample]:
    """About 20 of the samples, evenly apart, the last one always among them."""
    step = max(1, len(samples) // 20)
    return [*samples[::step], *([samples[-1]] if (len(samples) - 1) % step else [])]


def backlog_report(first: Sample, samples: Sequence[Sample], warm: Sample) -> None:
    """The search index's segments and queued rows over the run (what every search and every
    searcher refresh pays for, and what requests and the job have left to drain)."""
    end = samples[-1]
    for name, of in (("segments", "segments"), ("queued rows", "queued")):
        values = [(s.at, getattr(s, of)) for s in samples if getattr(s, of) is not None]
        if not values:
            continue
        peak = max(values, key=lambda v: v[1])
        print(
            f"search index: {name} before the load {getattr(first, of)}, after warm-up "
            f"{getattr(warm, of)}, at the end {getattr(end, of)}, peak {peak[1]:,} (at "
            f"{peak[0]:.0f} s), mean after warm-up "
            f"{statistics.fmean(v for at, v in values if at >= warm.at):,.1f}"
        )
    shown = spread(samples)
    print(
        "search index over time: "
        + ", ".join(
            f"{s.at:.0f} s {'-' if s.segments is None else s.segments}/"
            f"{'-' if s.queued is None else s.queued}"
            for s in shown
        )
        + " (segments/queued rows)"
    )


def memory_report(
    first: Sample,
    samples: Sequence[Sample],
    warm: Sample,
    measure: str,
    log_path: Path,
    max_requests: int,
) -> None:
    what = (
        "PSS (smaps_rollup), each shared page counted once"
        if measure == "PSS"
        else "RSS (status), shared pages counted in each process"
    )
    print(
        f"memory: gunicorn's master and its workers, {what}, summed; sampled every "
        f"{SAMPLE_SECONDS:g} s ({len(samples)} samples)"
    )
    end = samples[-1]
    peak = max(samples, key=lambda s: s.size(measure))
    print(
        f"memory: before the load {mb(first.size(measure))}, after warm-up "
        f"{mb(warm.size(measure))} (at {warm.at:.0f} s), at the end {mb(end.size(measure))} "
        f"(at {end.at:.0f} s), peak {mb(peak.size(measure))} (at {peak.at:.0f} s), growth "
        f"{growth(warm.size(measure), end.size(measure)):+.1f}%"
    )
    if measure == "PSS":
        print(
            f"memory (RSS summed, for comparison): after warm-up {mb(warm.rss)}, "
            f"at the end {mb(end.rss)}"
        )
    shown = spread(samples)
    print(
        "memory over time: "
        + ", ".join(f"{s.at:.0f} s {s.size(measure) / MB:,.0f}" for s in shown)
        + " (MB)"
    )
    log = log_path.read_text(errors="replace") if log_path.exists() else ""
    booted = log.count("Booting worker with pid")
    print(
        f"workers: {len(warm.workers)} after warm-up, {len(end.workers)} at the end; since "
        f"gunicorn started: {booted} booted, {log.count('Autorestarting worker')} recycled "
        "after max_requests"
        + ("" if max_requests > 0 else " (recycling off)")
        + f", {log.count('WORKER TIMEOUT')} timed out"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--minutes", type=float, default=10, help="minutes of load after the warm-up (10)"
    )
    parser.add_argument(
        "--warm-up-seconds", type=float, default=60, help="seconds of load first (60)"
    )
    parser.add_argument("--concurrency", type=int, default=16, help="client threads (16)")
    parser.add_argument(
        "--members",
        type=int,
        default=2000,
        help="members logged in, spread over the clients (2000)",
    )
    parser.add_argument("--articles", type=int, default=300, help="articles to read (300)")
    parser.add_argument(
        "--max-requests",
        type=int,
        help="recycle each worker after this many requests, 0 never (default: as "
        "deploy/gunicorn.conf.py, with its jitter)",
    )
    parser.add_argument(
        "--jobs-every",
        type=float,
        help="seconds between two runs of the periodic jobs (default: as "
        "deploy/systemd/chendu-jobs.timer)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL to run on (default: TEST_DATABASE_URL, then DATABASE_URL if either "
        "is PostgreSQL, else a fresh SQLite file); it is WIPED",
    )
    parser.add_argument(
        "--i-know-this-wipes",
        dest="wipe_allowed",
        action="store_true",
        help="wipe a PostgreSQL database whose name has neither 'test' nor 'bench' in it",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the mix (1)")
    args = parser.parse_args(argv)
    if not 0 < args.minutes <= 24 * 60 or not 0 < args.warm_up_seconds <= 3600:
        parser.error("--minutes must be above 0 and at most 1440, --warm-up-seconds up to 3600")
    if not 1 <= args.concurrency <= 200:
        parser.error("--concurrency must be 1..200")
    if not args.concurrency <= args.members <= 100_000:
        parser.error("--members must be at least --concurrency and at most 100000")
    if not 1 <= args.articles <= 100_000:
        parser.error("--articles must be 1..100000")
    if args.max_requests is not None and not 0 <= args.max_requests <= 10_000_000:
        parser.error("--max-requests must be 0..10000000")
    if args.jobs_every is not None and not 1 <= args.jobs_every <= 3600:
        parser.error("--jobs-every must be 1..3600 seconds")
    options = Options(
        minutes=args.minutes,
        warm_up=args.warm_up_seconds,
        concurrency=args.concurrency,
        members=args.members,
        articles=args.articles,
        max_requests=args.max_requests,
        jobs_every=args.jobs_every,
        database_url=args.database_url,
        wipe_allowed=args.wipe_allowed,
        keep=args.keep,
        seed=args.seed,
    )
    return run_in_temporary_dir(args.keep, "chendu-soak-", lambda where: run(options, where))


if __name__ == "__main__":
    sys.exit(main())
