"""The board's pages as readers, members, authors and editors meet them: lists with "load
more", a thread with its answers, votes toggled in place, acceptance, edits and revisions,
deleting, reports, uploads, the rate limit, members-only reading, and the board on the home
and article pages."""

from __future__ import annotations

from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import func, select

from app import db
from board import posts
from board.models import Post, Report, Thread
from content import articles
from content.articles import Draft
from members import accounts
from members.models import Role, User
from tests.conftest import csrf_token_from, html, post_form

MEMBERS = ("asker", "answerer")


@pytest.fixture
def people(app):
    """Two members (the asker and the answerer, with nicknames), a reader without membership
    and an editor (no membership either)."""
    with app.app_context():
        for name in ("asker", "answerer", "reader", "editor"):
            role = Role.EDITOR if name == "editor" else Role.READER
            accounts.create_user(f"{name}@example.com", "correct horse", role=role)
        for name in MEMBERS:
            accounts.grant_membership(f"{name}@example.com", "年度会员", 365, reason="测试")
        from app import write_transaction

        with write_transaction() as session:
            for user in session.scalars(select(User)):
                user.nickname = {"asker": "提问的小林", "answerer": "热心的老周"}.get(
                    user.email.split("@")[0]
                )
    return app


def client_of(app, name: str | None):
    """A browser of its own, signed in as `name` (None: an anonymous reader)."""
    client = app.test_client()
    if name is not None:
        response = post_form(
            client, "/login", {"email": f"{name}@example.com", "password": "correct horse"}
        )
        assert response.status_code == 302
    return client


def start(
    client, title="怎样坚持每天早起读书？", body="我总是坚持不了三天。", section="1", **extra
):
    data = {"section": section, "title": title, "tags": "习惯 阅读", "body": body, **extra}
    return post_form(client, "/board/new", data)


def answer(client, thread_id: int, body: str):
    return post_form(
        client, f"/board/t/{thread_id}/answer", {"body": body}, token_from=f"/board/t/{thread_id}"
    )


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def png(size=(40, 30)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (194, 65, 12)).save(out, "PNG")
    return out.getvalue()


@pytest.fixture
def thread(people):
    """A question by the asker with one answer by the answerer: (thread id, answer id)."""
    asker = client_of(people, "asker")
    response = start(asker)
    assert response.status_code == 303
    thread_id = int(response.headers["Location"].rsplit("/", 1)[1])
    response = answer(client_of(people, "answerer"), thread_id, "早睡，**闹钟放远一点**。")
    assert response.status_code == 303
    with people.app_context():
        reply = db.session.scalar(select(Post.id).where(Post.opening.is_(False)))
    return thread_id, reply


# --- reading -------------------------------------------------------------------------------


def test_the_board_lists_sections_and_the_latest_threads(people, thread, client):
    page = html(client.get("/board/"))
    sections = [a.get_text(" ", strip=True) for a in page.select(".board-section")]
    assert len(sections) == 4
    assert sections[0].startswith("问答") and "提问者可以采纳" in sections[0]
    latest = page.select("#thread-list .thread-item")
    assert len(latest) == 1
    assert "怎样坚持每天早起读书？" in latest[0].get_text()
    assert "1 个回答" in latest[0].get_text()
    # A reader is asked to join; no posting button.
    assert page.select_one(".join-prompt a[href='/join']") is not None
    assert page.select_one("a[href='/board/new']") is None


def test_a_thread_as_an_anonymous_reader_sees_it(people, thread, client):
    thread_id, reply = thread
    response = client.get(f"/board/t/{thread_id}")
    assert response.status_code == 200
    page = html(response)
    assert page.select_one("h1").get_text(strip=True) == "怎样坚持每天早起读书？"
    assert [a.get_text() for a in page.select(".tags a")] == ["#习惯", "#阅读"]
    assert page.select_one(".crumbs").get_text(" ", strip=True).endswith("问答")
    authors = [s.get_text() for s in page.select(".post-author")]
    assert authors == ["提问的小林", "热心的老周"]
    assert "@example.com" not in response.get_data(as_text=True)
    # Stored at 00:00 UTC, shown in Shanghai.
    assert page.select_one(".post-meta time").get_text() == "2026-11-21 08:00"
    body = page.select_one(f"#p{reply} .post-body")
    assert body.has_attr("hx-disable") and body.select_one("strong").get_text() == "闹钟放远一点"
    # No forms for a reader: a join prompt where the answer form would be.
    assert page.select_one("#answer-form") is None
    prompt = page.select_one("#answer .join-prompt")
    assert prompt.select_one("a[href='/join']") is not None
    assert prompt.select_one(f"a[href='/login?next=/board/t/{thread_id}']") is not None
    assert page.select_one("form.vote") is None
    assert page.select_one(".report-link") is None


def test_what_each_person_is_offered_on_a_thread(people, thread):
    thread_id, reply = thread
    page = html(client_of(people, "reader").get(f"/board/t/{thread_id}"))
    assert page.select_one("#answer .join-prompt") is not None
    assert page.select_one("form.vote") is None
    page = html(client_of(people, "editor").get(f"/board/t/{thread_id}"))
    assert page.select_one("#answer .join-prompt") is not None  # moderators need a membership
    page = html(client_of(people, "asker").get(f"/board/t/{thread_id}"))
    assert page.select_one("#answer-form textarea[name=body]") is not None
    # The asker: edit their question, vote and accept the answer, report it.
    opening = page.select_one("article.thread")
    assert {a.get_text() for a in opening.select(".post-actions a")} == {"编辑", "删除"}
    assert opening.select_one("form.vote") is None  # not on their own post
    mine = page.select_one(f"#p{reply}")
    assert mine.select_one("form.vote") is not None
    assert mine.select_one(f"form[action='/board/p/{reply}/accept']") is not None
    assert mine.select_one(f"a[href='/board/p/{reply}/report']") is not None
    page = html(client_of(people, "answerer").get(f"/board/t/{thread_id}"))
    assert page.select_one(f"#p{reply} a[href='/board/p/{reply}/edit']") is not None
    assert page.select_one(f"#p{reply} form[action$='/accept']") is None
    assert page.select_one("article.thread form.vote") is not None


@pytest.mark.parametrize("path", ["/board/t/999", "/board/s/nope", "/board/p/999/revisions"])
def test_unknown_things_are_404(people, client, path):
    assert client.get(path).status_code == 404


# --- starting threads and answering --------------------------------------------------------


def test_a_member_starts_a_thread_and_it_is_listed(people, client):
    member = client_of(people, "asker")
    form = html(member.get("/board/new?section=2"))
    assert form.select_one("#f-section option[selected]")["value"] == "2"
    response = start(member, section="2", title="出版社编辑五年，想转内容运营")
    assert response.status_code == 303
    with people.app_context():
        found = db.session.scalars(select(Thread)).one()
        assert found.section.slug == "qiuzhi" and found.tags == "习惯 阅读"
    assert response.headers["Location"] == f"/board/t/{found.id}"
    listing = html(client.get("/board/s/qiuzhi"))
    assert "出版社编辑五年" in listing.select_one("#thread-list").get_text()
    tagged = html(client.get("/board/tag/习惯"))
    assert "出版社编辑五年" in tagged.select_one("#thread-list").get_text()
    assert html(client.get("/board/tag/没有")).select_one("#thread-list .thread-item") is None


@pytest.mark.parametrize("name", [None, "reader", "editor"])
def test_who_is_not_a_member_cannot_post_and_sees_a_join_prompt(people, thread, name):
    thread_id, _ = thread
    client = client_of(people, name)
    page = client.get("/board/new")
    assert page.status_code == 403
    assert html(page).select_one(".join-prompt a[href='/join']") is not None
    token = csrf_token_from(client, "/board/")
    data = {"csrf_token": token, "section": "1", "title": "我也想发帖", "body": "内容"}
    assert client.post("/board/new", data=data).status_code == 403
    response = client.post(f"/board/t/{thread_id}/answer", data={"csrf_token": token, "body": "x"})
    assert response.status_code == 403
    assert html(response).select_one("#answer .join-prompt") is not None
    with people.app_context():
        assert count(Thread) == 1 and count(Post) == 2


@pytest.mark.parametrize(
    ("field", "data", "message"),
    [
        ("section", {"section": "99"}, "请选择一个版块"),
        ("title", {"title": "短"}, "标题至少"),
        ("tags", {"tags": "a b c d e f"}, "最多 5 个标签"),
        ("body", {"body": "   "}, "请写下内容"),
    ],
)
def test_a_bad_field_gets_its_message_next_to_it_and_keeps_the_rest(people, field, data, message):
    member = client_of(people, "asker")
    response = start(member, **data)
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one(f"#e-{field}").get_text()
    assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    if field != "title":
        assert page.select_one("#f-title")["value"] == "怎样坚持每天早起读书？"
    if field != "body":
        assert page.select_one("#f-body").get_text() == "我总是坚持不了三天。"
    with people.app_context():
        assert count(Thread) == 0


def test_the_sixth_post_in_ten_minutes_is_429_with_the_text_kept(people, thread, clock):
    thread_id, _ = thread
    member = client_of(people, "answerer")  # one answer already
    for n in range(4):
        assert answer(member, thread_id, f"第 {n} 条补充").status_code == 303
    response = answer(member, thread_id, "第六条：我打了很长一段话")
    assert response.status_code == 429
    page = html(response)
    assert "10 分钟内最多发 5 个" in page.select_one("#answer-form .error-box").get_text()
    assert page.select_one("#answer-form textarea").get_text() == "第六条：我打了很长一段话"
    response = start(member, title="第六个帖子的标题", body="新帖子的正文")
    assert response.status_code == 429
    page = html(response)
    assert "发得太快了" in page.select_one("#thread-form .error-box").get_text()
    assert page.select_one("#f-title")["value"] == "第六个帖子的标题"
    assert page.select_one("#f-body").get_text() == "新帖子的正文"
    with people.app_context():
        assert count(Post) == 6
    clock.advance(minutes=10, seconds=1)
    assert answer(member, thread_id, "第六条：我打了很长一段话").status_code == 303


def test_a_bad_answer_keeps_the_thread_page_with_the_message(people, thread):
    thread_id, _ = thread
    response = answer(client_of(people, "answerer"), thread_id, "   ")
    assert response.status_code == 422
    assert "请写下内容" in html(response).select_one("#e-body").get_text()


def test_a_locked_thread_says_so_and_takes_no_answer(people, thread):
    thread_id, _ = thread
    with people.app_context():
        editor = db.session.scalar(select(User).where(User.email == "editor@example.com"))
        posts.set_flag(editor, thread_id, "locked", True, "讨论结束")
    member = client_of(people, "answerer")
    page = html(member.get(f"/board/t/{thread_id}"))
    assert "已被锁定" in page.select_one(".locked-note").get_text()
    assert page.select_one("#answer-form") is None
    token = csrf_token_from(member, f"/board/t/{thread_id}")
    response = member.post(
        f"/board/t/{thread_id}/answer", data={"csrf_token": token, "body": "再说一句"}
    )
    assert response.status_code == 409
    with people.app_context():
        assert count(Post) == 2


def test_a_post_without_the_form_token_is_refused(people, thread):
    thread_id, reply = thread
    member = client_of(people, "answerer")
    assert (
        member.post(
            "/board/new", data={"section": "1", "title": "没有令牌的帖子", "body": "x"}
        ).status_code
        == 400
    )
    assert member.post(f"/board/t/{thread_id}/answer", data={"body": "x"}).status_code == 400
    asker = client_of(people, "asker")
    assert asker.post(f"/board/p/{reply}/vote").status_code == 400
    assert asker.post(f"/board/p/{reply}/accept").status_code == 400
    with people.app_context():
        assert count(Thread) == 1 and count(Post) == 2
        assert db.session.get(Post, reply).vote_count == 0
        assert not db.session.get(Post, reply).accepted


# --- votes and acceptance ------------------------------------------------------------------


def test_a_vote_toggles_in_place_with_htmx(people, thread):
    thread_id, reply = thread
    asker = client_of(people, "asker")
    token = csrf_token_from(asker, f"/board/t/{thread_id}")
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    response = asker.post(f"/board/p/{reply}/vote", headers=headers)
    assert response.status_code == 200
    fragment = html(response)
    assert fragment.select_one("html") is None  # only the button
    button = fragment.select_one("form.vote button")
    assert button["aria-pressed"] == "true" and button.select_one(".vote-count").get_text() == "1"
    fragment = html(asker.post(f"/board/p/{reply}/vote", headers=headers))
    button = fragment.select_one("form.vote button")
    assert button["aria-pressed"] == "false" and button.select_one(".vote-count").get_text() == "0"


def test_a_vote_without_js_redirects_back_to_the_post(people, thread):
    thread_id, reply = thread
    asker = client_of(people, "asker")
    response = post_form(asker, f"/board/p/{reply}/vote", {}, token_from=f"/board/t/{thread_id}")
    assert response.status_code == 303
    assert response.headers["Location"] == f"/board/t/{thread_id}#p{reply}"
    page = html(asker.get(f"/board/t/{thread_id}"))
    assert page.select_one(f"#p{reply} .vote-count").get_text() == "1"
    assert page.select_one(f"#p{reply} .vote-button")["aria-pressed"] == "true"


@pytest.mark.parametrize(("name", "voted"), [(None, 0), ("reader", 0), ("answerer", 0)])
def test_who_may_not_vote_changes_nothing(people, thread, name, voted):
    thread_id, reply = thread  # the answerer wrote the reply: no vote on one's own post
    client = client_of(people, name)
    token = csrf_token_from(client, f"/board/t/{thread_id}")
    response = client.post(
        f"/board/p/{reply}/vote", headers={"HX-Request": "true", "X-CSRFToken": token}
    )
    assert response.status_code in (403, 409)
    assert response.headers["HX-Retarget"] == "#notice"
    with people.app_context():
        assert db.session.get(Post, reply).vote_count == voted


def test_the_asker_accepts_and_the_answer_moves_to_the_top(people, thread):
    thread_id, first = thread
    asker = client_of(people, "asker")
    answer(asker, thread_id, "我自己先补充一点情况。")
    answer(client_of(people, "answerer"), thread_id, "第二个回答")
    with people.app_context():
        last = db.session.scalar(select(func.max(Post.id)))
    page = html(asker.get(f"/board/t/{thread_id}"))
    order = [div["id"] for div in page.select("#answers .post")]
    assert order[0] == f"p{first}"
    # Others may not accept.
    other = client_of(people, "answerer")
    refused = post_form(other, f"/board/p/{last}/accept", {}, token_from=f"/board/t/{thread_id}")
    assert refused.status_code == 403
    response = post_form(asker, f"/board/p/{last}/accept", {}, token_from=f"/board/t/{thread_id}")
    assert response.status_code == 303
    page = html(asker.get(response.headers["Location"]))
    assert "已采纳这个回答。" in page.select_one("#notice").get_text()
    top = page.select("#answers .post")[0]
    assert top["id"] == f"p{last}" and "post-accepted" in top["class"]
    assert top.select_one(".badge").get_text() == "已采纳"
    assert top.select_one("form[action$='/accept'] button").get_text() == "取消采纳"


def test_no_acceptance_outside_a_question_section(people):
    asker = client_of(people, "asker")
    response = start(asker, section="4", title="读书笔记的三个方法")
    thread_id = int(response.headers["Location"].rsplit("/", 1)[1])
    answer(client_of(people, "answerer"), thread_id, "谢谢分享")
    with people.app_context():
        reply = db.session.scalar(select(Post.id).where(Post.opening.is_(False)))
    page = html(asker.get(f"/board/t/{thread_id}"))
    assert page.select_one("form[action$='/accept']") is None
    response = post_form(asker, f"/board/p/{reply}/accept", {}, token_from=f"/board/t/{thread_id}")
    assert response.status_code == 409


# --- edits, revisions, deleting ------------------------------------------------------------


def test_the_author_edits_and_the_earlier_text_is_kept(people, thread):
    thread_id, reply = thread
    answerer = client_of(people, "answerer")
    page = html(answerer.get(f"/board/p/{reply}/edit"))
    assert page.select_one("#f-body").get_text() == "早睡，**闹钟放远一点**。"
    assert page.select_one("#f-title") is None  # an answer has only a body
    response = post_form(answerer, f"/board/p/{reply}/edit", {"body": "早睡早起，先从十点睡开始。"})
    assert response.status_code == 303
    page = html(answerer.get(f"/board/t/{thread_id}"))
    post = page.select_one(f"#p{reply}")
    assert "先从十点睡开始" in post.select_one(".post-body").get_text()
    edited = post.select_one(f"a[href='/board/p/{reply}/revisions']")
    assert edited.get_text() == "已编辑"
    page = html(answerer.get(f"/board/p/{reply}/revisions"))
    bodies = [b.get_text() for b in page.select(".post-body")]
    assert "先从十点睡开始" in bodies[0] and "闹钟放远一点" in bodies[1]


def test_the_opening_post_edit_changes_title_and_tags(people, thread):
    thread_id, _ = thread
    asker = client_of(people, "asker")
    with people.app_context():
        opening = posts.posts_of(thread_id)[0].id
    page = html(asker.get(f"/board/p/{opening}/edit"))
    assert page.select_one("#f-title")["value"] == "怎样坚持每天早起读书？"
    assert page.select_one("#f-tags")["value"] == "习惯 阅读"
    bad = post_form(asker, f"/board/p/{opening}/edit", {"title": "短", "tags": "", "body": "改"})
    assert bad.status_code == 422
    assert "标题至少" in html(bad).select_one("#e-title").get_text()
    data = {"title": "怎样每天早起读书", "tags": "早起", "body": "改过的正文"}
    assert post_form(asker, f"/board/p/{opening}/edit", data).status_code == 303
    page = html(asker.get(f"/board/t/{thread_id}"))
    assert page.select_one("h1").get_text(strip=True) == "怎样每天早起读书"
    assert [a.get_text() for a in page.select(".tags a")] == ["#早起"]


@pytest.mark.parametrize("name", [None, "reader", "asker", "editor"])
def test_only_the_author_may_edit_or_delete(people, thread, name):
    thread_id, reply = thread
    client = client_of(people, name)
    token = csrf_token_from(client, f"/board/t/{thread_id}")
    edit = client.get(f"/board/p/{reply}/edit")
    assert edit.status_code == (302 if name is None else 403)
    response = client.post(f"/board/p/{reply}/edit", data={"csrf_token": token, "body": "改掉"})
    assert response.status_code == (302 if name is None else 403)
    response = client.post(f"/board/p/{reply}/delete", data={"csrf_token": token})
    assert response.status_code == (302 if name is None else 403)
    with people.app_context():
        post = db.session.get(Post, reply)
        assert post.body_md == "早睡，**闹钟放远一点**。" and post.deleted_at is None


def test_a_deleted_answer_leaves_a_placeholder(people, thread):
    thread_id, reply = thread
    answerer = client_of(people, "answerer")
    confirm = html(answerer.get(f"/board/p/{reply}/delete"))
    assert (
        confirm.select_one(f"form[action='/board/p/{reply}/delete'] button").get_text()
        == "确认删除"
    )
    response = post_form(answerer, f"/board/p/{reply}/delete", {})
    assert response.status_code == 303
    assert response.headers["Location"] == f"/board/t/{thread_id}#p{reply}"
    page = html(client_of(people, None).get(f"/board/t/{thread_id}"))
    placeholder = page.select_one(f"#p{reply}")
    assert placeholder.get_text(strip=True) == "已删除"
    assert "闹钟" not in page.get_text()
    assert page.select_one("#answers h2").get_text() == "0 个回答"


def test_a_deleted_question_leaves_the_lists_but_its_answers_stay_readable(people, thread):
    thread_id, _ = thread
    asker = client_of(people, "asker")
    with people.app_context():
        opening = posts.posts_of(thread_id)[0].id
    response = post_form(
        asker, f"/board/p/{opening}/delete", {}, token_from=f"/board/p/{opening}/delete"
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/board/s/wenda"
    reader = client_of(people, None)
    assert html(reader.get("/board/")).select_one(".thread-item") is None
    page = html(reader.get(f"/board/t/{thread_id}"))
    assert page.select_one("article.thread .post-deleted").get_text() == "已删除"
    assert "我总是坚持不了三天" not in page.get_text()
    assert "闹钟放远一点" in page.get_text()
    assert page.select_one("#answer") is None  # no answering a deleted question


# --- hidden posts --------------------------------------------------------------------------


def test_hidden_posts_show_only_to_their_author_and_moderators(people, thread):
    thread_id, reply = thread
    with people.app_context():
        editor = db.session.scalar(select(User).where(User.email == "editor@example.com"))
        posts.hide(editor, reply, "广告")
        opening = posts.posts_of(thread_id)[0].id
    for name in (None, "reader", "asker"):
        page = html(client_of(people, name).get(f"/board/t/{thread_id}"))
        assert page.select_one(f"#p{reply}") is None and "闹钟" not in page.get_text()
    for name in ("answerer", "editor"):
        page = html(client_of(people, name).get(f"/board/t/{thread_id}"))
        assert page.select_one(f"#p{reply} .hidden-note").get_text() == "已被管理员隐藏：广告"
    # A hidden question: 404 for everyone but its author and moderators.
    with people.app_context():
        editor = db.session.scalar(select(User).where(User.email == "editor@example.com"))
        posts.hide(editor, opening, "违规")
    for name, status in ((None, 404), ("answerer", 404), ("asker", 200), ("editor", 200)):
        assert client_of(people, name).get(f"/board/t/{thread_id}").status_code == status
    assert client_of(people, None).get(f"/board/p/{opening}/revisions").status_code == 404


# --- reports -------------------------------------------------------------------------------


def test_a_member_reports_a_post_once(people, thread):
    thread_id, reply = thread
    asker = client_of(people, "asker")
    empty = post_form(asker, f"/board/p/{reply}/report", {"reason": " "})
    assert empty.status_code == 422
    assert "请写明原因" in html(empty).select_one("#e-reason").get_text()
    response = post_form(asker, f"/board/p/{reply}/report", {"reason": "广告"})
    assert response.status_code == 303
    page = html(asker.get(response.headers["Location"]))
    assert "已举报，管理员会尽快处理。" in page.select_one("#notice").get_text()
    again = post_form(asker, f"/board/p/{reply}/report", {"reason": "还是广告"})
    assert again.status_code == 409
    assert html(again).select_one("#f-reason")["value"] == "还是广告"
    own = post_form(client_of(people, "answerer"), f"/board/p/{reply}/report", {"reason": "x"})
    assert own.status_code == 409
    reader = client_of(people, "reader")
    assert reader.get(f"/board/p/{reply}/report").status_code == 403
    token = csrf_token_from(reader, "/board/")
    response = reader.post(f"/board/p/{reply}/report", data={"csrf_token": token, "reason": "x"})
    assert response.status_code == 403
    with people.app_context():
        assert count(Report) == 1


# --- uploads -------------------------------------------------------------------------------


def upload(client, data: bytes, name: str, **kw):
    token = csrf_token_from(client, "/board/upload")
    return client.post(
        "/board/upload",
        data={"csrf_token": token, "image": (BytesIO(data), name)},
        content_type="multipart/form-data",
        **kw,
    )


def test_a_member_uploads_a_png_and_gets_the_markdown(people):
    member = client_of(people, "asker")
    response = upload(member, png(), "photo.png")
    assert response.status_code == 200
    snippet = html(response).select_one("#upload-result input.copy")["value"]
    assert snippet.startswith("![](/media/") and snippet.endswith(".png)")
    image = member.get(snippet[4:-1])
    assert image.status_code == 200 and image.mimetype == "image/png"
    # With htmx: the result alone, to swap under the form.
    response = upload(member, png((10, 10)), "small.png", headers={"HX-Request": "true"})
    fragment = html(response)
    assert fragment.select_one("html") is None
    assert fragment.select_one("#upload-result input.copy")["value"].startswith("![](/media/")
    # Pasted into a post, it shows as an image.
    response = start(member, body=f"看图：\n\n{snippet}")
    page = html(member.get(response.headers["Location"]))
    assert page.select_one(".post-body img")["src"] == snippet[4:-1]


def test_uploads_that_are_not_images_or_too_big_are_refused(people, app):
    member = client_of(people, "asker")
    response = upload(member, b"just some text, not a picture" * 4, "notes.png")
    assert response.status_code == 422
    assert "JPEG、PNG 或 WebP" in html(response).select_one("#upload-result .error").get_text()
    app.config["IMAGE_MAX_BYTES"] = 1024
    response = upload(member, png((400, 400)) + bytes(2048), "big.png")
    assert response.status_code == 413
    assert "不能超过 1 KB" in html(response).select_one("#upload-result .error").get_text()
    response = upload(
        member, b"x" * 2048, "big.png", headers={"HX-Request": "true"}
    )  # htmx swaps the message in place of the result
    assert response.status_code == 413 and response.headers["HX-Retarget"] == "#upload-result"
    from content.models import Media

    with app.app_context():
        assert count(Media) == 0


@pytest.mark.parametrize("name", [None, "reader", "editor"])
def test_only_members_upload(people, name):
    client = client_of(people, name)
    assert client.get("/board/upload").status_code == 403
    assert upload(client, png(), "photo.png").status_code == 403


# --- lists: pages and "load more" ----------------------------------------------------------


def test_a_section_pages_by_twenty_with_load_more_and_plain_links(people, app, clock):
    app.config["BOARD_POST_LIMIT"] = 100
    member = client_of(people, "asker")
    for n in range(25):
        clock.advance(minutes=1)
        assert start(member, title=f"第 {n:02d} 个问题的标题").status_code == 303
    with app.app_context():
        editor = db.session.scalar(select(User).where(User.email == "editor@example.com"))
        posts.set_flag(editor, 1, "pinned", True, "好问题")
    reader = client_of(people, None)
    page = html(reader.get("/board/s/wenda"))
    titles = [t.get_text() for t in page.select("#thread-list .item-title")]
    assert len(titles) == 20
    assert titles[0] == "第 00 个问题的标题"  # pinned first, then the latest
    assert titles[1] == "第 24 个问题的标题"
    assert page.select_one("#thread-list .badge").get_text() == "置顶"
    more = page.select_one("#thread-more a")
    assert more["href"] == more["hx-get"] == "/board/s/wenda?page=2"
    assert page.select_one("#board-pager a[rel=next]")["href"] == "/board/s/wenda?page=2"
    # htmx asks for the next page: its threads and a new pager, no page around them.
    fragment = html(reader.get("/board/s/wenda?page=2", headers={"HX-Request": "true"}))
    assert fragment.select_one("html") is None
    assert len(fragment.select(".thread-item")) == 5
    assert fragment.select_one("#thread-more") is None
    assert fragment.select_one("#board-pager")["hx-swap-oob"] == "true"
    # Without JS the link opens page 2 as a whole page.
    page = html(reader.get("/board/s/wenda?page=2"))
    assert len(page.select("#thread-list .thread-item")) == 5
    assert page.select_one("#board-pager a[rel=prev]")["href"] == "/board/s/wenda?page=1"
    assert page.select_one("#board-pager a[rel=next]") is None
    assert html(reader.get("/board/s/wenda?page=abc")).select("#thread-list .thread-item")


# --- members-only reading ------------------------------------------------------------------


def test_board_read_members_keeps_readers_out(people, thread, app):
    thread_id, _ = thread
    app.config["BOARD_READ"] = "members"
    for name in (None, "reader"):
        client = client_of(people, name)
        for path in ("/board/", f"/board/t/{thread_id}", "/board/s/wenda"):
            response = client.get(path)
            assert response.status_code == 403
            page = html(response)
            assert "社群仅对会员开放" in page.select_one("h1").get_text()
            assert page.select_one("a[href='/join']") is not None
            assert "怎样坚持" not in page.get_text()
        assert html(client.get("/")).select_one("#active-threads") is None
    for name in ("asker", "editor"):
        assert client_of(people, name).get(f"/board/t/{thread_id}").status_code == 200


# --- the board on the home and article pages -----------------------------------------------


def publish(app, title="怎样做读书笔记") -> tuple[int, str]:
    with app.app_context():
        saved = articles.save_article(
            Draft(
                title=title,
                summary="好的笔记不是抄书。",
                body_md="正文",
                slug="notes",
                column="daily",
                keywords="笔记",
                visibility="public",
                status="published",
                publish_at=None,
            )
        )
        return saved.id, saved.slug


def test_an_article_lists_its_discussions_and_starts_one(people, app):
    article_id, slug = publish(app)
    reader = client_of(people, None)
    card = html(reader.get(f"/a/{slug}")).select_one("#discussions")
    assert card.select_one("h2").get_text() == "社群讨论"
    assert "还没有" in card.get_text()
    assert card.select_one("a.button")["href"] == f"/board/new?article={article_id}"
    member = client_of(people, "asker")
    form = html(member.get(f"/board/new?article={article_id}"))
    assert form.select_one("input[name=article]")["value"] == str(article_id)
    assert form.select_one("#f-section option[selected]").get_text() == "知识分享"
    assert "《怎样做读书笔记》" in form.select_one(".thread-article").get_text()
    response = start(member, section="4", title="读后感：和作者对话", article=str(article_id))
    assert response.status_code == 303
    page = html(member.get(response.headers["Location"]))
    assert page.select_one(f".thread-article a[href='/a/{slug}']") is not None
    card = html(reader.get(f"/a/{slug}")).select_one("#discussions")
    assert [t.get_text() for t in card.select(".item-title")] == ["读后感：和作者对话"]


def test_a_kept_article_page_shows_its_discussions_as_they_are_now(people, app):
    """The article page is kept whole (content/pages.py); its key holds every field of the
    discussions it lists, so an answer, a lock, a new name or a hidden thread shows at once."""
    article_id, slug = publish(app)
    member, reader = client_of(people, "asker"), client_of(people, "reader")
    response = start(member, section="4", title="读后感：和作者对话", article=str(article_id))
    thread_id = int(response.headers["Location"].rsplit("/", 1)[1])

    def listed(client) -> str:
        return html(client.get(f"/a/{slug}")).select_one("#discussions").get_text(" ", strip=True)

    for _ in range(2):  # the second time from the kept page
        assert "0 个回答" in listed(reader) and "提问的小林" in listed(member)
    with app.app_context():  # the key read by the query is the key of the rendered threads
        shown = posts.threads_of_article(article_id)
        assert posts.discussion_lines(article_id) == tuple(map(posts.discussion_line, shown))
    answered = answer(client_of(people, "answerer"), thread_id, "先从每天十分钟开始。")
    assert answered.status_code < 400
    assert "1 个回答" in listed(reader)
    with app.app_context():
        editor = accounts.find_user("editor@example.com")
        posts.set_flag(editor, thread_id, "locked", True, "讨论已经充分")
    assert "已锁定" in listed(reader)
    from app import write_transaction

    with app.app_context(), write_transaction() as session:
        session.scalar(select(User).where(User.email == "asker@example.com")).nickname = "小林"
    assert "小林 ·" in listed(reader) and "提问的小林" not in listed(reader)
    with app.app_context():
        opening = db.session.scalar(select(Post).where(Post.thread_id == thread_id, Post.opening))
        posts.hide(accounts.find_user("editor@example.com"), opening.id, "与文章无关")
    assert "还没有关于这篇文章的讨论" in listed(member)


def test_the_home_page_shows_active_threads(people, thread, client):
    thread_id, _ = thread
    box = html(client.get("/")).select_one("#active-threads")
    assert box.select_one(f"a[href='/board/t/{thread_id}']") is not None
    assert "怎样坚持每天早起读书？" in box.get_text()


# --- demo data -----------------------------------------------------------------------------


def test_the_demo_board_fills_every_section_once(app, client):
    cli = app.test_cli_runner()
    first = cli.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    second = cli.invoke(args=["demo", "load"])
    assert second.output == first.output
    assert "社群演示 (demo board): 5 个帖子" in first.output
    with app.app_context():
        threads = db.session.scalars(select(Thread)).all()
        assert len(threads) == 5
        assert {t.section.slug for t in threads} == {"wenda", "qiuzhi", "zhaopin", "zhishi"}
        assert any(t.article_id for t in threads)
        accepted = db.session.scalars(select(Post).where(Post.accepted)).all()
        assert len(accepted) == 1 and accepted[0].thread.section.is_qa
        second_member = accounts.find_user("member2@example.com")
        assert second_member.is_member and second_member.nickname
    page = html(client.get("/board/"))
    assert len(page.select("#thread-list .thread-item")) == 5
    assert "@example.com" not in page.get_text()
    logins = (app.config["DATA_DIR"] / "demo-logins.txt").read_text()
    assert "member2@example.com demo-" in logins
