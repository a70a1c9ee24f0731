"""The demo shop that `make run` loads: every category stocked, a drop minutes away, one
sold out, one presale, an order history for member@example.com, cards in two pieces."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from app import db
from content.models import Article
from members import accounts
from shop.models import Category, Order, Product
from tests.conftest import DEFAULT_NOW, html


def test_demo_shop(app, client, clock):
    cli = app.test_cli_runner()
    first = cli.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    assert "演示商品 (demo products): 5" in first.output
    with app.app_context():
        products = db.session.scalars(select(Product)).all()
        categories = {p.category_id for p in products}
        assert categories == set(db.session.scalars(select(Category.id)))
        drop = next(p for p in products if p.slug == "chendu-fountain-pen")
        assert drop.starts_at == DEFAULT_NOW + timedelta(minutes=3)
        assert any(p.stock and p.available == 0 and p.sold == p.stock for p in products)
        assert any(p.ships_at is not None for p in products)
        for p in products:
            if p.stock is not None:
                assert p.available + p.held + p.sold == p.stock
        member = accounts.find_user("member@example.com")
        states = set(db.session.scalars(select(Order.status).where(Order.user_id == member.id)))
        assert states == {"paid", "shipped", "completed", "refund_requested", "cancelled"}
        carded = db.session.scalars(
            select(Article.slug).where(Article.body_md.contains("[[product:"))
        ).all()
        assert len(carded) == 2
    page = html(client.get("/shop/p/chendu-fountain-pen"))
    assert page.select_one("[data-countdown]")["data-countdown"] == "180"
    article = html(client.get(f"/a/{carded[0]}"))
    assert article.select_one(".product-embed a[hx-get]") is not None
    # Loading again adds nothing, and moves the unsold drop to minutes from the new now.
    clock.advance(hours=1)
    second = cli.invoke(args=["demo", "load"])
    assert second.exit_code == 0, second.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Product)) == 5
        assert db.session.scalar(select(func.count()).select_from(Order)) == 5
        drop = db.session.scalar(select(Product).where(Product.slug == "chendu-fountain-pen"))
        assert drop.starts_at == DEFAULT_NOW + timedelta(hours=1, minutes=3)
