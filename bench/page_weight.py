"""Weigh the pages readers land on: the gzip bytes of the HTML, and of the HTML with the CSS
and scripts it loads.

    .venv/bin/python bench/page_weight.py

Builds a fresh demo site in a temporary directory (`flask db upgrade`, `flask demo load`), opens
`/`, an article, a product, `/join` and a board thread as an anonymous reader, and compresses
each answer and asset at gzip level 5, as deploy/nginx.conf.in sends them. Goals: 35 KB each in
all, 14 KB of HTML. tests/test_page_weight.py holds the same budgets in `make test`.
"""

from __future__ import annotations

import argparse
import gzip
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bs4 import BeautifulSoup  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app, db  # noqa: E402

GOAL_TOTAL_KB = 35
GOAL_HTML_KB = 14
LEVEL = 5  # gzip_comp_level in deploy/nginx.conf.in


@dataclass(frozen=True)
class Weight:
    path: str
    html: int
    total: int
    assets: int
    other_hosts: list[str]


def gz(data: bytes) -> int:
    return len(gzip.compress(data, compresslevel=LEVEL))


def landing_pages() -> dict[str, str]:
    """The pages readers land on, picked as tests/test_page_weight.py picks them: the first
    demo article, the first product, the first board thread (inside an app context)."""
    from board.models import Thread
    from content.models import Article
    from shop.models import Product

    article = db.session.scalar(
        select(Article.slug).where(Article.slug.startswith("demo-")).order_by(Article.id)
    )
    product = db.session.scalar(select(Product.slug).order_by(Product.id))
    thread = db.session.scalar(select(Thread.id).order_by(Thread.id))
    if article is None or product is None or thread is None:
        raise SystemExit("the demo data has no article, product or board thread")
    return {
        "home": "/",
        "article": f"/a/{article}",
        "product": f"/shop/p/{product}",
        "join": "/join",
        "thread": f"/board/t/{thread}",
    }


def weigh(client, path: str, static: Path) -> Weight:
    response = client.get(path)
    if response.status_code != 200:
        raise SystemExit(f"{path} answered {response.status_code}")
    body = response.get_data()
    page = BeautifulSoup(body, "html.parser")
    urls = [s["src"] for s in page.select("script[src]")]
    urls += [link["href"] for link in page.select('link[rel="stylesheet"]')]
    total = html = gz(body)
    for url in urls:
        total += gz((static / urlsplit(url).path.removeprefix("/static/")).read_bytes())
    asked = [el.get("src") for el in page.select("[src]")]
    asked += [el.get("href") for el in page.select("link[href]")]
    asked += [el.get("poster") for el in page.select("[poster]")]
    others = [u for u in filter(None, asked) if urlsplit(u).netloc not in ("", "localhost")]
    return Weight(path, html, total, len(urls), others)


def kb(size: int) -> str:
    return f"{size / 1024:.1f} KB"


def run(where: Path) -> int:
    from flash_sale import goal, machine_line

    app = create_app({"DATA_DIR": str(where), "SECRET_KEY": "page-weight"})
    runner = app.test_cli_runner()
    for args in (["db", "upgrade"], ["demo", "load"]):
        result = runner.invoke(args=args)
        if result.exit_code != 0:
            raise SystemExit(f"flask {' '.join(args)} failed:\n{result.output}")
    print(f"page weight: gzip level {LEVEL}, an anonymous reader, the demo site")
    print(machine_line())
    with app.app_context():
        pages = landing_pages()
    client = app.test_client()
    weights = [
        weigh(client, path, Path(app.static_folder or ROOT / "static")) for path in pages.values()
    ]
    for name, w in zip(pages, weights, strict=True):
        print(
            f"{name} {w.path}: HTML {kb(w.html)}, with {w.assets} CSS and JS files "
            f"{kb(w.total)}, other hosts: {len(w.other_hosts)}"
        )
    heaviest = max(weights, key=lambda w: w.total)
    largest = max(weights, key=lambda w: w.html)
    print(
        goal(
            f"page weight <= {GOAL_TOTAL_KB} KB each",
            heaviest.total <= GOAL_TOTAL_KB * 1024,
            f"heaviest {kb(heaviest.total)}, {heaviest.path}",
        )
    )
    print(
        goal(
            f"HTML <= {GOAL_HTML_KB} KB each",
            largest.html <= GOAL_HTML_KB * 1024,
            f"largest {kb(largest.html)}, {largest.path}",
        )
    )
    others = [u for w in weights for u in w.other_hosts]
    print(goal("no request to another host", not others, ", ".join(others) or "none"))
    with app.app_context():
        db.engine.dispose()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    with tempfile.TemporaryDirectory(prefix="chendu-page-weight-") as where:
        return run(Path(where))


if __name__ == "__main__":
    sys.exit(main())
