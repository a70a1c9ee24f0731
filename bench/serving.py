"""Benchmark serving pages: the app against its own floor, and nginx against itself.

    .venv/bin/python bench/serving.py

Builds a fresh demo site (SQLite in a temporary directory, or PostgreSQL with --database-url
or TEST_DATABASE_URL), serves it with gunicorn exactly as deploy/gunicorn.conf.py configures
it, and loads it with wrk (`--connections` at once, default 32, for `--seconds` each after a
short untimed warm-up):

1. `/healthz` (the floor: a request that does nothing) against an article page read by a
   signed-in member, same server, same run. Goal: the article at 0.75× the floor's req/s or
   more, p99 at most 50 ms.
2. The rendered deploy/nginx.conf.in in front of that gunicorn, an anonymous reader on the
   article (the micro-cache answers), against the same nginx sending the same bytes from a
   file. Goal: 0.5× the static file's req/s or more.

Ratios come from one run, so a busy machine slows both sides alike. It prints figures and
`goal` lines only; no test asserts a timing (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
for where in (ROOT, ROOT / "deploy", ROOT / "bench"):
    if str(where) not in sys.path:
        sys.path.insert(0, str(where))

import render  # noqa: E402  (deploy/render.py)
import sampling  # noqa: E402  (bench/sampling.py)
from flash_sale import (  # noqa: E402
    BIN,
    PASSWORD,
    TOKEN_RE,
    Buyer,
    Connection,
    choose_database,
    free_port,
    goal,
    machine_line,
    migrate,
    print_log_tail,
    run_in_temporary_dir,
    seed,
    server_env,
    site,
    stop_server,
    wait_until_answering,
)
from sqlalchemy import select  # noqa: E402

GOAL_FLOOR_SHARE = 0.75
GOAL_ARTICLE_P99_MS = 50.0
GOAL_STATIC_SHARE = 0.5
WARM_UP_SECONDS = 2
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
WRK = shutil.which("wrk") or "/usr/bin/wrk"


@dataclass(frozen=True)
class Load:
    """What wrk measured."""

    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    statuses: int  # answers neither 2xx nor 3xx
    socket_errors: str  # wrk's "connect, read, write, timeout" counts

    @property
    def bad(self) -> int:
        return self.statuses + sum(int(n) for n in self.socket_errors.split(", ") if n)

    def line(self, name: str) -> str:
        return (
            f"{name}: {self.requests_per_s:,.0f} req/s, p50 {self.p50_ms:.1f} ms, "
            f"p99 {self.p99_ms:.1f} ms, {self.requests:,} requests, "
            f"{self.statuses} not 2xx/3xx, socket errors (connect, read, write, timeout) "
            f"{self.socket_errors or '0, 0, 0, 0'}"
        )


def _ms(value: str, unit: str) -> float:
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def wrk(url: str, seconds: float, connections: int, headers: dict[str, str]) -> Load:
    """One wrk run (2 threads, as the machine has 2 cores to share with the server)."""
    command = [WRK, "-t2", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency"]
    for name, value in headers.items():
        command += ["-H", f"{name}: {value}"]
    done = subprocess.run(
        [*command, url], capture_output=True, text=True, timeout=seconds + 60, check=False
    )
    out = done.stdout
    if done.returncode != 0 or "Requests/sec" not in out:
        raise SystemExit(f"wrk failed on {url}:\n{out}{done.stderr}")
    latency = {
        p: _ms(v, u) for p, v, u in re.findall(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s|m)", out, re.M)
    }
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    statuses = sum(int(n) for n in re.findall(r"Non-2xx or 3xx responses: (\d+)", out))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    sockets = ", ".join(errors.groups()) if errors else ""
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    return Load(rate, latency["50"], latency["99"], requests, statuses, sockets)


@contextmanager
def shipped_gunicorn(env: dict[str, str], log_path: Path) -> Iterator[tuple[int, int]]:
    """gunicorn with deploy/gunicorn.conf.py (its workers, threads, recycling, logging) on a
    free loopback port."""
    port = free_port()
    server_env = {**env, "GUNICORN_BIND": f"127.0.0.1:{port}"}
    command = [
        str(BIN / "gunicorn"),
        "-c",
        str(ROOT / "deploy" / "gunicorn.conf.py"),
        "app:create_app()",
    ]
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=server_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        wait_until_answering(port, process, log_path)
        yield port, process.pid
        if process.poll() is not None:
            print_log_tail(log_path, f"gunicorn died during the run (exit {process.returncode})")
    finally:
        stop_server(process)


def demo_load(env: dict[str, str]) -> None:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "app", "demo", "load"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"flask --app app demo load failed:\n{done.stdout}{done.stderr}")


def newest_public_article(env: dict[str, str]) -> str:
    from app import utcnow
    from content.models import Article, Status, Visibility

    app = site(env)
    with app.app_context():
        slug = app.extensions["sqlalchemy"].session.scalar(
            select(Article.slug)
            .where(
                Article.status == Status.PUBLISHED,
                Article.visibility == Visibility.PUBLIC,
                Article.publish_at <= utcnow(),
            )
            .order_by(Article.publish_at.desc())
            .limit(1)
        )
        app.extensions["sqlalchemy"].engine.dispose()
    if not slug:
        raise SystemExit("the demo has no published public article")
    return slug


def signed_in_cookie(port: int, email: str, path: str) -> str:
    """A member's session cookie, signed in through the login form as a browser is."""
    member = Buyer(email)
    conn = Connection(port)
    try:
        response, body = conn.request("GET", "/login", member)
        member.keep_cookies(response)
        token = TOKEN_RE.search(body.decode())
        if token is None:
            raise SystemExit("no form token on /login")
        form = {"csrf_token": token.group(1), "email": email, "password": PASSWORD}
        response, _ = conn.request("POST", "/login", member, form)
        member.keep_cookies(response)
        if response.status not in (302, 303):
            raise SystemExit(f"POST /login answered {response.status}")
        response, body = conn.request("GET", path, member)
        if response.status != 200:
            raise SystemExit(f"GET {path} signed in answered {response.status}")
    finally:
        conn.close()
    return member.cookie_header()


def nginx_conf(
    where: Path, site_conf: Path, static_port: int | None = None, static_root: Path | None = None
) -> Path:
    """A main nginx.conf in `where` that includes the shipped site and (`static_port`) a plain
    static server of `static_root` with the same gzip settings."""
    static = (
        f"""
    server {{
        listen 127.0.0.1:{static_port};
        gzip on;
        gzip_comp_level 5;
        gzip_min_length 512;
        gzip_vary on;
        default_type text/html;
        location / {{ root {static_root}; try_files $uri =404; }}
    }}"""
        if static_port
        else ""
    )
    for name in ("logs", "body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (where / name).mkdir(parents=True, exist_ok=True)
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = where / "nginx.conf"
    main.write_text(
        f"""{user}daemon off;
worker_processes auto;
pid {where}/nginx.pid;
error_log {where}/logs/error.log;
events {{ worker_connections 1024; }}
http {{
    include /etc/nginx/mime.types;
    access_log off;
    client_body_temp_path {where}/body;
    proxy_temp_path {where}/proxy;
    fastcgi_temp_path {where}/fastcgi;
    uwsgi_temp_path {where}/uwsgi;
    scgi_temp_path {where}/scgi;
    include {site_conf};{static}
}}
"""
    )
    return main


@contextmanager
def nginx(main: Path, ports: list[int], log_path: Path) -> Iterator[None]:
    with open(log_path, "ab") as log:
        process = subprocess.Popen(
            [NGINX, "-c", str(main)],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 30
        for port in ports:
            while True:
                if process.poll() is not None or time.monotonic() > deadline:
                    print_log_tail(log_path, "nginx did not start")
                    raise SystemExit(1)
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    time.sleep(0.05)
        yield
    finally:
        stop_server(process)


@contextmanager
def behind_nginx(
    where: Path, upstream: int, static_port: int | None = None, static_root: Path | None = None
) -> Iterator[int]:
    """The rendered deploy/nginx.conf.in in front of the app at port `upstream` (and the
    static server of `nginx_conf`); the site's port."""
    listen = free_port()
    site_conf = render.render(
        server_name="127.0.0.1",
        app_root=ROOT,
        data_dir=where,
        out=where / "nginx-site.conf",
        listen=f"127.0.0.1:{listen}",
        upstream=f"127.0.0.1:{upstream}",
        cache_dir=where / "nginx-cache",
    )
    main = nginx_conf(where / "nginx", site_conf, static_port, static_root)
    ports = [listen] + ([static_port] if static_port else [])
    with nginx(main, ports, where / "nginx.log"):
        yield listen


def fetch(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path, headers=headers)
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def run(args: argparse.Namespace, where: Path) -> int:
    print(
        f"serving benchmark: wrk, {args.connections} connections, {args.seconds:g} s per load "
        f"(after {WARM_UP_SECONDS} s untimed)"
    )
    print(machine_line())
    database = choose_database(args.database_url, where, args.wipe_allowed)
    if database.kind == "postgresql":
        from flash_sale import wipe_postgres

        wipe_postgres(database.url)
    env = server_env(where, database, "serving-bench-secret")
    env["GUNICORN_LOG_LEVEL"] = "warning"
    migrate(env)
    demo_load(env)
    [email] = seed(env, stock=10, buyers=1)
    slug = newest_public_article(env)
    article = f"/a/{slug}"
    log_path = where / "gunicorn.log"
    print(f"database: {database.kind}; gunicorn: deploy/gunicorn.conf.py ({_workers()})")

    def measured(url: str, headers: dict[str, str]) -> Load:
        wrk(url, WARM_UP_SECONDS, args.connections, headers)
        return wrk(url, args.seconds, args.connections, headers)

    with shipped_gunicorn(env, log_path) as (port, pid):
        cookie = signed_in_cookie(port, email, article)
        base = f"http://127.0.0.1:{port}"
        floor = measured(f"{base}/healthz", {})
        page = measured(f"{base}{article}", {"Cookie": cookie})
        print(floor.line("/healthz (the floor)"))
        print(page.line(f"{article} signed in"))
        share = page.requests_per_s / floor.requests_per_s
        missed = share < GOAL_FLOOR_SHARE or page.p99_ms > GOAL_ARTICLE_P99_MS
        if args.profile and missed:
            raw = where / "article-profile.txt"
            with sampling.sampled(pid, args.seconds, raw):
                wrk(f"{base}{article}", args.seconds, args.connections, {"Cookie": cookie})
            print("\n".join(sampling.summary(raw)))

        static_port, static_root = free_port(), where / "static-copy"
        gzip = {"Accept-Encoding": "gzip"}
        with behind_nginx(where, port, static_port, static_root) as listen:
            status, headers, body = fetch(listen, article, {})
            if status != 200:
                raise SystemExit(f"nginx answered {status} for {article}")
            copy = static_root / "a" / slug
            copy.parent.mkdir(parents=True)
            copy.write_bytes(body)
            status, headers, _ = fetch(listen, article, gzip)
            print(f"through nginx: X-Cache {headers.get('X-Cache')}, {len(body):,} bytes of HTML")
            proxied = measured(f"http://127.0.0.1:{listen}{article}", gzip)
            static = measured(f"http://127.0.0.1:{static_port}/a/{slug}", gzip)
        print(proxied.line(f"{article} anonymous through the shipped nginx"))
        print(static.line("the same bytes as a static file from nginx"))

    static_share = proxied.requests_per_s / static.requests_per_s
    print(
        goal(
            f"signed-in article >= {GOAL_FLOOR_SHARE:g}x the /healthz floor",
            share >= GOAL_FLOOR_SHARE,
            f"{share:.2f}x: {page.requests_per_s:,.0f} of {floor.requests_per_s:,.0f} req/s",
        )
    )
    print(
        goal(
            f"signed-in article p99 <= {GOAL_ARTICLE_P99_MS:g} ms",
            page.p99_ms <= GOAL_ARTICLE_P99_MS,
            f"{page.p99_ms:.1f} ms",
        )
    )
    print(
        goal(
            f"anonymous article via nginx >= {GOAL_STATIC_SHARE:g}x static",
            static_share >= GOAL_STATIC_SHARE,
            f"{static_share:.2f}x: {proxied.requests_per_s:,.0f} of "
            f"{static.requests_per_s:,.0f} req/s",
        )
    )
    loads = (floor, page, proxied, static)
    statuses = sum(load.statuses for load in loads)
    print(f"answers neither 2xx nor 3xx in all loads: {statuses}")
    # Socket errors are reported, not failed: a worker recycled after max_requests (as
    # deploy/gunicorn.conf.py asks) closes its keep-alive connections, which wrk counts.
    print(f"socket errors in all loads: {sum(load.bad - load.statuses for load in loads)}")
    return 1 if statuses else 0


def _workers() -> str:
    import multiprocessing

    workers = int(os.environ.get("GUNICORN_WORKERS", multiprocessing.cpu_count() * 2 + 1))
    threads = int(os.environ.get("GUNICORN_THREADS", 4))
    return f"{workers} gthread workers × {threads} threads"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15, help="each timed load (15)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument("--database-url", help="PostgreSQL to run on; it is WIPED")
    parser.add_argument("--i-know-this-wipes", dest="wipe_allowed", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument(
        "--profile", action="store_true", help="sample the server with py-spy if a goal is missed"
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seconds <= 600 or not 1 <= args.connections <= 1000:
        parser.error("--seconds must be 1..600 and --connections 1..1000")
    for tool in (WRK, NGINX):
        if not Path(tool).exists():
            parser.error(f"{tool} is missing: bash tests/tools/ensure_wrk.sh installs wrk")
    return run_in_temporary_dir(args.keep, "chendu-serving-", lambda where: run(args, where))


if __name__ == "__main__":
    sys.exit(main())
