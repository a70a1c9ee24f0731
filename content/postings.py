"""Whole lists of documents, for searches whose words stand in many of them.

Whoosh's matchers hand out matches one document at a time, a few Python calls each, and an
intersection of two long lists skips back and forth between them: a search for two words
found in thousands of documents took 30-60 ms at 60,000 documents. Here a segment's postings
for a term (documents and weights) are decoded a block at a time and kept, per process, for
as long as the segment has the same deletions; a query's matches are then set operations in C,
ranked by the searcher's own BM25F scorers, and listed newest first from each segment's
documents sorted once by time. `tests/test_postings.py` checks them against Whoosh's own.
"""

from __future__ import annotations

import bisect
import heapq
import threading
from array import array
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import accumulate

from whoosh.codec.whoosh3 import W3LeafMatcher
from whoosh.matching.wrappers import FilterMatcher

# The newest matches come from a walk down the documents newest first when the matches are
# at least 1/WALK_SHARE of all documents (the walk is then short), else from sorting them.
WALK_SHARE = 8
KEPT_POSTINGS = 1_000_000  # postings kept per process, all lists together (8 bytes each)

_kept: OrderedDict[tuple, TermDocs] = OrderedDict()
_kept_size = 0
_timelines: dict[tuple[str, str], _Timeline] = {}
_joined: dict[tuple, array] = {}
_lock = threading.Lock()


@dataclass(frozen=True)
class TermDocs:
    """A term's postings in one segment: document numbers (local to it, ascending) and the
    term's weight in each."""

    ids: array
    weights: array

    def weight(self, docnum: int) -> float:
        """The term's weight in `docnum`, 0 when the document does not hold it."""
        at = bisect.bisect_left(self.ids, docnum)
        return self.weights[at] if at < len(self.ids) and self.ids[at] == docnum else 0.0


def _segments(searcher) -> list[tuple[object, int]]:
    """The searcher's segment readers and their first document numbers (none for an empty
    index, whose one reader has no segment)."""
    return [
        (r, offset) for r, offset in searcher.reader().leaf_readers() if r.segment() is not None
    ]


def _decode(matcher) -> TermDocs:
    """Every posting `matcher` yields from where it stands, a block at a time where it can."""
    ids, weights = array("i"), array("f")
    if isinstance(matcher, W3LeafMatcher):
        while matcher.is_active():
            if matcher._ids is None:
                # What W3LeafMatcher._read_ids does, with the deltas summed in C
                # (`accumulate`) instead of by Whoosh's generator, a Python step per posting.
                if matcher._data is None:
                    matcher._read_data()
                raw = matcher._data[0]
                matcher._ids = raw if matcher._byteids else array("i", accumulate(raw))
            if matcher._weights is None:
                matcher._read_weights()
            ids.extend(matcher._ids[matcher._i :])
            weights.extend(matcher._weights[matcher._i :])
            matcher._next_block()
    else:  # a short list kept inline with its term, or another matcher
        while matcher.is_active():
            ids.append(matcher.id())
            weights.append(matcher.weight())
            matcher.next()
    return TermDocs(ids, weights)


def term_docs(reader, field: str, text: str) -> TermDocs:
    """The postings of `text` in `field` in segment `reader`, deleted documents left out."""
    global _kept_size
    segment = reader.segment()
    key = (segment.segment_id(), segment.deleted_count(), field, text)
    with _lock:
        found = _kept.get(key)
        if found is not None:
            _kept.move_to_end(key)
            return found
    if (field, text) not in reader:
        docs = TermDocs(array("i"), array("f"))
    else:
        matcher = reader.postings(field, text)
        deleted = None
        if isinstance(matcher, FilterMatcher):  # the segment has deletions
            deleted, matcher = matcher._ids, matcher.child
        docs = _decode(matcher)
        if deleted:
            kept = [n for n, i in enumerate(docs.ids) if i not in deleted]
            docs = TermDocs(
                array("i", [docs.ids[n] for n in kept]), array("f", [docs.weights[n] for n in kept])
            )
    with _lock:
        if key not in _kept:
            _kept[key] = docs
            _kept_size += len(docs.ids)
        while _kept_size > KEPT_POSTINGS and len(_kept) > 1:
            _, dropped = _kept.popitem(last=False)
            _kept_size -= len(dropped.ids)
    return docs


def _leaf_matches(
    reader, field: str, words: Sequence[str], every: bool, without: tuple[str, str] | None
) -> tuple[set[int], list[TermDocs]]:
    lists = [term_docs(reader, field, w) for w in words]
    by_size = sorted(lists, key=lambda docs: len(docs.ids))
    if every:
        ids = set(by_size[0].ids)
        for other in by_size[1:]:
            if not ids:
                break
            ids.intersection_update(other.ids)
    else:
        ids = set().union(*(docs.ids for docs in lists))
    if ids and without is not None:
        ids.difference_update(term_docs(reader, *without).ids)
    return ids, lists


def matching(
    searcher, field: str, words: Sequence[str], every: bool, without: tuple[str, str] | None
) -> set[int]:
    """Document numbers (the searcher's) holding every word of `words` (`every`) or any of
    them, without those holding the term `without` (field, text): what
    `And`/`Or([Term(field, w)...])`, in an `AndNot` when `without`, match."""
    found: set[int] = set()
    for reader, offset in _segments(searcher):
        ids, _ = _leaf_matches(reader, field, words, every, without)
        found.update([offset + i for i in ids] if offset else ids)
    return found


def best(
    searcher,
    field: str,
    words: Sequence[str],
    every: bool,
    without: tuple[str, str] | None,
    limit: int,
    leave_out: set[int] | frozenset[int] = frozenset(),
) -> list[int]:
    """The `limit` best matches of the same query by the searcher's weighting (BM25F), not
    counting those in `leave_out` (the searcher's numbers), best first, ties by document
    number: what `searcher.search(query, limit=limit)` lists. A
    document's score is the sum of its words' scores; the words' lists are read whole, so a
    match of two long lists costs set operations instead of Whoosh's skipping between them."""
    present = [w for w in words if searcher.doc_frequency(field, w) > 0]
    if not present or (every and len(present) < len(words)):
        return []
    scorers = [searcher.weighting.scorer(searcher, field, w) for w in present]
    length = searcher.doc_field_length
    scored: list[tuple[float, int]] = []
    for reader, offset in _segments(searcher):
        ids, lists = _leaf_matches(reader, field, present, every, without)
        for i in ids:
            docnum = offset + i
            if docnum in leave_out:
                continue
            dl = length(docnum, field, 1)
            total = 0.0
            for scorer, docs in zip(scorers, lists, strict=True):
                weight = docs.weight(i)
                if weight:
                    total += scorer._score(weight, dl)
            scored.append((-total, docnum))
    return [docnum for _, docnum in heapq.nsmallest(limit, scored)]


@dataclass(frozen=True)
class _Timeline:
    """A segment's documents newest first (local numbers; ties by number), and minus their
    times in the same order, ascending, for bisecting. A segment's times never change."""

    newest: array
    minus_times: array
    times: array  # by local document number


def _timeline(reader, field: str) -> _Timeline:
    key = (reader.segment().segment_id(), field)
    with _lock:
        found = _timelines.get(key)
    if found is not None:
        return found
    times = list(reader.column_reader(field, translate=False)) if reader.has_column(field) else []
    newest = sorted(range(len(times)), key=lambda d: (-times[d], d))
    found = _Timeline(
        array("i", newest), array("q", [-times[d] for d in newest]), array("q", times)
    )
    with _lock:
        _timelines[key] = found
    return found


def newest_first(searcher, field: str) -> Iterator[int]:
    """The searcher's document numbers by `field` (a sortable column), newest first, ties by
    number, deleted documents included: lazily, each segment's list merged with the others."""
    lines = [_offset_line(_timeline(r, field), offset) for r, offset in _segments(searcher)]
    return (docnum for _, docnum in heapq.merge(*lines))


def _offset_line(line: _Timeline, offset: int) -> Iterator[tuple[int, int]]:
    for minus_time, docnum in zip(line.minus_times, line.newest, strict=True):
        yield minus_time, offset + docnum


def newest(searcher, field: str, docs: set[int], limit: int, leave_out: set[int]) -> list[int]:
    """The `limit` newest of `docs` (the searcher's numbers) that are not in `leave_out`,
    newest first, ties by number."""
    total = searcher.doc_count_all()
    if len(docs) * WALK_SHARE >= total:  # a large share of all: a short walk from the newest
        found = []
        for docnum in newest_first(searcher, field):
            if docnum in docs and docnum not in leave_out:
                found.append(docnum)
                if len(found) == limit:
                    break
        return found
    times = _times(searcher, field)
    # Sorted first: nlargest keeps equal times in the order it met them.
    candidates = sorted(docs - leave_out if leave_out else docs)
    return heapq.nlargest(limit, candidates, key=times.__getitem__)


def _times(searcher, field: str) -> array:
    """Every document's `field` by the searcher's document number: its segments' in a row."""
    segments = _segments(searcher)
    key = (field, tuple(reader.segment().segment_id() for reader, _ in segments))
    with _lock:
        found = _joined.get(key)
    if found is None:
        found = array("q")
        for reader, _ in segments:
            found.extend(_timeline(reader, field).times)
        with _lock:
            _joined[key] = found
            while len(_joined) > 4:  # the searchers of a few generations at most
                _joined.pop(next(iter(_joined)))
    return found


def after(searcher, field: str, cutoff: int) -> set[int]:
    """The searcher's document numbers whose `field` is above `cutoff` (the column's number)."""
    found: set[int] = set()
    for reader, offset in _segments(searcher):
        line = _timeline(reader, field)
        count = bisect.bisect_left(line.minus_times, -cutoff)
        found.update(offset + d for d in line.newest[:count])
    return found


def retain_for(searcher) -> None:
    """Forget the lists of every segment `searcher` does not have (as it has it)."""
    retain((r.segment().segment_id(), r.segment().deleted_count()) for r, _ in _segments(searcher))


def retain(segments: Iterable[tuple[str, int]]) -> None:
    """Forget the lists of every segment but these (segment id, deletions): the index has
    moved on from the others (merged away, or with more deletions since)."""
    global _kept_size
    current = set(segments)
    ids = {segment_id for segment_id, _ in current}
    with _lock:
        for key in [k for k in _kept if k[:2] not in current]:
            _kept_size -= len(_kept.pop(key).ids)
        for key in [k for k in _timelines if k[0] not in ids]:
            del _timelines[key]
        for key in [k for k in _joined if not set(k[1]) <= ids]:
            del _joined[key]


def forget() -> None:
    """Drop every kept list (tests)."""
    global _kept_size
    with _lock:
        _kept.clear()
        _kept_size = 0
        _timelines.clear()
        _joined.clear()
