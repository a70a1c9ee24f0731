"""The shop desk: who may use it, the product form (every bad field changes nothing), stock
that never falls below what is sold and held, images checked by content, orders with their
actions (ship, hand over, refund or not, and stale ones), the CSV of orders to ship and the
live drop dashboard."""

from __future__ import annotations

import codecs
import csv
import io
import random
import threading
from datetime import timedelta
from io import BytesIO

import pytest
from PIL import Image
from sqlalchemy import func, select

from app import db, utcnow, write_transaction
from content import media
from content.models import Media
from members.models import User
from shop import checkout, payments, products
from shop.models import Order, OrderEvent, OrderLine, Product, ProductImage, Refund
from shop.products import ProductDraft, ProductError
from tests.conftest import DEFAULT_NOW, csrf_token_from, html, post_form


@pytest.fixture
def editor(client, make_user, login):
    editor_id = make_user("editor@example.com", role="editor")
    login("editor@example.com")
    client.editor_id = editor_id
    return client


def png(size=(40, 30), color=(200, 60, 20)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def make_product(app, *, image: bool = True, **fields) -> int:
    """A product straight into the database (live, 10 in stock, for everyone)."""
    values = {
        "slug": "drop",
        "title": "限量笔记本",
        "price_fen": 12800,
        "member_price_fen": None,
        "stock": 10,
        "per_member_limit": None,
        "starts_at": DEFAULT_NOW - timedelta(minutes=30),
        "members_only": False,
        "status": "live",
        "created_at": DEFAULT_NOW,
        "updated_at": DEFAULT_NOW,
    }
    values.update(fields)
    values.setdefault("available", values["stock"])
    with app.app_context():
        kept = (
            media.save_image(BytesIO(png(color=(len(values["slug"]) * 9, 1, 2)))) if image else None
        )
        with write_transaction() as session:
            product = Product(**values)
            session.add(product)
            session.flush()
            if kept is not None:
                session.add(ProductImage(product_id=product.id, media_id=kept.id, position=0))
        return product.id


def counters(product_id: int) -> tuple:
    p = db.session.scalar(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    )
    return p.stock, p.available, p.held, p.sold


def snapshot(product_id: int) -> dict:
    p = db.session.scalar(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    )
    return {c.name: getattr(p, c.key) for c in Product.__table__.columns}


def place(app, user_id: int, product_id: int, quantity: int = 1, **kw) -> int:
    with app.app_context():
        return checkout.place_order(db.session.get(User, user_id), product_id, quantity, **kw).id


def pay(app, order_id: int) -> None:
    with app.app_context():
        order = db.session.get(Order, order_id)
        outcome = payments.record_payment(
            order.number,
            provider="dev",
            transaction_id=f"t{order_id}",
            amount_fen=order.total_fen,
            paid_at=utcnow(),
        )
        assert outcome == payments.Outcome.PAID


def paid_order(app, user_id: int, product_id: int, quantity: int = 1, **kw) -> int:
    order_id = place(app, user_id, product_id, quantity, **kw)
    pay(app, order_id)
    return order_id


def status_of(app, order_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(Order.status).where(Order.id == order_id))


def form_of(client, path: str) -> dict[str, str]:
    """The values a browser would submit from the product form on `path`."""
    form = html(client.get(path)).select_one("#product-form")
    values: dict[str, str] = {}
    for field in form.select("input[name], textarea[name], select[name]"):
        name = field["name"]
        if field.name == "textarea":
            values[name] = field.get_text()
        elif field.name == "select":
            chosen = field.select_one("option[selected]") or field.select_one("option")
            values[name] = chosen["value"] if chosen else ""
        elif field.get("type") == "radio":
            if field.has_attr("checked"):
                values[name] = field["value"]
        elif field.get("type") != "file":
            values[name] = field.get("value", "")
    return values


# --- access -------------------------------------------------------------------------------

PAGES = [
    "/editor/shop/",
    "/editor/shop/new",
    "/editor/shop/p/1",
    "/editor/shop/catalogue.csv",
    "/editor/shop/import",
    "/editor/shop/orders",
    "/editor/shop/orders.csv",
    "/editor/shop/orders/1",
    "/editor/shop/p/1/drop",
    "/editor/shop/p/1/drop/live",
]
ACTIONS = [
    "/editor/shop/new",
    "/editor/shop/p/1",
    "/editor/shop/p/1/archive",
    "/editor/shop/p/1/images",
    "/editor/shop/p/1/images/1/remove",
    "/editor/shop/p/1/images/1/up",
    "/editor/shop/import",
    "/editor/shop/orders/1/ship",
    "/editor/shop/orders/1/complete",
    "/editor/shop/orders/1/refund/approve",
    "/editor/shop/orders/1/refund/reject",
]


@pytest.mark.parametrize("path", PAGES)
def test_readers_get_403_and_strangers_are_sent_to_log_in(app, client, make_user, login, path):
    make_product(app)
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
    make_user()
    login()
    assert client.get(path).status_code == 403


@pytest.mark.parametrize("path", ACTIONS)
def test_readers_cannot_act_through_the_shop_desk(app, client, make_user, login, path):
    product_id = make_product(app)
    before = None
    with app.app_context():
        before = snapshot(product_id)
    token = csrf_token_from(client, "/login")
    response = client.post(path, data={"csrf_token": token, "title": "x", "status": "archived"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    make_user()
    login()
    token = csrf_token_from(client, "/me")
    response = client.post(path, data={"csrf_token": token, "title": "x", "status": "archived"})
    assert response.status_code == 403
    with app.app_context():
        assert snapshot(product_id) == before
        assert count(Product) == 1


def test_desk_actions_need_the_form_token(app, editor):
    product_id = make_product(app)
    response = editor.post(f"/editor/shop/p/{product_id}/archive")
    assert response.status_code == 400
    with app.app_context():
        assert counters(product_id) == (10, 10, 0, 0)
        assert db.session.get(Product, product_id).status == "live"


# --- the product list ---------------------------------------------------------------------


def test_the_list_filters_by_status_and_category(app, editor):
    make_product(app, slug="pen", title="匠心之笔", category_id=3)
    make_product(app, slug="book", title="签名版", status="draft", category_id=1)
    page = html(editor.get("/editor/shop/"))
    titles = [t.get_text() for t in page.select(".desk-shop-products .item-title")]
    assert sorted(titles) == ["匠心之笔", "签名版"]
    assert page.select_one("a[href='/editor/shop/new']") is not None
    assert page.select_one("a[href='/editor/shop/orders']") is not None
    assert page.select_one("a[href='/editor/shop/catalogue.csv']") is not None
    assert page.select_one("form[action='/editor/shop/import'] input[type=file]") is not None
    live = html(editor.get("/editor/shop/?status=live"))
    assert [t.get_text() for t in live.select(".desk-shop-products .item-title")] == ["匠心之笔"]
    stationery = html(editor.get("/editor/shop/?category=stationery"))
    titles = [t.get_text() for t in stationery.select(".desk-shop-products .item-title")]
    assert titles == ["匠心之笔"]
    assert "剩 10 / 共 10 件" in live.select_one(".desk-shop-stock").get_text()
    assert editor.get("/editor/shop/?status=nope").status_code == 404
    assert editor.get("/editor/shop/?category=nope").status_code == 404


# --- the product form ---------------------------------------------------------------------


def new_values(**fields) -> dict[str, str]:
    values = {
        "title": "死磕侠套装",
        "slug": "sikexia",
        "category": "food-for-thought",
        "description_md": "**限量** 一千套。",
        "price": "12.8",
        "member_price": "9.90",
        "stock": "1000",
        "per_member_limit": "",
        "starts_at": "2026-11-21 20:00",
        "ends_at": "",
        "ships_at": "2026-12-01",
        "members_only": "1",
        "status": "draft",
    }
    values.update(fields)
    return values


def test_an_editor_creates_a_draft_product(app, editor):
    response = post_form(editor, "/editor/shop/new", new_values())
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/editor/shop/p/")
    with app.app_context():
        product = db.session.scalar(select(Product))
        assert product.title == "死磕侠套装" and product.category.name == "精神食粮"
        assert (product.price_fen, product.member_price_fen) == (1280, 990)
        assert (product.stock, product.available, product.held, product.sold) == (1000, 1000, 0, 0)
        assert product.per_member_limit == 1  # a new limited edition: one per member
        assert product.starts_at == DEFAULT_NOW + timedelta(hours=12)
        assert product.ships_at == DEFAULT_NOW + timedelta(days=9, hours=16)
        assert product.members_only and product.status == "draft" and product.live_at is None
        assert "<strong>限量</strong>" in product.description_html
    form = form_of(editor, response.headers["Location"])
    assert form["price"] == "12.80" and form["ships_at"] == "2026-12-01"
    assert form["starts_at"] == "2026-11-21 20:00" and form["per_member_limit"] == "1"


def test_a_png_named_jpg_makes_a_live_product_in_one_go(app, editor):
    data = {**new_values(status="live"), "image_file": (BytesIO(png()), "photo.jpg")}
    response = post_form(editor, "/editor/shop/new", data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        product = db.session.scalar(select(Product))
        assert product.status == "live" and product.live_at == DEFAULT_NOW
        [(image, kept)] = products.images_of(product.id)
        assert kept.ext == "png" and kept.original_name == "photo.jpg"
    page = html(editor.get(response.headers["Location"]))
    assert page.select_one("#images img")["src"].endswith(".png")


def test_a_text_file_named_png_is_refused_and_nothing_is_kept(app, editor):
    data = {
        **new_values(status="live"),
        "image_file": (BytesIO(b"hello, not a picture" * 10), "photo.png"),
    }
    response = post_form(editor, "/editor/shop/new", data, content_type="multipart/form-data")
    assert response.status_code == 422
    page = html(response)
    assert "不是可用的图片" in page.select_one("#e-image_file").get_text()
    assert page.select_one("#f-title")["value"] == "死磕侠套装"
    with app.app_context():
        assert count(Product) == 0 and count(Media) == 0


def test_a_good_image_with_a_bad_form_keeps_nothing(app, editor):
    data = {**new_values(price="free"), "image_file": (BytesIO(png()), "p.png")}
    response = post_form(editor, "/editor/shop/new", data, content_type="multipart/form-data")
    assert response.status_code == 422
    page = html(response)
    assert page.select_one("#e-price") is not None
    assert "重新选择" in page.select_one("#e-image_file").get_text()
    with app.app_context():
        assert count(Product) == 0 and count(ProductImage) == 0
        assert count(Media) == 0
    assert not any(p.is_file() for p in (app.config["MEDIA_DIR"]).rglob("*"))


BAD_FIELDS = [
    ("title", "", "请填写商品名称"),
    ("title", "长" * 121, "最多 120 个字"),
    ("slug", "Bad Slug", "链接名只能用小写字母"),
    ("slug", "-pen", "链接名只能用小写字母"),
    ("slug", "taken", "已被另一件商品使用"),
    ("category", "nope", "没有「nope」这个分类"),
    ("price", "", "请填写价格"),
    ("price", "12.345", "最多两位小数"),
    ("price", "-1", "不能是负数"),
    ("price", "12元", "请填写金额"),
    ("price", "1e3", "请填写金额"),
    ("price", "1000000.01", "不能超过 1000000 元"),
    ("member_price", "200", "会员价不能高于价格"),
    ("member_price", "abc", "会员价请填写金额"),
    ("stock", "-1", "库存请填写 0 到"),
    ("stock", "1.5", "库存请填写 0 到"),
    ("stock", "1000001", "库存请填写 0 到"),
    ("stock", "２", "库存请填写 0 到"),
    ("stock", "1", "库存不能少于已售加保留的 3 件"),
    ("per_member_limit", "0", "每人限购请填写"),
    ("per_member_limit", "many", "每人限购请填写"),
    ("starts_at", "明天晚上", "时间的格式"),
    ("ends_at", "2026-11-21 07:00", "结束时间要晚于开始时间"),
    ("ships_at", "12/01", "发货日期的格式"),
    ("members_only", "maybe", "请填 1"),
    ("status", "sold", "状态请选择"),
]


@pytest.mark.parametrize(("name", "typed", "message"), BAD_FIELDS)
def test_each_bad_field_is_shown_with_what_was_typed_and_nothing_changes(
    app, editor, make_user, name, typed, message
):
    product_id = make_product(app, slug="pen", title="匠心之笔", price_fen=12800)
    make_product(app, slug="taken", title="另一件")
    buyer = make_user("buyer@example.com")
    place(app, buyer, product_id, 2)  # held 2
    paid_order(app, buyer, product_id, 1)  # sold 1
    with app.app_context():
        before = snapshot(product_id)
    path = f"/editor/shop/p/{product_id}"
    values = form_of(editor, path)
    values.update({"starts_at": "2026-11-21 07:30", name: typed})
    response = post_form(editor, path, values)
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one(f"#e-{name}").get_text()
    if name not in ("category", "members_only", "status", "description_md"):
        assert page.select_one(f"#f-{name}")["value"] == typed
    with app.app_context():
        assert snapshot(product_id) == before
        assert count(Product) == 2


@pytest.mark.parametrize(("name", "typed", "message"), BAD_FIELDS[:14])
def test_a_new_product_with_a_bad_field_is_not_created(app, editor, name, typed, message):
    make_product(app, slug="taken", title="另一件")
    response = post_form(editor, "/editor/shop/new", new_values(**{name: typed}))
    assert response.status_code == 422
    assert message in html(response).select_one(f"#e-{name}").get_text()
    with app.app_context():
        assert count(Product) == 1


def test_every_fault_is_shown_at_once(app, editor):
    response = post_form(
        editor, "/editor/shop/new", new_values(title="", price="x", stock="-2", status="live")
    )
    assert response.status_code == 422
    page = html(response)
    for name in ("title", "price", "stock", "status"):
        assert page.select_one(f"#e-{name}") is not None, name


def test_a_product_goes_live_only_with_an_image(app, editor):
    post_form(editor, "/editor/shop/new", new_values())
    with app.app_context():
        product_id = db.session.scalar(select(Product.id))
    path = f"/editor/shop/p/{product_id}"
    values = {**form_of(editor, path), "status": "live"}
    response = post_form(editor, path, values)
    assert response.status_code == 422
    assert "至少上传一张商品图片" in html(response).select_one("#e-status").get_text()
    token = csrf_token_from(editor, path)
    response = editor.post(
        f"{path}/images",
        data={"csrf_token": token, "file": (BytesIO(png()), "cover.jpg")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    assert post_form(editor, path, values).status_code == 302
    with app.app_context():
        product = db.session.get(Product, product_id)
        assert product.status == "live" and product.live_at == DEFAULT_NOW


def test_prices_are_read_exactly():
    assert products.parse_yuan("12.80", "价格") == 1280
    assert products.parse_yuan("12.8", "价格") == 1280
    assert products.parse_yuan("12", "价格") == 1200
    assert products.parse_yuan("19.99", "价格") == 1999  # float(19.99) * 100 == 1998.999…
    assert products.parse_yuan("0.07", "价格") == 7
    assert products.parse_yuan("¥ 1000000", "价格") == 100_000_000


# --- stock --------------------------------------------------------------------------------


def test_stock_never_falls_below_sold_plus_held(app, editor, make_user):
    product_id = make_product(app)
    buyer = make_user("buyer@example.com")
    place(app, buyer, product_id, 3)
    paid_order(app, buyer, product_id, 2)
    path = f"/editor/shop/p/{product_id}"
    values = form_of(editor, path)
    response = post_form(editor, path, {**values, "stock": "4"})
    assert response.status_code == 422
    assert html(response).select_one("#e-stock").get_text() == "库存不能少于已售加保留的 5 件。"
    with app.app_context():
        assert counters(product_id) == (10, 5, 3, 2)
    assert post_form(editor, path, {**values, "stock": "5"}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (5, 0, 3, 2)
    values = form_of(editor, path)
    assert post_form(editor, path, {**values, "stock": "20"}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (20, 15, 3, 2)


def test_an_expired_hold_does_not_block_a_lower_stock(app, editor, make_user, clock):
    product_id = make_product(app)
    place(app, make_user("buyer@example.com"), product_id, 4)
    clock.advance(minutes=16)
    path = f"/editor/shop/p/{product_id}"
    assert post_form(editor, path, {**form_of(editor, path), "stock": "2"}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (2, 2, 0, 0)


def test_limited_becomes_unlimited_only_when_nothing_is_sold_or_held(app, editor, make_user):
    product_id = make_product(app)
    buyer = make_user("buyer@example.com")
    order_id = paid_order(app, buyer, product_id, 1)
    path = f"/editor/shop/p/{product_id}"
    response = post_form(editor, path, {**form_of(editor, path), "stock": ""})
    assert response.status_code == 422
    assert "不能改为不限量" in html(response).select_one("#e-stock").get_text()
    with app.app_context():
        checkout.request_refund(order_id, actor=buyer, reason="不想要了")
        assert payments.approve_refund(order_id, actor=None)
        assert counters(product_id) == (10, 10, 0, 0)
    assert post_form(editor, path, {**form_of(editor, path), "stock": ""}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (None, None, 0, 0)


def test_unlimited_becomes_limited_counting_orders_already_placed(app, editor, make_user):
    product_id = make_product(app, stock=None)
    buyer = make_user("buyer@example.com")
    pending = place(app, buyer, product_id, 2)
    paid_order(app, buyer, product_id, 1)
    path = f"/editor/shop/p/{product_id}"
    response = post_form(editor, path, {**form_of(editor, path), "stock": "2"})
    assert response.status_code == 422
    assert "已售加保留的 3 件" in html(response).select_one("#e-stock").get_text()
    assert post_form(editor, path, {**form_of(editor, path), "stock": "10"}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (10, 7, 2, 1)
    pay(app, pending)  # an order placed while unlimited is paid: the counters still add up
    with app.app_context():
        assert counters(product_id) == (10, 7, 0, 3)


def test_a_stock_changed_meanwhile_is_not_put_back(app, editor):
    product_id = make_product(app)
    path = f"/editor/shop/p/{product_id}"
    values = form_of(editor, path)
    assert values["stock_was"] == "10"
    with app.app_context():
        draft = products.draft_from(db.session.get(Product, product_id))
        draft.stock = "30"
        products.save_product(draft, product_id, actor=None)
    # The editor only renamed it: the stock someone raised stays.
    assert post_form(editor, path, {**values, "title": "改名了"}).status_code == 302
    with app.app_context():
        assert counters(product_id) == (30, 30, 0, 0)
        assert db.session.get(Product, product_id).title == "改名了"
    response = post_form(editor, path, {**values, "stock": "12"})
    assert response.status_code == 422
    assert "刚被别人改成了 30 件" in html(response).select_one("#e-stock").get_text()
    with app.app_context():
        assert counters(product_id) == (30, 30, 0, 0)


def test_archiving_takes_a_product_off_sale(app, editor):
    product_id = make_product(app)
    path = f"/editor/shop/p/{product_id}"
    response = post_form(editor, f"{path}/archive", {}, token_from=path)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Product, product_id).status == "archived"
    page = html(editor.get(path))
    assert "已下架" in page.select_one("#notice").get_text()
    assert page.select_one(f"form[action='{path}/archive']") is None
    response = post_form(editor, f"{path}/archive", {}, token_from="/editor/shop/")
    assert "已经下架" in html(editor.get(response.headers["Location"])).get_text()


def test_unknown_products_are_404(editor):
    assert editor.get("/editor/shop/p/999").status_code == 404
    assert editor.get("/editor/shop/p/999/drop").status_code == 404
    assert (
        post_form(
            editor, "/editor/shop/p/999", new_values(), token_from="/editor/shop/"
        ).status_code
        == 404
    )


# --- images -------------------------------------------------------------------------------


def upload(client, product_id: int, data: bytes, name: str):
    token = csrf_token_from(client, f"/editor/shop/p/{product_id}")
    return client.post(
        f"/editor/shop/p/{product_id}/images",
        data={"csrf_token": token, "file": (BytesIO(data), name)},
        content_type="multipart/form-data",
    )


def test_images_are_checked_by_content_added_moved_and_removed(app, editor):
    product_id = make_product(app)
    assert upload(editor, product_id, png(color=(1, 2, 3)), "second.jpg").status_code == 302
    response = upload(editor, product_id, b"GIF89a not really" * 20, "third.png")
    assert response.status_code == 422
    assert "不是可用的图片" in html(response).select_one("#e-images").get_text()
    with app.app_context():
        first, second = [image.id for image, _ in products.images_of(product_id)]
    path = f"/editor/shop/p/{product_id}"
    post_form(editor, f"{path}/images/{second}/up", {}, token_from=path)
    with app.app_context():
        assert [image.id for image, _ in products.images_of(product_id)] == [second, first]
    assert (
        post_form(editor, f"{path}/images/{first}/remove", {}, token_from=path).status_code == 302
    )
    # A live product keeps its last image.
    response = post_form(editor, f"{path}/images/{second}/remove", {}, token_from=path)
    assert response.status_code == 422
    assert "至少要有一张图片" in html(response).select_one("#e-images").get_text()
    with app.app_context():
        assert [image.id for image, _ in products.images_of(product_id)] == [second]
        assert count(Media) == 2  # files stay in the media library
    assert (
        post_form(editor, f"{path}/images/{first}/remove", {}, token_from=path).status_code == 404
    )


def test_at_most_six_images(app, editor):
    product_id = make_product(app)
    for n in range(5):
        assert upload(editor, product_id, png(color=(n, 9, 9)), f"{n}.png").status_code == 302
    page = html(editor.get(f"/editor/shop/p/{product_id}"))
    assert len(page.select("#images img")) == 6
    assert page.select_one(f"form[action='/editor/shop/p/{product_id}/images']") is None
    response = upload(editor, product_id, png(color=(99, 9, 9)), "seven.png")
    assert response.status_code == 422
    assert "最多 6 张图片" in html(response).select_one("#e-images").get_text()


# --- orders -------------------------------------------------------------------------------


@pytest.fixture
def shop(app, make_user):
    """Two products and a buyer with orders in several states."""
    pen = make_product(app, slug="pen", title="匠心之笔")
    book = make_product(app, slug="book", title="签名版", stock=None)
    buyer = make_user("buyer@example.com")
    orders = {
        "pending": place(app, buyer, pen, 1),
        "paid_post": paid_order(
            app, buyer, pen, 2, delivery="张三 13800000000 上海市徐汇区", note="=HYPERLINK(1)"
        ),
        "paid_pickup": paid_order(app, buyer, book, 1),
    }
    return {"pen": pen, "book": book, "buyer": buyer, "orders": orders}


def test_orders_are_listed_newest_first_and_filtered(app, editor, shop):
    page = html(editor.get("/editor/shop/orders"))
    numbers = [t.get_text() for t in page.select(".desk-shop-orders .item-title")]
    assert [n.split(" · ")[0] for n in numbers] == [
        "20261121-000003",
        "20261121-000002",
        "20261121-000001",
    ]
    labels = [a.get_text() for a in page.select(".desk-shop-filters a")]
    assert labels[:4] == ["全部", "待付款", "待发货", "已发货"]
    paid = html(editor.get("/editor/shop/orders?status=paid"))
    assert len(paid.select(".desk-shop-orders .item")) == 2
    assert all(s.get_text() == "待发货" for s in paid.select(".desk-shop-orders .state"))
    pen = html(editor.get(f"/editor/shop/orders?status=paid&product={shop['pen']}"))
    [only] = pen.select(".desk-shop-orders .item-summary")
    assert only.get_text().startswith("匠心之笔 × 2")
    assert editor.get("/editor/shop/orders?status=nope").status_code == 404
    assert editor.get("/editor/shop/orders?product=999").status_code == 404
    assert editor.get("/editor/shop/orders?product=abc").status_code == 404


def test_the_csv_of_paid_orders_to_ship(app, editor, shop):
    response = editor.get("/editor/shop/orders.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert (
        response.headers["Content-Disposition"] == 'attachment; filename="orders-paid-20261121.csv"'
    )
    data = response.get_data()
    assert data.startswith(codecs.BOM_UTF8)
    rows = list(csv.reader(io.StringIO(data.decode("utf-8-sig"))))
    assert rows[0] == ["订单号", "付款时间", "商品", "金额（元）", "收货信息", "备注"]
    assert rows[1] == [
        "20261121-000002",
        "2026-11-21 08:00",
        "匠心之笔 × 2",
        "256.00",
        "张三 13800000000 上海市徐汇区",
        "'=HYPERLINK(1)",  # a buyer's note never runs as a formula
    ]
    assert rows[2][0] == "20261121-000003" and rows[2][4].startswith("到店自提：")
    assert len(rows) == 3  # the pending order is not there
    only_pen = editor.get(f"/editor/shop/orders.csv?product={shop['book']}").get_data()
    assert [r[0] for r in csv.reader(io.StringIO(only_pen.decode("utf-8-sig")))][1:] == [
        "20261121-000003"
    ]


def test_the_order_page_shows_lines_delivery_payments_and_events(app, editor, shop):
    order_id = shop["orders"]["paid_post"]
    page = html(editor.get(f"/editor/shop/orders/{order_id}"))
    assert page.select_one("#order-status").get_text() == "待发货"
    assert page.select_one("#order-delivery").get_text() == "张三 13800000000 上海市徐汇区"
    assert page.select_one("#order-note").get_text() == "=HYPERLINK(1)"
    assert "匠心之笔" in page.select_one(".desk-shop-table").get_text()
    assert "t2" in page.select_one(".desk-shop-payments").get_text()
    events = [r.get_text(" ", strip=True) for r in page.select(".desk-shop-events tbody tr")]
    assert "待付款 → 待发货" in events[1] and "系统" in events[1]
    assert "buyer@example.com" in events[0]
    assert page.select_one("form[action$='/ship'] #f-carrier") is not None
    assert editor.get("/editor/shop/orders/999").status_code == 404


def test_marking_an_order_shipped(app, editor, shop):
    order_id = shop["orders"]["paid_post"]
    path = f"/editor/shop/orders/{order_id}"
    response = post_form(
        editor, f"{path}/ship", {"carrier": "顺丰", "tracking_no": ""}, token_from=path
    )
    assert response.status_code == 422
    page = html(response)
    assert page.select_one("#e-tracking_no").get_text() == "请填写运单号。"
    assert page.select_one("#f-carrier")["value"] == "顺丰"
    assert status_of(app, order_id) == "paid"
    form = {"carrier": "顺丰", "tracking_no": "SF1234567890"}
    response = post_form(editor, f"{path}/ship", form, token_from=path)
    assert response.status_code == 302
    with app.app_context():
        order = db.session.get(Order, order_id)
        assert (order.status, order.carrier, order.tracking_no) == (
            "shipped",
            "顺丰",
            "SF1234567890",
        )
        event = db.session.scalars(select(OrderEvent).order_by(OrderEvent.id.desc())).first()
        assert event.actor_id == editor.editor_id
    page = html(editor.get(path))
    assert "已发货 → " not in page.get_text() and "待发货 → 已发货" in page.get_text()
    # The same form sent again from an old tab: nothing changes, and it says why.
    response = post_form(
        editor, f"{path}/ship", {"carrier": "圆通", "tracking_no": "YT1"}, token_from=path
    )
    assert response.status_code == 409
    assert "现在是「已发货」" in html(response).select_one(".desk-shop-stale").get_text()
    with app.app_context():
        assert db.session.get(Order, order_id).carrier == "顺丰"
    # Delivered.
    assert post_form(editor, f"{path}/complete", {}, token_from=path).status_code == 302
    assert status_of(app, order_id) == "completed"


def test_handing_over_a_pickup_order_and_a_stale_second_click(app, editor, shop):
    order_id = shop["orders"]["paid_pickup"]
    path = f"/editor/shop/orders/{order_id}"
    page = html(editor.get(path))
    assert page.select_one("form[action$='/ship']") is None
    assert page.select_one("form[action$='/complete'] button").get_text() == "已交给买家"
    assert post_form(editor, f"{path}/complete", {}, token_from=path).status_code == 302
    assert status_of(app, order_id) == "completed"
    response = post_form(editor, f"{path}/complete", {}, token_from=path)
    assert response.status_code == 409
    assert "已完成" in html(response).select_one(".desk-shop-stale").get_text()


def test_approving_a_refund_gives_money_and_stock_back(app, editor, shop):
    order_id = shop["orders"]["paid_post"]
    with app.app_context():
        assert counters(shop["pen"]) == (10, 7, 1, 2)
        checkout.request_refund(order_id, actor=shop["buyer"], reason="收到时笔帽裂了")
    path = f"/editor/shop/orders/{order_id}"
    assert html(editor.get(path)).select_one("#refund-reason").get_text() == "收到时笔帽裂了"
    response = post_form(editor, f"{path}/refund/approve", {}, token_from=path)
    assert response.status_code == 302
    page = html(editor.get(path))
    assert "已退款" in page.select_one("#notice").get_text()
    assert page.select_one("#order-status").get_text() == "已退款"
    with app.app_context():
        assert counters(shop["pen"]) == (10, 9, 1, 0)
        refund = db.session.scalar(select(Refund))
        assert refund.status == "succeeded" and refund.amount_fen == 25600
    response = post_form(editor, f"{path}/refund/approve", {}, token_from=path)
    assert response.status_code == 409
    response = post_form(editor, f"{path}/refund/reject", {"reason": "晚了"}, token_from=path)
    assert response.status_code == 409
    assert status_of(app, order_id) == "refunded"


def test_rejecting_a_refund_needs_a_reason(app, editor, shop):
    order_id = shop["orders"]["paid_pickup"]
    with app.app_context():
        checkout.request_refund(order_id, actor=shop["buyer"], reason="不想要了")
    path = f"/editor/shop/orders/{order_id}"
    response = post_form(editor, f"{path}/refund/reject", {"reason": "  "}, token_from=path)
    assert response.status_code == 422
    assert "请写下拒绝的理由" in html(response).select_one("#e-reason").get_text()
    assert status_of(app, order_id) == "refund_requested"
    response = post_form(editor, f"{path}/refund/reject", {"reason": "x" * 301}, token_from=path)
    assert response.status_code == 422
    assert html(response).select_one("#f-reason").get_text() == "x" * 301
    reason = "签名版已拆封，不能退"
    response = post_form(editor, f"{path}/refund/reject", {"reason": reason}, token_from=path)
    assert response.status_code == 302
    assert status_of(app, order_id) == "refund_rejected"
    page = html(editor.get(path))
    assert reason in page.select(".desk-shop-events tbody tr")[-1].get_text()
    response = post_form(editor, f"{path}/refund/approve", {}, token_from=path)
    assert response.status_code == 409
    assert status_of(app, order_id) == "refund_rejected"


def test_an_action_on_an_order_that_moved_on_is_not_a_500(app, editor, shop):
    order_id = shop["orders"]["pending"]
    path = f"/editor/shop/orders/{order_id}"
    for action, data in (
        ("ship", {"carrier": "顺丰", "tracking_no": "SF1"}),
        ("complete", {}),
        ("refund/approve", {}),
        ("refund/reject", {"reason": "不行"}),
    ):
        response = post_form(editor, f"{path}/{action}", data, token_from=path)
        assert response.status_code == 409, action
        assert "现在是「待付款」" in html(response).select_one(".desk-shop-stale").get_text()
    assert status_of(app, order_id) == "pending"


# --- the live drop dashboard --------------------------------------------------------------


def test_the_drop_dashboard_shows_stock_and_a_chart(app, editor, make_user, clock):
    product_id = make_product(app, starts_at=DEFAULT_NOW - timedelta(minutes=10))
    buyer = make_user("buyer@example.com")
    clock.advance(minutes=-8)
    paid_order(app, buyer, product_id, 2)
    clock.advance(minutes=5)
    paid_order(app, buyer, product_id, 1)
    clock.advance(minutes=3)
    place(app, buyer, product_id, 3)
    path = f"/editor/shop/p/{product_id}/drop"
    response = editor.get(path)
    assert response.status_code == 200
    page = html(response)
    numbers = {
        name: page.select_one(f"#drop-{name}").get_text() for name in ("available", "held", "sold")
    }
    assert numbers == {"available": "4", "held": "3", "sold": "3"}
    live = page.select_one("#drop-live")
    assert live["hx-get"] == f"{path}/live" and live["hx-trigger"] == "every 5s"
    assert page.select_one(f"a[href='{path}']").get_text() == "刷新"  # works without script
    svg = page.select_one("#drop-live svg")
    assert svg is not None and svg.select_one("polyline.chart-line") is not None
    assert [t.get_text() for t in svg.select("text")][-3:] == ["07:50", "07:55", "08:00"]
    assert "共 3 件" in svg.select_one("title").get_text()
    # No inline style anywhere (the CSP forbids it).
    assert page.select("[style]") == [] and page.select("style") == []
    # The cumulative line climbs: two units at 07:52, one more at 07:57.
    ys = [float(p.split(",")[1]) for p in svg.select_one("polyline")["points"].split()]
    assert ys == sorted(ys, reverse=True) and len(set(ys)) == 3
    # htmx asks for the fragment alone.
    fragment = editor.get(f"{path}/live", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert "<html" not in text and 'id="drop-live"' in text
    assert editor.get(f"{path}/live").get_data(as_text=True).startswith("<!doctype html>")
    # Expired holds are released before the numbers are shown.
    clock.advance(minutes=16)
    page = html(editor.get(f"{path}/live", headers={"HX-Request": "true"}))
    assert page.select_one("#drop-available").get_text() == "7"
    assert page.select_one("#drop-held").get_text() == "0"


def test_a_drop_not_started_yet_says_when(app, editor):
    product_id = make_product(app, starts_at=DEFAULT_NOW + timedelta(hours=12), stock=None)
    page = html(editor.get(f"/editor/shop/p/{product_id}/drop"))
    assert "20:00 开始" in page.select_one(".desk-shop-not-started").get_text()
    assert page.select_one("#drop-available").get_text() == "不限量"


# --- the domain, without HTTP -------------------------------------------------------------


def test_save_product_checks_every_field_at_once(app):
    with app.app_context():
        with pytest.raises(ProductError) as raised:
            products.save_product(
                ProductDraft(price="1.001", stock="x", members_only="?"), actor=None
            )
        assert set(raised.value.errors) == {"title", "slug", "price", "stock", "members_only"}
        assert count(Product) == 0
        saved = products.save_product(ProductDraft(title="笔", slug="pen", price="1"), actor=None)
        assert (saved.price_fen, saved.stock, saved.per_member_limit) == (100, None, None)
        assert saved.members_only and saved.status == "draft"
        assert saved.starts_at == DEFAULT_NOW


def test_buyers_racing_an_editor_who_changes_the_stock(app, make_user):
    """Buyers take units while an editor keeps setting the stock: the counters always add
    up, available never goes below zero, and every unit held is in an order."""
    product_id = make_product(app, stock=60)
    with app.app_context(), write_transaction() as session:
        session.execute(
            User.__table__.insert(),
            [
                {
                    "email": f"b{n}@example.com",
                    "password_hash": "x",
                    "role": "reader",
                    "created_at": DEFAULT_NOW,
                }
                for n in range(8)
            ],
        )
        buyers = list(session.scalars(select(User.id)))
    outcomes = {"ordered": 0, "sold_out": 0, "stock_set": 0, "stock_refused": 0}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(len(buyers) + 1)

    def buyer(user_id: int) -> None:
        with app.app_context():
            start.wait()
            for _ in range(15):
                try:
                    checkout.place_order(db.session.get(User, user_id), product_id, 1)
                    result = "ordered"
                except checkout.CheckoutError:
                    result = "sold_out"
                except Exception as error:
                    result = None
                    errors.append(repr(error)[:300])
                finally:
                    db.session.rollback()
                if result:
                    with lock:
                        outcomes[result] += 1

    def editor() -> None:
        rng = random.Random(7)
        with app.app_context():
            start.wait()
            for _ in range(40):
                draft = products.draft_from(db.session.get(Product, product_id))
                draft.stock = str(rng.randint(0, 120))
                try:
                    products.save_product(draft, product_id, actor=None)
                    result = "stock_set"
                except ProductError:
                    result = "stock_refused"
                except Exception as error:
                    result = None
                    errors.append(repr(error)[:300])
                finally:
                    db.session.rollback()
                if result:
                    outcomes[result] += 1

    threads = [threading.Thread(target=buyer, args=(b,)) for b in buyers]
    threads.append(threading.Thread(target=editor))
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors, errors
    assert outcomes["ordered"] > 0 and outcomes["stock_set"] > 0, outcomes
    with app.app_context():
        stock, available, held, sold = counters(product_id)
        assert available >= 0 and available + held + sold == stock
        units = db.session.scalar(select(func.sum(OrderLine.quantity))) or 0
        assert held == units == outcomes["ordered"] and sold == 0


def test_the_desk_links_to_the_public_product_page(app, client, make_user, login):
    from tests.test_checkout import make_product

    make_user("editor@example.com", role="editor")
    login("editor@example.com")
    pid = make_product(app, slug="pen", status="draft")
    for path in ("/editor/shop/", f"/editor/shop/p/{pid}/drop"):
        links = [a["href"] for a in html(client.get(path)).select(".desk-shop-links a")]
        assert "/shop/p/pen" in links, path
    # An editor may open a draft's page; readers may not.
    assert client.get("/shop/p/pen").status_code == 200
