"""The moderation desk (/editor/board): only editors and admins get in; the queue of reported
posts; hide, restore, dismiss, lock, pin and move, each with a reason that is logged with the
moderator as the actor (no reason: 422, the message next to the field, nothing changed); the
author told why their post was hidden, which then vanishes for everyone else; the log; and the
section forms."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app import db
from board import posts
from board.models import ModerationAction, Notification, Post, Report, Section, Thread
from members import accounts
from members.models import Role, User
from tests.conftest import csrf_token_from, html, post_form

ROLES = ("author", "member", "reader", "editor", "admin")


@pytest.fixture
def people(app):
    """The author and another member (both members), a reader, an editor and an admin (the
    last three without membership)."""
    with app.app_context():
        ids = {}
        for name in ROLES:
            role = {"editor": Role.EDITOR, "admin": Role.ADMIN}.get(name, Role.READER)
            ids[name] = accounts.create_user(f"{name}@example.com", "correct horse", role=role).id
        for name in ("author", "member"):
            accounts.grant_membership(f"{name}@example.com", "年度会员", 365, reason="测试")
    return ids


def who(people, name: str) -> User:
    user = db.session.get(User, people[name])
    user.is_authenticated  # noqa: B018 (flask-login's UserMixin property)
    return user


@pytest.fixture
def board(app, people):
    """A question by the author, answered by the member, whose answer the author reports;
    the ids of the thread, its opening post and the answer."""
    with app.app_context():
        form = MultiDict(
            {
                "section": "1",
                "title": "怎样坚持每天早起读书？",
                "tags": "习惯",
                "body": "总是坚持不了。",
            }
        )
        thread = posts.start_thread(who(people, "author"), posts.check_thread(form))
        opening, _ = posts.posts_of(thread.id)
        reply = posts.answer(who(people, "member"), thread.id, "加我微信 <b>买课</b>，包你早起。")
        posts.report(who(people, "author"), reply.id, "广告")
        return {"thread": thread.id, "opening": opening.id, "answer": reply.id}


def log_in_as(client, login, name: str) -> None:
    if name != "anonymous":
        login(f"{name}@example.com")


def state(app) -> dict[str, object]:
    """Everything a desk action could change."""
    with app.app_context():
        return {
            "log": db.session.scalar(select(func.count()).select_from(ModerationAction)),
            "posts": db.session.execute(
                select(Post.id, Post.hidden_at, Post.hidden_reason).order_by(Post.id)
            ).all(),
            "threads": db.session.execute(
                select(Thread.id, Thread.locked, Thread.pinned, Thread.section_id).order_by(
                    Thread.id
                )
            ).all(),
            "reports": db.session.execute(
                select(Report.id, Report.resolved_at, Report.outcome).order_by(Report.id)
            ).all(),
            "sections": db.session.execute(
                select(Section.id, Section.slug, Section.name, Section.is_qa).order_by(Section.id)
            ).all(),
            "notifications": db.session.scalar(select(func.count()).select_from(Notification)),
        }


def pages(ids) -> list[str]:
    return [
        "/editor/board/",
        f"/editor/board/p/{ids['answer']}",
        "/editor/board/log",
        "/editor/board/sections",
        "/editor/board/sections/1",
    ]


def actions(ids) -> list[tuple[str, dict[str, str]]]:
    """Every desk action with what would make it succeed."""
    post, thread = ids["answer"], ids["thread"]
    reason = {"reason": "测试"}
    return [
        (f"/editor/board/p/{post}/dismiss", reason),
        (f"/editor/board/p/{post}/hide", reason),
        (f"/editor/board/p/{post}/restore", reason),
        (f"/editor/board/t/{thread}/lock", reason),
        (f"/editor/board/t/{thread}/unlock", reason),
        (f"/editor/board/t/{thread}/pin", reason),
        (f"/editor/board/t/{thread}/unpin", reason),
        (f"/editor/board/t/{thread}/move", {**reason, "section": "4"}),
        ("/editor/board/sections", {"slug": "dushu", "name": "读书会"}),
        ("/editor/board/sections/1", {"slug": "wenda", "name": "提问"}),
    ]


# --- who may use it --------------------------------------------------------------------------


def test_strangers_are_sent_to_log_in(app, client, board):
    before = state(app)
    for path in pages(board):
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    token = csrf_token_from(client, "/login")
    for path, data in actions(board):
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    assert state(app) == before


@pytest.mark.parametrize("name", ["reader", "member", "author"])
def test_readers_members_and_the_author_get_403_and_change_nothing(app, client, login, board, name):
    log_in_as(client, login, name)
    before = state(app)
    for path in pages(board):
        assert client.get(path).status_code == 403, path
    token = csrf_token_from(client, "/me")
    for path, data in actions(board):
        response = client.post(path, data={"csrf_token": token, **data})
        assert response.status_code == 403, path
    assert state(app) == before


@pytest.mark.parametrize("name", ["editor", "admin"])
def test_editors_and_admins_open_every_page(app, client, login, board, name):
    log_in_as(client, login, name)
    for path in pages(board):
        assert client.get(path).status_code == 200, path
    nav = html(client.get("/editor/board/")).select_one(".desk-nav")
    link = nav.select_one("a[href='/editor/board/']")
    assert link.get_text() == "社群" and link.has_attr("aria-current")
    assert html(client.get("/editor/")).select_one(".desk-nav a[href='/editor/board/']")


@pytest.mark.parametrize("name", ["editor", "admin"])
def test_editors_and_admins_may_take_every_action(app, client, login, people, board, name):
    log_in_as(client, login, name)
    for path, data in actions(board):
        response = post_form(client, path, data, token_from="/editor/board/")
        assert response.status_code == 303, (path, response.get_data(as_text=True)[:2000])
    with app.app_context():
        logged = db.session.scalars(select(ModerationAction).order_by(ModerationAction.id)).all()
        assert [a.action for a in logged] == [
            "dismiss",
            "hide",
            "restore",
            "lock",
            "unlock",
            "pin",
            "unpin",
            "move",
        ]
        assert {(a.actor_id, a.reason) for a in logged} == {(people[name], "测试")}
        assert db.session.scalar(select(Section.name).where(Section.slug == "dushu")) == "读书会"


@pytest.mark.parametrize(
    "path",
    [
        "/editor/board/p/999",
        "/editor/board/t/999",
        "/editor/board/sections/999",
        "/editor/board/p/abc",
    ],
)
def test_what_does_not_exist_is_404(client, login, board, path):
    login("editor@example.com")
    assert client.get(path).status_code == 404


def test_actions_on_what_does_not_exist_are_404_and_change_nothing(app, client, login, board):
    login("editor@example.com")
    before = state(app)
    for path in (
        "/editor/board/p/999/hide",
        "/editor/board/p/999/dismiss",
        "/editor/board/t/999/lock",
        "/editor/board/t/999/move",
        "/editor/board/sections/999",
        "/editor/board/t/1/explode",
    ):
        data = {"reason": "测试", "section": "2", "slug": "x", "name": "某某"}
        response = post_form(client, path, data, token_from="/editor/board/")
        assert response.status_code == 404, path
    assert state(app) == before


def test_desk_actions_need_the_form_token(app, client, login, board):
    login("editor@example.com")
    before = state(app)
    for path, data in actions(board):
        assert client.post(path, data=data).status_code == 400, path
    assert state(app) == before


# --- the queue and hiding --------------------------------------------------------------------


def test_the_queue_shows_reported_posts_most_reported_first(
    app, client, clock, login, people, board
):
    with app.app_context():
        second = posts.answer(who(people, "author"), board["thread"], "谢谢，我再想想。").id
        clock.advance(minutes=1)
        posts.report(who(people, "member"), second, "跑题")
        clock.advance(minutes=1)
        posts.report(who(people, "member"), board["opening"], "标题党")
        accounts.create_user("third@example.com", "correct horse")
        accounts.grant_membership("third@example.com", "年度会员", 365, reason="测试")
        third = db.session.scalar(select(User).where(User.email == "third@example.com"))
        posts.report(third, board["answer"], "广告，还留了微信")
    login("editor@example.com")
    page = html(client.get("/editor/board/"))
    items = page.select("#queue [data-post]")
    assert items[0]["data-post"] == str(board["answer"])  # two reports
    # Then one report each, the one waiting longest first.
    assert [i["data-post"] for i in items[1:]] == [str(second), str(board["opening"])]
    first = items[0]
    assert "2 次举报" in first.get_text()
    assert "读者" in first.get_text() or "号会员" in first.get_text()  # the author's name
    assert "member@example.com" not in first.get_text()  # never an email
    link = first.select_one(".board-thread-title a")
    assert link.get_text() == "怎样坚持每天早起读书？"
    assert link["href"] == f"/board/t/{board['thread']}#p{board['answer']}"
    reasons = [r.get_text() for r in first.select(".board-reason")]
    assert reasons == ["广告", "广告，还留了微信"]  # oldest first
    excerpt = first.select_one(".board-excerpt")
    assert excerpt.get_text() == "加我微信 <b>买课</b>，包你早起。"  # shown as text
    assert excerpt.find("b") is None
    assert "2 次举报" not in items[1].get_text()


def test_hiding_from_the_queue_tells_the_author_and_hides_it_from_others(
    app, client, login, people, board
):
    login("editor@example.com")
    response = post_form(
        client,
        f"/editor/board/p/{board['answer']}/hide",
        {"reason": "广告引流", "back": "queue"},
        token_from="/editor/board/",
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/editor/board/"
    page = html(client.get(response.headers["Location"]))
    assert "已隐藏" in page.select_one("#notice").get_text()
    assert page.select("#queue [data-post]") == []
    with app.app_context():
        post = db.session.get(Post, board["answer"])
        assert post.hidden_reason == "广告引流"
        assert not posts.may_see(who(people, "author"), post)  # the asker, not its author
        assert posts.may_see(who(people, "member"), post)  # its author
        assert posts.may_see(who(people, "editor"), post)
        assert db.session.get(Thread, board["thread"]).answer_count == 0
        action = db.session.scalars(select(ModerationAction)).one()
        assert (action.action, action.reason, action.post_id) == ("hide", "广告引流", post.id)
        assert action.actor_id == people["editor"]
        notice = db.session.scalars(
            select(Notification).where(Notification.user_id == people["member"])
        ).one()
        assert notice.kind == "hidden" and notice.text.endswith("原因：广告引流")
        report = db.session.scalars(select(Report)).one()
        assert report.outcome == "hidden" and report.resolved_by == people["editor"]
    # On the public thread page, the answer is gone for the asker and kept for its author.
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/me")})
    login("author@example.com")
    assert "包你早起" not in client.get(f"/board/t/{board['thread']}").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": csrf_token_from(client, "/me")})
    login("member@example.com")
    assert "包你早起" in client.get(f"/board/t/{board['thread']}").get_data(as_text=True)


def test_hiding_the_opening_post_takes_the_thread_off_the_lists_and_restoring_brings_it_back(
    app, client, login, people, board
):
    login("admin@example.com")
    path = f"/editor/board/p/{board['opening']}"
    response = post_form(client, f"{path}/hide", {"reason": "重复发帖"}, token_from=path)
    assert response.status_code == 303 and response.headers["Location"] == path
    page = html(client.get(path))
    assert "已隐藏" in page.select_one("#post-status").get_text()
    assert "重复发帖" in page.select_one("#post-status").get_text()
    assert page.select_one("#form-restore") and not page.select_one("#form-hide")
    with app.app_context():
        assert (
            board["thread"]
            not in db.session.scalars(posts.listing().with_only_columns(Thread.id)).all()
        )
    response = post_form(client, f"{path}/restore", {"reason": "作者解释过了"}, token_from=path)
    assert response.status_code == 303
    with app.app_context():
        assert db.session.get(Post, board["opening"]).hidden_at is None
        assert (
            board["thread"]
            in db.session.scalars(posts.listing().with_only_columns(Thread.id)).all()
        )
        logged = db.session.execute(
            select(
                ModerationAction.action, ModerationAction.reason, ModerationAction.actor_id
            ).order_by(ModerationAction.id)
        ).all()
        assert logged == [
            ("hide", "重复发帖", people["admin"]),
            ("restore", "作者解释过了", people["admin"]),
        ]
    page = html(client.get(path))
    rows = page.select("#thread-log [data-action]")
    assert [r["data-action"] for r in rows] == ["restore", "hide"]  # newest first
    assert "admin@example.com" in rows[0].get_text() and "作者解释过了" in rows[0].get_text()


# --- every action needs a reason -------------------------------------------------------------


@pytest.mark.parametrize(
    ("action", "target", "form_id"),
    [
        ("hide", "p", "hide"),
        ("dismiss", "p", "dismiss"),
        ("lock", "t", "lock"),
        ("pin", "t", "pin"),
        ("move", "t", "move"),
    ],
)
@pytest.mark.parametrize("reason", ["", "   ", "原" * 201])
def test_an_action_without_a_good_reason_is_422_and_changes_nothing(
    app, client, login, board, action, target, form_id, reason
):
    login("editor@example.com")
    before = state(app)
    target_id = board["answer"] if target == "p" else board["thread"]
    data = {"reason": reason, "section": "4", "post": str(board["answer"])}
    response = post_form(
        client,
        f"/editor/board/{target}/{target_id}/{action}",
        data,
        token_from=f"/editor/board/p/{board['answer']}",
    )
    assert response.status_code == 422
    page = html(response)
    error = page.select_one(f"#form-{form_id} #e-{form_id}-reason")
    assert error is not None and ("原因" in error.get_text())
    assert page.select_one(f"#f-{form_id}-reason")["aria-invalid"] == "true"
    assert page.select_one("#action-error") is not None
    assert state(app) == before


def test_a_refused_action_keeps_what_was_typed_and_says_why(app, client, login, people, board):
    login("editor@example.com")
    with app.app_context():
        posts.hide(who(people, "admin"), board["answer"], "广告")
    before = state(app)
    path = f"/editor/board/p/{board['answer']}"
    response = post_form(client, f"{path}/hide", {"reason": "也是广告"}, token_from=path)
    assert response.status_code == 409
    assert "已经隐藏" in html(response).select_one("#action-error").get_text()
    response = post_form(
        client,
        f"/editor/board/t/{board['thread']}/move",
        {"reason": "换个地方", "section": "1", "post": str(board["answer"])},
        token_from=path,
    )
    assert response.status_code == 409
    page = html(response)
    assert "已经在这个版块" in page.select_one("#e-move-section").get_text()
    assert page.select_one("#f-move-reason")["value"] == "换个地方"
    response = post_form(
        client,
        f"/editor/board/t/{board['thread']}/move",
        {"reason": "换个地方", "section": "99"},
        token_from=path,
    )
    assert response.status_code == 422
    assert "请选择一个版块" in html(response).select_one("#e-move-section").get_text()
    assert state(app) == before


# --- lock, pin, move, dismiss ----------------------------------------------------------------


def test_lock_pin_and_move_are_logged_with_their_reasons(app, client, login, people, board):
    login("editor@example.com")
    path = f"/editor/board/p/{board['answer']}"
    thread = f"/editor/board/t/{board['thread']}"
    steps = [
        (f"{thread}/lock", {"reason": "讨论结束"}),
        (f"{thread}/pin", {"reason": "好问题"}),
        (f"{thread}/move", {"reason": "更像经验分享", "section": "4"}),
    ]
    for action, data in steps:
        response = post_form(
            client, action, {**data, "post": str(board["answer"])}, token_from=path
        )
        assert response.status_code == 303
        assert response.headers["Location"] == path  # back to the post it came from
    page = html(client.get(path))
    assert "已锁定" in page.select_one("#thread-flags").get_text()
    assert "已置顶" in page.select_one("#thread-flags").get_text()
    assert page.select_one("#thread-section").get_text() == "知识分享"
    assert page.select_one("#form-unlock") and page.select_one("#form-unpin")
    with app.app_context():
        thread_row = db.session.get(Thread, board["thread"])
        assert (thread_row.locked, thread_row.pinned, thread_row.section.slug) == (
            True,
            True,
            "zhishi",
        )
        logged = db.session.execute(
            select(
                ModerationAction.action,
                ModerationAction.reason,
                ModerationAction.detail,
                ModerationAction.actor_id,
            ).order_by(ModerationAction.id)
        ).all()
        assert logged == [
            ("lock", "讨论结束", "", people["editor"]),
            ("pin", "好问题", "", people["editor"]),
            ("move", "更像经验分享", "问答 → 知识分享", people["editor"]),
        ]
        with pytest.raises(posts.BoardError, match="锁定"):
            posts.answer(who(people, "author"), board["thread"], "还想补充")
    response = post_form(client, f"{thread}/unlock", {"reason": "作者有补充"}, token_from=path)
    assert response.status_code == 303
    with app.app_context():
        assert not db.session.get(Thread, board["thread"]).locked


def test_dismissing_closes_the_reports_and_keeps_the_post(app, client, login, people, board):
    login("admin@example.com")
    response = post_form(
        client,
        f"/editor/board/p/{board['answer']}/dismiss",
        {"reason": "正常推荐", "back": "queue"},
        token_from="/editor/board/",
    )
    assert response.status_code == 303 and response.headers["Location"] == "/editor/board/"
    page = html(client.get("/editor/board/"))
    assert "已驳回 1 条举报" in page.select_one("#notice").get_text()
    assert page.select("#queue [data-post]") == []
    with app.app_context():
        post = db.session.get(Post, board["answer"])
        assert post.visible
        report = db.session.scalars(select(Report)).one()
        assert report.outcome == "dismissed" and report.resolved_by == people["admin"]
        action = db.session.scalars(select(ModerationAction)).one()
        assert (action.action, action.reason) == ("dismiss", "正常推荐")
        assert db.session.scalar(select(func.count()).select_from(Notification)) == 1  # answered
    page = html(client.get(f"/editor/board/p/{board['answer']}"))
    assert "已驳回" in page.select_one("#reports").get_text()
    assert page.select_one("#form-dismiss") is None  # nothing left to dismiss


# --- the log ---------------------------------------------------------------------------------


def test_the_log_lists_every_action_newest_first_in_shanghai_time(
    app, client, clock, login, people, board
):
    with app.app_context():
        editor = who(people, "editor")
        for n in range(26):
            posts.set_flag(editor, board["thread"], "pinned", True, f"置顶 {n}")
            clock.advance(minutes=1)
            posts.set_flag(editor, board["thread"], "pinned", False, f"取消 {n}")
        posts.move(editor, board["thread"], "2", "这是求职")
    login("admin@example.com")
    page = html(client.get("/editor/board/log"))
    rows = page.select("#log [data-action]")
    assert len(rows) == 50
    first = rows[0]
    # 2026-11-21 00:00 UTC + 26 minutes = 08:26 in Shanghai.
    assert first.select_one(".board-log-time").get_text() == "2026-11-21 08:26"
    assert first.select_one(".board-log-actor").get_text() == "editor@example.com"
    assert first.select_one(".board-log-action").get_text() == "移动"
    thread = first.select_one(".board-log-thread")
    assert thread.get_text() == "怎样坚持每天早起读书？"
    assert thread["href"] == f"/editor/board/t/{board['thread']}"
    assert first.select_one(".board-log-reason").get_text() == "原因：这是求职"
    assert first.select_one(".board-log-detail").get_text() == "问答 → 求职"
    assert page.select_one(".pager a[href='/editor/board/log?page=2']").get_text() == "下一页"
    page = html(client.get("/editor/board/log?page=2"))
    assert len(page.select("#log [data-action]")) == 3
    assert client.get(f"/editor/board/t/{board['thread']}").headers["Location"] == (
        f"/editor/board/p/{board['opening']}"
    )


# --- sections --------------------------------------------------------------------------------


def test_an_editor_creates_and_edits_a_section(app, client, login, board):
    login("editor@example.com")
    response = post_form(
        client,
        "/editor/board/sections",
        {"slug": "dushu", "name": " 读书会 ", "description": "一起读", "is_qa": "1"},
    )
    assert response.status_code == 303
    page = html(client.get("/editor/board/sections"))
    assert "版块「读书会」已创建" in page.select_one("#notice").get_text()
    rows = page.select("#sections tr[data-section]")
    assert [r["data-section"] for r in rows] == ["wenda", "qiuzhi", "zhaopin", "zhishi", "dushu"]
    assert rows[0].select("td")[-1].get_text() == "1"  # the question is in 问答
    with app.app_context():
        section = db.session.scalar(select(Section).where(Section.slug == "dushu"))
        assert (section.name, section.is_qa, section.position) == ("读书会", True, 5)
        section_id = section.id
    path = f"/editor/board/sections/{section_id}"
    form = html(client.get(path)).select_one("#section-form")
    assert form.select_one("#f-name")["value"] == "读书会"
    assert form.select_one("input[name=is_qa]").has_attr("checked")
    response = post_form(
        client, path, {"slug": "dushu-hui", "name": "读书会", "description": "", "position": "0"}
    )
    assert response.status_code == 303
    with app.app_context():
        section = db.session.get(Section, section_id)
        assert (section.slug, section.is_qa, section.position) == ("dushu-hui", False, 0)
    assert html(client.get("/editor/board/sections")).select("#sections tr")[1]["data-section"] == (
        "dushu-hui"
    )


@pytest.mark.parametrize(
    ("field", "values", "message"),
    [
        ("slug", {"slug": ""}, "小写字母"),
        ("slug", {"slug": "Du Shu"}, "小写字母"),
        ("slug", {"slug": "a" * 41}, "1 到 40"),
        ("slug", {"slug": "dushu/../x"}, "小写字母"),
        ("slug", {"slug": "wenda"}, "已被另一个版块使用"),
        ("name", {"name": ""}, "请填写版块名称"),
        ("name", {"name": "名" * 21}, "最多 20"),
        ("name", {"name": "问答"}, "已被另一个版块使用"),
        ("description", {"description": "长" * 201}, "最多 200"),
        ("position", {"position": "第一"}, "整数"),
        ("position", {"position": "-1"}, "整数"),
        ("position", {"position": "100000"}, "整数"),
    ],
)
def test_a_bad_section_is_refused_with_a_message_and_nothing_saved(
    app, client, login, board, field, values, message
):
    login("editor@example.com")
    before = state(app)
    data = {"slug": "dushu", "name": "读书会", "description": "", "position": "", **values}
    response = post_form(client, "/editor/board/sections", data)
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one(f"#e-{field}").get_text()
    assert page.select_one("#section-form #f-slug")["value"] == data["slug"]  # kept as typed
    assert state(app) == before
    # The same checks when editing 求职.
    response = post_form(client, "/editor/board/sections/2", data)
    assert response.status_code == 422
    assert message in html(response).select_one(f"#e-{field}").get_text()
    assert state(app) == before
