"""The board's rules, below the pages: who may do what, the answer order, edits and their
revisions, votes, acceptance, the rate limit, moderation and the notices it sends."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.datastructures import MultiDict

from app import db
from board import posts
from board.models import ModerationAction, Notification, Post, PostRevision, Thread
from board.posts import BoardError
from members import accounts
from members.models import Role, User


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


def who(name_or_id, people) -> User:
    user = db.session.get(User, people[name_or_id])
    user.is_authenticated  # noqa: B018 (flask-login's UserMixin property)
    return user


def question(people, title="怎样坚持每天早起读书？", body="我总是坚持不了三天。", tags="习惯 阅读"):
    form = MultiDict({"section": "1", "title": title, "tags": tags, "body": body})
    draft = posts.check_thread(form)
    return posts.start_thread(who("asker", people), draft)


def test_a_member_asks_another_answers_and_the_asker_accepts(app, people):
    with app.app_context():
        thread = question(people)
        first = posts.answer(who("answerer", people), thread.id, "早睡。")
        second = posts.answer(who("asker", people), thread.id, "补充一下我的情况。")
        posts.toggle_vote(who("answerer", people), second.id)
        opening, answers = posts.posts_of(thread.id)
        assert opening.opening and [a.id for a in answers] == [second.id, first.id]  # votes
        posts.accept(who("asker", people), first.id)
        _, answers = posts.posts_of(thread.id)
        assert [a.id for a in answers] == [first.id, second.id]  # the accepted answer first
        kinds = db.session.scalars(
            select(Notification.kind).where(Notification.user_id == people["asker"])
        ).all()
        assert kinds == ["answered"]  # their own answer tells them nothing
        assert (
            db.session.scalar(
                select(Notification.text).where(Notification.user_id == people["answerer"])
            )
            == "你在「怎样坚持每天早起读书？」的回答被提问者采纳了。"
        )
        assert db.session.get(Thread, thread.id).answer_count == 2


def test_who_may_post_vote_accept_and_moderate(app, people):
    with app.app_context():
        thread = question(people)
        reply = posts.answer(who("answerer", people), thread.id, "答案")
        for name in ("reader", "editor"):  # no membership, whatever the role
            with pytest.raises(BoardError) as refused:
                posts.answer(who(name, people), thread.id, "我也想说")
            assert refused.value.status == 403
            with pytest.raises(BoardError):
                posts.toggle_vote(who(name, people), reply.id)
        with pytest.raises(BoardError, match="只有提问者"):
            posts.accept(who("answerer", people), reply.id)
        with pytest.raises(BoardError, match="作者本人"):
            posts.edit(who("asker", people), reply.id, MultiDict({"body": "改掉"}))
        with pytest.raises(BoardError, match="只有编辑和管理员"):
            posts.hide(who("asker", people), reply.id, "不喜欢")
        with pytest.raises(BoardError, match="自己的帖子"):
            posts.toggle_vote(who("answerer", people), reply.id)
        posts.hide(who("editor", people), reply.id, "广告")
        assert db.session.scalar(select(func.count()).select_from(ModerationAction)) == 1
        assert db.session.get(Thread, thread.id).answer_count == 0
        assert db.session.scalar(
            select(Notification.text).where(Notification.kind == "hidden")
        ).endswith("原因：广告")


def test_every_bad_field_gets_its_own_message(app, people):
    form = MultiDict({"section": "99", "title": "短", "tags": "a b c d e f", "body": "  "})
    with app.app_context(), pytest.raises(BoardError) as refused:
        posts.check_thread(form)
    assert set(refused.value.errors) == {"section", "title", "tags", "body"}
    with app.app_context(), pytest.raises(BoardError, match="标签"):
        posts.clean_tags("<script>")


def test_edits_keep_the_earlier_text_and_deleting_leaves_a_placeholder(app, people):
    with app.app_context():
        thread = question(people)
        opening, _ = posts.posts_of(thread.id)
        form = MultiDict({"title": "怎样每天早起读书", "tags": "习惯", "body": "新的正文"})
        posts.edit(who("asker", people), opening.id, form)
        revision = db.session.scalars(select(PostRevision)).one()
        assert revision.title == "怎样坚持每天早起读书？"
        assert revision.body_md == "我总是坚持不了三天。"
        assert db.session.get(Post, opening.id).edited_at is not None
        reply = posts.answer(who("answerer", people), thread.id, "答案")
        posts.delete_post(who("answerer", people), reply.id)
        _, answers = posts.posts_of(thread.id)
        assert answers[0].deleted_at is not None  # still listed, shown as 「已删除」
        assert db.session.get(Thread, thread.id).answer_count == 0


def test_the_sixth_post_in_ten_minutes_is_refused(app, clock, people):
    with app.app_context():
        thread = question(people)
        for i in range(4):
            posts.answer(who("asker", people), thread.id, f"第 {i} 条")
        with pytest.raises(BoardError) as refused:
            posts.answer(who("asker", people), thread.id, "第六条")
        assert refused.value.status == 429
        clock.advance(minutes=10, seconds=1)
        posts.answer(who("asker", people), thread.id, "过了十分钟")


def test_a_locked_thread_takes_no_answers_and_votes_toggle(app, people):
    with app.app_context():
        thread = question(people)
        opening, _ = posts.posts_of(thread.id)
        assert posts.toggle_vote(who("answerer", people), opening.id) == (True, 1)
        assert posts.toggle_vote(who("answerer", people), opening.id) == (False, 0)
        posts.set_flag(who("editor", people), thread.id, "locked", True, "讨论结束")
        with pytest.raises(BoardError, match="锁定") as refused:
            posts.answer(who("answerer", people), thread.id, "还想说")
        assert refused.value.status == 409
