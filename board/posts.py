"""What members and moderators do on the board, and the checks that guard it.

Every change is one write transaction (app.write_transaction). It queues the posts whose
search entries change (`post:<id>` rows in `search_queue`, applied by the index's single
writer right after the commit, see content/search.py) and writes the notifications it
causes, so a change, its search entry and its notice are never out of step.

Who may do what:
- reading: everyone, or only members and moderators with BOARD_READ=members;
- posting, answering, voting, reporting: members (an active membership);
- editing and deleting: the author of the post, while it is not hidden;
- accepting an answer: the asker, in a question section;
- hiding, restoring, locking, pinning, moving, dismissing reports: editors and admins.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import bindparam, case, delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import db, utcnow, write_transaction
from board import markup
from board.models import (
    MAX_TAGS,
    ModerationAction,
    Notification,
    Post,
    PostRevision,
    Report,
    Section,
    Thread,
    Vote,
)
from content import search
from content.models import SearchQueue
from members.models import User

TITLE_MIN, TITLE_MAX = 4, 80
BODY_MAX = 20_000
TAG_MAX = 16
REASON_MAX = 200
TAG = re.compile(r"^[\w+#.\-]+$")
TAG_SPLIT = re.compile(r"[\s,，、;；#]+")


class BoardError(Exception):
    """Why something cannot be done, by form field, with the HTTP status to answer with."""

    def __init__(
        self, errors: dict[str, str] | str, *, field: str = "body", status: int = 422
    ) -> None:
        self.errors = {field: errors} if isinstance(errors, str) else errors
        self.message = " ".join(self.errors.values())
        self.status = status
        super().__init__(self.message)


# --- who may do what -----------------------------------------------------------------------


def is_moderator(user) -> bool:
    return bool(user.is_authenticated and user.is_editor)


def may_read(user) -> bool:
    if current_app.config["BOARD_READ"] != "members":
        return True
    return is_moderator(user) or bool(user.is_authenticated and user.membership is not None)


def may_post(user) -> bool:
    return bool(user.is_authenticated and user.membership is not None)


def may_see(user, post: Post) -> bool:
    """Hidden posts are seen by their author and moderators only (marked as hidden)."""
    if post.hidden_at is None:
        return True
    return user.is_authenticated and (user.id == post.author_id or is_moderator(user))


def _member(user) -> None:
    if not may_post(user):
        raise BoardError("发帖、回答和投票需要有效的会员资格。", field="member", status=403)


# --- the fields of a form ------------------------------------------------------------------


def _text(value: object) -> str:
    """A form value as text without control characters (newlines and tabs kept)."""
    if not isinstance(value, str):
        return ""
    return "".join(
        c for c in value if c in "\n\t" or unicodedata.category(c) not in ("Cc", "Cs", "Co")
    )


def clean_title(value: object) -> str:
    title = " ".join(_text(value).split())
    if len(title) < TITLE_MIN:
        raise BoardError(f"标题至少 {TITLE_MIN} 个字。", field="title")
    if len(title) > TITLE_MAX:
        raise BoardError(f"标题不能超过 {TITLE_MAX} 个字。", field="title")
    return title


def clean_body(value: object) -> str:
    body = _text(value).replace("\r\n", "\n").strip()
    if not body:
        raise BoardError("请写下内容。", field="body")
    if len(body) > BODY_MAX:
        raise BoardError(f"内容不能超过 {BODY_MAX:,} 个字。", field="body")
    return body


def clean_tags(value: object) -> list[str]:
    tags: list[str] = []
    for word in TAG_SPLIT.split(_text(value)):
        word = word.strip().lower()
        if not word:
            continue
        if len(word) > TAG_MAX or not TAG.match(word):
            raise BoardError(
                f"标签「{word[:TAG_MAX]}」不可用："
                f"每个标签最多 {TAG_MAX} 个字，只用文字、数字和 - + # .",
                field="tags",
            )
        if word not in tags:
            tags.append(word)
    if len(tags) > MAX_TAGS:
        raise BoardError(f"最多 {MAX_TAGS} 个标签。", field="tags")
    return tags


def clean_reason(value: object) -> str:
    reason = " ".join(_text(value).split())
    if not reason:
        raise BoardError("请写明原因。", field="reason")
    if len(reason) > REASON_MAX:
        raise BoardError(f"原因不能超过 {REASON_MAX} 个字。", field="reason")
    return reason


def section_by_id(value: object) -> Section:
    from app import parse_id

    section_id = parse_id(value)
    section = db.session.get(Section, section_id) if section_id else None
    if section is None:
        raise BoardError("请选择一个版块。", field="section")
    return section


# --- helpers inside a transaction ----------------------------------------------------------


def _queue(session: Session, post_ids: Iterable[int]) -> None:
    now = utcnow()
    session.add_all(SearchQueue(doc=f"post:{i}", queued_at=now) for i in post_ids)


def _thread_post_ids(session: Session, thread_id: int) -> list[int]:
    return list(session.scalars(select(Post.id).where(Post.thread_id == thread_id)))


def _lock_user(session: Session, user_id: int) -> None:
    """One member's posts one at a time on PostgreSQL (SQLite's BEGIN IMMEDIATE already
    serialises every writer), so that the rate limit counts what the others wrote."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(User.id).where(User.id == user_id).with_for_update())


def _rate_limit(session: Session, user_id: int, now: datetime) -> None:
    limit = current_app.config["BOARD_POST_LIMIT"]
    minutes = current_app.config["BOARD_POST_MINUTES"]
    since = now - timedelta(minutes=minutes)
    recent = session.scalar(
        select(func.count())
        .select_from(Post)
        .where(Post.author_id == user_id, Post.created_at > since)
    )
    if recent >= limit:
        raise BoardError(
            f"发得太快了：{minutes} 分钟内最多发 {limit} 个帖子或回答，请稍后再发。"
            "你写的内容还在下面。",
            field="rate",
            status=429,
        )


def _notify(
    session: Session, user_id: int, kind: str, thread_id: int, post_id: int | None, text: str
) -> None:
    session.add(
        Notification(
            user_id=user_id,
            kind=kind,
            thread_id=thread_id,
            post_id=post_id,
            text=text[:300],
            created_at=utcnow(),
        )
    )


def _post_for_update(session: Session, post_id: int) -> Post:
    post = session.scalar(
        select(Post)
        .where(Post.id == post_id)
        .with_for_update(of=Post)
        .execution_options(populate_existing=True)
    )
    if post is None:
        raise BoardError("找不到这个帖子。", field="post", status=404)
    return post


def _thread_for_update(session: Session, thread_id: int) -> Thread:
    thread = session.scalar(
        select(Thread)
        .where(Thread.id == thread_id)
        .with_for_update(of=Thread)
        .execution_options(populate_existing=True)
    )
    if thread is None:
        raise BoardError("找不到这个帖子。", field="thread", status=404)
    return thread


def _opening(session: Session, thread_id: int) -> Post:
    return session.scalars(select(Post).where(Post.thread_id == thread_id, Post.opening)).one()


def _recount(session: Session, thread_id: int) -> None:
    """The thread's answer count from its visible answers (after one is hidden or shown)."""
    visible = (
        select(func.count())
        .select_from(Post)
        .where(
            Post.thread_id == thread_id,
            Post.opening.is_(False),
            Post.deleted_at.is_(None),
            Post.hidden_at.is_(None),
        )
        .scalar_subquery()
    )
    session.execute(update(Thread).where(Thread.id == thread_id).values(answer_count=visible))


# --- members -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Draft:
    section: Section
    title: str
    tags: list[str]
    body: str


def check_thread(form) -> Draft:
    """Every field of a new thread checked at once: BoardError holds a message per field."""
    errors: dict[str, str] = {}
    values: dict[str, object] = {}
    for name, check in (
        ("section", section_by_id),
        ("title", clean_title),
        ("tags", clean_tags),
        ("body", clean_body),
    ):
        try:
            values[name] = check(form.get(name))
        except BoardError as bad:
            errors.update(bad.errors)
    if errors:
        raise BoardError(errors)
    return Draft(**values)  # type: ignore[arg-type]


def start_thread(user, draft: Draft, *, article_id: int | None = None) -> Thread:
    _member(user)
    user_id = user.id
    body_html = markup.render(draft.body)
    with write_transaction() as session:
        _lock_user(session, user_id)
        now = utcnow()
        _rate_limit(session, user_id, now)
        if article_id is not None:
            from content.models import Article

            if session.get(Article, article_id) is None:
                article_id = None
        thread = Thread(
            section_id=draft.section.id,
            author_id=user_id,
            title=draft.title,
            tags=" ".join(draft.tags),
            article_id=article_id,
            last_activity_at=now,
            created_at=now,
        )
        session.add(thread)
        session.flush()
        post = Post(
            thread_id=thread.id,
            author_id=user_id,
            opening=True,
            body_md=draft.body,
            body_html=body_html,
            created_at=now,
        )
        session.add(post)
        session.flush()
        _queue(session, [post.id])
    search.drain_quietly()  # the index has the change at once
    return thread


def answer(user, thread_id: int, body: object) -> Post:
    _member(user)
    text = clean_body(body)
    user_id = user.id
    body_html = markup.render(text)
    with write_transaction() as session:
        _lock_user(session, user_id)
        now = utcnow()
        thread = _thread_for_update(session, thread_id)
        opening = _opening(session, thread.id)
        if not opening.visible:
            raise BoardError("这个帖子已经不在了，不能回答。", status=404)
        if thread.locked:
            raise BoardError("这个帖子已被锁定，不能再回答。", status=409)
        _rate_limit(session, user_id, now)
        post = Post(
            thread_id=thread.id,
            author_id=user_id,
            body_md=text,
            body_html=body_html,
            created_at=now,
        )
        session.add(post)
        thread.answer_count += 1
        thread.last_activity_at = now
        session.flush()
        _queue(session, [post.id])
        if opening.author_id != user_id:
            _notify(
                session,
                opening.author_id,
                "answered",
                thread.id,
                post.id,
                f"你的帖子「{thread.title}」有了新回答。",
            )
    search.drain_quietly()  # the index has the change at once
    return post


def _own(user, post: Post) -> None:
    if not user.is_authenticated or post.author_id != user.id:
        raise BoardError("只有作者本人可以这样做。", field="post", status=403)
    if post.deleted_at is not None:
        raise BoardError("这个帖子已经删除了。", field="post", status=409)
    if post.hidden_at is not None:
        raise BoardError("这个帖子已被管理员隐藏，不能修改。", field="post", status=409)


def may_edit(user, post: Post) -> bool:
    """Whether `user` may edit or delete `post` now (the links a thread page shows)."""
    try:
        _own(user, post)
    except BoardError:
        return False
    return True


def edit(user, post_id: int, form) -> Post:
    """The author rewrites a post (and, for an opening post, its title and tags); the text it
    had is kept as a revision and the post is marked as edited."""
    if not user.is_authenticated:
        raise BoardError("请先登录。", field="post", status=403)
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        _own(user, post)
        errors: dict[str, str] = {}
        title = tags = None
        try:
            body = clean_body(form.get("body"))
        except BoardError as bad:
            errors.update(bad.errors)
        if post.opening:
            for name, check in (("title", clean_title), ("tags", clean_tags)):
                try:
                    if name == "title":
                        title = check(form.get(name))
                    else:
                        tags = check(form.get(name))
                except BoardError as bad:
                    errors.update(bad.errors)
        if errors:
            raise BoardError(errors)
        thread = post.thread
        now = utcnow()
        session.add(
            PostRevision(
                post_id=post.id,
                title=thread.title if post.opening else None,
                body_md=post.body_md,
                written_at=post.edited_at or post.created_at,
                replaced_at=now,
            )
        )
        post.body_md = body
        post.body_html = markup.render(body)
        post.edited_at = now
        if post.opening:
            thread.title = title  # type: ignore[assignment]
            thread.tags = " ".join(tags or [])
        _queue(session, [post.id])
    search.drain_quietly()  # the index has the change at once
    return post


def delete_post(user, post_id: int) -> Post:
    """The author deletes a post. An answer leaves 「已删除」 in its place; an opening post
    takes its thread off the lists and out of search (its answers stay readable)."""
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        if not user.is_authenticated or post.author_id != user.id:
            raise BoardError("只有作者本人可以删除。", field="post", status=403)
        if post.deleted_at is not None:
            return post
        post.deleted_at = utcnow()
        post.accepted = False
        _recount(session, post.thread_id)
        ids = _thread_post_ids(session, post.thread_id) if post.opening else [post.id]
        _queue(session, ids)
    search.drain_quietly()  # the index has the change at once
    return post


def toggle_vote(user, post_id: int) -> tuple[bool, int]:
    """Up-vote a post, or take the vote back. Returns (voted now, the post's votes)."""
    _member(user)
    user_id = user.id
    with write_transaction() as session:
        post = session.get(Post, post_id)
        if post is None or not post.visible:
            raise BoardError("找不到这个帖子。", field="post", status=404)
        if post.author_id == user_id:
            raise BoardError("不能给自己的帖子投票。", field="post", status=409)
        gone = session.execute(
            delete(Vote).where(Vote.user_id == user_id, Vote.post_id == post_id)
        ).rowcount
        if gone:
            session.execute(
                update(Post)
                .where(Post.id == post_id, Post.vote_count > 0)
                .values(vote_count=Post.vote_count - 1)
            )
        else:
            session.add(Vote(user_id=user_id, post_id=post_id, created_at=utcnow()))
            session.flush()
            session.execute(
                update(Post).where(Post.id == post_id).values(vote_count=Post.vote_count + 1)
            )
        count = session.scalar(select(Post.vote_count).where(Post.id == post_id))
    return (not gone, count or 0)


def accept(user, post_id: int) -> Post:
    """The asker accepts an answer (or takes the acceptance back by accepting it again). One
    accepted answer per thread: accepting another moves the mark."""
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        thread = _thread_for_update(session, post.thread_id)
        if not user.is_authenticated or thread.author_id != user.id:
            raise BoardError("只有提问者可以采纳回答。", field="post", status=403)
        if not thread.section.is_qa:
            raise BoardError("只有问答版块的帖子可以采纳回答。", field="post", status=409)
        if post.opening or not post.visible:
            raise BoardError("这个回答不能被采纳。", field="post", status=409)
        if post.accepted:
            post.accepted = False
            return post
        session.execute(
            update(Post).where(Post.thread_id == thread.id, Post.accepted).values(accepted=False)
        )
        post.accepted = True
        if post.author_id != user.id:
            _notify(
                session,
                post.author_id,
                "accepted",
                thread.id,
                post.id,
                f"你在「{thread.title}」的回答被提问者采纳了。",
            )
    return post


def report(user, post_id: int, reason: object) -> Report:
    _member(user)
    text = clean_reason(reason)
    user_id = user.id
    try:
        with write_transaction() as session:
            post = session.get(Post, post_id)
            if post is None or not post.visible:
                raise BoardError("找不到这个帖子。", field="post", status=404)
            if post.author_id == user_id:
                raise BoardError("不能举报自己的帖子。", field="reason", status=409)
            found = Report(post_id=post_id, reporter_id=user_id, reason=text, created_at=utcnow())
            session.add(found)
    except IntegrityError:
        message = "你已经举报过这个帖子，管理员会尽快处理。"
        raise BoardError(message, field="reason", status=409) from None
    return found


# --- moderators ----------------------------------------------------------------------------


def _moderator(user) -> None:
    if not is_moderator(user):
        raise BoardError("只有编辑和管理员可以管理社群。", field="post", status=403)


def _log(
    session: Session,
    actor_id: int,
    action: str,
    thread_id: int,
    reason: str,
    *,
    post_id: int | None = None,
    detail: str = "",
) -> None:
    session.add(
        ModerationAction(
            actor_id=actor_id,
            action=action,
            thread_id=thread_id,
            post_id=post_id,
            reason=reason,
            detail=detail[:200],
            at=utcnow(),
        )
    )


def _resolve_reports(session: Session, post_id: int, actor_id: int, outcome: str) -> None:
    session.execute(
        update(Report)
        .where(Report.post_id == post_id, Report.resolved_at.is_(None))
        .values(resolved_at=utcnow(), resolved_by=actor_id, outcome=outcome)
    )


def hide(user, post_id: int, reason: object) -> Post:
    """Hide a post from everyone but its author and moderators; the author is told why. An
    opening post hides its whole thread."""
    _moderator(user)
    text = clean_reason(reason)
    actor_id = user.id
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        if post.hidden_at is not None:
            raise BoardError("这个帖子已经隐藏了。", field="reason", status=409)
        post.hidden_at = utcnow()
        post.hidden_reason = text
        post.accepted = False
        thread = post.thread
        _recount(session, thread.id)
        _resolve_reports(session, post.id, actor_id, "hidden")
        _log(session, actor_id, "hide", thread.id, text, post_id=post.id)
        ids = _thread_post_ids(session, thread.id) if post.opening else [post.id]
        _queue(session, ids)
        what = "帖子" if post.opening else "回答"
        _notify(
            session,
            post.author_id,
            "hidden",
            thread.id,
            post.id,
            f"你在「{thread.title}」的{what}已被管理员隐藏。原因：{text}",
        )
    search.drain_quietly()  # the index has the change at once
    return post


def restore(user, post_id: int, reason: object) -> Post:
    _moderator(user)
    text = clean_reason(reason)
    actor_id = user.id
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        if post.hidden_at is None:
            raise BoardError("这个帖子没有被隐藏。", field="reason", status=409)
        post.hidden_at = None
        post.hidden_reason = ""
        _recount(session, post.thread_id)
        _log(session, actor_id, "restore", post.thread_id, text, post_id=post.id)
        ids = _thread_post_ids(session, post.thread_id) if post.opening else [post.id]
        _queue(session, ids)
    search.drain_quietly()  # the index has the change at once
    return post


def dismiss(user, post_id: int, reason: object) -> int:
    """Close a post's open reports without hiding it. Returns how many were closed."""
    _moderator(user)
    text = clean_reason(reason)
    actor_id = user.id
    with write_transaction() as session:
        post = _post_for_update(session, post_id)
        closed = session.scalar(
            select(func.count())
            .select_from(Report)
            .where(Report.post_id == post.id, Report.resolved_at.is_(None))
        )
        if not closed:
            raise BoardError("这个帖子没有待处理的举报。", field="reason", status=409)
        _resolve_reports(session, post.id, actor_id, "dismissed")
        _log(session, actor_id, "dismiss", post.thread_id, text, post_id=post.id)
    return closed or 0


def set_flag(user, thread_id: int, flag: str, on: bool, reason: object) -> Thread:
    """Lock or unlock, pin or unpin a thread."""
    _moderator(user)
    if flag not in ("locked", "pinned"):
        raise BoardError("未知的操作。", field="action")
    text = clean_reason(reason)
    actor_id = user.id
    with write_transaction() as session:
        thread = _thread_for_update(session, thread_id)
        if getattr(thread, flag) == on:
            state = {"locked": ("已锁定", "没有锁定"), "pinned": ("已置顶", "没有置顶")}[flag]
            raise BoardError(f"这个帖子{state[0 if on else 1]}。", field="reason", status=409)
        setattr(thread, flag, on)
        action = {"locked": ("lock", "unlock"), "pinned": ("pin", "unpin")}[flag][0 if on else 1]
        _log(session, actor_id, action, thread.id, text)
    return thread


def move(user, thread_id: int, section_id: object, reason: object) -> Thread:
    _moderator(user)
    errors: dict[str, str] = {}
    section = text = None
    try:
        section = section_by_id(section_id)
    except BoardError as bad:
        errors.update(bad.errors)
    try:
        text = clean_reason(reason)
    except BoardError as bad:
        errors.update(bad.errors)
    if errors:
        raise BoardError(errors)
    actor_id = user.id
    with write_transaction() as session:
        thread = _thread_for_update(session, thread_id)
        if thread.section_id == section.id:  # type: ignore[union-attr]
            raise BoardError("帖子已经在这个版块了。", field="section", status=409)
        before = thread.section.name
        thread.section_id = section.id  # type: ignore[union-attr]
        _log(
            session,
            actor_id,
            "move",
            thread.id,
            text,  # type: ignore[arg-type]
            detail=f"{before} → {section.name}",  # type: ignore[union-attr]
        )
        _queue(session, _thread_post_ids(session, thread.id))
    search.drain_quietly()  # the index has the change at once
    return thread


# --- reading -------------------------------------------------------------------------------

ANSWER_ORDER = (Post.accepted.desc(), Post.vote_count.desc(), Post.created_at, Post.id)


def visible_threads():
    """Threads whose opening post neither its author deleted nor a moderator hid."""
    return (
        select(Thread)
        .join(Post, (Post.thread_id == Thread.id) & Post.opening)
        .where(Post.deleted_at.is_(None), Post.hidden_at.is_(None))
    )


def listing(section_id: int | None = None, *, tag: str | None = None):
    query = visible_threads()
    if section_id is not None:
        query = query.where(Thread.section_id == section_id)
    if tag:
        # Tags are stored space-separated; match a whole tag.
        padded = " " + Thread.tags + " "
        query = query.where(padded.contains(f" {tag} ", autoescape=True))
    pinned_first = case((Thread.pinned, 0), else_=1) if section_id is not None else None
    order = [pinned_first] if pinned_first is not None else []
    return query.order_by(*order, Thread.last_activity_at.desc(), Thread.id.desc())


def posts_of(thread_id: int) -> tuple[Post, list[Post]]:
    """The opening post and the answers, in the order they are shown."""
    posts = db.session.scalars(
        select(Post).where(Post.thread_id == thread_id).order_by(Post.opening.desc(), *ANSWER_ORDER)
    ).all()
    return posts[0], list(posts[1:])


def voted_by(user, post_ids: Iterable[int]) -> set[int]:
    ids = list(post_ids)
    if not ids or not user.is_authenticated:
        return set()
    return set(
        db.session.scalars(
            select(Vote.post_id).where(Vote.user_id == user.id, Vote.post_id.in_(ids))
        )
    )


def revisions_of(post_id: int) -> list[PostRevision]:
    return list(
        db.session.scalars(
            select(PostRevision)
            .where(PostRevision.post_id == post_id)
            .order_by(PostRevision.id.desc())
        )
    )


def sections() -> list[Section]:
    return list(db.session.scalars(select(Section).order_by(Section.position, Section.id)))


# How many threads an article's page lists under 「社群讨论」.
ARTICLE_DISCUSSIONS = 5


def threads_of_article(article_id: int) -> list[Thread]:
    query = listing().where(Thread.article_id == article_id).limit(ARTICLE_DISCUSSIONS)
    return list(db.session.scalars(query))


# What an article's list of discussions shows of each thread (board/_thread_item.html): a
# page kept with them as its key is kept exactly as long as none of them changes. Built
# once: it is asked on every article request.
_LINE = (Thread.id, Thread.title, Thread.tags, Thread.locked, Thread.pinned, Thread.answer_count,
         Thread.last_activity_at, Section.name, User.nickname, User.member_number)  # fmt: skip
_LINES = (
    listing()
    .with_only_columns(*_LINE)
    .join(Section, Section.id == Thread.section_id)
    .join(User, User.id == Thread.author_id)
    .where(Thread.article_id == bindparam("article_id"))
    .limit(ARTICLE_DISCUSSIONS)
)


def discussion_lines(article_id: int) -> tuple[tuple, ...]:
    """`discussion_line` of each of `threads_of_article`, in one query without the ORM."""
    rows = db.session.connection().execute(_LINES, {"article_id": article_id})
    return tuple(tuple(row) for row in rows)


def discussion_line(thread: Thread) -> tuple:
    """The fields of `_LINE`, read from a loaded thread (its section and author joined)."""
    rows = {Thread: thread, Section: thread.section, User: thread.author}
    return tuple(getattr(rows[column.class_], column.key) for column in _LINE)


def active_threads(limit: int = 5) -> list[Thread]:
    return list(db.session.scalars(listing().limit(limit)))


# --- notifications -------------------------------------------------------------------------


def unread_count(user_id: int) -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
        )
        or 0
    )


def notifications_of(user_id: int, limit: int = 50) -> list[Notification]:
    return list(
        db.session.scalars(
            select(Notification)
            .where(Notification.user_id == user_id)
            .order_by(Notification.id.desc())
            .limit(limit)
        )
    )


def mark_read(user_id: int) -> int:
    with write_transaction() as session:
        return session.execute(
            update(Notification)
            .where(Notification.user_id == user_id, Notification.read_at.is_(None))
            .values(read_at=utcnow())
        ).rowcount
