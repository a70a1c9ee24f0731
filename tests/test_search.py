"""Chinese search: jieba segmentation, ranking, snippets, members-only previews, scheduling,
the queued single writer, reindexing, and keyword lookup falling back to search."""

from __future__ import annotations

import multiprocessing
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select

from app import FixedClock, create_app, db, write_transaction
from content import articles, search
from content.articles import Draft
from content.models import Article, SearchQueue
from tests.conftest import (
    DEFAULT_NOW,
    TEST_DATABASE_URL,
    another_index_writer,
    html,
    lose_search_index,
    make_config,
)


@pytest.fixture
def publish(app):
    def save(title="罗辑思维的读书法", body="第一段。", **fields) -> str:
        fields.setdefault("status", "published")
        with app.app_context():
            return articles.save_article(Draft(title=title, body_md=body, **fields)).slug

    return save


def slugs(client, q: str) -> list[str]:
    page = html(client.get("/search", query_string={"q": q}))
    return [a["href"].removeprefix("/a/") for a in page.select("#results .item-link")]


def test_segmentation_finds_siwei_inside_luoji_siwei(client, publish):
    slug = publish(title="早读", body="今天聊聊罗辑思维这个节目。", slug="luoji")
    publish(title="别的", body="今天聊聊历史。", slug="other")
    assert slugs(client, "思维") == [slug]
    assert slugs(client, "罗辑思维") == [slug]


def test_results_are_ranked_and_highlighted(client, publish):
    publish(title="读书的方法", body="读书要有方法。", slug="title-hit")
    publish(title="周末", body="周末去公园散步，顺便读书。", slug="body-hit")
    found = slugs(client, "读书")
    assert found == ["title-hit", "body-hit"]
    page = html(client.get("/search?q=读书"))
    marks = [m.get_text() for m in page.select("#results mark")]
    assert "读书" in marks


def test_snippets_escape_what_the_text_contains(client, publish):
    publish(title="代码", body="```\n<script>alert('读书')</script>\n```", slug="code")
    results = html(client.get("/search?q=读书")).select_one("#results")
    assert results.select("script") == [] and "alert('读书')" in results.get_text()


def test_members_only_articles_show_their_preview_only(client, publish):
    body = "公开的开头讲读书。\n\n<!--more-->\n\n会员才知道的秘密是坚持。"
    slug = publish(title="会员文章", body=body, visibility="members", slug="members")
    assert slugs(client, "读书") == [slug]
    assert slugs(client, "秘密") == []
    page = html(client.get("/search?q=读书"))
    assert page.select_one("#results .badge").get_text() == "会员"
    assert "秘密" not in page.get_text()


def test_drafts_are_not_found_and_unpublishing_removes_a_result(app, client, publish):
    publish(title="草稿里的读书", status="draft", slug="draft")
    assert slugs(client, "读书") == []
    slug = publish(title="发布的读书", slug="pub")
    assert slugs(client, "读书") == [slug]
    with app.app_context():
        article = db.session.scalar(select(Article).where(Article.slug == slug))
        articles.save_article(
            Draft(title="发布的读书", status="draft", base_version=article.version),
            article_id=article.id,
        )
    assert slugs(client, "读书") == []


def test_scheduled_articles_are_found_only_after_publish_at(client, clock, publish):
    at = DEFAULT_NOW + timedelta(hours=2)
    publish(title="明天的读书", status="scheduled", publish_at=at, slug="later")
    assert slugs(client, "读书") == []
    clock.advance(hours=3)
    assert slugs(client, "读书") == ["later"]


def test_search_page_works_as_a_plain_form_and_as_htmx(client, publish):
    publish(title="读书", slug="r")
    page = html(client.get("/search"))
    form = page.select_one("form[role=search]")
    assert form["method"] == "get" and form["action"] == "/search"
    assert form.select_one("input[name=q]")["hx-trigger"].startswith("input changed delay:")
    partial = client.get("/search?q=读书", headers={"HX-Request": "true"})
    text = partial.get_data(as_text=True)
    assert text.lstrip().startswith('<div id="results"') and "<html" not in text


def test_empty_and_nonsense_queries_are_calm(client, publish):
    publish()
    assert client.get("/search?q=").status_code == 200
    assert client.get("/search?q=%20%20").status_code == 200
    assert client.get("/search?q=" + "字" * 5000).status_code == 200
    for q in ["AND OR NOT", "title:(", "*", '"', "?!。，"]:
        response = client.get("/search", query_string={"q": q})
        assert response.status_code == 200, q


def test_keyword_lookup_redirects_and_otherwise_shows_search_results(client, publish):
    slug = publish(title="罗辑思维", keywords="读书", slug="kw")
    response = client.get("/k/读书")
    assert response.status_code == 302 and response.headers["Location"] == f"/a/{slug}"
    response = client.get("/k?q=思维")
    assert response.status_code == 200
    assert [a["href"] for a in html(response).select("#results .item-link")] == [f"/a/{slug}"]
    assert client.get("/k?q=无关的词").status_code == 404


def test_the_queue_is_left_for_the_next_chance_when_the_lock_is_taken(app, client, publish):
    with another_index_writer(app):
        slug = publish(title="排队的读书", slug="queued")
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(SearchQueue)) == 1
    assert slugs(client, "读书") == [slug]  # the search drained it
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SearchQueue)) == 0


def test_a_request_drains_a_bounded_share_and_the_job_the_rest(app, client, publish, monkeypatch):
    """A search that finds a long queue applies REQUEST_DRAIN_ROWS of it (the newest) and
    leaves the rest to the next request or to `flask --app app search drain`."""
    monkeypatch.setattr(search, "REQUEST_DRAIN_ROWS", 2)
    with another_index_writer(app):
        made = [publish(title=f"排队第{i}篇读书", slug=f"line-{i}") for i in range(5)]
    queued = select(func.count()).select_from(SearchQueue)
    with app.app_context():
        assert db.session.scalar(queued) == 5
    assert sorted(slugs(client, "读书")) == ["line-3", "line-4"]  # the two newest rows
    with app.app_context():
        assert db.session.scalar(queued) == 3
    result = app.test_cli_runner().invoke(args=["search", "drain"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(queued) == 0
    assert sorted(slugs(client, "读书")) == sorted(made)


def test_reindex_rebuilds_from_the_database(app, publish, tmp_path):
    for i in range(3):
        publish(title=f"读书第{i}天", slug=f"day-{i}")
    lose_search_index(app)
    with app.app_context():
        assert search.reindex() == 3
        assert {h.slug for h in search.search("读书").hits} == {"day-0", "day-1", "day-2"}


def test_reindex_command_prints_progress(app, publish):
    publish()
    result = app.test_cli_runner().invoke(args=["search", "reindex"])
    assert result.exit_code == 0, result.output
    assert "已索引 1 篇文章" in result.output


# --- two processes publishing at once ----------------------------------------------------


def _publish_in_process(data_dir: str, database_url: str | None, n: int, start) -> None:
    extra = {"DATABASE_URL": database_url} if database_url else {}
    app = create_app(make_config(data_dir, CLOCK=FixedClock(DEFAULT_NOW), **extra))
    with app.app_context():
        start.wait(30)
        for i in range(3):
            articles.save_article(
                Draft(
                    title=f"进程{n}的第{i}篇罗辑思维",
                    body_md="同时发布。",
                    status="published",
                    slug=f"p{n}-{i}",
                )
            )


def test_two_processes_publishing_at_once_are_both_found(app, client, tmp_path):
    data_dir = app.config["DATA_DIR"]
    url = app.config["SQLALCHEMY_DATABASE_URI"]
    context = multiprocessing.get_context("spawn")
    start = context.Event()
    workers = [
        context.Process(
            target=_publish_in_process,
            args=(str(data_dir), url if not url.startswith("sqlite") else None, n, start),
        )
        for n in range(2)
    ]
    for w in workers:
        w.start()
    start.set()
    for w in workers:
        w.join(60)
        assert w.exitcode == 0
    found = set(slugs(client, "思维"))
    assert found == {f"p{n}-{i}" for n in range(2) for i in range(3)}


def test_very_common_words_list_the_newest_matches_first(app, client, clock, publish, monkeypatch):
    monkeypatch.setattr(search, "COMMON_MATCHES", 1)  # every word counts as common here
    for day in range(3):
        publish(
            title=f"第{day}天读书",
            slug=f"day-{day}",
            publish_at=DEFAULT_NOW - timedelta(days=3 - day),
        )
    publish(
        title="明天读书",
        status="scheduled",
        publish_at=DEFAULT_NOW + timedelta(hours=1),
        slug="later",
    )
    publish(title="撤下的读书", slug="gone")
    with app.app_context():
        gone = db.session.scalar(select(Article).where(Article.slug == "gone"))
        articles.save_article(
            Draft(title="撤下的读书", status="draft", base_version=gone.version),
            article_id=gone.id,
        )
    assert slugs(client, "读书") == ["day-2", "day-1", "day-0"]
    clock.advance(hours=2)
    assert slugs(client, "读书") == ["later", "day-2", "day-1", "day-0"]


def test_a_word_in_most_articles_does_not_narrow_but_is_marked(client, publish):
    for n in range(3):
        publish(title=f"读书{n}", body="今天读书。", slug=f"r{n}")
    publish(title="读书与历史", body="历史和读书。", slug="h")
    # 读书 stands in every article, so only 历史 narrows the search.
    assert slugs(client, "历史 读书") == ["h"]
    marks = [m.get_text() for m in html(client.get("/search?q=历史 读书")).select("mark")]
    assert "读书" in marks and "历史" in marks


def test_queue_ids_are_never_reused(app):
    with app.app_context():
        with write_transaction() as session:
            row = SearchQueue(doc="article:1", queued_at=DEFAULT_NOW)
            session.add(row)
        first = row.id
        with write_transaction() as session:
            session.execute(delete(SearchQueue))
        with write_transaction() as session:
            again = SearchQueue(doc="article:1", queued_at=DEFAULT_NOW)
            session.add(again)
        assert again.id > first


def test_a_drain_never_puts_back_older_text(app, client, publish):
    """Process A reads the queue while process B applies it; A must not re-apply what it saw
    in its old snapshot with the old text."""
    slug = publish(title="alpha", slug="a")
    extra = {"DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"]}
    other = create_app(make_config(app.config["DATA_DIR"], **extra))
    with app.app_context():
        article_id = db.session.scalar(select(Article.id).where(Article.slug == slug))
        with another_index_writer(app):  # someone is writing: A's save stays queued
            articles.save_article(
                Draft(title="beta", status="published", slug="a", base_version=1),
                article_id=article_id,
            )
        # A starts reading: on SQLite its snapshot now holds the "beta" row and text.
        assert db.session.scalar(select(func.count()).select_from(SearchQueue)) == 1
        with other.app_context():  # B saves "omega" and drains everything
            articles.save_article(
                Draft(title="omega", status="published", slug="a", base_version=2),
                article_id=article_id,
            )
            assert db.session.scalar(select(func.count()).select_from(SearchQueue)) == 0
        search.drain()
        assert [h.slug for h in search.search("omega").hits] == ["a"]
        assert search.search("beta").hits == []
    with other.app_context():
        db.engine.dispose()  # the second site's connections, before they are collected


@pytest.mark.skipif(TEST_DATABASE_URL is not None, reason="Whoosh's searchers")
def test_a_searcher_left_half_closed_by_a_merge_is_replaced(app, client, publish, monkeypatch):
    """Found by bench/soak.py: another process's merge deletes a segment a thread's searcher
    is refreshing onto; Whoosh raises and leaves that searcher closed. The thread opens a new
    one instead of answering 500 until its worker is recycled."""
    publish(title="读书第一天", slug="first")
    assert slugs(client, "读书") == ["first"]  # this thread now keeps a searcher
    publish(title="读书第二天", slug="second")  # ...which is out of date
    real_refresh = search._refresh
    calls = []

    def merged_away(ix, searcher):
        calls.append(searcher)
        raise FileNotFoundError  # as opening a segment file another process deleted does

    monkeypatch.setattr(search, "_refresh", merged_away)
    assert set(slugs(client, "读书")) == {"first", "second"}
    assert calls, "the stale searcher was refreshed"
    monkeypatch.setattr(search, "_refresh", real_refresh)
    assert set(slugs(client, "读书")) == {"first", "second"}


@pytest.mark.skipif(TEST_DATABASE_URL is not None, reason="Whoosh's searchers")
def test_a_refreshed_searcher_keeps_the_readers_of_unchanged_segments(app, client, publish):
    """A refresh after a change opens only the segments that changed (Whoosh's own refresh
    reopened every one, copying each out of its file); a segment with a new deletion is
    opened again, so an edited article is found by its new words only."""

    def leaves() -> dict[str, object]:
        with app.app_context():  # the test client answers in this thread: its searcher
            return {
                r.segment().segment_id(): r for r, _ in search._searcher().reader().leaf_readers()
            }

    first = publish(title="读书第一天", slug="first")
    publish(title="读书第二天", slug="second")
    assert set(slugs(client, "读书")) == {"first", "second"}
    before = leaves()
    publish(title="读书第三天", slug="third")
    assert set(slugs(client, "读书")) == {"first", "second", "third"}
    after = leaves()
    assert len(after) == len(before) + 1
    assert all(after[name] is reader for name, reader in before.items())
    with app.app_context():
        article = db.session.scalars(select(Article).where(Article.slug == first)).one()
        articles.save_article(
            Draft(title="写作第一天", body_md="第一段。", status="published", slug=first),
            article_id=article.id,
        )
    assert set(slugs(client, "读书")) == {"second", "third"}
    assert slugs(client, "写作") == ["first"]


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="Whoosh's segments (SQLite runs)")
def test_a_request_merges_only_small_segments_and_the_job_merges_the_rest(
    app, client, publish, monkeypatch
):
    """A save's or a search's drain merges REQUEST_MERGE_DOCS documents at most (a big merge
    would keep the request waiting); `flask --app app search drain` merges the rest."""
    monkeypatch.setattr(search, "REQUEST_MERGE_DOCS", 1)  # no two segments are small enough
    for i in range(8):
        publish(title=f"合并第{i}篇读书笔记", slug=f"merge-{i}")
    with app.app_context():
        assert len(search.open_index()._segments()) == 8  # one per save, none merged
    result = app.test_cli_runner().invoke(args=["search", "drain"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert len(search.open_index()._segments()) < 8
    assert sorted(slugs(client, "读书笔记")) == [f"merge-{i}" for i in range(8)]


@pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="Whoosh's segments (SQLite runs)")
def test_a_request_merges_its_smallest_segments_up_to_the_bound(app, client, publish, monkeypatch):
    """Many small segments whose documents add up past REQUEST_MERGE_DOCS: a request merges
    the smallest of them, that many documents at most, and leaves the rest as they were."""
    monkeypatch.setattr(search, "REQUEST_MERGE_DOCS", 0)  # the saves below merge nothing
    for i in range(12):
        publish(title=f"分批合并第{i}篇读书笔记", slug=f"bound-{i}")
    with app.app_context():
        assert [s.doc_count_all() for s in search.open_index()._segments()] == [1] * 12
    # Whoosh's policy would merge the five smallest; four is the bound, so it merges none.
    monkeypatch.setattr(search, "REQUEST_MERGE_DOCS", 4)
    publish(title="第十三篇读书笔记", slug="bound-12")
    with app.app_context():
        assert [s.doc_count_all() for s in search.open_index()._segments()] == [1] * 13
    monkeypatch.setattr(search, "REQUEST_MERGE_DOCS", 6)
    publish(title="第十四篇读书笔记", slug="bound-13")
    with app.app_context():
        sizes = sorted(s.doc_count_all() for s in search.open_index()._segments())
    assert sizes == [1] * 8 + [6]  # five of the smallest merged into the save's own segment
    assert sorted(slugs(client, "读书笔记")) == sorted(f"bound-{i}" for i in range(14))
