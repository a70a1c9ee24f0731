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

The board's visible posts are documents too (`post:<id>`, queued by board/posts.py the same
way): an opening post with its thread's title and tags, an answer with its own text only (it
shows the thread's title). A post leaves the index when it, or its thread's opening post, is
deleted or hidden. With BOARD_READ=members the caller leaves posts out for other readers.

On PostgreSQL the index is a table instead (content/search_pg.py), shared by every app
machine; the queue, the documents, the ranking rules and the snippets are the same.
"""

from __future__ import annotations

import fcntl
import html
import itertools
import logging
import re
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import jieba
import nh3
from flask import current_app, url_for
from sqlalchemy import delete, func, select
from sqlalchemy.orm import aliased, joinedload, lazyload
from whoosh import index
from whoosh.analysis import LowercaseFilter, Token, Tokenizer
from whoosh.fields import DATETIME, ID, STORED, TEXT, Schema
from whoosh.reading import MultiReader, ReaderClosed, SegmentReader
from whoosh.scoring import BM25F
from whoosh.searching import Searcher
from whoosh.writing import CLEAR, MERGE_SMALL, LockError

from app import db, in_write_transaction, utcnow, write_transaction
from board.models import Post, Section
from content import postings, search_pg, segment_files
from content.models import Article, SearchQueue, Status, Visibility

log = logging.getLogger(__name__)
jieba.setLogLevel(logging.WARNING)
segment_files.install()
# Words jieba's dictionary lacks (罗辑思维 would otherwise be only 罗辑 + 思维).
with open(Path(__file__).with_name("words.txt"), "rb") as _words:
    jieba.load_userdict(_words)

DRAIN_BATCH = 500
# A query whose words match more articles than this is listed newest first (see `_ranked`).
COMMON_MATCHES = 1000
DRAIN_ROUNDS = 20  # bounded: a writer never holds the lock forever
# A drain inside a request (a save, a post, a search) applies this many queued rows at most,
# in one round, the newest: the change the request has just made is among them, so a hidden
# post is gone from the next search even behind a backlog. The older rows are left to later
# requests and to the job (`flask --app app search drain`, every minute). The reader whose
# search happens to find the lock free should not index everybody's posts: under the soak's
# posts (a dozen a second) a request that drained every round held the lock longer each
# time while the queue grew behind it, and one waited 87 s. (A row of an opening post renews
# its whole thread's answers, which show its title: one row can be a thread's documents.)
REQUEST_DRAIN_ROWS = 50
# A drain inside a request (a save, a post, a search) merges at most this many documents in
# all, the smallest segments' (Whoosh's usual policy among them). A merge costs 2-3 ms of pure
# Python per document, several times that while other threads want the interpreter: the soak
# saw searches that merged 1,500 documents of small segments wait 10-30 s. The bigger merges
# are left to `flask --app app search drain`, every minute from chendu-jobs.timer.
REQUEST_MERGE_DOCS = 100
# (Whoosh's policy merges five segments or more, of fewer documents in all than a Fibonacci
# number that grows with their count: under this bound, requests merge segments of a few
# dozen documents at most, and the job's merge the others.)
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


# One field to match on: the title, keywords and summary are repeated in it to weigh more
# than the body (matching one field is several times faster than four in Whoosh). The
# display fields are stored only.
SCHEMA = Schema(
    doc=ID(stored=True, unique=True),  # "article:12" or "post:34"
    kind=ID(stored=True),  # "article" or "post"
    slug=STORED(),  # an article's
    title=STORED(),  # for a post, its thread's title
    summary=STORED(),
    body=STORED(),
    visibility=STORED(),  # an article's
    section_id=STORED(),  # a post's board section (named at query time: names can change)
    thread_id=STORED(),  # a post's
    answer=STORED(),  # a post's: an answer rather than the opening post
    # Frequencies only (phrase=False): nothing asks for a phrase, snippets find the words
    # themselves, and positions made each block of postings several times dearer to read.
    text=TEXT(analyzer=chinese_analyzer(), phrase=False),
    publish_at=DATETIME(stored=True, sortable=True),  # a post's: when it was written
)
# Bump when SCHEMA or the analyzer changes: a new index is built beside the old one.
SCHEMA_VERSION = 5
WEIGHTS = {"title": 3, "keywords": 4, "summary": 2}


# --- the index ---------------------------------------------------------------------------


def on_postgres() -> bool:
    """Whether the index is the database's own (content/search_pg.py) rather than Whoosh's."""
    return db.engine.dialect.name == "postgresql"


_open: dict[Path, index.Index] = {}
_open_lock = threading.Lock()
_searchers = threading.local()  # one searcher per thread, refreshed when the index changes


def index_dir() -> Path:
    return Path(current_app.config["SEARCH_INDEX_DIR"]) / f"v{SCHEMA_VERSION}"


def open_index() -> index.Index:
    """This process's handle on the index, created on first use (once, across processes). A
    new index queues every published article and visible post, so a lost or outdated index
    heals itself."""
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
                _queue_everything()
        _open[where] = found
        _forget_searcher()
        return found


def _queue_everything() -> None:
    with write_transaction() as session:
        ids = session.scalars(
            select(Article.id).where(
                Article.status == Status.PUBLISHED, Article.publish_at.is_not(None)
            )
        ).all()
        post_ids = session.scalars(visible_posts().with_only_columns(Post.id)).all()
        now = utcnow()
        session.add_all(SearchQueue(doc=f"article:{i}", queued_at=now) for i in ids)
        session.add_all(SearchQueue(doc=f"post:{i}", queued_at=now) for i in post_ids)


def visible_posts():
    """Posts that are neither deleted nor hidden, in threads whose opening post is neither."""
    opening = aliased(Post)
    return (
        select(Post)
        .join(opening, (opening.thread_id == Post.thread_id) & opening.opening)
        .where(
            Post.deleted_at.is_(None),
            Post.hidden_at.is_(None),
            opening.deleted_at.is_(None),
            opening.hidden_at.is_(None),
        )
    )


def _with_thread(query):
    return query.options(joinedload(Post.thread), lazyload(Post.author))


def plain_text(fragment: str) -> str:
    return html.unescape(nh3.clean(fragment, tags=set())).strip()


def _naive_utc(value: datetime) -> datetime:
    return value.astimezone(UTC).replace(tzinfo=None)


def document(article: Article) -> dict[str, object]:
    members = article.visibility == Visibility.MEMBERS
    body = plain_text(article.preview_html if members else article.body_html)
    keywords = " ".join(article.keyword_list)
    parts = {"title": article.title, "keywords": keywords, "summary": article.summary}
    weighted = [" ".join([parts[name]] * times) for name, times in WEIGHTS.items()]
    return {
        "doc": f"article:{article.id}",
        "kind": "article",
        "slug": article.slug,
        "title": article.title,
        "summary": article.summary,
        "body": body,
        "visibility": article.visibility,
        "text": "\n".join([*weighted, body]),
        "publish_at": _naive_utc(article.publish_at),
    }


def post_document(post: Post) -> dict[str, object]:
    thread = post.thread
    body = plain_text(post.body_html)
    if post.opening:
        title = " ".join([thread.title] * WEIGHTS["title"])
        text = "\n".join([title, " ".join(thread.tag_list), body])
    else:
        text = body  # the thread's title is shown, not matched: the opening post has it
    return {
        "doc": f"post:{post.id}",
        "kind": "post",
        "title": thread.title,
        "summary": "",
        "body": body,
        "section_id": thread.section_id,
        "thread_id": thread.id,
        "answer": not post.opening,
        "text": text,
        "publish_at": _naive_utc(post.created_at),
    }


def _ids(docs: Iterable[str], kind: str) -> set[int]:
    return {int(d.split(":", 1)[1]) for d in docs if d.startswith(f"{kind}:")}


def _apply(writer, docs: Iterable[str]) -> None:
    docs = list(docs)
    _apply_articles(writer, _ids(docs, "article"))
    _apply_posts(writer, _ids(docs, "post"))


def _apply_articles(writer, ids: set[int]) -> None:
    query = select(Article).where(Article.id.in_(ids))
    found = {a.id: a for a in db.session.scalars(query.execution_options(populate_existing=True))}
    for article_id in ids:
        article = found.get(article_id)
        if article is None or article.status != Status.PUBLISHED or article.publish_at is None:
            writer.delete_by_term("doc", f"article:{article_id}")
        else:
            writer.update_document(**document(article))


def _apply_posts(writer, ids: set[int]) -> None:
    if not ids:
        return
    # Answers show their thread's title: an opening post's change (an edited title, a
    # moved thread) renews them too.
    threads = select(Post.thread_id).where(Post.id.in_(ids), Post.opening)
    ids |= set(db.session.scalars(select(Post.id).where(Post.thread_id.in_(threads))))
    ordered = sorted(ids)
    for start in range(0, len(ordered), DRAIN_BATCH):
        batch = ordered[start : start + DRAIN_BATCH]
        query = _with_thread(visible_posts().where(Post.id.in_(batch)))
        found = {
            p.id: p for p in db.session.scalars(query.execution_options(populate_existing=True))
        }
        for post_id in batch:
            post = found.get(post_id)
            if post is None:
                writer.delete_by_term("doc", f"post:{post_id}")
            else:
                writer.update_document(**post_document(post))


class _OneSearcher:
    """A Whoosh writer whose replacements and deletions all look their documents up through
    one searcher, opened once for the batch. Whoosh's `update_document` opens a searcher
    for each document, and that opens a reader of every segment: with fifty segments, a
    drain of fifty posts opened 2,500 readers. (Whoosh's own docs advise deleting the batch
    first and then adding; the documents of one batch are all distinct.)"""

    def __init__(self, writer) -> None:
        self.writer = writer
        self.searcher = writer.searcher()

    def update_document(self, **fields) -> None:
        self.delete_by_term("doc", fields["doc"])
        self.writer.add_document(**fields)

    def delete_by_term(self, field: str, text: str) -> None:
        self.writer.delete_by_term(field, text, searcher=self.searcher)

    def close(self) -> None:
        self.searcher.close()


def _merge_small_segments(writer, segments):
    """Whoosh's MERGE_SMALL among the smallest segments, REQUEST_MERGE_DOCS documents in all
    at most; the rest are kept."""
    small, total = [], 0
    for segment in sorted(segments, key=lambda s: s.doc_count_all()):
        total += segment.doc_count_all()
        if total > REQUEST_MERGE_DOCS:
            break
        small.append(segment)
    kept = MERGE_SMALL(writer, small) if len(small) > 1 else small
    return [s for s in segments if s not in small] + list(kept)


def merge_segments() -> bool:
    """Merge the index's segments as Whoosh usually does (the job's part of `drain`), if no
    other writer is at it. Whether it ran."""
    if on_postgres():
        return False
    try:
        writer = open_index().writer()
    except LockError:
        return False
    writer.commit(mergetype=MERGE_SMALL)
    return True


def drain(rounds: int = DRAIN_ROUNDS, batch: int = DRAIN_BATCH, newest: bool = False) -> int:
    """Apply the queued changes, `rounds` of `batch` rows at most (the oldest, or the
    `newest`), if no other writer is at it. Returns how many were applied. Each row is
    applied from the database as it is now, so their order does not matter to the index."""
    if db.session.scalar(select(SearchQueue.id).limit(1)) is None:
        return 0
    order = SearchQueue.id.desc() if newest else SearchQueue.id
    if on_postgres():
        return search_pg.drain(_apply, WORD.search, rounds, batch, order)
    ix = open_index()
    applied = 0
    for _ in range(rounds):
        try:
            writer = ix.writer()  # no waiting: whoever holds the lock drains for everyone
        except LockError:
            return applied
        # Read only after taking the lock: an older snapshot could still show rows another
        # writer has applied since, with older article text, and put that text back.
        db.session.rollback()
        rows = db.session.execute(
            select(SearchQueue.id, SearchQueue.doc).order_by(order).limit(batch)
        ).all()
        if not rows:
            writer.cancel()
            break
        try:
            batch_writer = _OneSearcher(writer)
            try:
                _apply(batch_writer, {doc for _, doc in rows})
            finally:
                batch_writer.close()
            writer.commit(mergetype=_merge_small_segments)
        except BaseException:
            writer.cancel()
            raise
        db.session.rollback()  # end the read snapshot before writing
        with write_transaction() as session:
            session.execute(delete(SearchQueue).where(SearchQueue.id.in_([r[0] for r in rows])))
        applied += len(rows)
        if len(rows) < batch:
            break
    return applied


def drain_quietly() -> None:
    """A request's drain (the newest REQUEST_DRAIN_ROWS at most), which never lets the index
    fail the content change that asked for it. Inside a write transaction it does nothing:
    the change is not committed yet."""
    if in_write_transaction():
        return
    try:
        drain(rounds=1, batch=REQUEST_DRAIN_ROWS, newest=True)
    except Exception:
        log.exception("search queue not drained; it stays queued for the next chance")


def reindex(progress: Callable[[int], None] | None = None) -> int:
    """Rebuild the whole index from the database; waits for the writer lock."""
    if on_postgres():
        return search_pg.reindex(_all_documents, WORD.search, progress)
    ix = open_index()
    writer = ix.writer(timeout=60.0, delay=0.25)
    try:
        db.session.rollback()  # read after taking the lock (see `drain`)
        # The rows this rebuild covers: ones queued later (or still uncommitted, on
        # PostgreSQL) stay queued for the next drain.
        covered = db.session.scalars(select(SearchQueue.id)).all()
        count = 0
        for doc in _all_documents():
            writer.add_document(**doc)
            count += 1
            if progress is not None:
                progress(1)
        writer.commit(mergetype=CLEAR)
    except BaseException:
        writer.cancel()
        raise
    db.session.rollback()
    with write_transaction() as session:
        for start in range(0, len(covered), DRAIN_BATCH):
            batch = covered[start : start + DRAIN_BATCH]
            session.execute(delete(SearchQueue).where(SearchQueue.id.in_(batch)))
    return count


def _all_documents() -> Iterator[dict[str, object]]:
    """Every published article's and visible post's document, read in batches."""
    query = (
        select(Article)
        .where(Article.status == Status.PUBLISHED, Article.publish_at.is_not(None))
        .order_by(Article.id)
        .execution_options(yield_per=500)
    )
    posts = _with_thread(visible_posts()).order_by(Post.id).execution_options(yield_per=500)
    return itertools.chain(
        map(document, db.session.scalars(query)), map(post_document, db.session.scalars(posts))
    )


def document_count() -> int:
    """How many documents `reindex` writes: published articles and visible posts."""
    posts = select(func.count()).select_from(visible_posts().with_only_columns(Post.id).subquery())
    return published_count() + (db.session.scalar(posts) or 0)


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
    """An article, or a board post (`kind` "post") in section `section` of thread
    `thread_id`; `url` (inside a request) is where to read it."""

    kind: str
    slug: str
    title_html: str
    snippet_html: str
    members_only: bool
    publish_at: datetime
    section: str = ""
    thread_id: int | None = None
    post_id: int | None = None
    answer: bool = False

    @property
    def url(self) -> str:
        if self.kind != "post":
            return url_for("content.article", slug=self.slug)
        # The thread page opens with its opening post; an answer is anchored "p<id>".
        anchor = f"p{self.post_id}" if self.answer else None
        return url_for("board.thread", thread_id=self.thread_id, _anchor=anchor)


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


def _searcher():
    """This thread's searcher on the current index (opening one costs milliseconds)."""
    ix = open_index()
    current = getattr(_searchers, "searcher", None)
    if current is None or getattr(_searchers, "index", None) is not ix:
        _forget_searcher()  # of an index this process no longer uses
        current = ix.searcher(weighting=BM25F())
        _searchers.index = ix
    elif not current.up_to_date():
        try:
            current = _refresh(ix, current)
        except Exception:
            # A writer in another process merged away a segment the refresh was opening:
            # Whoosh leaves the old searcher half closed. Start afresh from the new index,
            # and let go of the old one's files (each holds segments mapped in memory).
            log.info("search: refresh failed, opening a new searcher", exc_info=True)
            _close_quietly(current)
            current = ix.searcher(weighting=BM25F())
    if current is not getattr(_searchers, "searcher", None):
        # The lists kept of segments the index no longer has would stay until pushed out.
        postings.retain_for(current)
    _searchers.searcher = current
    return current


def _refresh(ix: index.Index, searcher):
    """`searcher` brought up to the index's latest generation, keeping the readers of the
    segments it still has. (Whoosh 2.7.4's own refresh files the old readers by generation but
    looks them up by segment id, so it reuses none: every refresh after a post opened every
    segment again, copying each one out of its mapped file.) A segment with more deletions
    since is opened again: its reader holds the deletions it was opened with."""
    info = ix._read_toc()

    def key(segment) -> tuple[str, int]:
        return segment.segment_id(), segment.deleted_count()

    old = {key(r.segment()): r for r, _ in searcher.reader().leaf_readers()}
    readers, opened = [], []
    try:
        for segment in info.segments:
            reader = old.pop(key(segment), None)
            if reader is None:
                reader = SegmentReader(ix.storage, info.schema, segment, generation=info.generation)
                opened.append(reader)
            readers.append(reader)
    except BaseException:
        # A segment merged away by another process since the TOC was read: the caller opens
        # a new searcher (the old one keeps its readers until it is closed).
        for reader in opened:
            reader.close()
        raise
    for reader in readers:
        reader._gen = info.generation  # what up_to_date() compares with the index's
    for reader in old.values():  # segments merged away, or with new deletions
        reader.close()
    if not readers:
        return ix.searcher(weighting=BM25F())
    top = readers[0] if len(readers) == 1 else MultiReader(readers, generation=info.generation)
    return Searcher(top, fromindex=ix, weighting=BM25F())


def _close_quietly(searcher) -> None:
    if searcher is None:
        return
    try:
        searcher.close()
    except Exception:  # already half closed by a failed refresh
        log.debug("search: closing an old searcher failed", exc_info=True)


def _forget_searcher() -> None:
    """Let go of this thread's searcher, and of the segment files it keeps mapped."""
    _close_quietly(getattr(_searchers, "searcher", None))
    _searchers.__dict__.clear()


def mark(text: str, words: list[str]) -> str:
    """`text` escaped, with every query word wrapped in <mark>."""
    if not words:
        return html.escape(text)
    pattern = re.compile("|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)), re.I)
    out, last = [], 0
    for found in pattern.finditer(text):
        out.append(html.escape(text[last : found.start()]))
        out.append(f"<mark>{html.escape(found.group())}</mark>")
        last = found.end()
    out.append(html.escape(text[last:]))
    return "".join(out)


def snippet(text: str, words: list[str], width: int = 80) -> str:
    """About `width` characters of `text` around the first query word, marked."""
    lowered = text.lower()
    starts = [i for i in (lowered.find(w) for w in words) if i >= 0]
    if not starts:
        return mark(text[:width], words) + ("…" if len(text) > width else "")
    start = max(0, min(starts) - width // 3)
    piece = text[start : start + width]
    return ("…" if start else "") + mark(piece, words) + ("…" if start + width < len(text) else "")


def _ranked(
    searcher,
    words: list[str],
    every: bool,
    without: tuple[str, str] | None,
    matches: int,
    scheduled: set[int],
    limit: int,
) -> list[dict]:
    """The stored fields of the best `limit` visible documents holding every word (`every`)
    or any of them, without those holding the term `without`.

    When the words stand in a large share of all articles (`matches` is an upper bound of how
    many match), they say little about relevance, and scoring thousands of matches in Python
    is slow: such queries list the newest matching articles first instead, from the terms'
    whole lists of documents (content/postings.py).
    """
    if matches <= COMMON_MATCHES:
        found = postings.best(searcher, "text", words, every, without, limit, scheduled)
        return [searcher.stored_fields(docnum) for docnum in found]
    found = postings.matching(searcher, "text", words, every, without)
    newest = postings.newest(searcher, "publish_at", found, limit, scheduled)
    return [searcher.stored_fields(docnum) for docnum in newest]


def search(text: str, *, limit: int = 20, board: bool = False) -> Results:
    """Published articles matching `text` (and the board's visible posts if `board`), best
    first, with highlighted snippets."""
    drain_quietly()
    words = query_words(text)
    if not words:
        return Results(text, [], 0)
    if on_postgres():
        shown = search_pg.find(db.session, words, utcnow(), limit, board, COMMON_MATCHES)
    else:
        try:
            shown = _whoosh_find(words, limit, board)
        except (ReaderClosed, OSError):
            # The same race met while reading: once more, on a searcher opened now.
            log.info("search: the index changed under the searcher; once more", exc_info=True)
            _forget_searcher()
            shown = _whoosh_find(words, limit, board)
    sections = {}
    if any(fields["kind"] == "post" for fields in shown):
        sections = {i: name for i, name in db.session.execute(select(Section.id, Section.name))}
    hits = [_hit(fields, words, sections) for fields in shown]
    return Results(text, hits, len(hits))


def _whoosh_find(words: list[str], limit: int, board: bool) -> list[dict]:
    # Scheduled articles (usually none, at most a few) are left out of the ranked matches.
    now = _naive_utc(utcnow())
    searcher = _searcher()
    scheduled = postings.after(searcher, "publish_at", SCHEMA["publish_at"].to_column_value(now))
    frequencies = {word: searcher.doc_frequency("text", word) for word in words}
    # A word found in most articles hardly narrows a search with other words in it (and
    # intersecting its long list is slow): such words only mark the snippets.
    half = searcher.doc_count() / 2
    narrowing = [word for word in words if frequencies[word] <= half] or words
    counts = [frequencies[word] for word in narrowing]
    # An index without posts needs no filter.
    leave_out_posts = not board and searcher.doc_frequency("kind", "post") > 0
    without = ("kind", "post") if leave_out_posts else None
    shown = _ranked(searcher, narrowing, True, without, min(counts), scheduled, limit)
    if not shown and len(narrowing) > 1:
        shown = _ranked(searcher, narrowing, False, without, sum(counts), scheduled, limit)
    return shown


def _hit(fields: dict, words: list[str], sections: dict[int, str]) -> Hit:
    kind = fields["kind"]
    post = kind == "post"
    return Hit(
        kind=kind,
        slug=fields.get("slug", ""),
        title_html=mark(fields["title"], words),
        snippet_html=snippet(fields["body"] or fields["summary"], words),
        members_only=fields.get("visibility") == Visibility.MEMBERS,
        publish_at=fields["publish_at"].replace(tzinfo=UTC),
        section=sections.get(fields.get("section_id", 0), ""),
        thread_id=fields.get("thread_id"),
        post_id=int(fields["doc"].split(":", 1)[1]) if post else None,
        answer=bool(fields.get("answer")),
    )
