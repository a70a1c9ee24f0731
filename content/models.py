"""Articles, their columns, lookup keywords and saved revisions."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    DDL,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
    text,
)
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import UTCDateTime, db


class Visibility(enum.StrEnum):
    PUBLIC = "public"
    MEMBERS = "members"


class Status(enum.StrEnum):
    DRAFT = "draft"
    # Published with `publish_at` in the future is "scheduled": it shows when the clock says.
    PUBLISHED = "published"


class Column(db.Model):
    """A column (栏目) such as 每日60秒, 读书笔记 or 又一课."""

    __tablename__ = "columns"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Media(db.Model):
    """An uploaded image or voice, stored under DATA_DIR/media and named by its hash."""

    __tablename__ = "media"
    __table_args__ = (CheckConstraint("kind IN ('image', 'audio')", name="kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)
    kind: Mapped[str] = mapped_column(String(10))
    ext: Mapped[str] = mapped_column(String(10))
    content_type: Mapped[str] = mapped_column(String(40))
    size: Mapped[int] = mapped_column(Integer)
    width: Mapped[int | None] = mapped_column(Integer)
    height: Mapped[int | None] = mapped_column(Integer)
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    original_name: Mapped[str] = mapped_column(String(200), default="")
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def filename(self) -> str:
        return f"{self.key}.{self.ext}"

    @property
    def seconds(self) -> int:
        return round((self.duration_ms or 0) / 1000)

    @property
    def duration(self) -> str:
        """ "1:05" for 65 seconds."""
        return f"{self.seconds // 60}:{self.seconds % 60:02d}"


class Article(db.Model):
    __tablename__ = "articles"
    __table_args__ = (
        CheckConstraint("visibility IN ('public', 'members')", name="visibility"),
        CheckConstraint("status IN ('draft', 'published')", name="status"),
        CheckConstraint("status = 'draft' OR publish_at IS NOT NULL", name="published_has_time"),
        Index("ix_articles_status_publish_at", "status", "publish_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(300), default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    preview_html: Mapped[str] = mapped_column(Text, default="")
    has_more: Mapped[bool] = mapped_column(Boolean, default=False)
    column_id: Mapped[int | None] = mapped_column(
        ForeignKey("columns.id", ondelete="SET NULL"), index=True
    )
    visibility: Mapped[str] = mapped_column(String(10), default=Visibility.PUBLIC.value)
    status: Mapped[str] = mapped_column(String(10), default=Status.DRAFT.value)
    publish_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Bumped on every save; a save based on an older version is a conflict.
    version: Mapped[int] = mapped_column(Integer, default=1)
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    cover_id: Mapped[int | None] = mapped_column(ForeignKey("media.id", ondelete="SET NULL"))
    voice_id: Mapped[int | None] = mapped_column(
        ForeignKey("media.id", ondelete="SET NULL"), index=True
    )

    column: Mapped[Column | None] = relationship(lazy="joined")
    cover: Mapped[Media | None] = relationship(foreign_keys=[cover_id], lazy="joined")
    voice: Mapped[Media | None] = relationship(foreign_keys=[voice_id], lazy="joined")
    keywords: Mapped[list[ArticleKeyword]] = relationship(
        back_populates="article",
        cascade="all, delete-orphan",
        order_by="ArticleKeyword.id",
        lazy="selectin",
    )

    @property
    def members_only(self) -> bool:
        return self.visibility == Visibility.MEMBERS

    @property
    def keyword_list(self) -> list[str]:
        return [k.keyword for k in self.keywords]


class ArticleKeyword(db.Model):
    """A lookup keyword (关键词回复). Among published articles each keyword is unique: the
    partial unique index holds it even when two editors publish at the same moment."""

    __tablename__ = "article_keywords"
    __table_args__ = (
        Index(
            "uq_article_keywords_live_keyword",
            "keyword",
            unique=True,
            # Written as SQLAlchemy renders `ArticleKeyword.live` on SQLite, which uses a
            # partial index only when the query's condition matches it exactly.
            sqlite_where=text("live = 1"),
            postgresql_where=text("live"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    keyword: Mapped[str] = mapped_column(String(40))
    # True while the article is published (scheduled included).
    live: Mapped[bool] = mapped_column(Boolean, default=False)

    article: Mapped[Article] = relationship(back_populates="keywords")


class ArticleRevision(db.Model):
    """What an article was after one save: editors can view and restore any of them."""

    __tablename__ = "article_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), index=True
    )
    version: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(120))
    summary: Mapped[str] = mapped_column(String(300), default="")
    body_md: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[str] = mapped_column(String(400), default="")
    visibility: Mapped[str] = mapped_column(String(10))
    # "" for a save; "conflict" keeps a save that lost a race, so that no text is ever lost.
    note: Mapped[str] = mapped_column(String(20), default="")
    author_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    saved_at: Mapped[datetime] = mapped_column(UTCDateTime)


DEFAULT_COLUMNS = [
    {"slug": "daily", "name": "每日60秒", "position": 1},
    {"slug": "reading-notes", "name": "读书笔记", "position": 2},
    {"slug": "lessons", "name": "又一课", "position": 3},
]


class PodcastToken(db.Model):
    """A member's private podcast feed. The URL carries `id.HMAC(secret, id:nonce)`, so the
    database alone cannot rebuild it; revoking sets `revoked_at` and the URL stops working."""

    __tablename__ = "podcast_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    nonce: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class SearchQueue(db.Model):
    """A document whose search entry is out of date: written in the same transaction as the
    change, removed by the single index writer once the index has it (see content/search.py)."""

    __tablename__ = "search_queue"
    # Ids are never reused (SQLite would hand out a deleted row's id again without
    # AUTOINCREMENT), so deleting the ids a writer applied can never remove a newer row.
    __table_args__ = {"sqlite_autoincrement": True}

    id: Mapped[int] = mapped_column(primary_key=True)
    doc: Mapped[str] = mapped_column(String(40))  # "article:12"
    queued_at: Mapped[datetime] = mapped_column(UTCDateTime)


class SearchDocument(db.Model):
    """A document of the PostgreSQL search backend (content/search_pg.py): what Whoosh's index
    holds on SQLite, kept in the database so that every app machine searches the same index.
    `words` is jieba's cut of the weighted text as a `simple` tsvector; `plain` is the shown
    text for the pg_trgm substring fallback. The table exists on SQLite too, unused and empty.
    """

    __tablename__ = "search_documents"
    __table_args__ = (
        Index("ix_search_documents_words", "words", postgresql_using="gin"),
        Index(
            "ix_search_documents_plain",
            "plain",
            postgresql_using="gin",
            postgresql_ops={"plain": "gin_trgm_ops"},
        ),
    )

    doc: Mapped[str] = mapped_column(String(40), primary_key=True)  # "article:12", "post:34"
    kind: Mapped[str] = mapped_column(String(10))  # "article" or "post"
    slug: Mapped[str] = mapped_column(String(120), default="")  # an article's
    title: Mapped[str] = mapped_column(Text)  # for a post, its thread's title
    summary: Mapped[str] = mapped_column(Text, default="")
    body: Mapped[str] = mapped_column(Text)
    visibility: Mapped[str] = mapped_column(String(10), default="")  # an article's
    section_id: Mapped[int | None] = mapped_column(Integer)  # a post's
    thread_id: Mapped[int | None] = mapped_column(Integer)  # a post's
    answer: Mapped[bool] = mapped_column(Boolean, default=False)
    publish_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    words: Mapped[str] = mapped_column(TSVECTOR().with_variant(Text(), "sqlite"))
    plain: Mapped[str] = mapped_column(Text)


# The trigram index needs pg_trgm (a trusted extension: the database owner may create it).
event.listen(
    SearchDocument.__table__,
    "before_create",
    DDL("CREATE EXTENSION IF NOT EXISTS pg_trgm").execute_if(dialect="postgresql"),
)
