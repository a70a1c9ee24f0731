"""Demo shop for `flask --app app demo load`: products in all four categories, a limited
edition that drops a few minutes after the command runs, one sold out, one presale, an
order history for member@example.com, and product cards in two daily pieces.

Runs after the member and content demos; everything it adds is added once (by slug, or
only when the member has no orders yet). The drop is moved to "a few minutes from now" on
every load for as long as nobody has bought it, so `make run` always shows a countdown.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta
from io import BytesIO

from PIL import Image, ImageDraw
from sqlalchemy import func, select, update

from app import db, utcnow, write_transaction
from content import articles, media
from content.models import Article
from content.rendering import render_markdown
from members import accounts
from shop import checkout, payments
from shop.models import Category, Order, Product, ProductImage

DROP_SLUG = "chendu-fountain-pen"
DROP_DELAY = timedelta(minutes=3)


@dataclass(frozen=True)
class DemoProduct:
    slug: str
    title: str
    category: str
    price_fen: int
    member_price_fen: int | None
    stock: int | None
    members_only: bool
    description: str
    colour: tuple[int, int, int]
    per_member_limit: int | None = None
    presale_days: int | None = None
    sold_out: bool = False


PRODUCTS = [
    DemoProduct(
        DROP_SLUG,
        "晨读限定钢笔 · 松烟墨",
        "stationery",
        32800,
        26800,
        100,
        True,
        "每年只做一次的会员限定钢笔，笔杆取松烟墨色，配 EF 尖，适合写小字读书笔记。\n\n"
        "- 限量 100 支，每人限购 1 支\n- 附赠晨读藏书票一张",
        (38, 50, 56),
        per_member_limit=1,
    ),
    DemoProduct(
        "shiji-notebook",
        "《史记》精读笔记本",
        "food-for-thought",
        6800,
        5800,
        30,
        True,
        "按《史记》一百三十篇排好的精读笔记本，每篇留两页。上一批已经全部售出。",
        (139, 69, 19),
        per_member_limit=2,
        sold_out=True,
    ),
    DemoProduct(
        "brass-bookmark",
        "黄铜书签（预售）",
        "workshop",
        12800,
        9900,
        200,
        True,
        "手工錾刻的黄铜书签，越用越亮。预售款，工坊排期制作，预计三周后发货。",
        (181, 140, 60),
        per_member_limit=2,
        presale_days=21,
    ),
    DemoProduct(
        "morning-coffee",
        "早起挂耳咖啡（10 包）",
        "survival",
        5900,
        4900,
        None,
        False,
        "中深烘焙，适合早上六点半配一段六十秒语音。",
        (92, 64, 51),
    ),
    DemoProduct(
        "reading-list-2027",
        "2027 晨读书单礼盒",
        "food-for-thought",
        19900,
        None,
        None,
        False,
        "编辑部选出的十二本书，每月一本，附导读卡片。",
        (176, 58, 46),
    ),
]

# The two daily pieces (days before today) that embed product cards, and what they embed.
CARDS = {0: DROP_SLUG, 1: "brass-bookmark"}


def _picture(colour: tuple[int, int, int], seed: int) -> bytes:
    """A plain product picture drawn on the spot (no files in git, no fonts needed)."""
    image = Image.new("RGB", (720, 720), (246, 243, 238))
    draw = ImageDraw.Draw(image)
    draw.rounded_rectangle((120, 120, 600, 600), radius=48, fill=colour)
    light = tuple(min(255, c + 70) for c in colour)
    for i in range(3):
        inset = 170 + i * 60 + seed % 20
        draw.rounded_rectangle(
            (inset, inset, 720 - inset, 720 - inset), radius=24, outline=light, width=6
        )
    out = BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def _add_products() -> int:
    now = utcnow()
    added = 0
    categories = {c.slug: c.id for c in db.session.scalars(select(Category))}
    for n, spec in enumerate(PRODUCTS):
        if db.session.scalar(select(Product.id).where(Product.slug == spec.slug)) is not None:
            continue
        picture = media.store(
            media.check_image(BytesIO(_picture(spec.colour, n))), original_name=f"{spec.slug}.png"
        )
        starts = now + DROP_DELAY if spec.slug == DROP_SLUG else now - timedelta(days=2 + n)
        with write_transaction() as session:
            product = Product(
                slug=spec.slug,
                title=spec.title,
                category_id=categories.get(spec.category),
                description_md=spec.description,
                description_html=render_markdown(spec.description).html,
                price_fen=spec.price_fen,
                member_price_fen=spec.member_price_fen,
                stock=spec.stock,
                available=0 if spec.sold_out else spec.stock,
                held=0,
                sold=spec.stock if spec.sold_out and spec.stock else 0,
                per_member_limit=spec.per_member_limit,
                starts_at=starts,
                members_only=spec.members_only,
                ships_at=now + timedelta(days=spec.presale_days) if spec.presale_days else None,
                status="live",
                live_at=starts if spec.slug == DROP_SLUG else now - timedelta(days=1 + n),
                created_at=now,
                updated_at=now,
            )
            session.add(product)
            session.flush()
            session.add(ProductImage(product_id=product.id, media_id=picture.id, position=0))
        added += 1
    return added


def _reset_drop() -> None:
    """Nobody has bought the drop yet: it opens a few minutes from now."""
    start = utcnow() + DROP_DELAY
    with write_transaction() as session:
        session.execute(
            update(Product)
            .where(Product.slug == DROP_SLUG, Product.held == 0, Product.sold == 0)
            .values(starts_at=start, live_at=start)
        )


def _add_order_history() -> int:
    """member@example.com's orders in several states, made through the real checkout."""
    member = accounts.find_user("member@example.com")
    editor = accounts.find_user("editor@example.com")
    if member is None or editor is None:
        return 0
    if db.session.scalar(select(func.count()).where(Order.user_id == member.id)):
        return 0
    ids = {p.slug: p.id for p in db.session.scalars(select(Product))}

    def bought(slug: str, *, pay: bool = True) -> checkout.PlacedOrder:
        order = checkout.place_order(
            member, ids[slug], 1, delivery="自提：晨读编辑部", note="", provider="dev"
        )
        if pay:
            payments.record_payment(
                order.number,
                provider="dev",
                transaction_id=f"dev-demo-{secrets.token_hex(8)}",
                amount_fen=order.total_fen,
                paid_at=utcnow(),
            )
        return order

    bought("brass-bookmark")  # paid, waiting for the presale to ship
    shipped = bought("morning-coffee")
    checkout.mark_shipped(
        shipped.id, actor=editor.id, carrier="顺丰速运", tracking_no="SF1400028817"
    )
    done = bought("reading-list-2027")
    checkout.complete(done.id, actor=editor.id, reason="已自提")
    asked = bought("morning-coffee")
    checkout.complete(asked.id, actor=editor.id, reason="已自提")
    checkout.request_refund(asked.id, actor=member.id, reason="包装破损，咖啡粉洒了一半")
    dropped = bought("morning-coffee", pay=False)
    checkout.cancel(dropped.id, actor=member.id, reason="买家取消")
    return 5


def _embed_cards() -> int:
    """Put a product card into two recent daily pieces (once)."""
    today = articles.today()
    embedded = 0
    for days_ago, slug in CARDS.items():
        article = db.session.scalar(
            select(Article).where(Article.slug == f"demo-{today - timedelta(days=days_ago):%Y%m%d}")
        )
        if article is None or "[[product:" in article.body_md:
            continue
        draft = articles.draft_from(article, utcnow())
        draft.body_md = draft.body_md.replace(
            "<!--more-->", f"[[product:{slug}]]\n\n<!--more-->", 1
        )
        try:
            articles.save_article(draft, article_id=article.id)
        except articles.ArticleError:
            continue
        embedded += 1
    return embedded


def load() -> list[str]:
    _add_products()
    _reset_drop()
    _add_order_history()
    _embed_cards()
    total = db.session.scalar(select(func.count()).select_from(Product))
    member = accounts.find_user("member@example.com")
    orders = (
        db.session.scalar(select(func.count()).where(Order.user_id == member.id)) if member else 0
    )
    cards = db.session.scalar(
        select(func.count()).select_from(Article).where(Article.body_md.contains("[[product:"))
    )
    return [
        f"演示商品 (demo products): {total}",
        f"限量发售 (drop): /shop/p/{DROP_SLUG}，每次 demo load 后约 "
        f"{int(DROP_DELAY.total_seconds() // 60)} 分钟开售（尚无人购买时）",
        f"演示订单 (orders of member@example.com): {orders}",
        f"商品卡片 (articles with product cards): {cards}",
    ]
