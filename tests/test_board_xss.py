"""Members' posts carry nothing live: a corpus of XSS payloads (tests/fixtures/
xss_payloads.txt) is posted as thread titles, bodies and answers, and the pages that show
them are searched for anything a browser would run or fetch. The browser twin of this test
(test_browser_board_xss.py) loads the same pages in Chromium with `alert` trapped."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from bs4 import BeautifulSoup
from werkzeug.datastructures import MultiDict

from app import db
from board import markup, posts
from members import accounts
from members.models import User

CORPUS = Path(__file__).parent / "fixtures" / "xss_payloads.txt"
PER_THREAD = 10

ALLOWED_TAGS = markup.TAGS
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "background", "srcset", "data", "ping"}
SAFE_HREF = re.compile(r"^(https?://|mailto:)", re.I)


def payloads() -> list[str]:
    lines = CORPUS.read_text(encoding="utf-8").splitlines()
    return [line.replace("\\n", "\n") for line in lines if line and not line.startswith("# ")]


def test_the_corpus_is_large_enough():
    assert len(payloads()) >= 100


def live_parts(fragment: str) -> list[str]:
    """What in an HTML fragment could run script, fetch from elsewhere or drive htmx."""
    found = []
    for tag in BeautifulSoup(fragment, "html.parser").find_all(True):
        if tag.name not in ALLOWED_TAGS:
            found.append(f"<{tag.name}>")
        for name, value in tag.attrs.items():
            value = " ".join(value) if isinstance(value, list) else value
            lowered = name.lower()
            if lowered.startswith("on") or "hx-" in lowered or lowered in ("style", "srcdoc"):
                found.append(f"{tag.name}[{name}]")
            if lowered in URL_ATTRIBUTES:
                if tag.name == "a" and lowered == "href" and SAFE_HREF.match(value):
                    continue
                if tag.name == "img" and lowered == "src" and markup.MEDIA_SRC.fullmatch(value):
                    continue
                found.append(f"{tag.name}[{name}={value!r}]")
        if tag.name == "a" and "href" in tag.attrs:
            rel = set(tag.get("rel") or [])
            if not {"nofollow", "ugc", "noopener"} <= rel:
                found.append(f"a without rel=nofollow ugc noopener: {tag}")
    return found


@pytest.mark.parametrize("payload", payloads())
def test_the_renderer_leaves_nothing_live(payload):
    assert live_parts(markup.render(payload)) == []


@pytest.fixture
def posted(app):
    """Every payload posted: as the title and body of a thread and as its answers."""
    app.config["BOARD_POST_LIMIT"] = 10_000
    corpus = payloads()
    with app.app_context():
        for email in ("asker@example.com", "answerer@example.com"):
            accounts.create_user(email, "correct horse")
            accounts.grant_membership(email, "年度会员", 365, reason="测试")
        asker = db.session.scalar(db.select(User).filter_by(email="asker@example.com"))
        answerer = db.session.scalar(db.select(User).filter_by(email="answerer@example.com"))
        threads = []
        for start in range(0, len(corpus), PER_THREAD):
            chunk = corpus[start : start + PER_THREAD]
            title = " ".join(chunk[0].split())[: posts.TITLE_MAX]
            if len(title) < posts.TITLE_MIN:
                title = f"标题 {title}"
            form = MultiDict({"section": "1", "title": title, "tags": "", "body": chunk[0]})
            thread = posts.start_thread(asker, posts.check_thread(form))
            for payload in chunk:
                posts.answer(answerer, thread.id, payload)
            threads.append(thread.id)
    return threads


def test_thread_pages_carry_nothing_live(client, posted):
    for thread_id in posted:
        response = client.get(f"/board/t/{thread_id}")
        assert response.status_code == 200
        page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        bodies = page.select(".post-body")
        assert len(bodies) == PER_THREAD + 1 or thread_id == posted[-1]
        for body in bodies:
            assert body.has_attr("hx-disable")
            assert live_parts(body.decode_contents()) == []
        # Titles are text wherever they stand: no element of the page comes from a payload.
        for script in page.find_all("script"):
            assert script.get("src", "").startswith("/static/"), script
        assert not page.select("[onerror], [onload], [onclick], [onfocus], [onmouseover]")


def test_lists_carry_nothing_live(client, posted):
    for path in ("/board/", "/board/s/wenda", "/"):
        response = client.get(path)
        assert response.status_code == 200
        page = BeautifulSoup(response.get_data(as_text=True), "html.parser")
        for script in page.find_all("script"):
            assert script.get("src", "").startswith("/static/"), script
        assert not page.select("[onerror], [onload], [onclick], [onfocus], [onmouseover]")
        assert not page.select("svg script, iframe, object, embed")
