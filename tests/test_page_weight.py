"""The page-weight budget: for the pages readers land on, the gzip bytes of the HTML, and of
the HTML with the CSS and scripts it loads, stay within budget; and no page asks another
host for anything. A page that grows past its budget fails the suite."""

from __future__ import annotations

import gzip
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from bs4 import BeautifulSoup
from sqlalchemy import select

from app import db

HTML_BUDGET = 14 * 1024
TOTAL_BUDGET = 35 * 1024
STATIC = Path(__file__).resolve().parent.parent / "static"
# What nginx is told in deploy/ (gzip_comp_level 5), so the figures are the ones sent.
LEVEL = 5


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=LEVEL))


@pytest.fixture
def demo(app, client):
    assert app.test_cli_runner().invoke(args=["demo", "load"]).exit_code == 0
    from board.models import Thread
    from content.models import Article
    from shop.models import Product

    with app.app_context():
        article = db.session.scalar(
            select(Article.slug).where(Article.slug.startswith("demo-")).order_by(Article.id)
        )
        product = db.session.scalar(select(Product.slug).order_by(Product.id))
        thread = db.session.scalar(select(Thread.id).order_by(Thread.id))
    return {
        "home": "/",
        "article": f"/a/{article}",
        "product": f"/shop/p/{product}",
        "join": "/join",
        "thread": f"/board/t/{thread}",
    }


def assets(page: BeautifulSoup) -> list[str]:
    found = [s["src"] for s in page.select("script[src]")]
    found += [link["href"] for link in page.select('link[rel="stylesheet"]')]
    return found


@pytest.mark.parametrize("name", ["home", "article", "product", "join", "thread"])
def test_each_landing_page_keeps_its_budget_and_its_host(demo, client, name):
    response = client.get(demo[name])
    assert response.status_code == 200
    body = response.get_data()
    page = BeautifulSoup(body, "html.parser")
    html_bytes = gz(body)
    total = html_bytes
    for url in assets(page):
        path = urlsplit(url).path
        assert path.startswith("/static/"), url
        total += gz((STATIC / path.removeprefix("/static/")).read_bytes())
    print(f"{name}: HTML {html_bytes} B gzip, with CSS and JS {total} B")
    assert html_bytes <= HTML_BUDGET, f"{name} HTML is {html_bytes} B gzip"
    assert total <= TOTAL_BUDGET, f"{name} weighs {total} B gzip with its CSS and JS"
    # Nothing on the page is fetched from another host (og: links are metadata, not loads).
    asked = [el.get("src") for el in page.select("[src]")]
    asked += [el.get("href") for el in page.select("link[href]")]
    asked += [el.get("poster") for el in page.select("[poster]")]
    for url in filter(None, asked):
        assert urlsplit(url).netloc in ("", "localhost"), f"{name} loads {url}"
