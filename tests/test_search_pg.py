"""The PostgreSQL search backend (content/search_pg.py), run under `make test-pg` and in CI:
the same pages as Whoosh (the rest of the search tests run on it too), one index for every app
machine, the substring fallback, and queries the GIN indexes can answer."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from app import create_app, db
from content import articles, search
from content.articles import Draft
from content.models import SearchDocument
from tests.conftest import TEST_DATABASE_URL, html, make_config, sql_of

pytestmark = pytest.mark.skipif(TEST_DATABASE_URL is None, reason="needs PostgreSQL")


def publish(app, title: str, body: str, slug: str) -> None:
    with app.app_context():
        articles.save_article(Draft(title=title, body_md=body, status="published", slug=slug))


def slugs(client, q: str) -> list[str]:
    page = html(client.get("/search", query_string={"q": q}))
    return [a["href"].removeprefix("/a/") for a in page.select("#results .item-link")]


def test_the_index_is_a_table_of_jieba_words(app, client):
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    with app.app_context():
        assert search.on_postgres()
        words = db.session.scalar(select(SearchDocument.words))
    assert {"思维", "罗辑思维"} <= {w.split(":")[0].strip("'") for w in words.split()}
    assert slugs(client, "思维") == ["luoji"]


def test_a_second_app_machine_searches_the_same_index(app, client, tmp_path):
    other = create_app(make_config(tmp_path / "other-machine"))  # its own DATA_DIR, no Whoosh
    try:
        publish(other, "另一台机器", "在另一台机器上发布的罗辑思维。", "elsewhere")
        assert slugs(client, "罗辑思维") == ["elsewhere"]
        with other.app_context():
            assert [h.slug for h in search.search("机器").hits] == ["elsewhere"]
        assert not (tmp_path / "other-machine" / "search").exists()
    finally:
        with other.app_context():
            db.engine.dispose()


def test_a_part_of_a_word_is_found_by_substring(client, app):
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    publish(app, "别的", "今天聊聊历史。", "other")
    # jieba never cuts 辑思 out of 罗辑思维: pg_trgm's fallback finds it all the same.
    assert slugs(client, "辑思") == ["luoji"]
    assert slugs(client, "100%") == []  # LIKE's wildcards are taken literally


def test_queries_can_use_the_gin_indexes(app):
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    with app.app_context():
        db.session.execute(text("SET LOCAL enable_seqscan = off"))
        plan = "\n".join(
            db.session.scalars(
                text(
                    "EXPLAIN SELECT doc FROM search_documents "
                    "WHERE words @@ plainto_tsquery('simple'::regconfig, '思维')"
                )
            )
        )
        assert "ix_search_documents_words" in plan
        plan = "\n".join(
            db.session.scalars(
                text("EXPLAIN SELECT doc FROM search_documents WHERE plain ILIKE '%罗辑思%'")
            )
        )
        assert "ix_search_documents_plain" in plan
        db.session.rollback()


def test_a_large_index_narrows_by_the_planners_estimates(app, client, monkeypatch):
    from content import search_pg

    monkeypatch.setattr(search_pg, "EXACT_COUNT_BELOW", 0)  # every index counts as large
    for n in range(3):
        publish(app, f"读书{n}", "今天读书。", f"r{n}")
    publish(app, "读书与历史", "历史和读书。", "h")
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    with app.app_context():
        db.session.execute(text("ANALYZE search_documents"))
        db.session.commit()
    assert slugs(client, "历史 读书") == ["h"]
    assert slugs(client, "思维") == ["luoji"]
    # Two characters give pg_trgm nothing to look up: a large index does not read every row.
    assert slugs(client, "辑思") == []
    assert slugs(client, "罗辑思") == ["luoji"]


def test_a_large_index_guesses_as_the_planner_does_without_asking_it(app, monkeypatch):
    from content import search_pg

    monkeypatch.setattr(search_pg, "EXACT_COUNT_BELOW", 0)
    for n in range(6):
        publish(app, f"读书{n}", "今天读书。" + ("历史。" if n % 2 else ""), f"r{n}")
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    with app.app_context():
        db.session.execute(text("ANALYZE search_documents"))
        db.session.commit()

    def planner(word: str) -> float:
        plan = db.session.execute(
            text(
                "EXPLAIN (FORMAT JSON) SELECT 1 FROM search_documents "
                "WHERE words @@ plainto_tsquery('simple'::regconfig, :w)"
            ),
            {"w": word},
        ).scalar()
        return float(plan[0]["Plan"]["Plan Rows"])

    with app.app_context():
        known = search_pg.statistics(db.session)
        assert known.rows == 7 and "读书" in known.shares
        # Listed (读书, 历史) and not listed (帝国): the same guess as the planner's.
        for word in ["读书", "历史", "帝国"]:
            assert known.estimate(word) == pytest.approx(planner(word), abs=1)
        assert known.estimate("v2.0") is None  # not one plain lexeme: the planner is asked
        db.session.rollback()

    _, statements = sql_of(app, lambda: search.search("历史 帝国"))
    assert not [s for s in statements if "pg_stats" in s or "EXPLAIN" in s]
    _, statements = sql_of(app, lambda: search.search("v2.0"))
    assert [s for s in statements if s.startswith("EXPLAIN")]


def test_search_plans_for_its_own_words_until_the_transaction_ends(app):
    # A generic plan (psycopg prepares a statement after five runs) guesses every word rare
    # and intersects it with the publish-time index; search asks for custom plans, and the
    # setting ends with the transaction, so the connection goes back to the pool as it came.
    publish(app, "早读", "今天聊聊罗辑思维这个节目。", "luoji")
    with app.app_context():
        for _ in range(7):
            assert [h.slug for h in search.search("思维").hits] == ["luoji"]
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "force_custom_plan"
        db.session.rollback()
        assert db.session.scalar(text("SHOW plan_cache_mode")) == "auto"
        db.session.rollback()
