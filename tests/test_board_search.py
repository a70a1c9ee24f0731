"""The board in search: visible threads and answers are found and labelled 社群; hiding,
deleting, restoring, editing and moving a post change what is found at once (through the
queued single writer, without a manual drain); reindexing rebuilds them; BOARD_READ=members
keeps them from readers who may not read the board."""

from __future__ import annotations

import shutil

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app import db, write_transaction
from board import posts
from board.models import Post, Section
from content import articles, search
from content.articles import Draft
from content.models import SearchQueue
from members import accounts
from members.models import Role, User
from tests.conftest import (
    TEST_DATABASE_URL,
    another_index_writer,
    html,
    lose_search_index,
    post_form,
)


@pytest.fixture
def people(app):
    """A member asker, a member answerer, a reader and an editor (no membership)."""
    with app.app_context():
        ids = {}
        for name in ("asker", "answerer", "reader", "editor"):
            role = Role.EDITOR if name == "editor" else Role.READER
            ids[name] = accounts.create_user(f"{name}@example.com", "correct horse", role=role).id
        for name in ("asker", "answerer"):
            accounts.grant_membership(f"{name}@example.com", "年度会员", 365, reason="测试")
    return ids


@pytest.fixture
def board(app, people):
    """Calls posts.<name>(user, ...) as one of `people`; returns the id of what it returns."""

    def act(name: str, who: str, *args) -> int:
        with app.app_context():
            user = db.session.get(User, people[who])
            return getattr(posts, name)(user, *args).id

    return act


def start(app, board, **fields: str) -> int:
    form = MultiDict({"section": "1", **fields})
    with app.app_context():
        draft = posts.check_thread(form)
    return board("start_thread", "asker", draft)


@pytest.fixture
def thread(app, board):
    """A question in 问答 with tags, and an answer: (thread id, opening post id, answer id)."""
    thread_id = start(
        app,
        board,
        title="怎样坚持早起读书？",
        tags="习惯 晨读",
        body="我总是坚持不了三天，**闹钟**也没用。",
    )
    answer_id = board("answer", "answerer", thread_id, "先把手机放到客厅，再试试番茄工作法。")
    with app.app_context():
        opening_id = db.session.scalar(
            select(Post.id).where(Post.thread_id == thread_id, Post.opening)
        )
    return thread_id, opening_id, answer_id


def results(client, q: str) -> list[dict[str, str]]:
    """What a reader sees for `q`: each result's link, label, meta line and title."""
    page = html(client.get("/search", query_string={"q": q}))
    found = []
    for item in page.select("#results li.item"):
        badge = item.select_one(".badge")
        found.append(
            {
                "href": item.select_one("a.item-link")["href"],
                "badge": badge.get_text() if badge else "",
                "meta": item.select_one(".item-meta").get_text(" ", strip=True),
                "title": item.select_one(".item-title").get_text(),
            }
        )
    return found


def links(client, q: str) -> list[str]:
    return [r["href"] for r in results(client, q)]


def queued(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(SearchQueue))


def test_a_thread_and_its_answer_are_found_and_labelled_as_board_results(app, client, thread):
    thread_id, opening_id, answer_id = thread
    assert queued(app) == 0  # the board's own commits drained the queue
    [question] = results(client, "闹钟")
    assert question["href"] == f"/board/t/{thread_id}"
    assert question["badge"] == "社群" and "问答" in question["meta"]
    assert question["title"] == "怎样坚持早起读书？"
    [reply] = results(client, "番茄工作法")
    assert reply["href"] == f"/board/t/{thread_id}#p{answer_id}"
    assert reply["badge"] == "社群" and "回答" in reply["meta"]
    assert reply["title"] == "怎样坚持早起读书？"  # the thread's title stands for the answer
    path, anchor = reply["href"].split("#")
    assert html(client.get(path)).select_one(f"#{anchor} .post-body").get_text(strip=True) == (
        "先把手机放到客厅，再试试番茄工作法。"
    )
    assert links(client, "晨读") == [f"/board/t/{thread_id}"]  # a tag
    # The title is matched in the opening post only, not again in every answer.
    assert links(client, "早起") == [f"/board/t/{thread_id}"]


def test_articles_and_posts_are_told_apart(app, client, thread):
    with app.app_context():
        articles.save_article(
            Draft(title="番茄工作法", body_md="一篇文章。", status="published", slug="fanqie")
        )
    found = {r["href"]: r["badge"] for r in results(client, "番茄工作法")}
    assert found == {"/a/fanqie": "", f"/board/t/{thread[0]}#p{thread[2]}": "社群"}
    count = html(client.get("/search?q=番茄工作法")).select_one(".result-count").get_text()
    assert count == "找到 2 条与「番茄工作法」有关的结果"


def test_hiding_an_answer_takes_it_out_at_once_and_restoring_brings_it_back(
    app, client, board, thread
):
    thread_id, _, answer_id = thread
    board("hide", "editor", answer_id, "广告")
    assert queued(app) == 0
    assert links(client, "番茄工作法") == []
    board("restore", "editor", answer_id, "误判")
    assert links(client, "番茄工作法") == [f"/board/t/{thread_id}#p{answer_id}"]


def test_a_hidden_answer_leaves_search_at_once_even_behind_a_backlog(
    app, client, board, thread, monkeypatch
):
    """The request that hides an answer drains the newest rows, its own among them: the
    answer is gone from the next search while older rows wait for the job."""
    thread_id, _, answer_id = thread
    monkeypatch.setattr(search, "REQUEST_DRAIN_ROWS", 1)
    with another_index_writer(app), app.app_context():
        for i in range(3):
            articles.save_article(
                Draft(title=f"积压的第{i}篇", body_md="正文。", status="published")
            )
    assert queued(app) == 3
    board("hide", "editor", answer_id, "广告")
    assert queued(app) == 3  # the hide's own row applied; the backlog left as it was
    assert links(client, "番茄工作法") == []
    result = app.test_cli_runner().invoke(args=["search", "drain"])
    assert result.exit_code == 0, result.output
    assert queued(app) == 0


def test_hiding_the_opening_post_takes_its_answers_out_too(app, client, board, thread):
    thread_id, opening_id, answer_id = thread
    board("hide", "editor", opening_id, "离题")
    assert links(client, "闹钟") == []
    assert links(client, "番茄工作法") == []
    board("restore", "editor", opening_id, "已修改")
    assert links(client, "闹钟") == [f"/board/t/{thread_id}"]
    assert links(client, "番茄工作法") == [f"/board/t/{thread_id}#p{answer_id}"]


def test_a_post_deleted_by_its_author_leaves_search(app, client, board, thread):
    _, opening_id, answer_id = thread
    board("delete_post", "answerer", answer_id)
    assert links(client, "番茄工作法") == []
    assert links(client, "闹钟") != []
    board("delete_post", "asker", opening_id)
    assert links(client, "闹钟") == []
    assert queued(app) == 0


def test_an_edit_changes_what_is_found(app, client, board, thread):
    thread_id, opening_id, answer_id = thread
    board("edit", "answerer", answer_id, MultiDict({"body": "试试冥想。"}))
    assert links(client, "番茄工作法") == []
    assert links(client, "冥想") == [f"/board/t/{thread_id}#p{answer_id}"]
    form = MultiDict({"title": "早睡才能早起吗？", "tags": "作息", "body": "闹钟没有用。"})
    board("edit", "asker", opening_id, form)
    assert links(client, "晨读") == []  # the old tag
    assert links(client, "作息") == [f"/board/t/{thread_id}"]
    # The answer shows the thread's new title.
    assert [r["title"] for r in results(client, "冥想")] == ["早睡才能早起吗？"]


def test_a_moved_thread_is_still_found_under_its_new_section(app, client, board, thread):
    thread_id, opening_id, _ = thread
    board("move", "editor", thread_id, "4", "更适合知识分享")
    [found] = results(client, "闹钟")
    assert found["href"] == f"/board/t/{thread_id}"
    assert "知识分享" in found["meta"] and "问答" not in found["meta"]


def test_a_renamed_section_is_shown_by_its_new_name(app, client, thread):
    with app.app_context(), write_transaction() as session:
        session.get(Section, 1).name = "提问"
    [found] = results(client, "闹钟")
    assert "提问" in found["meta"]


def test_the_reindex_command_rebuilds_posts_too(app, client, board, thread):
    thread_id, opening_id, answer_id = thread
    board("hide", "editor", answer_id, "广告")
    with app.app_context():
        articles.save_article(
            Draft(title="早起", body_md="文章。", status="published", slug="zaoqi")
        )
    lose_search_index(app)  # lost: the rebuild alone must bring posts back
    with app.app_context():
        assert search.document_count() == 2
    result = app.test_cli_runner().invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert queued(app) == 0  # the rows queued for the new index were covered by the rebuild
    assert links(client, "闹钟") == [f"/board/t/{thread_id}"]
    assert links(client, "番茄工作法") == []
    assert set(links(client, "早起")) == {"/a/zaoqi", f"/board/t/{thread_id}"}


@pytest.mark.skipif(TEST_DATABASE_URL is not None, reason="Whoosh's index folder")
def test_a_new_index_queues_visible_posts(app, client, board, thread):
    thread_id, opening_id, answer_id = thread
    board("hide", "editor", answer_id, "广告")
    with app.app_context():
        search._open.clear()
        shutil.rmtree(search.index_dir())
        search.open_index()
        docs = set(db.session.scalars(select(SearchQueue.doc)))
    assert docs == {f"post:{opening_id}"}
    assert links(client, "闹钟") == [f"/board/t/{thread_id}"]


def signed_in(app, email: str):
    reader = app.test_client()
    response = post_form(reader, "/login", {"email": email, "password": "correct horse"})
    assert response.status_code == 302
    return reader


def test_a_members_only_board_is_left_out_for_other_readers(app, client, thread):
    thread_id, opening_id, _ = thread
    app.config["BOARD_READ"] = "members"
    with app.app_context():
        articles.save_article(
            Draft(title="闹钟", body_md="文章。", status="published", slug="naozhong")
        )
    board_link = f"/board/t/{thread_id}"
    assert links(client, "闹钟") == ["/a/naozhong"]  # anonymous
    assert client.get("/k?q=番茄工作法").status_code == 404  # the keyword page's results too
    assert links(signed_in(app, "reader@example.com"), "闹钟") == ["/a/naozhong"]  # no membership
    for email in ("answerer@example.com", "editor@example.com"):  # a member, a moderator
        assert set(links(signed_in(app, email), "闹钟")) == {"/a/naozhong", board_link}
    app.config["BOARD_READ"] = "public"
    assert set(links(client, "闹钟")) == {"/a/naozhong", board_link}


def test_board_results_escape_what_members_wrote(app, client, board):
    start(app, board, title="<b>粗体</b>的标题", body="<script>alert('闹钟')</script>")
    found = html(client.get("/search?q=闹钟")).select_one("#results")
    assert found.select("script, b") == []
    assert "<b>粗体</b>的标题" in found.get_text()
