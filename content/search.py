"""Full-text search with Whoosh, cutting Chinese into words with jieba.

The database is the source of truth and the index a cache that `flask --app app search
reindex` rebuilds. Every content change writes a row to `search_queue` in the same
transaction; `drain()` applies the queue while holding Whoosh's single writer lock and only
then deletes the rows it applied. A process that finds the lock taken simply leaves the rows
for the next chance (the next save or search, in any process), so no update is ever lost,
whatever the number of worker processes; applying a row twice does no harm.

Members-only articles are indexed with their preview only, so neither a result nor a snippet
can reveal what stands after the marker. Scheduled articles are indexed with `publish_at` and
filtered by the clock at query time.
"""

from __future__ import annotations

import fcntl
import html
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jieba
import nh3
from flask import current_app
from sqlalchemy import delete, func, select
from whoosh import highlight, index
from whoosh.analysis import LowercaseFilter, Token, Tokenizer
from whoosh.fields import DATETIME, ID, TEXT, Schema
from whoosh.query import And, DateRange, Or, Query, Term
from whoosh.scoring import BM25F
from whoosh.writing import CLEAR, LockError

from app import db, in_write_transaction, utcnow, write_transaction
from content.models import Article, SearchQueue, Status, Visibility

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)

DRAIN_BATCH = 500
DRAIN_ROUNDS = 20  # bounded: a writer never holds the lock forever
WORD = re.compile(r"\w")


class ChineseTokenizer(Tokenizer):
    """jieba's search-mode cut ("罗辑思维" gives 罗辑, 思维 and 罗辑思维), with positions and
    character offsets for highlighting. Punctuation and spaces are dropped."""

    def __call__(  # type: ignore[override]
        self,
        value: str,
        positions: bool = False,
        chars: bool = False,
        keeporiginal: bool = False,
        removestops: bool = True,
        start_pos: int = 0,
        start_char: int = 0,
        mode: str = "",
        **kwargs: object,
    ) -> Iterator[Token]:
        token = Token(positions, chars, removestops=removestops, mode=mode, **kwargs)
        pos = start_pos
        for word, start, end in jieba.tokenize(value, mode="search"):
            if not WORD.search(word):
                continue
            token.text = word
            token.boost = 1.0
            token.stopped = False
            if keeporiginal:
                token.original = word
            if positions:
                token.pos = pos
                pos += 1
            if chars:
                token.startchar = start_char + start
                token.endchar = start_char + end
            yield token


def chinese_analyzer():
    return ChineseTokenizer() | LowercaseFilter()


SCHEMA = Schema(
    doc=ID(stored=True, unique=True),  # "article:12"
    slug=ID(stored=True),
    title=TEXT(analyzer=chinese_analyzer(), stored=True, field_boost=3.0),
    keywords=TEXT(analyzer=chinese_analyzer(), stored=True, field_boost=4.0),
    summary=TEXT(analyzer=chinese_analyzer(), stored=True, field_boost=2.0),
    body=TEXT(analyzer=chinese_analyzer(), stored=True),
    visibility=ID(stored=True),
    publish_at=DATETIME(stored=True),
)
FIELDS = ("title", "keywords", "summary", "body")


# --- the index ---------------------------------------------------------------------------

_open: dict[Path, index.Index] = {}
_open_lock = threading.Lock()


def index_dir() -> Path:
    return Path(current_app.config["SEARCH_INDEX_DIR"])


def open_index() -> index.Index:
    """This process's handle on the index, created on first use (once, across processes)."""
    where = index_dir()
    with _open_lock:
        found = _open.get(where)
        if found is not None and where.exists():
            return found
        where.mkdir(parents=True, exist_ok=True)
        with open(where.parent / f".{where.name}.create.lock", "w") as guard:
            fcntl.flock(guard, fcntl.LOCK_EX)
            if index.exists_in(str(where)):
                found = index.open_dir(str(where))
            else:
                found = index.create_in(str(where), SCHEMA)
        _open[where] = found
        return found


def plain_text(fragment: str) -> str:
    return html.unescape(nh3.clean(fragment, tags=set())).strip()


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def document(article: Article) -> dict[str, object]:
    members = article.visibility == Visibility.MEMBERS
    return {
        "doc": f"article:{article.id}",
        "slug": article.slug,
        "title": article.title,
        "keywords": " ".join(article.keyword_list),
        "summary": article.summary,
        "body": plain_text(article.preview_html if members else article.body_html),
        "visibility": article.visibility,
        "publish_at": _naive_utc(article.publish_at),
    }


def _apply(writer, docs: Iterable[str]) -> None:
    ids = {int(d.split(":", 1)[1]) for d in docs if d.startswith("article:")}
    found = {
        a.id: a for a in db.session.scalars(select(Article).where(Article.id.in_(ids))).all()
    }
    for article_id in ids:
        article = found.get(article_id)
        if article is None or article.status != Status.PUBLISHED or article.publish_at is None:
            writer.delete_by_term("doc", f"article:{article_id}")
        else:
            writer.update_document(**document(article))


def drain() -> int:
    """Apply the queued changes, if no other writer is at it. Returns how many were applied."""
    if db.session.scalar(select(SearchQueue.id).limit(1)) is None:
        return 0
    ix = open_index()
    applied = 0
    for _ in range(DRAIN_ROUNDS):
        try:
            writer = ix.writer()  # no waiting: whoever holds the lock drains for everyone
        except LockError:
            return applied
        rows = db.session.execute(
            select(SearchQueue.id, SearchQueue.doc).order_by(SearchQueue.id).limit(DRAIN_BATCH)
        ).all()
        if not rows:
            writer.cancel()
            break
        try:
            _apply(writer, {doc for _, doc in rows})
            writer.commit()
        except BaseException:
            writer.cancel()
            raise
        db.session.rollback()  # end the read snapshot before writing
        with write_transaction() as session:
            session.execute(delete(SearchQueue).where(SearchQueue.id.in_([r[0] for r in rows])))
        applied += len(rows)
        if len(rows) < DRAIN_BATCH:
            break
    return applied


def drain_quietly() -> None:
    """Drain, but never let the index fail the content change that asked for it. Inside a
    write transaction it does nothing: the change is not committed yet."""
    if in_write_transaction():
        return
    try:
        drain()
    except Exception:
        log.exception("search queue not drained; it stays queued for the next chance")


def reindex(progress: Callable[[int], None] | None = None) -> int:
    """Rebuild the whole index from the database; waits for the writer lock."""
    ix = open_index()
    writer = ix.writer(timeout=60.0, delay=0.25)
    try:
        last_queued = db.session.scalar(select(func.max(SearchQueue.id))) or 0
        query = (
            select(Article)
            .where(Article.status == Status.PUBLISHED, Article.publish_at.is_not(None))
            .order_by(Article.id)
            .execution_options(yield_per=500)
        )
        count = 0
        for article in db.session.scalars(query):
            writer.add_document(**document(article))
            count += 1
            if progress is not None:
                progress(1)
        writer.commit(mergetype=CLEAR)
    except BaseException:
        writer.cancel()
        raise
    db.session.rollback()
    with write_transaction() as session:
        session.execute(delete(SearchQueue).where(SearchQueue.id <= last_queued))
    return count


def published_count() -> int:
    return (
        db.session.scalar(
            select(func.count())
            .select_from(Article)
            .where(Article.status == Status.PUBLISHED, Article.publish_at.is_not(None))
        )
        or 0
    )


# --- queries -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Hit:
    slug: str
    title_html: str
    snippet_html: str
    members_only: bool
    publish_at: datetime


@dataclass(frozen=True)
class Results:
    query: str
    hits: list[Hit]
    total: int


def query_words(text: str) -> list[str]:
    """The words of what a reader typed, cut the way jieba cuts (precise mode)."""
    words: list[str] = []
    for word in jieba.cut(text[:100]):
        word = word.strip().lower()
        if word and WORD.search(word) and word not in words:
            words.append(word)
    return words[:12]


def _query(words: list[str], *, every: bool) -> Query:
    per_word = [Or([Term(field, word) for field in FIELDS]) for word in words]
    return And(per_word) if every else Or(per_word)


class _Formatter(highlight.HtmlFormatter):
    def __init__(self) -> None:
        super().__init__(tagname="mark", between="…")


def search(text: str, *, limit: int = 20) -> Results:
    """Published articles matching `text`, best first, with highlighted snippets."""
    drain_quietly()
    words = query_words(text)
    if not words:
        return Results(text, [], 0)
    ix = open_index()
    visible_now = DateRange("publish_at", None, _naive_utc(utcnow()))
    with ix.searcher(weighting=BM25F()) as searcher:
        found = searcher.search(_query(words, every=True), limit=limit, filter=visible_now)
        if found.is_empty() and len(words) > 1:
            found = searcher.search(_query(words, every=False), limit=limit, filter=visible_now)
        found.fragmenter = highlight.ContextFragmenter(maxchars=120, surround=30)
        found.formatter = _Formatter()
        hits = []
        for hit in found:
            title = hit.highlights("title") or html.escape(hit["title"])
            snippet = (
                hit.highlights("body", top=2)
                or hit.highlights("summary")
                or html.escape(hit["summary"] or hit["body"][:80])
            )
            hits.append(
                Hit(
                    slug=hit["slug"],
                    title_html=title,
                    snippet_html=snippet,
                    members_only=hit["visibility"] == Visibility.MEMBERS,
                    publish_at=hit["publish_at"].replace(tzinfo=UTC),
                )
            )
        return Results(text, hits, found.estimated_length())
