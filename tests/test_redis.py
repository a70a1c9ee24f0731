"""REDIS_URL: several app machines share one Redis for their login limits (a real
redis-server on 127.0.0.1, each "machine" a process of its own); a Redis that stops answering
leaves logins working, limited in each process's memory meanwhile."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# One "app machine": its own data folder and database, the shared Redis, and N login
# attempts from the same client address; prints the statuses.
MACHINE = """
import json, re, sys
sys.path.insert(0, {root!r})
from tests.conftest import make_config, reset_database
from app import create_app
app = create_app(make_config({data!r}, REDIS_URL={redis!r}, LOGIN_RATE_LIMIT="3 per minute"))
with app.app_context():
    reset_database()
client = app.test_client()
statuses = []
for _ in range({attempts}):
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    form = {{"csrf_token": token, "email": "nobody@example.com", "password": "wrong"}}
    statuses.append(client.post("/login", data=form).status_code)
print(json.dumps(statuses))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def redis_url(tmp_path) -> Iterator[str]:
    setup = subprocess.run(
        ["bash", str(ROOT / "tests" / "tools" / "ensure_redis.sh")],
        capture_output=True,
        text=True,
        timeout=600,
    )
    server = shutil.which("redis-server")
    if setup.returncode != 0 or server is None:
        pytest.skip(f"no redis-server: {setup.stderr.strip()}")
    port = free_port()
    process = subprocess.Popen(
        [server, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline or process.poll() is not None:
                    pytest.fail("redis-server did not start")
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=20)


def machine(tmp_path: Path, name: str, redis: str, attempts: int) -> list[int]:
    code = MACHINE.format(root=str(ROOT), data=str(tmp_path / name), redis=redis, attempts=attempts)
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_two_app_machines_count_one_login_limit_in_redis(tmp_path, redis_url):
    import redis

    assert machine(tmp_path, "a", redis_url, 2) == [422, 422]  # wrong password, counted
    # The other machine knows of A's two attempts: its second is the fourth in a minute.
    assert machine(tmp_path, "b", redis_url, 2) == [422, 429]
    client = redis.Redis.from_url(redis_url)
    try:
        assert any(b"login" in key for key in client.keys("*")), client.keys("*")
    finally:
        client.close()


def test_without_redis_each_machine_counts_alone_and_logins_still_work(tmp_path):
    gone = f"redis://127.0.0.1:{free_port()}/0"  # nobody listens there
    assert machine(tmp_path, "a", gone, 2) == [422, 422]
    # Not shared (Redis is down), but still limited in the process's own memory.
    assert machine(tmp_path, "b", gone, 4) == [422, 422, 422, 429]
