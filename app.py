"""晨读: the application factory and the pieces every feature shares.

`flask --app app ...` starts every command. Feature packages (`members/`, `content/`, `shop/`,
`board/`) import the shared extensions, the clock and the transaction helper from here; this
module imports them back only inside `create_app`, as Flask's tutorial does.
"""

from __future__ import annotations

import codecs
import contextvars
import csv
import hashlib
import io
import json
import logging
import os
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import click
from flask import Flask, Response, abort, current_app, g, render_template, request, session
from flask.cli import AppGroup
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFError, CSRFProtect
from sqlalchemy import DateTime, MetaData, event, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import DeclarativeBase, Session
from sqlalchemy.types import TypeDecorator
from werkzeug.exceptions import HTTPException, InternalServerError
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.routing import IntegerConverter

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# Database
# --------------------------------------------------------------------------------------------


class Base(DeclarativeBase):
    # Named constraints, so that SQLite batch migrations can find and alter them.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address, default_limits=[])


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always stored in UTC and always read back as an aware datetime.

    SQLite has no time zones; PostgreSQL has `timestamptz`. Both come back as aware UTC.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetimes are ambiguous; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _render_migration_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
    """Write UTCDateTime into migrations as the plain column type, so they never import app."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


_write_transaction: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "write_transaction", default=False
)


@contextmanager
def write_transaction() -> Iterator[Session]:
    """Run the block as one write transaction that commits on success and rolls back on error.

    On SQLite it begins with `BEGIN IMMEDIATE`, so the write lock is taken before the first read
    and racing writers queue on the busy timeout instead of failing with SQLITE_BUSY when a read
    turns into a write. Every write goes through here; SQLite flushes outside it are refused.
    A block inside another one runs in a savepoint: its errors surface at its own end, and the
    outer block decides whether everything commits.
    """
    session = db.session()
    if _write_transaction.get():
        with session.begin_nested():
            yield session
        return
    if session.new or session.dirty or session.deleted:
        raise RuntimeError("changes made outside write_transaction() would be committed")
    if session.in_transaction():
        session.rollback()  # end the read snapshot a view may have opened (loading the user)
    token = _write_transaction.set(True)
    try:
        with session.begin():
            yield session
    finally:
        _write_transaction.reset(token)


def in_write_transaction() -> bool:
    return _write_transaction.get()


def _configure_sqlite(engine: Engine, busy_timeout_ms: int) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy's "begin" event, not the driver, decide how transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE" if _write_transaction.get() else "BEGIN")


@event.listens_for(Session, "before_flush")
def _refuse_sqlite_writes_outside_write_transaction(session: Session, *_: Any) -> None:
    bind = session.get_bind()
    if bind.dialect.name == "sqlite" and not _write_transaction.get():
        raise RuntimeError("database writes must run inside write_transaction()")


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


class SystemClock:
    """The real time, in UTC."""

    def now(self) -> datetime:
        return datetime.now(UTC)


class FixedClock:
    """A clock that stands still until it is moved: for tests and demos at any instant."""

    def __init__(self, at: datetime) -> None:
        self.at = at

    def now(self) -> datetime:
        return self.at

    def set(self, at: datetime) -> None:
        self.at = at

    def advance(self, **delta: float) -> None:
        self.at += timedelta(**delta)


def utcnow() -> datetime:
    """The current instant from the app's clock (`app.extensions["clock"]`), aware, in UTC."""
    return current_app.extensions["clock"].now()


def local_time(value: datetime) -> datetime:
    """`value` in the site's time zone (Asia/Shanghai unless TIMEZONE says otherwise)."""
    return value.astimezone(ZoneInfo(current_app.config["TIMEZONE"]))


# --------------------------------------------------------------------------------------------
# htmx
# --------------------------------------------------------------------------------------------


def is_htmx() -> bool:
    """True for a request htmx made to swap part of a page (not a history restore)."""
    return (
        request.headers.get("HX-Request") == "true"
        and request.headers.get("HX-History-Restore-Request") != "true"
    )


def render_page(page: str, partial: str, **context: Any) -> str:
    """Render `partial` alone for htmx and the full `page` (which includes it) otherwise."""
    return render_template(partial if is_htmx() else page, **context)


_ID = re.compile(r"[0-9]{1,15}")


MAX_ID = 2**31 - 1


def parse_id(value: object) -> int | None:
    """A positive id from a form or URL value ("12"), or None for anything else: not ASCII
    digits ("²", "1e3", "-1"), or past a database integer (PostgreSQL's are 32-bit: a
    bigger number there is an error, not a miss)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value <= MAX_ID else None
    text = str(value or "").strip()
    return int(text) if _ID.fullmatch(text) and 0 < int(text) <= MAX_ID else None


def ascii_json(value: Any) -> str:
    """JSON for a response header: headers must stay ASCII, so Chinese text is escaped."""
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"))


# --------------------------------------------------------------------------------------------
# Desk helpers: list pages, rows by id, CSV downloads
# --------------------------------------------------------------------------------------------


def page_number() -> int:
    """The list page asked for in `?page=`: 1 unless it is a positive number, at most 10,000."""
    return min(parse_id(request.args.get("page", "1")) or 1, 10_000)


def row_or_404(model, row_id: object):
    """The row of `model` with this id, as the database has it now, or 404."""
    found = parse_id(row_id)
    row = (
        db.session.scalar(
            select(model).where(model.id == found).execution_options(populate_existing=True)
        )
        if found
        else None
    )
    if row is None:
        abort(404)
    return row


def csv_cell(value: str | None) -> str:
    """A cell a spreadsheet will not run as a formula (buyers type order notes, and tier names
    and emails are typed freely); None is an empty cell."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def csv_bytes(header: Iterable[str], rows: Iterable[Iterable[str]]) -> bytes:
    """A CSV file with CRLF line ends, in UTF-8 with a BOM, so that Excel reads the Chinese."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return codecs.BOM_UTF8 + out.getvalue().encode("utf-8")


def csv_download(data: bytes, filename: str) -> Response:
    """`data` as a CSV file to download as `filename`, which stays ASCII: response headers must."""
    return Response(
        data,
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )


def today_stamp() -> str:
    """Today in the site's time zone as YYYYMMDD, for the names of downloaded files."""
    return local_time(utcnow()).strftime("%Y%m%d")


# --------------------------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------------------------


def _secret_key(data_dir: Path) -> str:
    """The key kept in DATA_DIR/secret_key (mode 0600), created once by whoever comes first."""
    path = data_dir / "secret_key"
    if not path.exists():
        tmp = data_dir / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(32))
        try:
            os.link(tmp, path)  # atomic: a racing process keeps the first key
        except FileExistsError:
            pass
        finally:
            tmp.unlink()
    return path.read_text().strip()


def _database_url(url: str) -> str:
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def load_config(app: Flask, overrides: dict[str, Any] | None) -> None:
    """Defaults first, then the environment, then `overrides` (what tests pass)."""
    overrides = dict(overrides or {})
    env = os.environ

    def setting(name: str, default: str) -> str:
        return str(overrides.get(name) or env.get(name) or default)

    data_dir = Path(setting("DATA_DIR", "instance")).resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    database_url = _database_url(setting("DATABASE_URL", f"sqlite:///{data_dir / 'chendu.db'}"))
    app.config.update(
        DATA_DIR=data_dir,
        SITE_NAME=setting("SITE_NAME", "晨读"),
        TIMEZONE=setting("TIMEZONE", "Asia/Shanghai"),
        SQLALCHEMY_DATABASE_URI=database_url,
        SQLALCHEMY_ENGINE_OPTIONS=(
            {} if database_url.startswith("sqlite") else {"pool_pre_ping": True}
        ),
        SQLITE_BUSY_TIMEOUT_MS=int(setting("SQLITE_BUSY_TIMEOUT_MS", "15000")),
        MAX_CONTENT_LENGTH=int(setting("MAX_CONTENT_LENGTH", str(32 * 1024 * 1024))),
        MEDIA_DIR=Path(setting("MEDIA_DIR", str(data_dir / "media"))).resolve(),
        # Behind nginx: files are handed to nginx by X-Accel-Redirect under this internal
        # prefix (e.g. /_media/) after the app checked access; empty: the app sends them.
        MEDIA_ACCEL_PREFIX=setting("MEDIA_ACCEL_PREFIX", ""),
        IMAGE_MAX_BYTES=int(setting("IMAGE_MAX_BYTES", str(5 * 1024 * 1024))),
        AUDIO_MAX_BYTES=int(setting("AUDIO_MAX_BYTES", str(20 * 1024 * 1024))),
        SEARCH_INDEX_DIR=Path(setting("SEARCH_INDEX_DIR", str(data_dir / "search"))).resolve(),
        # Session and "remember me" cookies are HttpOnly and SameSite=Lax; `Secure` is added
        # to every cookie of a response to an HTTPS request (see `Site.process_response`).
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_HTTPONLY=True,
        REMEMBER_COOKIE_SAMESITE="Lax",
        REMEMBER_COOKIE_DURATION=timedelta(days=30),
        # WeChat tabs stay open for hours: a form token lives for a day.
        WTF_CSRF_TIME_LIMIT=int(setting("WTF_CSRF_TIME_LIMIT", str(24 * 3600))),
        # Several app machines share one Redis for the login limits (REDIS_URL); a Redis that
        # does not answer leaves each process counting in its own memory meanwhile.
        REDIS_URL=setting("REDIS_URL", ""),
        RATELIMIT_STORAGE_URI=setting("RATELIMIT_STORAGE_URI", setting("REDIS_URL", "memory://")),
        RATELIMIT_IN_MEMORY_FALLBACK_ENABLED=True,
        RATELIMIT_SWALLOW_ERRORS=True,
        # A Redis that drops packets must not hold a login for TCP's two minutes.
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        LOGIN_RATE_LIMIT=setting("LOGIN_RATE_LIMIT", "10 per minute"),
        PASSWORD_HASH_METHOD=setting("PASSWORD_HASH_METHOD", "scrypt"),
        TRUSTED_PROXIES=int(setting("TRUSTED_PROXIES", "0")),
        # The shop: how long a placed order holds its stock, where 自提 happens, and which
        # payment provider takes the money ("dev": a local cashier; "wechatpay": API v3).
        SHOP_HOLD_MINUTES=int(setting("SHOP_HOLD_MINUTES", "15")),
        SHOP_PICKUP_POINT=setting("SHOP_PICKUP_POINT", "晨读编辑部（上海市徐汇区漕溪北路 88 号）"),
        SHOP_REFUND_DAYS=int(setting("SHOP_REFUND_DAYS", "7")),
        PAYMENTS=setting("PAYMENTS", "dev"),
        # The board: "public" lets everyone read it, "members" only members (and moderators).
        # Posting is limited per member: BOARD_POST_LIMIT new threads or answers per
        # BOARD_POST_MINUTES.
        BOARD_READ=setting("BOARD_READ", "public"),
        # A signed-in reader's article card is rendered once per version and kept this long
        # (content/views.py); 0 renders it for every request.
        ARTICLE_CACHE_SECONDS=float(setting("ARTICLE_CACHE_SECONDS", str(PUBLIC_PAGE_SECONDS))),
        STATIC_RECHECK_SECONDS=float(setting("STATIC_RECHECK_SECONDS", "1")),
        BOARD_POST_LIMIT=int(setting("BOARD_POST_LIMIT", "5")),
        BOARD_POST_MINUTES=int(setting("BOARD_POST_MINUTES", "10")),
        # WeChat: login and share cards need the app id and secret; the official account's
        # callback needs its token (and the EncodingAESKey for safe mode). Tests point the
        # two bases at fakes on 127.0.0.1.
        WECHAT_APPID=setting("WECHAT_APPID", ""),
        WECHAT_SECRET=setting("WECHAT_SECRET", ""),
        WECHAT_TOKEN=setting("WECHAT_TOKEN", ""),
        WECHAT_AES_KEY=setting("WECHAT_AES_KEY", ""),
        WECHAT_API_BASE=setting("WECHAT_API_BASE", "https://api.weixin.qq.com"),
        WECHAT_OPEN_BASE=setting("WECHAT_OPEN_BASE", "https://open.weixin.qq.com"),
        WECHATPAY_BASE_URL=setting("WECHATPAY_BASE_URL", "https://api.mch.weixin.qq.com"),
        WECHATPAY_MCHID=setting("WECHATPAY_MCHID", ""),
        WECHATPAY_APPID=setting("WECHATPAY_APPID", ""),
        WECHATPAY_APIV3_KEY=setting("WECHATPAY_APIV3_KEY", ""),
        WECHATPAY_CERT_SERIAL_NO=setting("WECHATPAY_CERT_SERIAL_NO", ""),
        WECHATPAY_PRIVATE_KEY_FILE=setting("WECHATPAY_PRIVATE_KEY_FILE", ""),
        WECHATPAY_PUBLIC_KEY_FILE=setting("WECHATPAY_PUBLIC_KEY_FILE", ""),
        WECHATPAY_PUBLIC_KEY_ID=setting("WECHATPAY_PUBLIC_KEY_ID", ""),
        WECHATPAY_NOTIFY_URL=setting("WECHATPAY_NOTIFY_URL", ""),
    )
    overrides.pop("DATA_DIR", None)
    app.config.update(overrides)
    app.config["SQLALCHEMY_DATABASE_URI"] = database_url
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = env.get("SECRET_KEY") or _secret_key(data_dir)


# --------------------------------------------------------------------------------------------
# Responses: security headers, static URLs with a content hash, error pages
# --------------------------------------------------------------------------------------------

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "media-src 'self'",
        "connect-src 'self'",
        "font-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'self'",
    ]
)


def _static_hash(app: Flask, filename: str) -> str | None:
    """A short content hash of a static file, recomputed only when the file changes (looked
    at once a STATIC_RECHECK_SECONDS: every page names a few files, and a deploy restarts
    the workers anyway)."""
    assert app.static_folder is not None
    cache: dict[str, tuple[float, int, str | None]] = app.extensions["static_hashes"]
    now = time.monotonic()
    cached = cache.get(filename)
    if cached is not None and now - cached[0] < app.config["STATIC_RECHECK_SECONDS"]:
        return cached[2]
    path = Path(app.static_folder) / filename
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        cache[filename] = (now, -1, None)
        return None
    if cached is None or cached[1] != mtime:
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        cached = (now, mtime, digest)
    cache[filename] = (now, cached[1], cached[2])
    return cached[2]


def _harden(response: Any) -> Any:
    headers = response.headers
    # A page may let one named host's script in (WeChat's JS-SDK on share pages): that page
    # alone says so in `g.script_hosts`.
    hosts = g.get("script_hosts")
    policy = CONTENT_SECURITY_POLICY
    if hosts:
        policy = policy.replace("script-src 'self'", "script-src 'self' " + " ".join(sorted(hosts)))
    headers.setdefault("Content-Security-Policy", policy)
    headers.setdefault("X-Content-Type-Options", "nosniff")
    headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
    headers.setdefault("X-Frame-Options", "SAMEORIGIN")
    if request.endpoint == "static":
        filename = (request.view_args or {}).get("filename", "")
        version = request.args.get("v")
        # Immutable only when the hash names this very file: during a deploy an old page may
        # ask for a version that no longer exists, and that answer must not stick for a year.
        current = _static_hash(current_app, filename)  # type: ignore[arg-type]
        if response.status_code == 200 and version and version == current:
            headers["Cache-Control"] = "public, max-age=31536000, immutable"
        return response
    response.vary.add("HX-Request")
    if "Cache-Control" not in headers:
        headers["Cache-Control"] = (
            f"public, max-age={PUBLIC_PAGE_SECONDS}" if _same_for_everyone(response)
            else "private, no-cache"
        )  # fmt: skip
    return response


# Pages an anonymous reader gets exactly as every other anonymous reader does: a shared cache
# (nginx's micro-cache, deploy/nginx.conf.in) may keep them this long.
PUBLIC_PAGES = {"content.home", "content.article", "content.daily"}
PUBLIC_PAGE_SECONDS = 30
# What search engines and link previews say of a page that has no description of its own.
SITE_DESCRIPTION = "晨读：每天早上一段 60 秒语音和一篇文章，会员读全文、买限量好物、在社群里问答。"


def _same_for_everyone(response: Any) -> bool:
    return (
        request.method in ("GET", "HEAD")
        and response.status_code == 200
        and request.endpoint in PUBLIC_PAGES
        and not current_user.is_authenticated
        and not session.modified  # no form token, no flash: nothing of this reader's
        and "Set-Cookie" not in response.headers
        and not g.get("script_hosts")  # a WeChat share card is signed for this request
    )


class Site(Flask):
    def process_response(self, response: Any) -> Any:
        """Mark every cookie `Secure` when the request came over HTTPS.

        Done last, after the session and "remember me" cookies have been written.
        """
        response = super().process_response(response)
        cookies = response.headers.getlist("Set-Cookie")
        if request.is_secure and cookies:
            response.headers.remove("Set-Cookie")
            for cookie in cookies:
                secure = "; secure" in cookie.lower()
                response.headers.add("Set-Cookie", cookie if secure else cookie + "; Secure")
        return response


ERROR_MESSAGES = {
    400: ("请求有误", "提交的内容无法处理，请返回检查后重试。"),
    403: ("没有权限", "这个页面需要相应的权限才能查看。"),
    404: ("页面不存在", "你要找的内容不存在，或者已经下线。"),
    405: ("请求方式不对", "这个地址不支持这样的操作。"),
    413: ("内容太大", "上传的内容超过了大小限制。"),
    422: ("内容有误", "提交的内容有误，请检查后重试。"),
    429: ("操作太频繁", "你的操作太频繁了，请休息一分钟再试。"),
    500: ("服务器出错了", "我们这边出了点问题，已经记录下来了，请稍后再试。"),
}


def render_error(code: int, message: str | None = None, headers: dict[str, str] | None = None):
    """A friendly Chinese error page; for htmx, a fragment shown in the page's notice area."""
    title, default = ERROR_MESSAGES.get(code, ERROR_MESSAGES[500 if code >= 500 else 400])
    context = {"code": code, "title": title, "message": message or default}
    headers = dict(headers or {})
    if is_htmx():
        headers.setdefault("HX-Retarget", "#notice")
        headers.setdefault("HX-Reswap", "innerHTML")
        return render_template("errors/_error.html", **context), code, headers
    return render_template("errors/error.html", **context), code, headers


def _register_error_pages(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_failed(error: CSRFError):
        # An expired token on a long-open WeChat tab: have htmx reload the page for a fresh one.
        headers = {"HX-Refresh": "true"} if is_htmx() else None
        return render_error(400, "页面已过期或来源不明，请刷新页面后重新提交。", headers)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        if error.code is None or error.code < 400:
            return error
        # Keep what the error says in its headers (Allow on 405, Retry-After on 429).
        kept = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
        return render_error(error.code, headers=kept)

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError):
        return render_error(500)


# --------------------------------------------------------------------------------------------
# The factory
# --------------------------------------------------------------------------------------------


class IdConverter(IntegerConverter):
    """`<int:...>` in every route: a number past a database integer is no page (404), never
    a query PostgreSQL refuses."""

    def __init__(self, map: Any, *args: Any, **kwargs: Any) -> None:  # noqa: A002
        kwargs.setdefault("max", MAX_ID)
        super().__init__(map, *args, **kwargs)


def create_app(config: dict[str, Any] | None = None) -> Flask:
    """Build the site. `config` overrides defaults and the environment (tests use it)."""
    app = Site(__name__)
    app.url_map.converters["int"] = IdConverter
    load_config(app, config)
    if app.config["TRUSTED_PROXIES"]:
        n = app.config["TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=n, x_proto=n, x_host=n)  # type: ignore[method-assign]

    app.extensions["clock"] = app.config.get("CLOCK") or SystemClock()
    app.extensions["static_hashes"] = {}

    db.init_app(app)
    with app.app_context():
        for engine in db.engines.values():
            if engine.dialect.name == "sqlite":
                _configure_sqlite(engine, app.config["SQLITE_BUSY_TIMEOUT_MS"])
    migrate.init_app(app, db, render_as_batch=True, render_item=_render_migration_item)
    csrf.init_app(app)
    from content import pages

    # The form token and the rest of what is made anew for each answer of a kept page (in
    # the globals and, as Flask-WTF puts it there too, in every template's context).
    app.jinja_env.globals.update(csrf_token=pages.form_token, live=pages.live)
    app.context_processor(lambda: {"csrf_token": pages.form_token})
    limiter.init_app(app)
    login_manager.init_app(app)
    # "strong" would sign WeChat users out whenever the NetType/ part of the user agent changes.
    login_manager.session_protection = "basic"
    login_manager.login_view = "members.login"
    login_manager.login_message = "请先登录。"

    from board import bp as board_bp
    from board.desk import bp as board_desk_bp
    from board.notifications import bp as notifications_bp
    from content import bp as content_bp
    from content import cli as content_cli
    from content.desk import bp as desk_bp
    from members import bp as members_bp
    from members import cli as members_cli
    from members import enrollment  # noqa: F401 (orders may buy membership seats)
    from members.desk import bp as members_desk_bp
    from members.join import bp as join_bp
    from shop import bp as shop_bp
    from shop import cli as shop_cli
    from shop.desk import bp as shop_desk_bp
    from shop.orders import bp as orders_bp
    from wechat import bp as wechat_bp
    from wechat.desk import bp as wechat_desk_bp

    app.register_blueprint(members_bp)
    app.register_blueprint(content_bp)
    app.register_blueprint(desk_bp)
    app.register_blueprint(shop_bp)
    app.register_blueprint(shop_desk_bp)
    app.register_blueprint(orders_bp)
    app.register_blueprint(join_bp)
    app.register_blueprint(members_desk_bp)
    app.register_blueprint(board_bp)
    app.register_blueprint(board_desk_bp)
    app.register_blueprint(notifications_bp)
    app.register_blueprint(wechat_bp)
    app.register_blueprint(wechat_desk_bp)
    members_cli.register(app)
    content_cli.register(app)
    shop_cli.register(app)
    app.cli.add_command(demo_cli)
    from backup import backup_command, restore_command

    app.cli.add_command(backup_command)
    app.cli.add_command(restore_command)

    @app.url_defaults
    def static_version(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and "filename" in values and "v" not in values:
            digest = _static_hash(app, values["filename"])
            if digest:
                values["v"] = digest

    @app.get("/healthz")
    def healthz():
        return "ok", 200, {"Content-Type": "text/plain; charset=utf-8"}

    @app.template_filter("local")
    def local_filter(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M") -> str:
        return local_time(value).strftime(fmt) if value else ""

    @app.context_processor
    def site_context() -> dict[str, Any]:
        htmx_config = {
            "includeIndicatorStyles": False,
            "allowEval": False,
            "allowScriptTags": False,
            "historyCacheSize": 0,
            "historyRestoreAsHxRequest": False,
            # Settling never copies `style` attributes: the CSP forbids inline style.
            "attributesToSettle": ["class", "width", "height"],
            "responseHandling": [
                {"code": "204", "swap": False},
                {"code": "[23]..", "swap": True},
                # A form that fails validation re-renders itself in place.
                {"code": "422", "swap": True},
                # Other errors carry HX-Retarget to the page's notice area.
                {"code": "[45]..", "swap": True, "error": True},
            ],
        }
        return {
            "site_name": app.config["SITE_NAME"],
            "site_description": SITE_DESCRIPTION,
            "htmx_config": json.dumps(htmx_config),
        }

    app.after_request(_harden)
    _register_error_pages(app)
    return app


# --------------------------------------------------------------------------------------------
# Demo data: every feature adds its part, each part idempotent.
# --------------------------------------------------------------------------------------------


demo_cli = AppGroup("demo", help="Demo data for a living site on a development machine.")


@demo_cli.command("load")
def demo_load() -> None:
    """Load the demo data that is missing and print the demo logins."""
    from board import demo as board_demo
    from content import demo as content_demo
    from members import demo as members_demo
    from shop import demo as shop_demo

    loaders: list[Callable[[], list[str]]] = [
        members_demo.load,
        content_demo.load,
        shop_demo.load,
        board_demo.load,
    ]
    for loader in loaders:
        for line in loader():
            click.echo(line)
