"""The documentation runs: the commands in README and docs/ are executed or resolved here."""

from __future__ import annotations

import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

from tests.conftest import TEST_PASSWORD_HASH

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def code_blocks(path: Path) -> list[str]:
    """The shell blocks of a markdown file (fenced ```sh, ```bash or bare ```)."""
    blocks = re.findall(r"^```([\w-]*)\n(.*?)^```", path.read_text(), re.S | re.M)
    return [body for lang, body in blocks if lang in ("", "sh", "bash")]


def flask_lines(text: str) -> list[str]:
    lines = []
    for line in text.splitlines():
        line = line.split("  #")[0].strip()
        line = re.sub(r"^(\.venv/bin/)?flask ", "flask ", line)
        if line.startswith("flask --app app "):
            lines.append(line)
    return lines


def clean_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(DATA_DIR=str(tmp_path / "data"), PASSWORD_HASH_METHOD=TEST_PASSWORD_HASH)
    return env


def test_readme_shows_the_two_commands_first():
    first = code_blocks(ROOT / "README.md")[0]
    commands = [line.split("#")[0].strip() for line in first.strip().splitlines()]
    assert commands[:2] == ["make run", "make test"]


def test_readme_commands_run_as_written(tmp_path):
    """Every `flask --app app ...` line of README's Commands section, in order, on a fresh
    database: each one exits 0, and together they do what the README says."""
    lines = flask_lines(
        (ROOT / "README.md").read_text().split("## Commands", 1)[1].split("\n## ", 1)[0]
    )
    assert lines[0] == "flask --app app db upgrade" and len(lines) >= 4
    env = clean_env(tmp_path)
    for line in lines:
        args = shlex.split(line)
        result = subprocess.run(
            [str(BIN / "flask"), *args[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr)
    check = subprocess.run(
        [
            str(BIN / "flask"),
            "--app",
            "app",
            "members",
            "grant",
            "reader2@example.com",
            "--tier",
            "年度会员",
            "--days",
            "1",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # The README's grant of 365 days is in force, so this one extends it.
    assert re.search(r"until \d{4}-\d\d-\d\d", check.stdout), check.stderr


def documented_commands() -> list[str]:
    found = []
    for path in DOCS:
        for block in code_blocks(path):
            for line in flask_lines(block):
                words = [w for w in shlex.split(line)[3:] if not w.startswith("-")]
                found.append(" ".join(words[:2]))
    return sorted(set(found))


@pytest.mark.parametrize("command", documented_commands())
def test_every_documented_flask_command_exists(tmp_path, command):
    result = subprocess.run(
        [str(BIN / "flask"), "--app", "app", *command.split(), "--help"],
        cwd=ROOT,
        env=clean_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "Usage:" in result.stdout


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_make_run(tmp_path: Path, port: int) -> subprocess.Popen:
    return subprocess.Popen(
        [
            "make",
            "--no-print-directory",
            "run",
            f"PORT={port}",
            "HOST=127.0.0.1",
            f"VENV={BIN.parent}",
        ],
        cwd=ROOT,
        env=clean_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def wait_for(url: str, process: subprocess.Popen, seconds: float = 180) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"make run exited early:\n{process.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 (loopback)
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"{url} did not answer within {seconds}s")


def stop(process: subprocess.Popen) -> str:
    os.killpg(process.pid, signal.SIGTERM)
    try:
        output, _ = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
    return output


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (loopback)
        return response.status, response.read().decode()


def test_make_run_serves_the_site_with_demo_data_twice(tmp_path):
    """`make run` migrates, loads the demo data, prints the logins and serves; a second run
    reuses the same database and prints the same logins."""
    outputs = []
    for _ in range(2):
        port = free_port()
        process = start_make_run(tmp_path, port)
        try:
            wait_for(f"http://127.0.0.1:{port}/healthz", process)
            status, body = get(f"http://127.0.0.1:{port}/")
            assert status == 200 and "晨读" in body
            status, body = get(f"http://127.0.0.1:{port}/login")
            assert status == 200
            assert html_has_csrf(body)
        finally:
            outputs.append(stop(process))
    logins = [re.findall(r"(\w+@example\.com)\s+(demo-\w+)", out) for out in outputs]
    assert [email for email, _ in logins[0]] == [
        "reader@example.com",
        "member@example.com",
        "editor@example.com",
    ]
    assert logins[0] == logins[1]
    assert (tmp_path / "data" / "chendu.db").exists()


def html_has_csrf(body: str) -> bool:
    return BeautifulSoup(body, "html.parser").select_one("input[name=csrf_token]") is not None
