"""Notifications: an answer tells the asker; the unread badge on the 我的 tab (loaded by htmx,
never cached, nothing for a reader who is not signed in); /me/notifications lists a member's
own notices, newest first, and marks them read; and the nickname the board shows, set on /me."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from werkzeug.datastructures import MultiDict

from app import db
from board import posts
from board.models import Notification
from members import accounts
from members.models import Role, User
from tests.conftest import csrf_token_from, html, post_form


@pytest.fixture
def people(app):
    """A member asker, a member answerer and an editor."""
    with app.app_context():
        ids = {}
        for name in ("asker", "answerer", "editor"):
            role = Role.EDITOR if name == "editor" else Role.READER
            ids[name] = accounts.create_user(f"{name}@example.com", "correct horse", role=role).id
        for name in ("asker", "answerer"):
            accounts.grant_membership(f"{name}@example.com", "年度会员", 365, reason="测试")
    return ids


def who(people, name: str) -> User:
    user = db.session.get(User, people[name])
    user.is_authenticated  # noqa: B018 (flask-login's UserMixin property)
    return user


def ask(app, people, title: str = "怎样坚持每天早起读书？") -> int:
    with app.app_context():
        form = MultiDict({"section": "1", "title": title, "tags": "", "body": "坚持不了。"})
        return posts.start_thread(who(people, "asker"), posts.check_thread(form)).id


def answer(app, people, thread_id: int, text: str = "早睡。") -> int:
    with app.app_context():
        return posts.answer(who(people, "answerer"), thread_id, text).id


def badge(client) -> str:
    response = client.get("/me/notifications/count", headers={"HX-Request": "true"})
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    return html(response).get_text(" ", strip=True)


def test_an_answer_tells_the_asker(app, client, login, people):
    thread_id = ask(app, people)
    answer_id = answer(app, people, thread_id)
    with app.app_context():
        notice = db.session.scalars(select(Notification)).one()
        assert (notice.user_id, notice.kind) == (people["asker"], "answered")
        assert (notice.thread_id, notice.post_id) == (thread_id, answer_id)
        assert posts.unread_count(people["asker"]) == 1
        assert posts.unread_count(people["answerer"]) == 0


def test_the_page_lists_newest_first_links_to_the_answer_and_marks_read(
    app, client, clock, login, people
):
    first = ask(app, people, "第一个问题是什么")
    answer(app, people, first)
    clock.advance(minutes=5)
    second = ask(app, people, "第二个问题是什么")
    answer_id = answer(app, people, second)
    login("asker@example.com")
    assert badge(client) == "2 条未读通知"
    page = html(client.get("/me/notifications"))
    items = page.select("#notifications [data-notification]")
    assert len(items) == 2
    assert "第二个问题是什么" in items[0].get_text()  # newest first
    assert items[0].select_one("a")["href"] == f"/board/t/{second}#p{answer_id}"
    assert all("unread" in item["class"] for item in items)
    assert "未读" in items[0].select_one(".badge").get_text()
    assert "2026-11-21 08:05" in items[0].get_text()  # Shanghai time
    assert page.select_one("nav.tabbar a[aria-current=page]").get_text(strip=True) == "我的"
    # Seen once: read now, the badge empty.
    assert badge(client) == ""
    page = html(client.get("/me/notifications"))
    items = page.select("#notifications [data-notification]")
    assert len(items) == 2 and not any("unread" in item["class"] for item in items)
    assert page.select_one("#notifications .badge") is None
    with app.app_context():
        assert posts.unread_count(people["asker"]) == 0


def test_a_hidden_post_tells_its_author_why(app, client, login, people):
    thread_id = ask(app, people)
    answer_id = answer(app, people, thread_id, "加我微信买课。")
    with app.app_context():
        posts.hide(who(people, "editor"), answer_id, "广告引流")
    login("answerer@example.com")
    assert badge(client) == "1 条未读通知"
    item = html(client.get("/me/notifications")).select_one("#notifications [data-kind=hidden]")
    assert "原因：广告引流" in item.get_text()
    assert item.select_one("a")["href"] == f"/board/t/{thread_id}#p{answer_id}"


def test_nobody_sees_another_members_notifications(app, client, login, people):
    thread_id = ask(app, people, "只属于提问者的问题")
    answer(app, people, thread_id)
    login("answerer@example.com")
    assert badge(client) == ""
    page = html(client.get("/me/notifications"))
    assert page.select("#notifications [data-notification]") == []
    assert "只属于提问者的问题" not in page.get_text()
    assert "还没有通知" in page.get_text()
    with app.app_context():  # and looking did not mark the asker's read
        assert posts.unread_count(people["asker"]) == 1


def test_strangers_are_sent_to_log_in_and_get_no_badge(app, client, people):
    response = client.get("/me/notifications")
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    # A poll from a page whose session has ended empties the badge instead of moving the page.
    response = client.get("/me/notifications/count", headers={"HX-Request": "true"})
    assert response.status_code == 200 and response.get_data(as_text=True) == ""
    assert "HX-Redirect" not in response.headers
    page = html(client.get("/"))
    assert page.select_one(".tab-unread") is None
    assert page.select_one("[hx-get*='notifications']") is None


def test_the_badge_sits_on_the_me_tab_for_signed_in_users(app, client, login, people):
    login("asker@example.com")
    for path in ("/", "/me", "/board/"):
        page = html(client.get(path))
        tabs = page.select("nav.tabbar a.tab")
        spot = page.select("nav.tabbar .tab-unread")
        assert len(spot) == 1, path
        assert spot[0].find_parent("a") is tabs[-1]  # 我的
        assert spot[0]["hx-get"] == "/me/notifications/count"
        assert spot[0]["hx-trigger"] == "load, every 60s"
        assert spot[0].get_text() == ""  # filled by htmx; without JavaScript, simply absent


def test_me_links_to_the_notifications(client, login, people):
    login("asker@example.com")
    page = html(client.get("/me"))
    assert page.select_one(".menu a[href='/me/notifications']").get_text() == "通知"


# --- the nickname ------------------------------------------------------------------------------


def test_a_member_sets_and_clears_a_nickname(app, client, login, people):
    login("asker@example.com")
    form = html(client.get("/me")).select_one("#nickname-form")
    assert form["action"] == "/me/nickname" and form.select_one("#f-nickname")["value"] == ""
    response = post_form(
        client, "/me/nickname", {"nickname": "  早起的 \t 鸟儿 "}, token_from="/me"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/me#nickname"
    page = html(client.get("/me"))
    assert "昵称已保存" in page.select_one("#notice").get_text()
    assert page.select_one("#f-nickname")["value"] == "早起的 鸟儿"
    assert "「早起的 鸟儿」" in page.select_one("#nickname").get_text()
    with app.app_context():
        assert db.session.get(User, people["asker"]).display_name == "早起的 鸟儿"
    response = post_form(client, "/me/nickname", {"nickname": ""}, token_from="/me")
    assert response.status_code == 303
    with app.app_context():
        user = db.session.get(User, people["asker"])
        assert user.nickname is None and user.display_name.endswith("号会员")


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("我", "2 到 24"),
        ("长" * 25, "2 到 24"),
        ("a\x00b", "控制字符"),
        ("小\u200b明", "控制字符"),
        ("\u202eevil", "控制字符"),
        ("me@example.com", "邮箱"),
        ("me＠example．com", "邮箱"),
        ("13800138000", "电话"),
        ("138-0013-8000", "电话"),
        ("１３８００１３８０００", "电话"),
        ("1 号会员", "网站给"),
        ("读者12", "网站给"),
    ],
)
def test_a_bad_nickname_is_refused_with_a_message(app, client, login, people, typed, message):
    login("asker@example.com")
    response = post_form(client, "/me/nickname", {"nickname": typed}, token_from="/me")
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one("#e-nickname").get_text()
    assert page.select_one("#f-nickname")["aria-invalid"] == "true"
    with app.app_context():
        assert db.session.get(User, people["asker"]).nickname is None


def test_good_nicknames_are_kept_as_typed(app):
    with app.app_context():
        for name in ("晨读君", "Li Lei", "读书2024", "👩‍💻 程序员", "小明@读书会"):
            assert accounts.check_nickname(name) == name


def test_the_nickname_form_needs_the_form_token_and_a_login(app, client, login, people):
    token = csrf_token_from(client, "/login")
    response = client.post("/me/nickname", data={"csrf_token": token, "nickname": "晨读君"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    login("asker@example.com")
    assert client.post("/me/nickname", data={"nickname": "晨读君"}).status_code == 400
    with app.app_context():
        assert db.session.get(User, people["asker"]).nickname is None
