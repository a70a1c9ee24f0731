"""The shop in real Chromium on a phone: a drop's countdown turning into a buy button without a
reload, a product card loading live stock into an article, and a purchase through the dev
cashier to a paid order."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from playwright.sync_api import expect

from app import db, write_transaction
from content import articles, media
from content.articles import Draft
from members import accounts
from members.models import User
from shop import checkout
from shop.models import ProductImage
from tests.conftest import DEFAULT_NOW, log_in, no_sideways_scroll
from tests.test_checkout import make_product

pytestmark = pytest.mark.browser


@pytest.fixture
def member_phone(phone, app, make_user):
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    log_in(phone, "member@example.com")
    return phone


def with_picture(app, product_id: int, colour=(38, 50, 56)) -> None:
    out = BytesIO()
    Image.new("RGB", (600, 600), colour).save(out, "PNG")
    out.seek(0)
    with app.app_context():
        picture = media.store(media.check_image(out), original_name="p.png")
        with write_transaction() as session:
            session.add(ProductImage(product_id=product_id, media_id=picture.id, position=0))


def test_countdown_becomes_a_buy_button_without_a_reload(member_phone, app, clock):
    pid = make_product(
        app,
        slug="pen",
        title="晨读限定钢笔",
        stock=100,
        per_member_limit=1,
        members_only=True,
        starts_at=DEFAULT_NOW + timedelta(seconds=3),
        description_html="<p>每年只做一次的会员限定钢笔。</p>",
    )
    with_picture(app, pid)
    page = member_phone.page
    member_phone.open("/shop/p/pen")
    expect(page.locator("[data-countdown]")).to_be_visible()
    buy = page.locator(".drop-live a.buy")
    expect(buy).to_be_hidden()
    no_sideways_scroll(page)
    member_phone.screenshot("shop-product-countdown")
    clock.advance(seconds=3)  # the server's instant reaches the drop as the phone counts down
    expect(buy).to_be_visible(timeout=8000)
    expect(page.locator(".drop-live .stock")).to_contain_text("仅剩 100 件", timeout=8000)
    assert page.url.endswith("/shop/p/pen")  # no reload, no navigation
    member_phone.screenshot("shop-product-on-sale")


def test_card_in_an_article_buy_and_pay_with_the_dev_cashier(member_phone, app):
    pid = make_product(
        app, slug="pen", title="晨读限定钢笔", stock=12, members_only=True, per_member_limit=1
    )
    with_picture(app, pid)
    with app.app_context():
        articles.save_article(
            Draft(
                title="一支笔的匠心",
                body_md="一支好用的笔，背后是几十道工序。\n\n[[product:pen]]\n\n明天见。",
                slug="pen-story",
                status="published",
                publish_at="2026-11-21 06:30",
            )
        )
    page = member_phone.page
    member_phone.open("/a/pen-story")
    card = page.locator(".product-card")
    expect(card).to_be_visible()
    expect(card.locator(".stock")).to_contain_text("仅剩 12 件")
    expect(card.locator(".amount")).to_have_text("¥99.00")
    no_sideways_scroll(page)
    member_phone.screenshot("shop-card-in-article")
    card.locator("a.buy").click()
    expect(page).to_have_url(member_phone.server.url + "/shop/p/pen/buy")
    no_sideways_scroll(page)
    member_phone.screenshot("shop-buy")
    page.fill("#note", "请用礼盒包装")
    page.click("form button[type=submit]")
    expect(page.locator(".cashier h1")).to_have_text("¥99.00")
    member_phone.screenshot("shop-cashier")
    page.click("button[value=success]")
    expect(page.locator(".order-status .status")).to_have_text("已付款，待发货")
    no_sideways_scroll(page)
    member_phone.screenshot("shop-order-paid")
    member_phone.open("/shop/p/pen")
    expect(page.locator(".drop-live .stock")).to_contain_text("仅剩 11 件")
    member_phone.open("/orders")
    expect(page.locator(".items .status")).to_have_text("已付款，待发货")
    member_phone.screenshot("shop-orders")


def test_shop_front_on_a_phone(phone, app):
    for n, (slug, title, colour) in enumerate(
        [("pen", "晨读限定钢笔", (38, 50, 56)), ("tea", "早起挂耳咖啡（10 包）", (92, 64, 51))]
    ):
        pid = make_product(
            app, slug=slug, title=title, live_at=DEFAULT_NOW - timedelta(days=n + 1), stock=None
        )
        with_picture(app, pid, colour)
    page = phone.page
    phone.open("/shop/")
    expect(page.locator(".tile")).to_have_count(2)
    no_sideways_scroll(page)
    phone.screenshot("shop-front")
    phone.open("/shop/p/pen")
    expect(page.locator(".join-invite")).to_have_count(0)  # a public product: anyone may buy
    expect(page.locator(".drop-live a.buy")).to_be_visible()


def test_the_shop_desk_on_a_phone(phone, app, make_user, clock):
    """An editor watches a drop's dashboard update itself as orders are paid, and ships one."""
    from shop import checkout, payments

    make_user("editor@example.com", role="editor")
    make_user("member@example.com")
    pid = make_product(
        app,
        slug="pen",
        title="晨读限定钢笔",
        stock=50,
        starts_at=DEFAULT_NOW - timedelta(minutes=20),
    )
    with_picture(app, pid)
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
        buyer = accounts.find_user("member@example.com")
        order = checkout.place_order(buyer, pid, 1)
        payments.record_payment(
            order.number,
            provider="dev",
            transaction_id="t-1",
            amount_fen=order.total_fen,
            paid_at=DEFAULT_NOW,
        )
    log_in(phone, "editor@example.com")
    page = phone.page
    phone.open("/editor/shop/")
    expect(page.get_by_text("晨读限定钢笔").first).to_be_visible()
    no_sideways_scroll(page)
    phone.screenshot("desk-shop-products")
    phone.open(f"/editor/shop/p/{pid}/drop")
    expect(page.locator("#drop-sold")).to_have_text("1")
    expect(page.locator("#drop-live svg.chart")).to_be_visible()
    with app.app_context():
        clock.advance(minutes=1)
        buyer = accounts.find_user("member@example.com")
        second = checkout.place_order(buyer, pid, 1)
        payments.record_payment(
            second.number,
            provider="dev",
            transaction_id="t-2",
            amount_fen=second.total_fen,
            paid_at=DEFAULT_NOW + timedelta(minutes=1),
        )
    expect(page.locator("#drop-sold")).to_have_text("2", timeout=12000)  # htmx, no reload
    expect(page.locator("#drop-available")).to_have_text("48")
    no_sideways_scroll(page)
    phone.screenshot("desk-shop-drop")
    phone.open("/editor/shop/orders?status=paid")
    no_sideways_scroll(page)
    phone.screenshot("desk-shop-orders")


def test_the_last_unit_going_while_the_form_is_open_gives_the_short_refusal(
    member_phone, app, make_user
):
    pid = make_product(app, slug="pen", title="晨读限定钢笔", stock=1, members_only=True)
    with_picture(app, pid)
    page = member_phone.page
    member_phone.open("/shop/p/pen/buy")
    expect(page.locator("form button[type=submit]")).to_be_visible()
    other = make_user("quick@example.com")
    with app.app_context():
        accounts.grant_membership("quick@example.com", "年度会员", 365)
        checkout.place_order(db.session.get(User, other), pid, 1)
    page.click("form button[type=submit]")
    expect(page.locator("h1")).to_have_text("没能下单")
    expect(page.locator("[role=alert]")).to_have_text("库存不足，已经卖完了。")
    no_sideways_scroll(page)
    member_phone.screenshot("shop-buy-sold-out")
    page.click("text=返回商品页")
    expect(page).to_have_url(member_phone.server.url + "/shop/p/pen")
    expect(page.locator(".sold-out")).to_have_text("已售罄")
