"""Random titles, tags, bodies and section ids posted to the board's forms: the answer is
never a 500, and every field the rules refuse has its message next to it."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from board import posts
from board.posts import BoardError
from members import accounts
from tests.conftest import csrf_token_from, html

SETTINGS = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Any text, including control characters, surrogates' neighbours, RTL marks and emoji.
TEXT = st.text(max_size=200)
SECTION = st.one_of(
    st.integers(min_value=-(2**63), max_value=2**63).map(str),
    st.sampled_from(["1", "2", "4", "0", "5", "", " 1", "1.0", "abc", "１"]),
    st.text(max_size=20),
)
TAGS = st.one_of(
    TEXT,
    st.lists(st.text(min_size=1, max_size=20), max_size=8).map(" ".join),
)
# Bodies at the length limit: a long one made of a repeated piece of random text.
LONG = st.builds(
    lambda piece, n: (piece * (n // max(1, len(piece)) + 1))[:n],
    st.text(min_size=1, max_size=10),
    st.integers(min_value=posts.BODY_MAX - 5, max_value=posts.BODY_MAX + 5),
)
BODY = st.one_of(TEXT, LONG)


@pytest.fixture
def member(app, client, login):
    app.config["BOARD_POST_LIMIT"] = 1_000_000
    with app.app_context():
        accounts.create_user("member@example.com", "correct horse")
        accounts.grant_membership("member@example.com", "年度会员", 365, reason="测试")
    login("member@example.com")
    return csrf_token_from(client, "/board/new")


def expected_errors(app, form: dict[str, str]) -> dict[str, str]:
    with app.test_request_context():
        try:
            posts.check_thread(MultiDict(form))
        except BoardError as refused:
            return refused.errors
    return {}


@SETTINGS
@given(section=SECTION, title=TEXT, tags=TAGS, body=BODY)
def test_a_new_thread_form_never_fails(app, client, member, section, title, tags, body):
    form = {"section": section, "title": title, "tags": tags, "body": body}
    response = client.post("/board/new", data={"csrf_token": member, **form})
    assert response.status_code in (303, 422), response.status_code
    errors = expected_errors(app, form)
    if response.status_code == 303:
        assert not errors
        return
    assert errors
    page = html(response)
    for field, message in errors.items():
        shown = page.select_one(f"#e-{field}")
        assert shown is not None, f"no message next to {field}"
        assert shown.get_text(strip=True) == message


@SETTINGS
@given(body=BODY)
def test_an_answer_never_fails(app, client, member, body):
    with app.app_context():
        from app import db
        from members.models import User

        user = db.session.scalar(db.select(User).filter_by(email="member@example.com"))
        form = MultiDict({"section": "1", "title": "一个问题", "tags": "", "body": "正文"})
        thread_id = posts.start_thread(user, posts.check_thread(form)).id
    response = client.post(
        f"/board/t/{thread_id}/answer", data={"csrf_token": member, "body": body}
    )
    assert response.status_code in (303, 422), response.status_code
    if response.status_code == 422:
        assert html(response).select_one("#e-body") is not None
