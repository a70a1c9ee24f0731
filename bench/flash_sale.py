"""Benchmark a flash sale on the real site: many members buy one limited product at once.

    .venv/bin/python bench/flash_sale.py

Builds a fresh site (SQLite in a temporary data directory, or PostgreSQL with --database-url
or TEST_DATABASE_URL), migrates it with `flask --app app db upgrade`, seeds one live limited
product and the buying members by bulk inserts, serves it with gunicorn on 127.0.0.1, logs
every buyer in over HTTP (untimed), then has every buyer POST the buy form once, all at once,
`--concurrency` requests in flight. It prints throughput, latency, the answers, and what the
database holds afterwards: it exits non-zero when anything was oversold or the stock counters
do not add up (and on any error with --strict). No test asserts a timing (see
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import http.client
import math
import os
import platform
import re
import secrets
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

# Run as `python bench/flash_sale.py` from anywhere: the site's modules live one level up.
ROOT = Path(__file__).resolve().parent.parent
for _where in (ROOT, ROOT / "bench"):
    if str(_where) not in sys.path:
        sys.path.insert(0, str(_where))

import sampling  # noqa: E402  (bench/sampling.py)
from flask import Flask  # noqa: E402
from sqlalchemy import create_engine, func, insert, select, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402
from werkzeug.security import generate_password_hash  # noqa: E402

from app import create_app, db, write_transaction  # noqa: E402
from members.models import Membership, User  # noqa: E402
from shop.models import HOLDING, SOLD, Order, OrderLine, Product, ProductStatus  # noqa: E402

# The goals (from the issue), for the default run on one 2-core server.
GOAL_P99_MS = 250.0
GOAL_ORDERS_PER_S = 800.0

PROFILE = False  # --profile: py-spy samples the server during the race
BIN = Path(sys.executable).parent  # flask and gunicorn of the running virtualenv
SLUG = "flash-sale"
BUY_PATH = f"/shop/p/{SLUG}/buy"
PASSWORD = "flash-sale-password"  # noqa: S105 (every generated account's password)
EMAIL_DOMAIN = "bench.example.com"  # every generated account's
# scrypt still, with a cost that keeps 2,000 logins cheap (the tests use the same).
CHEAP_HASH = "scrypt:1024:8:1"
INSERT_BATCH = 1_000
START_SECONDS = 60  # gunicorn must answer /healthz within this
REQUEST_TIMEOUT = 30.0  # seconds, for any one request
RACE_TIMEOUT = 300.0  # seconds, for the whole race
LOGIN_TIMEOUT = 600.0  # seconds, for logging every buyer in
LOGIN_THREADS = 16
ERROR_SAMPLES = 5
TOKEN_RE = re.compile(r'name="csrf_token" value="([^"]+)"')
PAY_RE = re.compile(r"/pay/\d{8}-\d{6}$")


# --- the database ------------------------------------------------------------------------


@dataclass(frozen=True)
class Database:
    kind: str  # "sqlite" or "postgresql"
    url: str


def choose_database(given: str | None, data_dir: Path, wipe_allowed: bool) -> Database:
    """SQLite in `data_dir` unless a PostgreSQL URL is given (the flag, then TEST_DATABASE_URL,
    then DATABASE_URL). A PostgreSQL database is wiped, so it must be named for tests or
    benchmarks, or the wipe be asked for."""
    url = given or os.environ.get("TEST_DATABASE_URL") or os.environ.get("DATABASE_URL") or ""
    if url and not url.startswith(("postgres://", "postgresql")):
        if given:
            raise SystemExit("--database-url must be a PostgreSQL URL (SQLite is the default)")
        url = ""  # a SQLite DATABASE_URL in the environment: use a fresh file instead
    if not url:
        return Database("sqlite", f"sqlite:///{data_dir / 'chendu.db'}")
    url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)  # as the site reads it
    name = make_url(url).database or ""
    if not wipe_allowed and not ("test" in name.lower() or "bench" in name.lower()):
        raise SystemExit(
            f"refusing to wipe PostgreSQL database {name!r}: its name contains neither "
            "'test' nor 'bench' (pass --i-know-this-wipes to wipe it anyway)"
        )
    return Database("postgresql", url)


def wipe_postgres(url: str) -> None:
    """Drop every table: the run starts from an empty schema `public`."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            conn.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def server_env(data_dir: Path, database: Database, secret_key: str) -> dict[str, str]:
    """The environment of `flask` and gunicorn: this site, cheap logins, no login limit."""
    # Everything the site keeps goes in the temporary data directory.
    skipped = ("TEST_DATABASE_URL", "MEDIA_DIR", "SEARCH_INDEX_DIR")
    env = {k: v for k, v in os.environ.items() if k not in skipped}
    env.update(
        DATA_DIR=str(data_dir),
        DATABASE_URL=database.url,
        SECRET_KEY=secret_key,
        PASSWORD_HASH_METHOD=CHEAP_HASH,
        LOGIN_RATE_LIMIT="100000 per minute",
        PAYMENTS="dev",
        PYTHONUNBUFFERED="1",
    )
    return env


def migrate(env: dict[str, str]) -> None:
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    if result.returncode != 0:
        raise SystemExit(f"flask --app app db upgrade failed:\n{result.stdout}{result.stderr}")


def site(env: dict[str, str]) -> Flask:
    """The site the server runs, for seeding it and reading it back in this process."""
    return create_app({k: env[k] for k in ("DATA_DIR", "DATABASE_URL", "SECRET_KEY")})


def insert_readers(session: Session, emails: Sequence[str], now: datetime) -> list[int]:
    """One reader account per email (password PASSWORD, hashed cheaply), by bulk inserts;
    the ids of every generated account, in order."""
    password_hash = generate_password_hash(PASSWORD, method=CHEAP_HASH)
    for i in range(0, len(emails), INSERT_BATCH):
        session.execute(
            insert(User),
            [
                {
                    "email": email,
                    "password_hash": password_hash,
                    "role": "reader",
                    "created_at": now - timedelta(days=30),
                }
                for email in emails[i : i + INSERT_BATCH]
            ],
        )
    return list(
        session.scalars(
            select(User.id).where(User.email.like(f"%@{EMAIL_DOMAIN}")).order_by(User.id)
        )
    )


def seed(env: dict[str, str], stock: int, buyers: int) -> list[str]:
    """One live limited product on sale now and `buyers` members; their emails."""
    app = site(env)
    now = datetime.now(UTC)
    emails = [f"buyer{n:06d}@{EMAIL_DOMAIN}" for n in range(1, buyers + 1)]
    with app.app_context():
        with write_transaction() as session:
            session.execute(
                insert(Product),
                [
                    {
                        "slug": SLUG,
                        "title": "限量版读书笔记本",
                        "description_md": "闪购：每人限购 1 本。",
                        "description_html": "<p>闪购：每人限购 1 本。</p>",
                        "price_fen": 9_900,
                        "member_price_fen": 6_900,
                        "stock": stock,
                        "available": stock,
                        "held": 0,
                        "sold": 0,
                        "per_member_limit": 1,
                        "starts_at": now - timedelta(minutes=1),
                        "ends_at": None,
                        "members_only": True,
                        "status": ProductStatus.LIVE.value,
                        "live_at": now - timedelta(days=1),
                        "created_at": now - timedelta(days=1),
                        "updated_at": now - timedelta(days=1),
                    }
                ],
            )
            ids = insert_readers(session, emails, now)
            for i in range(0, len(ids), INSERT_BATCH):
                session.execute(
                    insert(Membership),
                    [
                        {
                            "user_id": user_id,
                            "tier": "年度会员",
                            "starts_at": now - timedelta(days=30),
                            "ends_at": now + timedelta(days=335),
                            "created_at": now - timedelta(days=30),
                        }
                        for user_id in ids[i : i + INSERT_BATCH]
                    ],
                )
        db.engine.dispose()
    return emails


@dataclass(frozen=True)
class Outcome:
    stock: int
    available: int
    held: int
    sold: int
    orders: int  # pending or paid orders of the product
    units: int  # their units
    over_limit: int  # members holding or owning more than the limit
    per_member_limit: int

    @property
    def oversold(self) -> int:
        return max(0, self.units - self.stock, self.held + self.sold - self.stock)

    @property
    def counters_add_up(self) -> bool:
        return self.available >= 0 and self.available + self.held + self.sold == self.stock

    @property
    def invariant_holds(self) -> bool:
        return (
            self.counters_add_up
            and self.held + self.sold == self.units
            and self.orders <= self.stock
            and self.over_limit == 0
        )


def outcome(env: dict[str, str]) -> Outcome:
    """What the database holds after the race."""
    app = site(env)
    with app.app_context():
        product = db.session.scalars(select(Product).where(Product.slug == SLUG)).one()
        counted = [*HOLDING, *SOLD]
        lines = (
            select(Order.id, Order.user_id, OrderLine.quantity)
            .join(Order)
            .where(
                OrderLine.kind == "product",
                OrderLine.ref_id == product.id,
                Order.status.in_(counted),
            )
            .subquery()
        )
        orders, units = db.session.execute(
            select(func.count(lines.c.id.distinct()), func.coalesce(func.sum(lines.c.quantity), 0))
        ).one()
        per_member = (
            select(lines.c.user_id)
            .group_by(lines.c.user_id)
            .having(func.sum(lines.c.quantity) > product.per_member_limit)
            .subquery()
        )
        over_limit = db.session.scalar(select(func.count()).select_from(per_member))
        found = Outcome(
            stock=product.stock,
            available=product.available,
            held=product.held,
            sold=product.sold,
            orders=orders,
            units=units,
            over_limit=over_limit or 0,
            per_member_limit=product.per_member_limit,
        )
        db.session.rollback()
        db.engine.dispose()
    return found


# --- the server ----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerSetup:
    workers: int
    worker_class: str  # "sync" or "gthread"
    threads: int

    def describe(self) -> str:
        if self.worker_class == "gthread":
            return f"{self.workers} gthread workers × {self.threads} threads"
        return f"{self.workers} sync workers"


@dataclass(frozen=True)
class Server:
    port: int
    pid: int  # gunicorn's master, the leader of its process group


@contextmanager
def gunicorn(
    env: dict[str, str], setup: ServerSetup, log_path: Path, app_spec: str = "app:create_app()"
) -> Iterator[Server]:
    """The site under gunicorn on a free loopback port, stopped however the block ends."""
    port = free_port()
    command = [
        str(BIN / "gunicorn"),
        "--workers",
        str(setup.workers),
        "--worker-class",
        setup.worker_class,
        "--bind",
        f"127.0.0.1:{port}",
        "--backlog",
        "4096",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
    ]
    if setup.worker_class == "gthread":
        command += ["--threads", str(setup.threads), "--keep-alive", "30"]
    command.append(app_spec)
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until_answering(port, process, log_path)
        yield Server(port, process.pid)
        if process.poll() is not None:
            print_log_tail(log_path, f"gunicorn died during the run (exit {process.returncode})")
    finally:
        stop_server(process)


def wait_until_answering(port: int, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            print_log_tail(log_path, f"gunicorn exited at start (exit {process.returncode})")
            raise SystemExit(1)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        try:
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            conn.close()
        time.sleep(0.1)
    print_log_tail(log_path, f"gunicorn did not answer within {START_SECONDS} s")
    raise SystemExit(1)


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=15)
    except ProcessLookupError:
        pass


@dataclass(frozen=True)
class CpuTimes:
    server: float  # seconds of CPU used by gunicorn's processes
    machine: float  # seconds of CPU used by every process on the machine


def cpu_times(group: int) -> CpuTimes | None:
    """CPU used so far by gunicorn's process group and by the whole machine (Linux only)."""
    proc = Path("/proc")
    if not (proc / "stat").exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    server = 0
    for stat in proc.glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        if int(fields[2]) == group:  # pgrp
            # utime, stime, and cutime, cstime: the children it has reaped, so that a worker
            # recycled after max_requests still counts as the server's once it has exited.
            server += sum(int(n) for n in fields[11:15])
    # cpu user nice system idle iowait irq softirq steal ...: all but idle and iowait.
    total = [int(n) for n in (proc / "stat").read_text().split("\n", 1)[0].split()[1:9]]
    machine = sum(total) - total[3] - total[4]
    return CpuTimes(server / ticks, machine / ticks)


def print_log_tail(log_path: Path, why: str, lines: int = 40) -> None:
    tail = log_path.read_text(errors="replace").splitlines()[-lines:] if log_path.exists() else []
    print(f"{why}; the last lines of {log_path}:", file=sys.stderr)
    for line in tail:
        print(f"  {line}", file=sys.stderr)


# --- the client ----------------------------------------------------------------------------


@dataclass
class Answer:
    status: int  # 0: no answer (the error says why)
    ms: float
    at: float  # seconds from the start of the race to the end of this answer
    location: str = ""
    body: str = ""
    error: str = ""
    sent: bool = True  # False: the race's time was up before it could be sent


@dataclass
class Buyer:
    email: str
    cookies: dict[str, str] = field(default_factory=dict)
    token: str = ""

    def cookie_header(self) -> str:
        return "; ".join(f"{k}={v}" for k, v in self.cookies.items())

    def keep_cookies(self, response: http.client.HTTPResponse) -> None:
        for header in response.headers.get_all("Set-Cookie") or []:
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "expires=thu, 01 jan 1970" in header.lower() or value == "":
                self.cookies.pop(name.strip(), None)
            else:
                self.cookies[name.strip()] = value


class Connection:
    """One keep-alive HTTP connection to the site (reopened when the server closes it)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.conn: http.client.HTTPConnection | None = None
        self.used = False  # a request has gone over the open connection already

    def request(
        self, method: str, path: str, buyer: Buyer, form: dict[str, str] | None = None
    ) -> tuple[http.client.HTTPResponse, bytes]:
        headers = {"Host": f"127.0.0.1:{self.port}", "Cookie": buyer.cookie_header()}
        body = None
        if form is not None:
            body = urlencode(form).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        for attempt in (1, 2):
            reused = self.conn is not None and self.used
            if self.conn is None:
                self.conn = http.client.HTTPConnection("127.0.0.1", self.port, REQUEST_TIMEOUT)
                self.used = False
            try:
                self.conn.request(method, path, body=body, headers=headers)
                self.used = True
                response = self.conn.getresponse()
                data = response.read()
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                self.close()
                # A keep-alive connection the server had closed before reading the request:
                # it never saw it, so it is safe to send it once more on a new connection.
                if reused and attempt == 1:
                    continue
                raise
            except BaseException:
                self.close()
                raise
            if response.will_close:
                self.close()
            return response, data
        raise AssertionError("unreachable")

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.conn = None


def log_in(port: int, buyers: Sequence[Buyer], form_path: str = BUY_PATH) -> list[str]:
    """Log every buyer in as a browser would, open the page at `form_path` and keep its
    form's token; the failures."""
    failures: list[str] = []
    lock = threading.Lock()
    work = iter(buyers)
    deadline = time.monotonic() + LOGIN_TIMEOUT

    def one(conn: Connection, buyer: Buyer) -> None:
        response, body = conn.request("GET", "/login", buyer)
        buyer.keep_cookies(response)
        found = TOKEN_RE.search(body.decode())
        if response.status != 200 or not found:
            raise RuntimeError(f"GET /login: {response.status}")
        form = {"csrf_token": found.group(1), "email": buyer.email, "password": PASSWORD}
        response, body = conn.request("POST", "/login", buyer, form)
        buyer.keep_cookies(response)
        if response.status not in (302, 303):
            raise RuntimeError(f"POST /login: {response.status}")
        response, body = conn.request("GET", form_path, buyer)
        buyer.keep_cookies(response)
        found = TOKEN_RE.search(body.decode())
        if response.status != 200 or not found:
            raise RuntimeError(f"GET {form_path}: {response.status}, no order form")
        buyer.token = found.group(1)

    def run() -> None:
        conn = Connection(port)
        while time.monotonic() < deadline:
            with lock:
                buyer = next(work, None)
            if buyer is None:
                break
            try:
                one(conn, buyer)
            except Exception as error:  # reported, not fatal
                with lock:
                    failures.append(f"{buyer.email}: {type(error).__name__}: {error}")
        conn.close()

    threads = [threading.Thread(target=run, daemon=True) for _ in range(LOGIN_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(0.0, deadline - time.monotonic()) + 1)
    missing = sum(1 for b in buyers if not b.token)
    if missing > len(failures):
        failures.append(f"{missing - len(failures)} buyers not logged in within the time limit")
    return failures


def buy_form(buyer: Buyer) -> dict[str, str]:
    return {"csrf_token": buyer.token, "quantity": "1", "delivery": "pickup", "note": ""}


def request_bytes(port: int, path: str, buyer: Buyer, fields: dict[str, str]) -> bytes:
    """The whole POST of `fields` to `path` as `buyer`, as a browser sends it."""
    body = urlencode(fields).encode()
    head = (
        f"POST {path} HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{port}\r\n"
        f"Cookie: {buyer.cookie_header()}\r\n"
        "Content-Type: application/x-www-form-urlencoded\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


@dataclass
class Exchange:
    """One request on a connection: what is left to send, and what has come back."""

    index: int
    out: bytes
    begun: float
    reused: bool  # sent over a connection that has carried a request already
    sent: int = 0
    received: bytearray = field(default_factory=bytearray)
    closes: bool = False  # the answer said the server closes the connection after it

    def answer(self, ended: float, started: float, closed: bool) -> Answer | None:
        """The answer once it is whole: its Content-Length read, or (without one) the server
        has closed the connection."""
        head, found, body = bytes(self.received).partition(b"\r\n\r\n")
        if not found:
            return None
        lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        length = headers.get("content-length")
        if (length is None and not closed) or (length is not None and len(body) < int(length)):
            return None
        version, status = lines[0].split(" ", 2)[:2]
        connection = headers.get("connection", "").lower()
        self.closes = connection == "close" or (
            version == "HTTP/1.0" and connection != "keep-alive"
        )
        return Answer(
            int(status),
            (ended - self.begun) * 1000,
            ended - started,
            location=headers.get("location", ""),
            body=body.decode(errors="replace") if status != "303" else "",
        )


def race(
    port: int,
    buyers: Sequence[Buyer],
    concurrency: int,
    path: str = BUY_PATH,
    form: Callable[[Buyer], dict[str, str]] = buy_form,
    timeout: float = RACE_TIMEOUT,
) -> tuple[list[Answer], float]:
    """Every buyer POSTs `form(buyer)` to `path` once, `concurrency` at a time, all starting
    together; none is sent after `timeout` seconds. The answers (one per buyer) and the wall
    time.

    `concurrency` keep-alive connections carry the requests, one at a time each, as nginx's
    connections to the app do (a server that closes after each answer gets a new one). One
    thread drives them all without blocking, as wrk does, and every request is built before
    the start, so that the client's CPU stays a small part of the machine's: a thread per
    connection cost about 1 ms of CPU a request, as much as the server's whole budget."""
    n = len(buyers)
    requests = [request_bytes(port, path, b, form(b)) for b in buyers]
    answers: list[Answer | None] = [None] * n
    selector = selectors.DefaultSelector()
    flying: dict[socket.socket, Exchange] = {}
    started = time.monotonic()
    deadline = started + timeout
    queued = 0
    idle: list[socket.socket] = []  # open connections, their last answer read

    def connect() -> socket.socket:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.connect_ex(("127.0.0.1", port))
        return sock

    def send(sock: socket.socket, exchange: Exchange) -> None:
        flying[sock] = exchange
        selector.register(sock, selectors.EVENT_WRITE)

    def close(sock: socket.socket) -> Exchange:
        exchange = flying.pop(sock)
        selector.unregister(sock)
        sock.close()
        return exchange

    def failed(sock: socket.socket, why: str) -> None:
        exchange, ended = close(sock), time.monotonic()
        if exchange.reused and exchange.sent == len(exchange.out) and not exchange.received:
            # A keep-alive connection the server had closed before reading the request: it
            # never saw it, so it is safe to send it once more on a new connection.
            exchange.reused, exchange.sent = False, 0
            send(connect(), exchange)
            return
        answer = Answer(0, (ended - exchange.begun) * 1000, ended - started, error=why)
        answers[exchange.index] = answer

    while queued < n or flying:
        while queued < n and len(flying) < concurrency:
            now = time.monotonic()
            if now >= deadline:
                for i in range(queued, n):
                    answers[i] = Answer(
                        0, 0.0, now - started, error="not sent: timeout", sent=False
                    )
                queued = n
                break
            sock = idle.pop() if idle else None
            send(sock or connect(), Exchange(queued, requests[queued], now, sock is not None))
            queued += 1
        for key, events in selector.select(timeout=0.5):
            sock = key.fileobj
            assert isinstance(sock, socket.socket)
            exchange = flying[sock]
            try:
                if events & selectors.EVENT_WRITE:
                    error = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if error:
                        failed(sock, f"connect: {os.strerror(error)}")
                        continue
                    exchange.sent += sock.send(exchange.out[exchange.sent :])
                    if exchange.sent == len(exchange.out):
                        selector.modify(sock, selectors.EVENT_READ)
                    continue
                chunk = sock.recv(65536)
            except OSError as error:
                failed(sock, type(error).__name__)
                continue
            exchange.received += chunk
            answer = exchange.answer(time.monotonic(), started, closed=not chunk)
            if answer is None:
                if not chunk:
                    failed(sock, "RemoteDisconnected")
                continue
            answers[exchange.index] = answer
            if exchange.closes or not chunk:
                close(sock)
            else:
                del flying[sock]
                selector.unregister(sock)
                idle.append(sock)
        now = time.monotonic()
        for sock in [s for s, e in flying.items() if now - e.begun > REQUEST_TIMEOUT]:
            failed(sock, "TimeoutError")
    for sock in idle:
        sock.close()
    selector.close()
    wall = time.monotonic() - started
    done = [
        a if a is not None else Answer(0, wall * 1000, wall, error="no answer") for a in answers
    ]
    return done, wall


# --- reading the answers -------------------------------------------------------------------


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] if ordered else 0.0


def sorted_answers(answers: Sequence[Answer]) -> tuple[list[Answer], list[Answer], list[Answer]]:
    """Orders placed (303 to /pay/...), sold-out refusals (422 saying so), and errors."""
    ordered, sold_out, errors = [], [], []
    for a in answers:
        if a.status == 303 and PAY_RE.search(a.location):
            ordered.append(a)
        elif a.status == 422 and "卖完" in a.body:
            sold_out.append(a)
        else:
            errors.append(a)
    return ordered, sold_out, errors


def describe_error(a: Answer) -> str:
    if a.status == 0:
        return a.error
    if a.status == 303:
        return f"303 to {a.location!r}"
    found = re.search(r'role="alert"[^>]*>(?:<p>)?([^<]{1,120})', a.body)
    said = f": {found.group(1).strip()}" if found else ""
    return f"{a.status}{said}"


def goal(name: str, met: bool, measured: str) -> str:
    return f"goal {name}: {'met' if met else 'NOT met'} ({measured})"


def cpu_count() -> int:
    """The CPUs this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def machine_line() -> str:
    return (
        f"machine: {platform.system()} {platform.machine()}, {cpu_count()} CPUs, "
        f"Python {platform.python_version()}"
    )


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    stock: int
    buyers: int
    concurrency: int
    setup: ServerSetup
    database_url: str | None
    wipe_allowed: bool
    keep: bool
    strict: bool


def run(options: Options, where: Path, app_spec: str = "app:create_app()") -> int:
    """The whole benchmark in `where`; the exit status. `app_spec` is what gunicorn serves
    (a profiling wrapper around the site, say)."""
    database = choose_database(options.database_url, where, options.wipe_allowed)
    env = server_env(where, database, secrets.token_hex(16))
    setup = options.setup
    print(
        f"flash sale benchmark: {database.kind}, {setup.describe()}, stock {options.stock:,}, "
        f"{options.buyers:,} buyers, concurrency {options.concurrency}"
    )
    print(machine_line())

    start = time.perf_counter()
    if database.kind == "postgresql":
        wipe_postgres(database.url)
    migrate(env)
    emails = seed(env, options.stock, options.buyers)
    print(
        f"seed: migrated, 1 product, {len(emails):,} members in {time.perf_counter() - start:.1f} s"
    )

    log_path = where / "gunicorn.log"
    raced = serve_and_race(
        env, setup, log_path, [Buyer(email) for email in emails], options.concurrency, app_spec
    )
    if raced is None:
        return 1
    answers, wall, failures = raced.answers, raced.wall, raced.failures

    ordered, sold_out, errors = sorted_answers(answers)
    figures = race_figures(answers, ordered, wall)
    print(
        f"race: {len(answers):,} requests in {wall:.2f} s, {figures.requests_per_s:,.0f} requests/s"
    )
    if ordered:
        print(
            f"orders: {len(ordered):,} placed, the last at {figures.last_order:.2f} s: "
            f"{figures.orders_per_s:,.0f} orders/s while stock lasted "
            f"({len(ordered) / wall:,.0f} orders/s over the whole race)"
        )
    else:
        print("orders: none placed")
    print(
        f"latency: p50 {figures.p50:.0f} ms, p90 {figures.p90:.0f} ms, "
        f"p99 {figures.p99:.0f} ms, max {figures.max:.0f} ms"
    )
    print(
        f"answers: {len(ordered):,} ordered (303), {len(sold_out):,} sold out (422), "
        f"{len(errors):,} errors"
    )
    for kind, count in Counter(describe_error(a) for a in errors).most_common(ERROR_SAMPLES):
        print(f"  error: {count} × {kind}")
    print(f"CPU during the race: {raced.cpu_line(database.kind)}")
    if errors:
        print_log_tail(log_path, "errors were answered", lines=15)

    found = outcome(env)
    adds_up = "adds up" if found.counters_add_up else "DOES NOT ADD UP"
    print(
        f"stock: {found.stock:,} = available {found.available:,} + held {found.held:,} "
        f"+ sold {found.sold:,}: {adds_up}"
    )
    print(
        f"database: {found.orders:,} pending or paid orders, {found.units:,} units, "
        f"stock {found.stock:,}; {len(ordered):,} answered as placed"
    )
    print(f"members over the limit of {found.per_member_limit}: {found.over_limit}")
    print(f"OVERSOLD: {found.oversold}")
    print(f"invariant: {'holds' if found.invariant_holds else 'BROKEN'}")

    print(goal("0 oversold", found.oversold == 0, str(found.oversold)))
    print(goal("0 errors", not errors, str(len(errors))))
    p99, rate = figures.p99, figures.orders_per_s
    print(goal(f"p99 <= {GOAL_P99_MS:g} ms", p99 <= GOAL_P99_MS, f"{p99:.0f} ms"))
    print(
        goal(
            f">= {GOAL_ORDERS_PER_S:g} orders/s while stock lasts",
            rate >= GOAL_ORDERS_PER_S,
            f"{rate:,.0f}",
        )
    )
    if options.keep:
        print(f"kept: {where} (gunicorn.log, chendu.db for SQLite)")

    if found.oversold or not found.invariant_holds or len(ordered) != found.orders:
        return 1
    if options.strict and (errors or failures):
        return 1
    return 0


@dataclass(frozen=True)
class Raced:
    """A race run: its answers and what it cost."""

    answers: list[Answer]
    wall: float
    failures: list[str]  # the buyers who could not log in, and why
    client_cpu: float  # seconds of CPU this process used during the race
    before: CpuTimes | None
    after: CpuTimes | None

    def cpu_line(self, kind: str) -> str:
        return cpu_line(self.before, self.after, self.client_cpu, self.wall, kind)


def serve_and_race(
    env: dict[str, str],
    setup: ServerSetup,
    log_path: Path,
    buyers: Sequence[Buyer],
    concurrency: int,
    app_spec: str = "app:create_app()",
    *,
    who: str = "buyers",
    form_path: str = BUY_PATH,
    path: str = BUY_PATH,
    form: Callable[[Buyer], dict[str, str]] = buy_form,
    timeout: float = RACE_TIMEOUT,
) -> Raced | None:
    """Serve the site, log every buyer in (untimed, printed as `who`), then race: every one
    who could log in POSTs `form` to `path` once. None (the server log's tail printed) when
    nobody could log in."""
    with gunicorn(env, setup, log_path, app_spec) as server:
        start = time.perf_counter()
        failures = log_in(server.port, buyers, form_path)
        ready = [b for b in buyers if b.token]
        print(
            f"log in: {len(ready):,} {who} in {time.perf_counter() - start:.1f} s (untimed), "
            f"{len(buyers) - len(ready)} failed"
        )
        for line in failures[:ERROR_SAMPLES]:
            print(f"  {line}")
        if not ready:
            print_log_tail(log_path, f"no {who.removesuffix('s')} could log in")
            return None
        cpu, before = time.process_time(), cpu_times(server.pid)
        raw = log_path.with_name("profile.txt")
        with sampling.sampled(server.pid, None, raw) if PROFILE else nullcontext():
            answers, wall = race(server.port, ready, concurrency, path, form, timeout)
        client_cpu, after = time.process_time() - cpu, cpu_times(server.pid)
    if PROFILE:
        print("profile: this race was sampled by py-spy, which slows the server a little")
        print("\n".join(sampling.summary(raw)))
    return Raced(answers, wall, failures, client_cpu, before, after)


@dataclass(frozen=True)
class RaceFigures:
    requests_per_s: float
    last_order: float  # seconds from the start to the last order placed
    orders_per_s: float  # orders placed per second until the last one
    p50: float
    p90: float
    p99: float
    max: float


def race_figures(answers: Sequence[Answer], ordered: Sequence[Answer], wall: float) -> RaceFigures:
    # Every request sent counts, errors and timeouts included; requests never sent do not.
    ms = [a.ms for a in answers if a.sent]
    last_order = max((a.at for a in ordered), default=0.0)
    return RaceFigures(
        requests_per_s=len(answers) / wall,
        last_order=last_order,
        orders_per_s=len(ordered) / last_order if last_order else 0.0,
        p50=percentile(ms, 50),
        p90=percentile(ms, 90),
        p99=percentile(ms, 99),
        max=max(ms, default=0.0),
    )


def cpu_line(
    before: CpuTimes | None, after: CpuTimes | None, client: float, wall: float, kind: str
) -> str:
    """Who used the CPU during the race: the server, this client and anything else."""
    cores = cpu_count()
    if not (before and after):
        return f"client {client:.1f} s"
    server = after.server - before.server
    others = max(0.0, after.machine - before.machine - server - client)
    return (
        f"server {server:.1f} s + client {client:.1f} s = "
        f"{(server + client) / (wall * cores):.0%} of {cores} cores; other processes "
        f"{others:.1f} s" + (" (PostgreSQL's among them)" if kind == "postgresql" else "")
    )


@contextmanager
def temporary_dir(keep: bool, prefix: str = "chendu-flash-sale-") -> Iterator[Path]:
    where = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        yield where
    finally:
        if not keep:
            shutil.rmtree(where, ignore_errors=True)


def _terminate(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt  # run the `finally` blocks: stop gunicorn, remove the temp dir


def run_in_temporary_dir(keep: bool, prefix: str, body: Callable[[Path], int]) -> int:
    """`body(where)` in a fresh temporary directory, removed afterwards unless `keep`; its
    exit status, or 130 when interrupted (Ctrl-C or SIGTERM: gunicorn is stopped first)."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with temporary_dir(keep, prefix) as where:
            return body(where)
    except KeyboardInterrupt:
        print("interrupted: gunicorn stopped", file=sys.stderr)
        return 130


def add_server_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a race against the site under gunicorn: requests in flight, the
    server's workers, the database, --keep and --strict."""
    parser.add_argument("--concurrency", type=int, default=200, help="requests in flight (200)")
    parser.add_argument(
        "--workers", type=int, default=2 * cpu_count() + 1, help="gunicorn workers (2 × CPUs + 1)"
    )
    parser.add_argument(
        "--worker-class", choices=["sync", "gthread"], default="sync", help="(sync)"
    )
    parser.add_argument("--threads", type=int, default=4, help="threads per gthread worker (4)")
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
    parser.add_argument("--strict", action="store_true", help="exit non-zero on any error too")
    parser.add_argument(
        "--profile", action="store_true", help="sample the server with py-spy during the race"
    )


def server_setup(parser: argparse.ArgumentParser, args: argparse.Namespace) -> ServerSetup:
    """The gunicorn setup the options of `add_server_arguments` ask for, once checked."""
    if not 1 <= args.concurrency <= 1_000 or not 1 <= args.workers <= 64:
        parser.error("--concurrency must be 1..1000 and --workers 1..64")
    if not 1 <= args.threads <= 64:
        parser.error("--threads must be 1..64")
    global PROFILE
    PROFILE = bool(getattr(args, "profile", False))
    if PROFILE and not sampling.available():
        parser.error("--profile needs py-spy: pip install -e '.[bench]'")
    return ServerSetup(args.workers, args.worker_class, args.threads)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--stock", type=int, default=500, help="units for sale (500)")
    parser.add_argument("--buyers", type=int, default=2000, help="members, each buys once (2000)")
    add_server_arguments(parser)
    args = parser.parse_args(argv)
    if not 1 <= args.stock <= 1_000_000 or not 1 <= args.buyers <= 100_000:
        parser.error("--stock must be 1..1000000 and --buyers 1..100000")
    options = Options(
        stock=args.stock,
        buyers=args.buyers,
        concurrency=args.concurrency,
        setup=server_setup(parser, args),
        database_url=args.database_url,
        wipe_allowed=args.wipe_allowed,
        keep=args.keep,
        strict=args.strict,
    )
    return run_in_temporary_dir(args.keep, "chendu-flash-sale-", lambda where: run(options, where))


if __name__ == "__main__":
    sys.exit(main())
