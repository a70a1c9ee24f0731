"""Benchmark the site's search: index build speed, full-text search and keyword lookup.

    .venv/bin/python bench/search.py --docs 10000 --posts 50000

Builds a fresh site (SQLite in a temporary data directory unless --data-dir is given, or the
PostgreSQL database of --database-url, which is wiped), fills it with generated Chinese
articles and board posts by bulk inserts, then times `content.search.reindex()`,
`content.search.search(words)` and `content.articles.article_for_keyword(keyword)` the way a
worker process runs them: with Whoosh on SQLite, with the database's own index on
PostgreSQL (content/search_pg.py). It prints figures only; no test ever asserts a timing (see
docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import html
import itertools
import math
import os
import platform
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as `python bench/search.py` from anywhere: the site's modules live one level up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from flask import Flask  # noqa: E402
from sqlalchemy import insert  # noqa: E402
from sqlalchemy import text as sql  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from app import FixedClock, create_app, db, write_transaction  # noqa: E402
from board.models import DEFAULT_SECTIONS, Post, Section, Thread  # noqa: E402
from content import search  # noqa: E402
from content.articles import article_for_keyword  # noqa: E402
from content.models import (  # noqa: E402
    DEFAULT_COLUMNS,
    Article,
    ArticleKeyword,
    Column,
    Status,
    Visibility,
)
from members.models import User  # noqa: E402

# The goals, set for a site of 10,000 articles on one small server.
GOAL_DOCS = 10_000
GOAL_FULL_TEXT_P95_MS = 20.0
GOAL_KEYWORD_P95_MS = 5.0

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
INSERT_BATCH = 1_000
WARM_UP_QUERIES = 5  # not timed: the first queries load caches a running site has loaded
MEMBERS_SHARE = 0.10

# --- generated articles ------------------------------------------------------------------

# Words about reading, history, community and thinking, every one a word in jieba's dictionary
# (so a query drawn from this list is a word the index holds), most common first. Articles
# draw them with Zipf weights, as real text does: the first few stand in most articles, the
# last ones in a few percent.
TOPICS = [
    "阅读", "历史", "知识", "读书", "思考", "社区", "学习", "认知", "笔记", "思维",
    "文化", "时间", "故事", "书籍", "作者", "问题", "方法", "观点", "习惯", "传统",
    "哲学", "文明", "经济", "商业", "科学", "技术", "教育", "语言", "写作", "记忆",
    "帝国", "王朝", "城市", "革命", "战争", "常识", "逻辑", "复利", "好奇心", "专注",
    "朋友", "会员", "课程", "音频", "人性", "选择", "信任", "协作", "组织", "创新",
    "规律", "周期", "地理", "宗教", "艺术", "科举", "丝绸之路", "文艺复兴", "启蒙运动", "诗歌",
    "小说", "散文", "史记", "三国", "唐朝", "宋朝", "明朝", "清朝", "罗马", "希腊",
    "雅典", "埃及", "长安", "洛阳", "运河", "长城", "瓷器", "茶叶", "白银", "货币",
    "税收", "农业", "工业", "铁路", "印刷术", "造纸术", "火药", "指南针", "航海", "殖民",
    "移民", "家族", "宗族", "婚姻", "女性", "儿童", "老人", "医学", "瘟疫", "气候",
    "河流", "森林", "沙漠", "草原", "游牧", "农耕", "城邦", "议会", "法律", "契约",
    "产权", "市场", "价格", "通货膨胀", "银行", "股票", "公司", "创业", "管理", "领导力",
    "决策", "概率", "统计", "数学", "物理", "化学", "生物", "进化", "基因", "大脑",
    "心理学", "情绪", "意志力", "幸福", "焦虑", "孤独", "友谊", "对话", "辩论", "演讲",
    "图书馆", "书店", "出版", "编辑", "翻译", "博物馆", "旅行", "音乐", "电影", "绘画",
    "建筑", "园林", "美食", "节日", "方言", "汉字", "考古", "神话", "英雄", "皇帝",
    "宰相", "将军", "士兵", "商人", "工匠", "学者", "隐士", "诗人",
]  # fmt: skip
TOPIC_WEIGHTS = list(itertools.accumulate(1 / rank for rank in range(1, len(TOPICS) + 1)))
VERBS = [
    "理解", "讨论", "重读", "解释", "追问", "记录", "分享", "比较", "反思", "观察",
    "梳理", "拆解", "复盘", "学会", "看见",
]  # fmt: skip
ADJECTIVES = [
    "重要的", "有趣的", "被忽视的", "古老的", "新的", "真正的", "普通的", "复杂的",
    "简单的", "长期的",
]  # fmt: skip
PHRASES = [
    "罗辑思维", "每天听本书", "独立思考", "终身学习", "读书笔记", "知识付费", "批判性思维",
    "底层逻辑", "长期主义", "深度阅读",
]  # fmt: skip
SENTENCES = [
    "我们今天{verb}一个{adj}{topic}问题：{topic2}到底从哪里来。",
    "很多人以为{topic}只是{topic2}的附属，其实它自己就有一套{adj}规律。",
    "如果把{topic}放回{topic2}的历史里看，很多事情就容易{verb}了。",
    "这本书的作者花了十年时间{verb}{topic}，最后得出一个{adj}结论。",
    "在{phrase}的社区里，大家常常一起{verb}{topic}和{topic2}。",
    "{phrase}提醒我们，{topic}不是一次学会的，而是每天一点点积累的。",
    "读到这里，你可以停下来{verb}一下自己的{topic}习惯。",
    "历史上的{topic}和今天的{topic2}之间，隔着一条{adj}河流。",
    "有一位老朋友说，{topic}的关键在于{verb}，而不是记住结论。",
    "所以，下一次遇到{topic}的时候，不妨先{verb}它背后的{topic2}。",
]  # fmt: skip
TITLES = [
    "{topic}与{topic2}：{adj}一课",
    "为什么要{verb}{topic}",
    "{phrase}｜{topic}的{adj}逻辑",
    "读书笔记：{topic}里的{topic2}",
    "每日60秒：{verb}{topic}",
    "{adj}{topic}，{adj2}{topic2}",
]  # fmt: skip


def _topic(rng: random.Random) -> str:
    return rng.choices(TOPICS, cum_weights=TOPIC_WEIGHTS)[0]


def _fill(template: str, rng: random.Random) -> str:
    return template.format(
        topic=_topic(rng),
        topic2=_topic(rng),
        verb=rng.choice(VERBS),
        adj=rng.choice(ADJECTIVES),
        adj2=rng.choice(ADJECTIVES),
        phrase=rng.choice(PHRASES),
    )


def _paragraph(rng: random.Random) -> str:
    return "".join(_fill(rng.choice(SENTENCES), rng) for _ in range(rng.randint(3, 5)))


def _html(paragraphs: Sequence[str]) -> str:
    return "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)


def generate(count: int, rng: random.Random) -> tuple[list[dict], list[dict], list[str]]:
    """`count` published articles (about a tenth members-only), each with one unique lookup
    keyword, as rows for bulk inserts; and the keywords."""
    articles: list[dict] = []
    keywords: list[dict] = []
    names: list[str] = []
    columns = len(DEFAULT_COLUMNS)
    for n in range(1, count + 1):
        members = rng.random() < MEMBERS_SHARE
        paragraphs = [_paragraph(rng) for _ in range(rng.randint(3, 5))]
        preview = paragraphs[:1] if members else paragraphs
        body_md = "\n\n".join(paragraphs)
        if members:
            body_md = paragraphs[0] + "\n\n<!--more-->\n\n" + "\n\n".join(paragraphs[1:])
        at = NOW - timedelta(hours=n)  # all in the past: every article is visible
        keyword = f"{_topic(rng)}{n}"
        articles.append(
            {
                "id": n,
                "slug": f"bench-{n}",
                "title": _fill(rng.choice(TITLES), rng)[:120],
                "summary": _fill(rng.choice(SENTENCES), rng)[:300],
                "body_md": body_md,
                "body_html": _html(paragraphs),
                "preview_html": _html(preview),
                "has_more": members,
                "column_id": n % columns + 1,
                "visibility": (Visibility.MEMBERS if members else Visibility.PUBLIC).value,
                "status": Status.PUBLISHED.value,
                "publish_at": at,
                "version": 1,
                "created_at": at,
                "updated_at": at,
            }
        )
        keywords.append({"article_id": n, "keyword": keyword, "live": True})
        names.append(keyword)
    return articles, keywords, names


def generate_posts(count: int, rng: random.Random) -> tuple[list[dict], list[dict]]:
    """`count` board posts as rows: threads of one opening post and 0 to 9 answers."""
    threads: list[dict] = []
    posts: list[dict] = []
    sections = len(DEFAULT_SECTIONS)
    while len(posts) < count:
        thread_id = len(threads) + 1
        at = NOW - timedelta(minutes=7 * thread_id)
        threads.append(
            {
                "id": thread_id,
                "section_id": thread_id % sections + 1,
                "author_id": 1,
                "title": _fill(rng.choice(TITLES), rng)[:120],
                "tags": " ".join(rng.sample(TOPICS[:40], 2)),
                "answer_count": 0,
                "last_activity_at": at,
                "created_at": at,
            }
        )
        for answer in range(min(rng.randint(1, 10), count - len(posts))):
            text = _paragraph(rng)
            posts.append(
                {
                    "thread_id": thread_id,
                    "author_id": 1,
                    "opening": answer == 0,
                    "body_md": text,
                    "body_html": _html([text]),
                    "created_at": at + timedelta(seconds=answer),
                }
            )
        threads[-1]["answer_count"] = sum(1 for p in posts if p["thread_id"] == thread_id) - 1
    return threads, posts


def queries(count: int, rng: random.Random) -> list[str]:
    """What readers type: one word, or two words, from the articles' vocabulary (drawn
    evenly, so most are words of the long tail, as readers' queries are)."""
    words = TOPICS + PHRASES
    found = []
    for _ in range(count):
        if rng.random() < 0.5:
            found.append(rng.choice(words))
        else:
            found.append(" ".join(rng.sample(words, 2)))
    return found


# --- measuring ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Timings:
    ms: list[float]

    def percentile(self, p: float) -> float:
        """Nearest-rank percentile."""
        ordered = sorted(self.ms)
        return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]

    def line(self, name: str) -> str:
        return (
            f"{name}: p50 {self.percentile(50):.1f} ms, p95 {self.percentile(95):.1f} ms, "
            f"max {max(self.ms):.1f} ms ({len(self.ms)} queries)"
        )


def timed(run: Callable[[str], object], inputs: Sequence[str]) -> tuple[Timings, list[object]]:
    for text in inputs[:WARM_UP_QUERIES]:
        run(text)
    ms: list[float] = []
    results: list[object] = []
    for text in inputs:
        start = time.perf_counter()
        results.append(run(text))
        ms.append((time.perf_counter() - start) * 1000)
    return Timings(ms), results


def disk_size(where: Path) -> int:
    return sum(f.stat().st_size for f in where.rglob("*") if f.is_file())


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def goal(name: str, measured: float, limit: float) -> str:
    verdict = "met" if measured <= limit else "NOT met"
    return f"goal {name} p95 <= {limit:g} ms: {verdict} ({measured:.1f} ms)"


# --- the run -----------------------------------------------------------------------------


@contextmanager
def data_dir(given: str | None) -> Iterator[Path]:
    if given:
        where = Path(given)
        if where.exists() and any(where.iterdir()):
            raise SystemExit(f"--data-dir {where} must be empty or missing")
        yield where
        return
    where = Path(tempfile.mkdtemp(prefix="chendu-bench-"))
    try:
        yield where
    finally:
        shutil.rmtree(where, ignore_errors=True)


def build_site(where: Path, database_url: str | None) -> Flask:
    config = {"DATA_DIR": str(where), "SECRET_KEY": "bench", "CLOCK": FixedClock(NOW)}
    if database_url:
        config["DATABASE_URL"] = database_url
    app = create_app({**config, "TESTING": True})
    with app.app_context():
        if database_url:
            db.drop_all()
        db.create_all()
        with write_transaction() as session:
            session.execute(insert(Column), DEFAULT_COLUMNS)
            session.execute(insert(Section), [{**s, "created_at": NOW} for s in DEFAULT_SECTIONS])
            session.execute(
                insert(User),
                [{"email": "author@bench.example.com", "password_hash": "x", "created_at": NOW}],
            )
    return app


def run(
    docs: int, query_count: int, where: Path, seed: int, posts: int = 0, database_url: str = ""
) -> None:
    rng = random.Random(seed)
    app = build_site(where, database_url)
    backend = "PostgreSQL" if database_url else "Whoosh"
    print(
        f"search benchmark ({backend}): {docs:,} articles and {posts:,} board posts, "
        f"{query_count} queries of each kind, seed {seed}"
    )
    machine = f"{platform.system()} {platform.machine()}, {_cpus()} CPUs"
    print(f"machine: {machine}, Python {platform.python_version()}")

    with app.app_context():
        articles, keywords, names = generate(docs, rng)
        members = sum(a["visibility"] == Visibility.MEMBERS for a in articles)
        start = time.perf_counter()
        with write_transaction() as session:
            for i in range(0, len(articles), INSERT_BATCH):
                session.execute(insert(Article), articles[i : i + INSERT_BATCH])
                session.execute(insert(ArticleKeyword), keywords[i : i + INSERT_BATCH])
        seconds = time.perf_counter() - start
        print(f"insert articles: {docs:,} ({members:,} members-only) in {seconds:.1f} s")
        del articles, keywords
        if posts:
            threads, rows = generate_posts(posts, rng)
            start = time.perf_counter()
            with write_transaction() as session:
                for i in range(0, len(threads), INSERT_BATCH):
                    session.execute(insert(Thread), threads[i : i + INSERT_BATCH])
                for i in range(0, len(rows), INSERT_BATCH):
                    session.execute(insert(Post), rows[i : i + INSERT_BATCH])
            seconds = time.perf_counter() - start
            print(
                f"insert board posts: {len(rows):,} in {len(threads):,} threads in {seconds:.1f} s"
            )
            del threads, rows
        if database_url:
            db.session.execute(sql("ANALYZE"))
            db.session.commit()

        start = time.perf_counter()
        indexed = search.reindex()
        seconds = time.perf_counter() - start
        print(
            f"build index (reindex): {indexed:,} docs in {seconds:.1f} s, "
            f"{indexed / seconds:,.0f} docs/s"
        )
        if database_url:
            db.session.execute(sql("ANALYZE search_documents"))
            db.session.commit()
            size = db.session.scalar(sql("SELECT pg_total_relation_size('search_documents')"))
            print(f"index size on disk: {megabytes(size)}")
        else:
            print(f"index size on disk: {megabytes(disk_size(search.index_dir()))}")

        lookups = [rng.choice(names) for _ in range(query_count)]
        keyword_times, found = timed(article_for_keyword, lookups)
        missing = sum(article is None for article in found)
        print(keyword_times.line("keyword lookup") + f", {missing} not found")
        db.session.rollback()

        texts = queries(query_count, rng)
        search_times, results = timed(lambda q: search.search(q, board=bool(posts)), texts)
        hits = [len(r.hits) for r in results if isinstance(r, search.Results)]
        totals = [r.total for r in results if isinstance(r, search.Results)]
        shown = f"{sum(hits) / len(hits):.1f} hits shown"
        matched = f"{sum(totals) / len(totals):,.0f} matches"
        print(search_times.line("full-text search") + f", {shown} and {matched} on average")
        db.session.rollback()

    note = "" if docs == GOAL_DOCS else f" (goals are set for {GOAL_DOCS:,} articles)"
    print(goal("full-text search", search_times.percentile(95), GOAL_FULL_TEXT_P95_MS) + note)
    print(goal("keyword lookup", keyword_times.percentile(95), GOAL_KEYWORD_P95_MS) + note)
    with app.app_context():
        db.engine.dispose()


def _cpus() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=GOAL_DOCS, help="articles to generate")
    parser.add_argument("--posts", type=int, default=0, help="board posts to generate (0)")
    parser.add_argument(
        "--database-url",
        help="PostgreSQL to run on, with its own search index (default: TEST_DATABASE_URL, "
        "else SQLite and Whoosh); it is WIPED",
    )
    parser.add_argument("--queries", type=int, default=200, help="timed queries of each kind")
    parser.add_argument("--data-dir", help="an empty directory (default: a temporary one)")
    parser.add_argument("--seed", type=int, default=1, help="random seed of the generated site")
    args = parser.parse_args(argv)
    if not 1 <= args.docs <= 1_000_000 or not 1 <= args.queries <= 100_000:
        parser.error("--docs must be 1..1000000 and --queries 1..100000")
    if not 0 <= args.posts <= 1_000_000:
        parser.error("--posts must be 0..1000000")
    url = args.database_url or os.environ.get("TEST_DATABASE_URL", "")
    if url:
        url = re.sub(r"^postgres(ql)?://", "postgresql+psycopg://", url)
        name = (make_url(url).database or "").lower()
        if not url.startswith("postgresql") or not ("test" in name or "bench" in name):
            parser.error("--database-url must be PostgreSQL named for tests or benchmarks")
    with data_dir(args.data_dir) as where:
        run(args.docs, args.queries, where, args.seed, args.posts, url)


if __name__ == "__main__":
    main()
