"""The rules of articles: saving (with revisions and conflict detection), scheduling,
keywords, and what a reader may see when.

Scheduled articles need no cron: every reader query filters by the clock (`visible`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass, field, replace
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import ColumnElement, bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import lazyload

from app import db, parse_id, utcnow, write_transaction
from content import search
from content.models import (
    Article,
    ArticleKeyword,
    ArticleRevision,
    Column,
    Media,
    SearchQueue,
    Status,
    Visibility,
)
from content.rendering import render_markdown

SLUG_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,118}[a-z0-9])?$")
KEYWORD_RE = re.compile(r"^[\w-]{1,20}$")
KEYWORD_SPLIT = re.compile(r"[\s,，、;；]+")
MAX_KEYWORDS = 8
TITLE_MAX, SUMMARY_MAX, BODY_MAX = 120, 300, 200_000


class ArticleError(Exception):
    """Fields at fault, each with the message shown next to it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


class ArticleConflict(Exception):
    """Someone saved the article since this editor opened it. Their text is kept as a
    revision (note "conflict"); `current` is what is saved now."""

    def __init__(self, current: Article, kept: ArticleRevision) -> None:
        self.current = current
        self.kept = kept
        super().__init__(f"article {current.id} changed since version {kept.version}")


@dataclass
class Draft:
    """What an editor submits for an article; strings as typed."""

    title: str = ""
    body_md: str = ""
    summary: str = ""
    slug: str = ""
    column: str = ""  # a column's slug, or empty
    keywords: str = ""  # separated by spaces, commas or 、
    visibility: str = Visibility.PUBLIC.value
    status: str = "draft"  # draft, scheduled or published
    publish_at: str | datetime | None = None  # local time "YYYY-MM-DD HH:MM" or aware
    base_version: int | None = None  # the version the editor started from
    cover_id: int | str | None = None  # an uploaded image's id, or empty
    voice_id: int | str | None = None  # an uploaded voice's id, or empty
    errors: dict[str, str] = field(default_factory=dict)


# --- what readers may see ----------------------------------------------------------------


def visible(now: datetime | ColumnElement[datetime]) -> ColumnElement[bool]:
    """Published, and its time has come."""
    return (Article.status == Status.PUBLISHED) & (Article.publish_at <= now)


def local_day_bounds(day: date) -> tuple[datetime, datetime]:
    """The UTC instants where `day` begins and ends in the site's time zone."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    start = datetime.combine(day, time(0), tzinfo=zone)
    return start, start + timedelta(days=1)


def today() -> date:
    return utcnow().astimezone(ZoneInfo(current_app.config["TIMEZONE"])).date()


def article_for_reader(slug: str) -> Article | None:
    return db.session.scalar(select(Article).where(Article.slug == slug, visible(utcnow())))


# Built once: the article page asks this on every request, and building a statement costs
# more than running it (bench/serving.py).
_STAMP = select(Article.id, Article.version, Article.visibility).where(
    Article.slug == bindparam("slug"), visible(bindparam("now"))
)


def reader_stamp(slug: str) -> tuple[int, int, str] | None:
    """The id, version and visibility of the article at `slug` if readers may see it now."""
    found = db.session.connection().execute(_STAMP, {"slug": slug, "now": utcnow()}).first()
    return None if found is None else (found[0], found[1], found[2])


def daily_piece(day: date) -> Article | None:
    """The piece of `day` (Asia/Shanghai): the first one published that day."""
    start, end = local_day_bounds(day)
    now = utcnow()
    return db.session.scalar(
        select(Article)
        .where(visible(now), Article.publish_at >= start, Article.publish_at < end)
        .order_by(Article.publish_at, Article.id)
        .limit(1)
    )


def latest(limit: int, *, before: datetime | None = None, column: Column | None = None):
    """Published articles, newest first; `before` pages on."""
    query = select(Article).where(visible(utcnow()))
    if before is not None:
        query = query.where(Article.publish_at < before)
    if column is not None:
        query = query.where(Article.column_id == column.id)
    return db.session.scalars(
        query.order_by(Article.publish_at.desc(), Article.id.desc()).limit(limit)
    ).all()


# Built once, as _STAMP: `/k/<keyword>` and the official account ask it for every keyword a
# reader types. The article's own keywords are not loaded with it: no caller needs them, and
# loading them was a second query each time (a round trip on PostgreSQL).
_BY_KEYWORD = (
    select(Article)
    .join(ArticleKeyword)
    .where(
        ArticleKeyword.keyword == bindparam("keyword"),
        ArticleKeyword.live,
        visible(bindparam("now")),
    )
    .options(lazyload(Article.keywords))
    .limit(1)
)


def article_for_keyword(keyword: str) -> Article | None:
    """The published article that owns this lookup keyword (exact, case-insensitive)."""
    keyword = normalize_keyword(keyword)
    if not keyword:
        return None
    return db.session.scalar(_BY_KEYWORD, {"keyword": keyword, "now": utcnow()})


# --- saving ------------------------------------------------------------------------------


def normalize_keyword(keyword: str) -> str:
    return keyword.strip().lower()


def parse_keywords(text: str) -> list[str]:
    seen: list[str] = []
    for word in KEYWORD_SPLIT.split(text or ""):
        word = normalize_keyword(word)
        if word and word not in seen:
            seen.append(word)
    return seen


def parse_local_time(value: str | datetime | None) -> datetime | None:
    """An aware UTC datetime from "YYYY-MM-DD HH:MM" (or the T form) in the site's zone."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime")
        return value
    text = value.strip().replace("T", " ")
    # Seconds are allowed (a browser's datetime-local may send them); nothing else is, so
    # "06:30Z" is refused rather than silently read as local time.
    for form in ("%Y-%m-%d %H:%M", "%Y-%m-%d %H:%M:%S"):
        try:
            parsed = datetime.strptime(text, form)
        except ValueError:
            continue
        if not 1970 <= parsed.year <= 9998:
            break  # beyond what every database and time zone can hold
        return parsed.replace(tzinfo=ZoneInfo(current_app.config["TIMEZONE"]))
    raise ValueError(f"not a local time: {value!r}")


def _new_slug(title: str, when: datetime) -> str:
    day = when.astimezone(ZoneInfo(current_app.config["TIMEZONE"])).strftime("%Y%m%d")
    words = re.findall(r"[a-z0-9]+", title.lower())
    tail = "-".join(words)[:60].strip("-") if words else secrets.token_hex(3)
    return f"{day}-{tail}"


def _check(draft: Draft, now: datetime) -> dict[str, object]:
    """Every field's rule at once, so that the form shows all its faults."""
    errors: dict[str, str] = {}
    title = draft.title.strip()
    if not title:
        errors["title"] = "请填写标题。"
    elif len(title) > TITLE_MAX:
        errors["title"] = f"标题最多 {TITLE_MAX} 个字。"
    summary = draft.summary.strip()
    if len(summary) > SUMMARY_MAX:
        errors["summary"] = f"摘要最多 {SUMMARY_MAX} 个字。"
    if len(draft.body_md) > BODY_MAX:
        errors["body_md"] = f"正文最多 {BODY_MAX} 个字符。"
    slug = draft.slug.strip().lower()
    if slug and not SLUG_RE.match(slug):
        errors["slug"] = "链接名只能用小写字母、数字和连字符，且不能以连字符开头或结尾。"
    keywords = parse_keywords(draft.keywords)
    bad = [k for k in keywords if not KEYWORD_RE.match(k)]
    if bad:
        errors["keywords"] = (
            f"关键词「{bad[0]}」不合适：每个关键词 1 到 20 个字，只含文字、数字或连字符。"
        )
    elif len(keywords) > MAX_KEYWORDS:
        errors["keywords"] = f"关键词最多 {MAX_KEYWORDS} 个。"
    if draft.visibility not in (Visibility.PUBLIC, Visibility.MEMBERS):
        errors["visibility"] = "请选择公开或仅会员可读。"
    if draft.status not in ("draft", "scheduled", "published"):
        errors["status"] = "请选择草稿、定时发布或立即发布。"
    publish_at = None
    try:
        publish_at = parse_local_time(draft.publish_at)
    except ValueError:
        errors["publish_at"] = "发布时间的格式应为 2026-11-22 06:30。"
    if draft.status == "scheduled" and "publish_at" not in errors:
        if publish_at is None:
            errors["publish_at"] = "定时发布需要填写发布时间。"
        elif publish_at <= now:
            errors["publish_at"] = "定时发布的时间需要晚于现在。"
    media_ids: dict[str, int | None] = {}
    for name in ("cover_id", "voice_id"):
        value = getattr(draft, name)
        if value in (None, ""):
            media_ids[name] = None
        elif parse_id(value) is not None:
            media_ids[name] = parse_id(value)
        else:
            errors[name] = "请重新选择文件。"
    if errors:
        raise ArticleError(errors)
    if draft.status == "published" and publish_at is None:
        publish_at = now
    return {
        "title": title,
        "summary": summary,
        "slug": slug,
        "keywords": keywords,
        "publish_at": publish_at,
        "status": Status.DRAFT if draft.status == "draft" else Status.PUBLISHED,
        **media_ids,
    }


def _revision(
    article_id: int,
    version: int,
    draft: Draft,
    fields: dict[str, object],
    author_id: int | None,
    now: datetime,
    note: str = "",
) -> ArticleRevision:
    """The submitted text as a revision: a save's, or the losing side of a conflict."""
    return ArticleRevision(
        article_id=article_id,
        version=version,
        title=str(fields["title"]),
        summary=str(fields["summary"]),
        body_md=draft.body_md,
        keywords=" ".join(fields["keywords"]),  # type: ignore[arg-type]
        visibility=draft.visibility,
        note=note,
        author_id=author_id,
        saved_at=now,
    )


# Control characters a paste can bring along; XML (the feeds) cannot carry them at all.
UNPRINTABLE = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffe\uffff]")


def _printable(text: str) -> str:
    return UNPRINTABLE.sub("", text or "")


def save_article(
    draft: Draft, *, article_id: int | None = None, author_id: int | None = None
) -> Article:
    """Create (no `article_id`) or update an article, keeping a revision of every save.

    Raises ArticleError for bad fields, a taken slug or a keyword that another published
    article holds; ArticleConflict when `draft.base_version` is not the saved version.
    """
    now = utcnow()
    draft = replace(
        draft,
        title=_printable(draft.title),
        summary=_printable(draft.summary),
        body_md=_printable(draft.body_md),
        keywords=_printable(draft.keywords),
    )
    fields = _check(draft, now)
    rendered = render_markdown(draft.body_md)
    keywords: list[str] = fields["keywords"]  # type: ignore[assignment]
    conflict: ArticleConflict | None = None
    try:
        with write_transaction() as session:
            if article_id is None:
                article = Article(created_at=now, version=0, author_id=author_id)
            else:
                article = session.scalars(
                    select(Article).where(Article.id == article_id).with_for_update(of=Article)
                ).one_or_none()
                if article is None:
                    raise ArticleError({"title": "这篇文章不存在或已被删除。"})
            stale = draft.base_version is not None and draft.base_version != article.version
            if article_id is not None and stale:
                # Keep the losing text as a revision; the editor sees both and chooses.
                kept = _revision(
                    article.id, draft.base_version, draft, fields, author_id, now, "conflict"
                )
                session.add(kept)
                conflict = ArticleConflict(article, kept)
            else:
                _apply(session, article, draft, fields, rendered, keywords, now)
                session.add(article)
                session.flush()
                session.add(_revision(article.id, article.version, draft, fields, author_id, now))
                session.add(SearchQueue(doc=f"article:{article.id}", queued_at=now))
    except IntegrityError:
        raise ArticleError({"keywords": "关键词或链接名刚被另一篇文章占用，请换一个。"}) from None
    if conflict is not None:
        raise conflict
    search.drain_quietly()
    return article


def _apply(session, article, draft, fields, rendered, keywords, now) -> None:
    status = fields["status"]
    column = None
    if draft.column:
        column = session.scalar(select(Column).where(Column.slug == draft.column))
        if column is None:
            raise ArticleError({"column": "没有这个栏目。"})
    for name, kind, message in (
        ("cover_id", "image", "封面图片不存在，请重新上传。"),
        ("voice_id", "audio", "语音文件不存在，请重新上传。"),
    ):
        media_id = fields[name]
        if media_id is not None:
            found = session.get(Media, media_id)
            if found is None or found.kind != kind:
                raise ArticleError({name: message})
        setattr(article, name, media_id)
    publish_at = fields["publish_at"]
    slug = fields["slug"] or article.slug or _new_slug(fields["title"], publish_at or now)
    taken = session.scalar(select(Article.id).where(Article.slug == slug))
    if taken is not None and taken != article.id:
        raise ArticleError({"slug": f"链接名 {slug} 已被另一篇文章使用。"})
    live = status == Status.PUBLISHED
    if live and keywords:
        holder = session.execute(
            select(ArticleKeyword.keyword, Article.title)
            .join(Article)
            .where(
                ArticleKeyword.keyword.in_(keywords),
                ArticleKeyword.live,
                Article.id != (article.id or 0),
            )
            .limit(1)
        ).first()
        if holder is not None:
            raise ArticleError({"keywords": f"关键词「{holder[0]}」已被《{holder[1]}》使用。"})
    article.title = fields["title"]
    article.summary = fields["summary"]
    article.slug = slug
    article.body_md = draft.body_md
    article.body_html = rendered.html
    article.preview_html = rendered.preview_html
    article.has_more = rendered.has_more
    article.column_id = column.id if column else None
    article.visibility = draft.visibility
    article.status = status
    article.publish_at = publish_at
    article.version = (article.version or 0) + 1
    article.updated_at = now
    existing = {k.keyword: k for k in article.keywords}
    article.keywords = [existing.get(k) or ArticleKeyword(keyword=k) for k in keywords]
    for keyword in article.keywords:
        keyword.live = live


# --- what the desk needs besides saving ----------------------------------------------------


def state_of(article: Article, now: datetime) -> str:
    """ "draft", "scheduled" or "published", as the desk shows it."""
    if article.status == Status.DRAFT:
        return "draft"
    return "scheduled" if article.publish_at and article.publish_at > now else "published"


def draft_from(article: Article, now: datetime) -> Draft:
    """The form of an article as it is saved now."""
    zone = ZoneInfo(current_app.config["TIMEZONE"])
    return Draft(
        title=article.title,
        body_md=article.body_md,
        summary=article.summary,
        slug=article.slug,
        column=article.column.slug if article.column else "",
        keywords=" ".join(article.keyword_list),
        visibility=article.visibility,
        status=state_of(article, now),
        publish_at=(
            article.publish_at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
            if article.publish_at
            else ""
        ),
        base_version=article.version,
        cover_id=article.cover_id,
        voice_id=article.voice_id,
    )


def draft_from_revision(article: Article, revision: ArticleRevision, now: datetime) -> Draft:
    """The article's current form with the text of `revision` put back."""
    draft = draft_from(article, now)
    draft.title = revision.title
    draft.summary = revision.summary
    draft.body_md = revision.body_md
    draft.keywords = revision.keywords
    draft.visibility = revision.visibility
    return draft


def keep_revision(article_id: int, draft: Draft, *, author_id: int | None, note: str):
    """Keep typed text as a revision without touching the article (an autosave of a
    published piece, whose changes must not go live until the editor saves)."""
    now = utcnow()
    with write_transaction() as session:
        article = session.get(Article, article_id)
        if article is None:
            raise ArticleError({"title": "这篇文章不存在或已被删除。"})
        revision = ArticleRevision(
            article_id=article_id,
            version=article.version,
            title=draft.title.strip()[:TITLE_MAX],
            summary=draft.summary.strip()[:SUMMARY_MAX],
            body_md=draft.body_md[:BODY_MAX],
            keywords=" ".join(parse_keywords(draft.keywords))[:400],
            visibility=draft.visibility if draft.visibility in tuple(Visibility) else "public",
            note=note,
            author_id=author_id,
            saved_at=now,
        )
        session.add(revision)
    return revision
