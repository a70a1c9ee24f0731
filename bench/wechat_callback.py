"""Benchmark the official account's callback: how long `/wechat` takes to answer a follower.

    .venv/bin/python bench/wechat_callback.py --messages 2000 --concurrency 20

Builds a fresh site (SQLite in a temporary data directory), publishes `--articles` articles
with a keyword each, serves the site with gunicorn on 127.0.0.1, and has followers send
signed text messages over HTTP as WeChat's servers do: half name a keyword (a news reply),
a quarter a word no article has (a text reply with a search link), a quarter repeat an earlier
MsgId (a retry, answered from the log). WeChat waits 5 seconds; the script prints p50, p99 and
max, how many answers came after 5 s, and whether every retry got its first reply byte for
byte. It prints figures only; no test asserts a timing (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TOKEN = "bench-callback-token"
WECHAT_WAIT_SECONDS = 5.0


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()  # noqa: S324


def message(openid: str, content: str, msg_id: int) -> bytes:
    return (
        "<xml><ToUserName><![CDATA[gh_bench]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
        f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId></xml>"
    ).encode()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(data_dir: Path, articles: int) -> list[str]:
    """Migrate a fresh database and publish articles with one keyword each."""
    env = {**os.environ, "DATA_DIR": str(data_dir)}
    env.pop("DATABASE_URL", None)
    subprocess.run(
        [sys.executable, "-m", "flask", "--app", "app", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    os.environ["DATA_DIR"] = str(data_dir)
    os.environ.pop("DATABASE_URL", None)
    from app import create_app
    from content import articles as content_articles
    from content.articles import Draft

    app = create_app()
    keywords = [f"关键词{i}" for i in range(articles)]
    with app.app_context():
        for i, keyword in enumerate(keywords):
            content_articles.save_article(
                Draft(
                    title=f"第 {i} 篇早读",
                    body_md="今天的内容。",
                    summary="一分钟读懂",
                    keywords=keyword,
                    status="published",
                )
            )
    return keywords


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--articles", type=int, default=200)
    parser.add_argument("--workers", type=int, default=5)
    parser.add_argument("--timeout", type=float, default=300, help="stop sending after this")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="chendu-bench-wechat-"))
    server = None
    try:
        keywords = seed(data_dir, args.articles)
        port = free_port()
        env = {**os.environ, "DATA_DIR": str(data_dir), "WECHAT_TOKEN": TOKEN}
        server = subprocess.Popen(
            [
                sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}",
                "--workers", str(args.workers), "--log-level", "warning", "app:create_app()",
            ],
            cwd=ROOT,
            env=env,
            start_new_session=True,
        )  # fmt: skip
        url = f"http://127.0.0.1:{port}/wechat"
        deadline = time.monotonic() + 60
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2)  # noqa: S310
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    print("the server did not start", file=sys.stderr)
                    return 1
                time.sleep(0.2)

        rng = random.Random(7)  # noqa: S311 (a benchmark's mix, not a secret)
        plan: list[tuple[str, int]] = []
        for i in range(args.messages):
            roll = rng.random()
            if roll < 0.25 and plan:
                j = rng.randrange(len(plan))
                plan.append((plan[j][0], plan[j][1]))  # a retry: same MsgId, same text
            elif roll < 0.5:
                plan.append((f"没有的词{i}", 10_000_000 + i))
            else:
                plan.append((rng.choice(keywords), 10_000_000 + i))
        replies: dict[int, list[bytes]] = {}
        lock = threading.Lock()
        stop_at = time.monotonic() + args.timeout

        def send(item: tuple[str, int]) -> tuple[float, int]:
            if time.monotonic() > stop_at:
                return (-1.0, 0)
            content, msg_id = item
            ts, nonce = str(int(time.time())), secrets.token_hex(5)
            query = urlencode(
                {"signature": sign(TOKEN, ts, nonce), "timestamp": ts, "nonce": nonce}
            )
            request = urllib.request.Request(
                f"{url}?{query}", data=message("oBENCH" + str(msg_id % 97), content, msg_id)
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                    body, status = response.read(), response.status
            except OSError:
                return (time.monotonic() - started, 0)
            with lock:
                replies.setdefault(msg_id, []).append(body)
            return (time.monotonic() - started, status)

        began = time.monotonic()
        with ThreadPoolExecutor(args.concurrency) as pool:
            results = list(pool.map(send, plan))
        elapsed = time.monotonic() - began
        sent = [(t, s) for t, s in results if t >= 0]
        times = sorted(t * 1000 for t, _ in sent)
        errors = sum(1 for _, s in sent if s != 200)
        late = sum(1 for t, _ in sent if t > WECHAT_WAIT_SECONDS)
        retried = [bodies for bodies in replies.values() if len(bodies) > 1]
        differing = sum(1 for bodies in retried if len(set(bodies)) > 1)
        print(f"messages: {len(sent)} in {elapsed:.1f} s, {len(sent) / elapsed:.0f}/s, "
              f"{args.concurrency} in flight, {args.workers} gunicorn workers")  # fmt: skip
        print(
            f"latency: p50 {statistics.median(times):.1f} ms, "
            f"p99 {times[int(len(times) * 0.99) - 1]:.1f} ms, max {times[-1]:.1f} ms"
        )
        print(f"answered after WeChat's 5 s: {late}; errors: {errors}")
        print(f"retried MsgIds: {len(retried)}, answered differently: {differing}")
        return 1 if errors or differing else 0
    finally:
        if server is not None and server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=20)
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
