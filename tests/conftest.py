"""Fixtures: a fresh site and database per test, on SQLite or (TEST_DATABASE_URL) PostgreSQL."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from datetime import UTC, datetime
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from flask import Flask, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import delete, event, text
from werkzeug.serving import make_server

from app import FixedClock, create_app, db, limiter, write_transaction

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
# scrypt still, with a cost that keeps the suite quick.
TEST_PASSWORD_HASH = "scrypt:1024:8:1"
# 2026-11-21 08:00 in Shanghai.
DEFAULT_NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)


def make_config(data_dir: Path, **extra: object) -> dict[str, object]:
    config: dict[str, object] = {
        "TESTING": True,
        "DATA_DIR": str(data_dir),
        "SECRET_KEY": "test-secret",
        "PASSWORD_HASH_METHOD": TEST_PASSWORD_HASH,
        "CLOCK": FixedClock(DEFAULT_NOW),
    }
    if TEST_DATABASE_URL:
        config["DATABASE_URL"] = TEST_DATABASE_URL
    config.update(extra)
    return config


def reset_database() -> None:
    """Empty every table (PostgreSQL), or create them in the fresh file (SQLite), then add
    the rows the migrations seed."""
    from board.models import DEFAULT_SECTIONS, Section
    from content.models import DEFAULT_COLUMNS, Column
    from shop.models import DEFAULT_CATEGORIES, Category

    db.create_all()
    with db.engine.begin() as conn:
        if db.engine.dialect.name == "postgresql":
            names = ", ".join(f'"{t.name}"' for t in db.metadata.sorted_tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        conn.execute(Column.__table__.insert(), DEFAULT_COLUMNS)
        conn.execute(Category.__table__.insert(), DEFAULT_CATEGORIES)
        conn.execute(
            Section.__table__.insert(),
            [{**section, "created_at": DEFAULT_NOW} for section in DEFAULT_SECTIONS],
        )


class CheckedClient(FlaskClient):
    """A test client that fails a test whose response carries a non-ASCII header."""

    def open(self, *args, **kwargs):  # type: ignore[override]
        kwargs.setdefault("buffered", True)  # read and close file responses
        response = super().open(*args, **kwargs)
        for name, value in response.headers.items():
            assert value.isascii(), f"non-ASCII response header {name}: {value!r}"
        return response


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Flask]:
    app = create_app(make_config(tmp_path / "data"))
    app.test_client_class = CheckedClient
    with app.app_context():
        reset_database()
        limiter.reset()
    yield app
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def clock(app: Flask) -> FixedClock:
    return app.extensions["clock"]


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


def html(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


def csrf_token_from(client: FlaskClient, path: str) -> str:
    """The form token a reader's browser would have after opening `path`."""
    page = html(client.get(path))
    field = page.select_one("input[name=csrf_token]")
    if field is not None:
        return str(field["value"])
    body = page.select_one("body[hx-headers]")
    if body is None and path != "/login":
        # Anonymous pages carry no token (they are cacheable): a request forged from one
        # takes the session's token from the login form instead.
        return csrf_token_from(client, "/login")
    assert body is not None, f"no form token on {path}"
    match = re.search(r'"X-CSRFToken": ?"([^"]+)"', str(body["hx-headers"]))
    assert match
    return match.group(1)


def post_form(client: FlaskClient, path: str, data: dict[str, str], **kwargs):
    """POST `data` to `path` with the form token from the page, as a browser would."""
    token = csrf_token_from(client, kwargs.pop("token_from", path))
    return client.post(path, data={"csrf_token": token, **data}, **kwargs)


@pytest.fixture
def make_user(app: Flask):
    from members import accounts

    def make(email: str = "reader@example.com", password: str = "correct horse", **kw):
        with app.app_context():
            return accounts.create_user(email, password, **kw).id

    return make


@pytest.fixture
def login(client: FlaskClient):
    def log_in(email: str = "reader@example.com", password: str = "correct horse", **extra):
        response = post_form(client, "/login", {"email": email, "password": password, **extra})
        assert response.status_code == 302, response.get_data(as_text=True)
        return response

    return log_in


# ------------------------------------------------------------------------------------------
# A live server for the browser suite
# ------------------------------------------------------------------------------------------


class _AlwaysClosed:
    """A response iterable that is closed even when the server forgets to.

    Werkzeug's development server skips `close()` when reading the socket fails after a
    response (a client that resets the connection, as Chromium does with media requests it
    cancels), which would leave a served file open."""

    def __init__(self, iterable) -> None:
        self.iterable = iterable

    def __iter__(self):
        return iter(self.iterable)

    def close(self) -> None:
        close = getattr(self.iterable, "close", None)
        if close is not None:
            close()

    def __del__(self) -> None:
        self.close()


def _closing(app: Flask):
    def wsgi(environ, start_response):
        return _AlwaysClosed(app(environ, start_response))

    return wsgi


class LiveServer:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.server = make_server("127.0.0.1", 0, _closing(app), threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> LiveServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()


@pytest.fixture
def live_server(app: Flask) -> Iterator[LiveServer]:
    app.config["TESTING"] = False  # errors render pages, as for a reader
    with LiveServer(app) as server:
        yield server


# ------------------------------------------------------------------------------------------
# Real Chromium as a phone inside WeChat (pytest-playwright with Debian's Chromium)
# ------------------------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
WECHAT_USER_AGENT = (
    "Mozilla/5.0 (Linux; Android 14; V2309A Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/130.0.6723.103 Mobile Safari/537.36 XWEB/1300333 "
    "MMWEBSDK/20241103 MMWEBID/6533 MicroMessenger/8.0.54.2760(0x28003637) WeChat/arm64 "
    "Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
PHONE = {
    "viewport": {"width": 390, "height": 844},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
    "user_agent": WECHAT_USER_AGENT,
}
SCREENSHOTS = Path(__file__).resolve().parent.parent / "test-results" / "screenshots"


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not os.access(CHROMIUM, os.X_OK):
        message = f"Chromium not found at {CHROMIUM} (make test installs it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, **PHONE}


class Phone:
    """A Playwright page that records what it asked for and what went wrong on it."""

    def __init__(self, page, server: LiveServer) -> None:
        self.page = page
        self.server = server
        self.hosts: set[str] = set()
        # Other hosts a test runs itself on loopback (a fake of WeChat), which it may visit.
        self.allowed_hosts: set[str] = set()
        self.problems: list[str] = []
        self.server_errors: list[str] = []
        page.on("request", lambda r: self.hosts.add(urlsplit_netloc(r.url)))
        page.on(
            "response",
            lambda r: r.status >= 500 and self.server_errors.append(f"{r.status} {r.url}"),
        )
        page.on(
            "console",
            lambda m: (
                m.type == "error"
                and self.problems.append(f"{m.text} at {m.location.get('url', '')}")
            ),
        )
        page.on("pageerror", lambda e: self.problems.append(str(e)))

    def open(self, path: str):
        return self.page.goto(self.server.url + path)

    def screenshot(self, name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


def urlsplit_netloc(url: str) -> str:
    from urllib.parse import urlsplit

    return urlsplit(url).netloc


def no_sideways_scroll(page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["viewport"]["width"], f"page is {width}px wide"


def log_in(phone: Phone, email: str = "reader@example.com", password: str = "correct horse"):
    """Sign in through the login form, as a reader would."""
    from playwright.sync_api import expect

    page = phone.page
    phone.open("/login")
    page.fill("#f-email", email)
    page.fill("#f-password", password)
    page.click("button[type=submit]")
    expect(page).to_have_url(phone.server.url + "/me")


@pytest.fixture
def phone(page, live_server):
    """A phone in WeChat's browser on the live site; fails the test on any request to another
    host, any script error and any Content-Security-Policy violation."""
    device = Phone(page, live_server)
    yield device
    host = urlsplit_netloc(live_server.url)
    allowed = {host, *device.allowed_hosts}
    assert device.hosts <= allowed, f"requests to other hosts: {device.hosts - allowed}"
    assert not device.server_errors, device.server_errors
    # Chromium logs every 4xx page it loads as an error; tests that expect one assert on it.
    problems = [p for p in device.problems if "status of 4" not in p]
    assert not problems, problems


# --- the search index, whichever backend holds it -----------------------------------------


@contextmanager
def another_index_writer(app: Flask) -> Iterator[None]:
    """Inside the block another process holds the index's single writer lock: Whoosh's
    writer, or the drainer's advisory lock on PostgreSQL (held by another connection). It
    uses the app context in force, if there is one."""
    from content import search, search_pg

    with nullcontext() if has_app_context() else app.app_context():
        if not search.on_postgres():
            writer = search.open_index().writer()
            try:
                yield
            finally:
                writer.cancel()
            return
        with db.engine.connect() as other:
            other.execute(text("SELECT pg_advisory_lock(:key)"), {"key": search_pg.LOCK_KEY})
            other.commit()
            try:
                yield
            finally:
                other.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": search_pg.LOCK_KEY})
                other.commit()


def lose_search_index(app: Flask) -> None:
    """The index is gone (Whoosh's folder deleted, or PostgreSQL's rows); the database stays."""
    import shutil

    from content import search
    from content.models import SearchDocument

    with app.app_context():
        if search.on_postgres():
            with write_transaction() as session:
                session.execute(delete(SearchDocument))
        else:
            shutil.rmtree(search.index_dir())
            search._open.clear()


def sql_of(app, call) -> tuple[object, list[str]]:
    """What `call()` answered, and the SQL statements it sent."""
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args) -> None:
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            answer = call()
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    return answer, statements
