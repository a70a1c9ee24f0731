"""Articles as readers meet them: scheduling, members-only previews, safe markdown, keywords,
the archive; and the saving rules editors depend on (revisions, conflicts, keyword clashes)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import select

from app import db
from content import articles
from content.articles import ArticleConflict, ArticleError, Draft
from content.models import Article, ArticleRevision
from content.rendering import register_shortcode, render_markdown
from tests.conftest import DEFAULT_NOW, html


@pytest.fixture
def publish(app):
    """Save an article as an editor would; returns its slug."""

    def save(title="罗辑思维的读书法", body="第一段。", **fields) -> str:
        fields.setdefault("status", "published")
        with app.app_context():
            article = articles.save_article(Draft(title=title, body_md=body, **fields))
            return article.slug

    return save


MEMBERS_BODY = """开头一段，人人可读。

第二段，也可以读。

<!--more-->

会员专享的秘密段落。

最后一段也是会员专享。
"""


def test_anonymous_reader_sees_the_preview_and_not_one_word_after_the_marker(client, publish):
    slug = publish(body=MEMBERS_BODY, visibility="members")
    response = client.get(f"/a/{slug}")
    assert response.status_code == 200
    text = response.get_data(as_text=True)
    assert "开头一段" in text and "第二段" in text
    assert "秘密" not in text and "最后一段" not in text
    invite = html(response).select_one(".join-invite")
    assert invite is not None and "仅会员可读" in invite.get_text()


def test_a_member_reads_the_whole_text(app, client, publish, make_user, login):
    from members import accounts

    slug = publish(body=MEMBERS_BODY, visibility="members")
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    login("member@example.com")
    page = html(client.get(f"/a/{slug}"))
    prose = page.select_one(".prose").get_text()
    assert "秘密段落" in prose and "最后一段" in prose
    assert page.select_one(".join-invite") is None


def test_a_signed_in_non_member_still_sees_only_the_preview(client, publish, make_user, login):
    slug = publish(body=MEMBERS_BODY, visibility="members")
    make_user()
    login()
    assert "秘密" not in client.get(f"/a/{slug}").get_data(as_text=True)


def test_without_a_marker_the_preview_is_the_first_three_paragraphs(client, publish):
    body = "\n\n".join(f"第{n}段的文字。" for n in "一二三四五")
    slug = publish(body=body, visibility="members")
    prose = html(client.get(f"/a/{slug}")).select_one(".prose").get_text()
    assert "第三段" in prose and "第四段" not in prose and "第五段" not in prose


def test_preview_counts_only_top_level_paragraphs(app):
    body = "> 引文一\n>\n> 引文二\n\n第一段。\n\n- 列表\n\n第二段。\n\n第三段。\n\n第四段。"
    with app.app_context():
        rendered = render_markdown(body)
    assert rendered.has_more
    assert "第三段" in rendered.preview_html and "第四段" not in rendered.preview_html
    assert "引文二" in rendered.preview_html


def test_a_short_piece_without_a_marker_still_keeps_something_back(app):
    with app.app_context():
        one = render_markdown("只有一段。")
        two = render_markdown("第一段。\n\n第二段。")
    assert one.has_more and one.preview_html == ""
    assert two.has_more and "第一段" in two.preview_html and "第二段" not in two.preview_html


def test_a_members_piece_of_headings_lists_and_quotes_never_shows_all(client, publish):
    body = "## 今日\n\n- 会员第一条\n- 会员第二条\n\n> 会员独享的结论"
    slug = publish(body=body, visibility="members")
    text = client.get(f"/a/{slug}").get_data(as_text=True)
    assert "会员独享的结论" not in text
    assert "以下内容仅会员可读" in text


@pytest.mark.parametrize(
    "payload",
    [
        "<script>alert(1)</script>",
        "<img src=x onerror=alert(1)>",
        "[点我](javascript:alert(1))",
        '<div hx-get="/logout" hx-trigger="load">x</div>',
        '<a href="data:text/html,<script>alert(1)</script>">x</a>',
        "![x](data:image/png;base64,AAAA)",
        '<svg onload="alert(1)"><circle r="1"/></svg>',
        '<iframe src="https://evil.example/"></iframe>',
        '<a href="/x" onclick="alert(1)" style="position:fixed">x</a>',
        '<p id="notice" class="tabbar">clobber</p>',
        "![外链](https://evil.example/pixel.png)",
        "<form action='/logout' method='post'><button>x</button></form>",
        "<style>body{display:none}</style>",
    ],
)
def test_an_editor_cannot_put_anything_live_into_an_article(client, publish, payload):
    slug = publish(body=f"前文。\n\n{payload}\n\n后文。")
    prose = html(client.get(f"/a/{slug}")).select_one(".prose")
    assert prose.find(["script", "iframe", "svg", "form", "style", "object", "embed"]) is None
    for tag in prose.find_all(True):
        for name, value in tag.attrs.items():
            assert not name.startswith(("on", "hx-", "data-")), (tag, name)
            assert name not in ("style", "id") or value.startswith("fn"), (tag, name)
            if name in ("href", "src"):
                assert not value.strip().lower().startswith(("javascript:", "data:")), value
        if tag.name == "img":
            assert not tag.get("src", "/").startswith(("http", "//"))
    assert prose.get_text().count("后文") == 1


def test_markdown_tables_code_and_footnotes_render(client, publish):
    body = (
        "| 书 | 作者 |\n| :-- | --: |\n| 史记 | 司马迁 |\n\n"
        "```python\nprint('读书')\n```\n\n正文[^1]。\n\n[^1]: 注释。"
    )
    prose = html(client.get(f"/a/{publish(body=body)}")).select_one(".prose")
    assert prose.select_one("table td").get_text() == "史记"
    assert prose.select_one("th")["align"] == "left"
    assert "language-python" in prose.select_one("pre code")["class"]
    assert prose.select_one("sup a.footnote-ref")["href"] == "#fn:1"
    assert prose.select_one("div.footnote li")["id"] == "fn:1"


def test_shortcodes_are_rendered_by_what_features_register(app, client, publish):
    # The shop registers `product` (tests/test_shop.py); an unknown product renders nothing.
    slug = publish(body="好书推荐。\n\n[[product:shiji-2026]]\n\n读完再买。")
    page = html(client.get(f"/a/{slug}"))
    assert page.select_one(".prose .product-embed") is None
    assert "读完再买" in page.select_one(".prose").get_text()
    with app.app_context():
        register_shortcode(
            "product", lambda s: f'<div class="card" hx-get="/shop/p/{s}/card"></div>'
        )
        rendered = render_markdown("[[product:shiji-2026]]\n\n[[nothing:x]]")
    assert 'hx-get="/shop/p/shiji-2026/card"' in rendered.html
    assert "nothing" not in rendered.html


def test_a_scheduled_article_appears_when_its_time_comes(client, clock, publish):
    slug = publish(status="scheduled", publish_at="2026-11-22 06:30", keywords="明天")
    assert client.get(f"/a/{slug}").status_code == 404
    assert client.get("/k/明天").status_code == 404
    assert "明天" not in client.get("/archive").get_data(as_text=True)
    clock.set(DEFAULT_NOW + timedelta(hours=22, minutes=29))  # 06:29 in Shanghai
    assert client.get(f"/a/{slug}").status_code == 404
    clock.advance(minutes=1)
    assert client.get(f"/a/{slug}").status_code == 200
    assert client.get("/k/明天").headers["Location"] == f"/a/{slug}"
    page = html(client.get("/"))
    assert page.select_one(".today h1").get_text() == "罗辑思维的读书法"
    assert "明天" in page.select_one(".keyword-hint").get_text()


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"title": ""}, "title", "请填写标题"),
        ({"title": "长" * 121}, "title", "最多"),
        ({"status": "scheduled"}, "publish_at", "需要填写发布时间"),
        ({"status": "scheduled", "publish_at": "2026-11-20 06:30"}, "publish_at", "晚于现在"),
        ({"publish_at": "明天早上"}, "publish_at", "格式"),
        ({"slug": "Bad Slug!"}, "slug", "小写字母"),
        ({"keywords": "好 坏!"}, "keywords", "不合适"),
        ({"keywords": " ".join(f"k{i}" for i in range(9))}, "keywords", "最多 8 个"),
        ({"visibility": "secret"}, "visibility", "公开"),
        ({"column": "no-such-column"}, "column", "没有这个栏目"),
    ],
)
def test_bad_fields_are_named_and_nothing_is_saved(app, fields, field, message):
    values = {"title": "标题", "body_md": "正文", **fields}
    with app.app_context():
        with pytest.raises(ArticleError) as caught:
            articles.save_article(Draft(**values))
        assert message in caught.value.errors[field]
        assert db.session.scalar(select(Article.id)) is None


def test_a_keyword_held_by_a_published_article_cannot_be_published_again(app, publish):
    publish(title="第一篇", keywords="读书 历史")
    with app.app_context():
        with pytest.raises(ArticleError) as caught:
            articles.save_article(
                Draft(title="第二篇", body_md="x", keywords="历史", status="published")
            )
        assert caught.value.errors["keywords"] == "关键词「历史」已被《第一篇》使用。"
        # A draft may hold it until it is published.
        draft = articles.save_article(Draft(title="草稿", body_md="x", keywords="历史"))
        assert draft.keyword_list == ["历史"]


def test_keyword_lookup_is_exact_and_case_insensitive(client, publish):
    slug = publish(keywords="Reading, 读书")
    assert client.get("/k/reading").headers["Location"] == f"/a/{slug}"
    assert client.get("/k?q=读书").headers["Location"] == f"/a/{slug}"
    response = client.get("/k?q=读")
    assert response.status_code == 404
    assert "没有找到关键词「读」" in html(response).select_one("h1").get_text()
    assert client.get("/k?q=").status_code == 200


def test_every_save_keeps_a_revision_and_a_stale_save_is_a_conflict(app):
    with app.app_context():
        article = articles.save_article(Draft(title="初稿", body_md="第一版"))
        article_id, version = article.id, article.version
        articles.save_article(
            Draft(title="初稿", body_md="编辑甲的修改", base_version=version), article_id=article_id
        )
        with pytest.raises(ArticleConflict) as caught:
            articles.save_article(
                Draft(title="初稿", body_md="编辑乙的修改", base_version=version),
                article_id=article_id,
            )
        assert caught.value.current.body_md == "编辑甲的修改"
        db.session.remove()
        saved = db.session.get(Article, article_id)
        assert saved.body_md == "编辑甲的修改" and saved.version == 2
        revisions = db.session.scalars(
            select(ArticleRevision)
            .where(ArticleRevision.article_id == article_id)
            .order_by(ArticleRevision.id)
        ).all()
        assert [(r.body_md, r.note) for r in revisions] == [
            ("第一版", ""),
            ("编辑甲的修改", ""),
            ("编辑乙的修改", "conflict"),
        ]


def test_slugs_are_dated_and_readable(app, publish):
    assert publish(title="Hello 读书 World") == "20261121-hello-world"
    chinese = publish(title="只有中文的标题")
    assert chinese.startswith("20261121-") and len(chinese) == len("20261121-") + 6
    with app.app_context(), pytest.raises(ArticleError) as caught:
        articles.save_article(Draft(title="x", body_md="y", slug="20261121-hello-world"))
    assert "已被另一篇文章使用" in caught.value.errors["slug"]


def test_daily_redirects_to_that_days_piece(client, publish, clock):
    slug = publish(publish_at="2026-11-21 06:30")
    assert client.get("/daily/2026-11-21").headers["Location"] == f"/a/{slug}"
    assert client.get("/daily/2026-11-20").status_code == 404
    assert client.get("/daily/not-a-date").status_code == 404


def test_article_pages_carry_share_card_tags(client, publish):
    slug = publish(summary="一分钟读懂。")
    page = html(client.get(f"/a/{slug}"))
    assert page.select_one("meta[property='og:title']")["content"] == "罗辑思维的读书法"
    assert page.select_one("meta[property='og:description']")["content"] == "一分钟读懂。"
    assert page.select_one("meta[property='og:image']")["content"].startswith(
        "http://localhost/static/"
    )


def test_archive_pages_on_with_plain_links_and_htmx(app, client, publish, clock):
    for day in range(25):
        publish(
            title=f"第{day}天", publish_at=(DEFAULT_NOW - timedelta(days=day + 1)).isoformat()[:16]
        )
    page = html(client.get("/archive"))
    assert len(page.select("#archive-items .item")) == 20
    more = page.select_one("#archive-more a")
    assert more["href"] == more["hx-get"]
    rest = client.get(more["href"], headers={"HX-Request": "true"})
    body = rest.get_data(as_text=True)
    assert "<html" not in body
    assert len(html(rest).select(".item")) == 5
    assert html(rest).select_one("#archive-more") is None
    # Without JavaScript the same link is a whole page.
    plain = html(client.get(more["href"]))
    assert plain.select_one("nav.tabbar") and len(plain.select(".item")) == 5
    assert client.get("/archive?before=yesterday").status_code == 400


def test_columns_list_their_articles(client, publish):
    publish(title="每日一篇", column="daily")
    publish(title="一篇笔记", column="reading-notes")
    titles = [t.get_text() for t in html(client.get("/columns/daily")).select(".item-title")]
    assert titles == ["每日一篇"]
    assert client.get("/columns/nope").status_code == 404


def _publish_in_process(data_dir: str, barrier, title: str, results) -> None:
    from pathlib import Path

    from app import create_app
    from tests.conftest import make_config

    app = create_app(make_config(Path(data_dir)))
    with app.app_context():
        barrier.wait(timeout=30)
        try:
            articles.save_article(
                Draft(title=title, body_md="同一个关键词。", keywords="抢答", status="published")
            )
            results.put("published")
        except ArticleError as error:
            results.put(error.errors["keywords"])


def test_two_processes_publishing_one_keyword_leave_exactly_one_holder(app):
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(4)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_publish_in_process,
            args=(str(app.config["DATA_DIR"]), barrier, f"第{i}篇", results),
        )
        for i in range(4)
    ]
    for w in workers:
        w.start()
    outcomes = sorted(results.get(timeout=120) for _ in workers)
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert outcomes.count("published") == 1
    assert all("抢答" in o or "刚被另一篇文章占用" in o for o in outcomes if o != "published")
    with app.app_context():
        holders = db.session.scalars(select(Article).where(Article.status == "published")).all()
        assert len(holders) == 1 and holders[0].keyword_list == ["抢答"]


def test_the_kept_article_card_follows_the_reader_and_the_version(app, client, publish, make_user):
    """The card rendered for one reader is kept (content/views.py): a member's whole text
    never reaches a non-member or a stranger, and an edit shows at once."""
    from members import accounts
    from tests.conftest import post_form

    slug = publish(body=MEMBERS_BODY, visibility="members", slug="kept")
    make_user("member@example.com")
    make_user("reader@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    member, reader = app.test_client(), app.test_client()
    for who, email in ((member, "member@example.com"), (reader, "reader@example.com")):
        response = post_form(who, "/login", {"email": email, "password": "correct horse"})
        assert response.status_code == 302
    for _ in range(2):  # the second time from the kept card
        assert "秘密段落" in member.get(f"/a/{slug}").get_data(as_text=True)
        assert "秘密段落" not in reader.get(f"/a/{slug}").get_data(as_text=True)
        assert "秘密段落" not in client.get(f"/a/{slug}").get_data(as_text=True)
    with app.app_context():
        article = db.session.scalar(select(Article).where(Article.slug == slug))
        articles.save_article(
            Draft(
                title="改过的标题",
                body_md=MEMBERS_BODY.replace("秘密段落", "新的段落"),
                status="published",
                visibility="public",
                slug=slug,
                base_version=article.version,
            ),
            article_id=article.id,
        )
    for who in (member, reader, client):
        page = who.get(f"/a/{slug}").get_data(as_text=True)
        assert "改过的标题" in page and "新的段落" in page and "秘密段落" not in page


def test_a_kept_article_page_makes_each_readers_own_parts(app, publish, make_user):
    """The whole page is kept (content/pages.py); each answer still carries the reader's own
    form token and flashed messages."""
    from tests.conftest import post_form

    slug = publish(body=MEMBERS_BODY, slug="kept-parts")
    tokens = {}
    for email in ("one@example.com", "two@example.com"):
        make_user(email)
        who = app.test_client()
        response = post_form(who, "/login", {"email": email, "password": "correct horse"})
        assert response.status_code == 302
        for _ in range(2):  # the second time from the kept page
            body = html(who.get(f"/a/{slug}")).select_one("body")
            token = json.loads(body["hx-headers"])["X-CSRFToken"]
            # The session's own token, signed with the time of each answer: two answers in
            # different seconds differ after the first dot, never before it.
            own = token.split(".")[0]
            assert tokens.setdefault(email, own) == own
        tokens[email] = (who, token)
    (one, one_token), (two, two_token) = tokens.values()
    assert one_token.split(".")[0] != two_token.split(".")[0]
    # Each page's token is good for its own session only.
    assert two.post("/logout", headers={"X-CSRFToken": one_token}).status_code == 400
    assert one.post("/logout", headers={"X-CSRFToken": one_token}).status_code == 302
    with two.session_transaction() as session:
        session["_flashes"] = [("message", "<b>已保存</b>")]
    notice = html(two.get(f"/a/{slug}")).select_one("#notice")
    assert [p.get_text() for p in notice.select("p.flash")] == ["<b>已保存</b>"]  # escaped
    assert html(two.get(f"/a/{slug}")).select_one("#notice p") is None  # shown once


def test_a_marker_like_text_in_an_article_stays_text(app, client, publish):
    from content import pages

    slug = publish(body="正文 live0123456789abcdefx0x 结尾", slug="marker")
    for _ in range(2):
        assert "live0123456789abcdefx0x" in client.get(f"/a/{slug}").get_data(as_text=True)
    with app.test_request_context():
        kept = pages.keep(lambda: f"a{pages.live('notice')}b{pages.form_token()}c")
        assert [type(p) for p in kept.pieces] == [str, tuple, str, tuple, str]


def test_a_keyword_lookup_is_one_query_and_finds_only_what_readers_may_see(app, publish, clock):
    """`/k/<keyword>` and the official account ask it for every keyword typed: one statement,
    without the article's own keywords (a second query each time before)."""
    from sqlalchemy import event

    slug = publish(title="读书笔记", keywords="读书 笔记")
    publish(title="明天的文章", keywords="明天", status="scheduled", publish_at="2026-11-22 06:30")
    statements: list[str] = []

    def record(conn, cursor, statement, *args):
        statements.append(statement)

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            found = articles.article_for_keyword(" 笔记 ")
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        assert found is not None and found.slug == slug
        assert [s for s in statements if s.lstrip().upper().startswith("SELECT")] == statements[-1:]
        assert sorted(found.keyword_list) == ["笔记", "读书"]  # still there when asked for
        assert articles.article_for_keyword("明天") is None  # scheduled: not yet
        clock.advance(days=1)
        assert articles.article_for_keyword("明天").title == "明天的文章"
        assert articles.article_for_keyword("没有") is None
