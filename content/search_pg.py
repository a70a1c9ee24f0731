"""The search index in PostgreSQL, for a site on several app machines (Whoosh's files cannot be
shared between them). content/search.py chooses it when the database is PostgreSQL and keeps
everything else (the queue, the documents, the query words, snippets and hits) in common.

A document is one `search_documents` row: jieba's search-mode cut of the weighted text as a
tsvector in the `simple` configuration (so 罗辑思维 is stored as 罗辑, 思维 and 罗辑思维), with
a GIN index, and the text itself under a pg_trgm index for the substring fallback: a short or
partial word jieba never cuts out (辑思) is still found by `ILIKE`.

The queue works as with Whoosh: a transaction-scoped advisory lock makes one drainer at a time,
which reads the queue and the content after taking it, writes the rows and deletes the queue
rows it applied, all in one transaction. A drainer that finds the lock taken leaves the rows
for the next chance. The rebuild replaces every row in one transaction, so readers see the old
index until the new one is whole.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

import jieba
from flask import current_app
from sqlalchemy import Select, delete, func, literal, literal_column, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from app import write_transaction
from content.models import SearchDocument, SearchQueue

# Any fixed 64-bit number: the key of the drainer's advisory lock ("chendu" in ASCII).
LOCK_KEY = 0x636865_6E6475
BATCH = 500
SIMPLE = literal_column("'simple'::regconfig")
SHOWN = (
    SearchDocument.doc,
    SearchDocument.kind,
    SearchDocument.slug,
    SearchDocument.title,
    SearchDocument.summary,
    SearchDocument.body,
    SearchDocument.visibility,
    SearchDocument.section_id,
    SearchDocument.thread_id,
    SearchDocument.answer,
    SearchDocument.publish_at,
)
# Below this many rows counting them is cheaper than reading the planner's estimate wrongly.
EXACT_COUNT_BELOW = 20_000
# How long a process keeps the statistics it read. PostgreSQL renews them on ANALYZE, which
# autovacuum runs after a share of the table has changed, so they are never fresher than that.
STATISTICS_SECONDS = 60.0
# A word that PostgreSQL's parser keeps whole, as one lexeme of the `simple` configuration (a
# run of Chinese characters, or of lower-case letters and digits): its frequency is one lookup
# in the statistics. Any other word (hyphenated, dotted, an address) is left to the planner.
ONE_LEXEME = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]+|[a-z0-9]+")
# The planner's guess for a lexeme the statistics do not list is the lesser of this and half
# the least frequency they list (DEFAULT_TS_MATCH_SEL in PostgreSQL's ts_selfuncs.c).
DEFAULT_TS_MATCH_SEL = 0.005
CUSTOM_PLANS = text("SET LOCAL plan_cache_mode = force_custom_plan")
# The table's row estimate and the most common lexemes of `words` with their frequencies, as
# ANALYZE left them (pg_stats lists the lexemes sorted; two more numbers follow the
# frequencies: their least and their greatest).
STATISTICS = text(
    """
    SELECT c.reltuples, s.most_common_elems::text::text[], s.most_common_elem_freqs
    FROM pg_class c
    LEFT JOIN pg_stats s
      ON s.schemaname = current_schema() AND s.tablename = 'search_documents'
     AND s.attname = 'words'
    WHERE c.oid = 'search_documents'::regclass
    """
)


def words(text_: str, word: Callable[[str], object]) -> str:
    """jieba's search-mode cut of `text_`, one space between words, punctuation left out."""
    return " ".join(w for w, _, _ in jieba.tokenize(text_, mode="search") if word(w))


class TableWriter:
    """Whoosh's writer calls (`update_document`, `add_document`, `delete_by_term`) on the
    table, so content/search.py applies the queue the same way to either index."""

    def __init__(self, session: Session, word: Callable[[str], object]) -> None:
        self.session = session
        self.word = word
        self.rows: dict[str, dict] = {}
        self.gone: set[str] = set()

    def update_document(self, **fields: object) -> None:
        doc = str(fields["doc"])
        self.gone.discard(doc)
        self.rows[doc] = fields
        if len(self.rows) >= BATCH:
            self.flush()

    add_document = update_document

    def delete_by_term(self, _field: str, doc: str) -> None:
        self.rows.pop(doc, None)
        self.gone.add(doc)

    def flush(self) -> None:
        if self.gone:
            gone = sorted(self.gone)
            for start in range(0, len(gone), BATCH):
                batch = gone[start : start + BATCH]
                self.session.execute(delete(SearchDocument).where(SearchDocument.doc.in_(batch)))
            self.gone.clear()
        if self.rows:
            statement = insert(SearchDocument).values([self._row(f) for f in self.rows.values()])
            replaced = {c.name: statement.excluded[c.name] for c in SearchDocument.__table__.c}
            del replaced["doc"]
            self.session.execute(
                statement.on_conflict_do_update(index_elements=["doc"], set_=replaced)
            )
            self.rows.clear()

    def _row(self, fields: dict) -> dict[str, object]:
        published = fields["publish_at"]
        assert isinstance(published, datetime)
        return {
            "doc": fields["doc"],
            "kind": fields["kind"],
            "slug": fields.get("slug", ""),
            "title": fields["title"],
            "summary": fields.get("summary", ""),
            "body": fields["body"],
            "visibility": str(fields.get("visibility", "")),
            "section_id": fields.get("section_id"),
            "thread_id": fields.get("thread_id"),
            "answer": bool(fields.get("answer")),
            "publish_at": published.replace(tzinfo=UTC),
            "words": func.to_tsvector(SIMPLE, words(fields["text"], self.word)),
            "plain": fields["text"],
        }


def drain(
    apply: Callable[[TableWriter, Iterable[str]], None],
    word,
    rounds: int,
    batch: int = BATCH,
    order=SearchQueue.id,
) -> int:
    """Apply the queue, `rounds` of `batch` rows at most in `order` (content/search.py
    `drain`), unless another drainer holds the lock; returns how many rows."""
    applied = 0
    for _ in range(rounds):
        with write_transaction() as session:
            if not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
                return applied
            rows = session.execute(
                select(SearchQueue.id, SearchQueue.doc).order_by(order).limit(batch)
            ).all()
            if not rows:
                break
            writer = TableWriter(session, word)
            apply(writer, {doc for _, doc in rows})
            writer.flush()
            session.execute(delete(SearchQueue).where(SearchQueue.id.in_([r[0] for r in rows])))
        applied += len(rows)
        if len(rows) < batch:
            break
    return applied


def reindex(documents: Callable[[], Iterable[dict]], word, progress=None) -> int:
    """Replace every row with `documents()`, read after taking the drainer's lock."""
    with write_transaction() as session:
        session.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
        covered = session.scalars(select(SearchQueue.id)).all()
        session.execute(delete(SearchDocument))
        writer = TableWriter(session, word)
        count = 0
        for fields in documents():
            writer.add_document(**fields)
            count += 1
            if progress is not None:
                progress(1)
        writer.flush()
        for start in range(0, len(covered), BATCH):
            batch = covered[start : start + BATCH]
            session.execute(delete(SearchQueue).where(SearchQueue.id.in_(batch)))
    return count


@dataclass(frozen=True)
class Statistics:
    """What PostgreSQL's statistics say of the index: its rows, and the share of rows that
    hold each of its most common lexemes (empty before the first ANALYZE)."""

    rows: float
    shares: dict[str, float]
    least: float
    read_at: float

    def estimate(self, word: str) -> float | None:
        """Rows holding `word`, as the planner would guess them; None when the word is not
        one lexeme or there are no statistics (then ask the planner)."""
        if not self.shares or not ONE_LEXEME.fullmatch(word):
            return None
        share = self.shares.get(word)
        if share is None:
            share = min(DEFAULT_TS_MATCH_SEL, self.least / 2)
        return share * self.rows


def statistics(session: Session) -> Statistics:
    """The index's statistics, read at most every STATISTICS_SECONDS in each process."""
    kept = current_app.extensions.get("search_pg.statistics")
    now = time.monotonic()
    if kept is not None and now - kept.read_at < STATISTICS_SECONDS:
        return kept
    rows, lexemes, frequencies = session.execute(STATISTICS).one()
    shares: dict[str, float] = {}
    least = 0.0
    if lexemes and frequencies and len(frequencies) >= len(lexemes) + 2:
        shares = dict(zip(lexemes, frequencies, strict=False))
        least = float(frequencies[len(lexemes)])
    kept = Statistics(float(rows or 0), shares, least, now)
    current_app.extensions["search_pg.statistics"] = kept
    return kept


def _document_count(session: Session, known: Statistics) -> float:
    if known.rows >= EXACT_COUNT_BELOW:
        return known.rows
    return float(session.scalar(select(func.count()).select_from(SearchDocument)) or 0)


def find(
    session: Session,
    query_words: list[str],
    now: datetime,
    limit: int,
    board: bool,
    common: int,
) -> list[dict]:
    """The stored fields of the best `limit` visible documents for `query_words`, ranked as
    Whoosh ranks them (see content/search.py `search`)."""
    # psycopg prepares a statement run five times on a connection, and PostgreSQL then plans
    # it once for any word (a generic plan). Guessing that a word is rare and the publish
    # time selective, such a plan intersects the word's matches with the index of every
    # document published (6 of 13 ms for a word in 800 documents of 60,000). The search
    # statements are planned for their own words instead, until the transaction ends.
    session.execute(CUSTOM_PLANS)
    shown = select(*SHOWN).where(SearchDocument.publish_at <= now)
    if not board:
        shown = shown.where(SearchDocument.kind == "article")
    tsqueries = {w: func.plainto_tsquery(SIMPLE, w) for w in query_words}
    known = statistics(session)
    total = _document_count(session, known)
    half = total / 2
    large = total >= EXACT_COUNT_BELOW
    frequencies = (
        _estimated(session, known, query_words)
        if large
        else _counted(session, tsqueries, query_words, max(common, int(half)) + 1)
    )
    narrowing = [w for w in query_words if frequencies[w] <= half] or query_words
    counts = [frequencies[w] for w in narrowing]
    all_of = _combine([tsqueries[w] for w in narrowing], "&&")
    found = _ranked(session, shown, all_of, min(counts), limit, common)
    if not found and len(narrowing) > 1:
        any_of = _combine([tsqueries[w] for w in narrowing], "||")
        found = _ranked(session, shown, any_of, sum(counts), limit, common)
    if not found:
        found = _substrings(session, shown, query_words, limit, large)
    return found


def _counted(session, tsqueries: dict, query_words: list[str], cap: int) -> dict[str, float]:
    """How many documents hold each word, counted up to `cap` (as far as choosing needs):
    for a small index, where counting is cheap."""

    def counted(w: str):
        matching = select(literal(1)).where(_matches(tsqueries[w])).limit(cap).subquery()
        return select(func.count()).select_from(matching).scalar_subquery()

    found = session.execute(select(*map(counted, query_words))).one()
    return dict(zip(query_words, map(float, found), strict=True))


def _estimated(session, known: Statistics, query_words: list[str]) -> dict[str, float]:
    """The planner's estimate of each word's documents, from the statistics PostgreSQL
    keeps of the tsvector's most common words (ANALYZE, run by autovacuum): nothing is
    read, where counting a word that stands in most of a large index would read it all. A
    word of one lexeme is looked up in the statistics this process keeps; the planner is
    asked (EXPLAIN) for any other."""
    dialect = session.get_bind().dialect
    estimates = {}
    for w in query_words:
        estimate = known.estimate(w)
        if estimate is not None:
            estimates[w] = estimate
            continue
        query = select(literal(1)).where(_matches(func.plainto_tsquery(SIMPLE, literal(w))))
        sql = query.compile(dialect=dialect, compile_kwargs={"literal_binds": True})
        plan = session.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar()
        estimates[w] = float(plan[0]["Plan"]["Plan Rows"])
    return estimates


def _matches(tsquery):
    return SearchDocument.words.op("@@", is_comparison=True)(tsquery)


def _combine(tsqueries: list, operator: str):
    combined = tsqueries[0]
    for more in tsqueries[1:]:
        combined = combined.op(operator)(more)
    return combined


def _ranked(session, shown: Select, tsquery, matches: int, limit: int, common: int):
    """Best first by `ts_rank` (normalised by document length, as BM25 is); when the words
    stand in more than `common` documents, newest first, as with Whoosh."""
    query = shown.where(_matches(tsquery))
    if matches <= common:
        rank = func.ts_rank(SearchDocument.words, tsquery, 1)
        query = query.order_by(rank.desc(), SearchDocument.publish_at.desc())
    else:
        query = query.order_by(SearchDocument.publish_at.desc())
    return [dict(row._mapping) for row in session.execute(query.limit(limit))]


def _substrings(
    session, shown: Select, query_words: list[str], limit: int, large: bool
) -> list[dict]:
    """Documents holding every word as a substring, newest first (the pg_trgm index). One
    character is no word to look for (读 stands in everything, and Whoosh finds nothing for
    it either); a word under three characters gives pg_trgm nothing to look up, so in a large
    index such words are left out too rather than read through every row."""
    shortest = 3 if large else 2
    query_words = [w for w in query_words if len(w) >= shortest]
    if not query_words:
        return []
    query = shown
    for w in query_words:
        escaped = w.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        query = query.where(SearchDocument.plain.ilike(f"%{escaped}%", escape="\\"))
    query = query.order_by(SearchDocument.publish_at.desc()).limit(limit)
    return [dict(row._mapping) for row in session.execute(query)]
