"""The community board: sections, threads and their posts, votes, reports, the moderation log
and notifications.

A thread's question (or job post, or tip) is its opening post; answers are the other posts of
the thread. Votes, reports, edits, hiding and deleting work on posts alike, whichever kind.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import UTCDateTime, db
from members.models import User

MAX_TAGS = 5

# Seeded by the migration that made the board (kept in step with it; a test compares them).
DEFAULT_SECTIONS = [
    {
        "slug": "wenda",
        "name": "问答",
        "description": "有问题就问，会员来答；提问者可以采纳一个回答。",
        "is_qa": True,
        "position": 1,
    },
    {
        "slug": "qiuzhi",
        "name": "求职",
        "description": "介绍你自己和你想找的工作。",
        "is_qa": False,
        "position": 2,
    },
    {
        "slug": "zhaopin",
        "name": "招聘",
        "description": "招人：职位、地点、要求和联系方式。",
        "is_qa": False,
        "position": 3,
    },
    {
        "slug": "zhishi",
        "name": "知识分享",
        "description": "读书笔记、工作方法、值得一读的好东西。",
        "is_qa": False,
        "position": 4,
    },
]


class Section(db.Model):
    """问答, 求职, 招聘, 知识分享: where a thread is posted. In a question section (`is_qa`) the
    asker may accept one answer."""

    __tablename__ = "board_sections"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(20), unique=True)
    description: Mapped[str] = mapped_column(String(200), default="")
    is_qa: Mapped[bool] = mapped_column(Boolean, default=False)
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Thread(db.Model):
    __tablename__ = "board_threads"
    __table_args__ = (
        CheckConstraint("answer_count >= 0", name="answer_count"),
        # A section's list: pinned first, then the latest activity.
        Index("ix_board_threads_listing", "section_id", "pinned", "last_activity_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    section_id: Mapped[int] = mapped_column(ForeignKey("board_sections.id"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    tags: Mapped[str] = mapped_column(String(120), default="")  # space-separated, at most 5
    # 「社群讨论」 of an article: threads started from it keep the link.
    article_id: Mapped[int | None] = mapped_column(
        ForeignKey("articles.id", ondelete="SET NULL"), index=True
    )
    locked: Mapped[bool] = mapped_column(Boolean, default=False)
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    # Visible answers (not hidden, not deleted), kept by the same transactions that change them.
    answer_count: Mapped[int] = mapped_column(Integer, default=0)
    last_activity_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    section: Mapped[Section] = relationship(lazy="joined")
    author: Mapped[User] = relationship(lazy="joined")

    @property
    def tag_list(self) -> list[str]:
        return self.tags.split() if self.tags else []


class Post(db.Model):
    """The opening post of a thread, or an answer to it."""

    __tablename__ = "board_posts"
    __table_args__ = (
        CheckConstraint("vote_count >= 0", name="vote_count"),
        Index("ix_board_posts_thread", "thread_id", "opening"),
        # The rate limit counts a member's posts of the last minutes.
        Index("ix_board_posts_author_created", "author_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    thread_id: Mapped[int] = mapped_column(ForeignKey("board_threads.id", ondelete="CASCADE"))
    author_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    opening: Mapped[bool] = mapped_column(Boolean, default=False)
    body_md: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str] = mapped_column(Text)
    vote_count: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_reason: Mapped[str] = mapped_column(String(200), default="")

    thread: Mapped[Thread] = relationship()
    author: Mapped[User] = relationship(lazy="joined")

    @property
    def visible(self) -> bool:
        return self.deleted_at is None and self.hidden_at is None


class PostRevision(db.Model):
    """The text a post had before an edit (and the thread's title, for an opening post)."""

    __tablename__ = "board_post_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("board_posts.id", ondelete="CASCADE"), index=True
    )
    title: Mapped[str | None] = mapped_column(String(120))
    body_md: Mapped[str] = mapped_column(Text)
    written_at: Mapped[datetime] = mapped_column(UTCDateTime)  # when this text was written
    replaced_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Vote(db.Model):
    """One member's up-vote on one post."""

    __tablename__ = "board_votes"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("board_posts.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Report(db.Model):
    """A member's report of a post, with their reason; resolved by a moderator."""

    __tablename__ = "board_reports"
    __table_args__ = (UniqueConstraint("post_id", "reporter_id", name="once_per_reporter"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    post_id: Mapped[int] = mapped_column(
        ForeignKey("board_posts.id", ondelete="CASCADE"), index=True
    )
    reporter_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    outcome: Mapped[str] = mapped_column(String(20), default="")  # hidden | dismissed

    post: Mapped[Post] = relationship()
    reporter: Mapped[User] = relationship(foreign_keys=[reporter_id])


class ModerationAction(db.Model):
    """Every moderator action: who, when, on what, why."""

    __tablename__ = "board_moderation_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    # hide | restore | lock | unlock | pin | unpin | move | dismiss
    action: Mapped[str] = mapped_column(String(20))
    thread_id: Mapped[int] = mapped_column(
        ForeignKey("board_threads.id", ondelete="CASCADE"), index=True
    )
    post_id: Mapped[int | None] = mapped_column(ForeignKey("board_posts.id", ondelete="CASCADE"))
    reason: Mapped[str] = mapped_column(String(200))
    detail: Mapped[str] = mapped_column(String(200), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)

    actor: Mapped[User] = relationship(lazy="joined")


class Notification(db.Model):
    """Something a member is told inside the site: an answer to their thread, their answer
    accepted, a post of theirs hidden (with the reason)."""

    __tablename__ = "notifications"
    __table_args__ = (
        CheckConstraint("kind IN ('answered', 'accepted', 'hidden')", name="kind"),
        Index("ix_notifications_unread", "user_id", "read_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    kind: Mapped[str] = mapped_column(String(20))
    thread_id: Mapped[int | None] = mapped_column(
        ForeignKey("board_threads.id", ondelete="CASCADE")
    )
    post_id: Mapped[int | None] = mapped_column(ForeignKey("board_posts.id", ondelete="CASCADE"))
    text: Mapped[str] = mapped_column(String(300))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    read_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
