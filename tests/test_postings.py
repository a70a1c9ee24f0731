"""Whole postings lists (content/postings.py) against Whoosh's own matching and ranking, on an
index of several segments with deletions: the same documents, in the same order."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pytest
from whoosh import index
from whoosh.query import And, AndNot, DateRange, Or, Term
from whoosh.scoring import BM25F

from content import postings, search

WORDS = ["读书", "历史", "社区", "思维", "罗辑思维", "宋朝", "航海", "音乐", "契约", "草原"]
START = datetime(2026, 1, 1)


@pytest.fixture
def searcher(tmp_path):
    """About 600 documents in six segments; some deleted, some replaced, some scheduled."""
    rng = random.Random(3)
    ix = index.create_in(str(tmp_path), search.SCHEMA)
    serial = 0
    for _ in range(6):
        writer = ix.writer()
        for _ in range(100):
            serial += 1
            # Zipf-like: the first words stand in most documents, the last in a few.
            words = [w for rank, w in enumerate(WORDS, 1) if rng.random() < 1.6 / rank]
            text = " ".join(w * rng.randint(1, 3) for w in words) + " 一段正文" * rng.randint(1, 9)
            writer.update_document(
                doc=f"d:{rng.randrange(serial + 1)}" if rng.random() < 0.1 else f"d:{serial}",
                kind=rng.choice(["article", "post"]),
                title=str(serial),
                text=text,
                publish_at=START + timedelta(hours=rng.randrange(2_000)),
            )
        for _ in range(5):
            writer.delete_by_term("doc", f"d:{rng.randrange(1, serial + 1)}")
        writer.commit(merge=False)
    with ix.searcher(weighting=BM25F()) as found:
        assert len(found.reader().leaf_readers()) == 6
        assert found.reader().has_deletions()
        yield found
    postings.forget()


def queries():
    rng = random.Random(11)
    for _ in range(60):
        words = rng.sample(WORDS, rng.choice([1, 1, 2, 2, 3]))
        yield words, rng.random() < 0.6, rng.choice([None, ("kind", "post")])


def whoosh_query(words, every):
    terms = [Term("text", w) for w in words]
    return And(terms) if every else Or(terms)


def left_out(searcher, without) -> set[int]:
    return set(Term(*without).docs(searcher)) if without else set()


def test_the_matches_are_whooshs(searcher):
    for words, every, without in queries():
        expected = set(whoosh_query(words, every).docs(searcher)) - left_out(searcher, without)
        assert postings.matching(searcher, "text", words, every, without) == expected, words


def test_the_best_matches_are_whooshs_in_whooshs_order(searcher):
    compared = 0
    for words, every, without in queries():
        ranked = searcher.search(whoosh_query(words, every), limit=None)
        excluded = left_out(searcher, without)
        expected = [hit.docnum for hit in ranked if hit.docnum not in excluded][:20]
        assert postings.best(searcher, "text", words, every, without, 20) == expected, words
        compared += len(expected)
    assert compared > 500  # the queries found plenty to rank


def test_whooshs_and_not_lets_an_excluded_document_through(searcher):
    """Why the references above are computed by set difference: Whoosh 2.7.4's AndNot gave
    back a post (kind=post) among the matches of AndNot(草原, kind:post) in this index. The
    site's search no longer uses it; its lists leave the post out."""
    posts = set(Term("kind", "post").docs(searcher))
    through = set(AndNot(Term("text", "草原"), Term("kind", "post")).docs(searcher)) & posts
    assert through, "Whoosh fixed? then AndNot could be a reference again"
    assert not postings.matching(searcher, "text", ["草原"], True, ("kind", "post")) & posts


def test_a_missing_word_matches_nothing_with_every_and_is_skipped_with_any(searcher):
    assert postings.best(searcher, "text", ["读书", "不存在"], True, None, 20) == []
    assert postings.best(searcher, "text", ["读书", "不存在"], False, None, 5) == [
        hit.docnum for hit in searcher.search(Term("text", "读书"), limit=5)
    ]


def test_the_lists_kept_stay_within_their_bound(searcher, monkeypatch):
    monkeypatch.setattr(postings, "KEPT_POSTINGS", 50)
    postings.forget()
    for words, every, without in queries():
        postings.matching(searcher, "text", words, every, without)
        assert postings._kept_size <= 50 or len(postings._kept) == 1


def test_documents_come_newest_first_and_the_scheduled_are_found(searcher):
    newest = list(postings.newest_first(searcher, "publish_at"))
    assert sorted(newest) == list(range(searcher.doc_count_all()))
    times = [searcher.stored_fields(d)["publish_at"] for d in newest if d in live(searcher)]
    assert times == sorted(times, reverse=True)
    for hours in (0, 300, 1_000, 1_999, 5_000):
        now = START + timedelta(hours=hours, minutes=30)
        expected = set(DateRange("publish_at", now, None, startexcl=True).docs(searcher))
        cutoff = search.SCHEMA["publish_at"].to_column_value(now)
        assert postings.after(searcher, "publish_at", cutoff) & live(searcher) == expected


def test_only_the_current_segments_lists_are_kept(searcher):
    postings.matching(searcher, "text", ["读书"], True, ("kind", "post"))
    postings.after(searcher, "publish_at", 0)
    segments = [r.segment() for r, _ in searcher.reader().leaf_readers()]
    assert len(postings._kept) == 2 * len(segments) and len(postings._timelines) == len(segments)
    kept = segments[2:]
    postings.retain((s.segment_id(), s.deleted_count()) for s in kept)
    assert {key[0] for key in postings._kept} == {s.segment_id() for s in kept}
    assert {key[0] for key in postings._timelines} == {s.segment_id() for s in kept}
    assert postings._kept_size == sum(len(docs.ids) for docs in postings._kept.values())


def live(searcher) -> set[int]:
    return set(searcher.reader().all_doc_ids())


@pytest.mark.parametrize("walk_share", [1, 8, 10**9])  # never, sometimes, always a walk
def test_the_newest_matches_whether_walked_or_sorted(searcher, monkeypatch, walk_share):
    monkeypatch.setattr(postings, "WALK_SHARE", walk_share)
    times = list(searcher.reader().column_reader("publish_at", translate=False))
    rng = random.Random(5)
    for words, every, without in queries():
        docs = postings.matching(searcher, "text", words, every, without)
        leave_out = set(rng.sample(sorted(docs), min(3, len(docs))))
        expected = sorted(docs - leave_out, key=lambda d: (-times[d], d))[:20]
        assert postings.newest(searcher, "publish_at", docs, 20, leave_out) == expected, words
