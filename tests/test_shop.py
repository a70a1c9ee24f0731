"""The shop as buyers meet it: the shop front, a product and its drop, the card in articles,
buying with the dev cashier, orders (mine only), cancelling, receipt, refunds, addresses."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import db, write_transaction
from content import articles
from content.articles import Draft
from members import accounts
from shop import checkout, payments
from shop.models import (
    Address,
    Order,
    OrderEvent,
    Product,
    Refund,
)
from tests.conftest import DEFAULT_NOW, csrf_token_from, html, post_form, sql_of
from tests.test_checkout import counters, make_product


@pytest.fixture
def member(app, client, make_user, login):
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    login("member@example.com")
    return client


def user_id(app, email: str) -> int:
    with app.app_context():
        user = accounts.find_user(email)
        assert user is not None
        return user.id


def buy(client, slug: str, **fields):
    data = {"quantity": "1", "delivery": "pickup", "note": ""}
    data.update(fields)
    return post_form(client, f"/shop/p/{slug}/buy", data)


def order_of(app, number: str) -> Order:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        db.session.expunge(order)
        return order


def number_from(response) -> str:
    assert response.status_code == 303, response.get_data(as_text=True)
    return response.headers["Location"].rsplit("/", 1)[-1]


# --- the shop front and a product --------------------------------------------------------


def test_shop_front_shows_new_and_hot_products_and_categories(app, client, member):
    make_product(app, slug="new-one", title="新到的书签", live_at=DEFAULT_NOW - timedelta(days=1))
    make_product(app, slug="old-one", title="旧款笔记本", live_at=DEFAULT_NOW - timedelta(days=30))
    make_product(app, slug="draft-one", title="草稿商品", status="draft")
    number = number_from(buy(client, "old-one"))
    post_form(client, f"/pay/{number}/dev", {"result": "success"}, token_from=f"/pay/{number}")
    page = html(client.get("/shop/"))
    shelves = page.select("section.card")
    new_titles = [t.get_text() for t in shelves[1].select(".tile-title")]
    hot_titles = [t.get_text() for t in shelves[2].select(".tile-title")]
    assert new_titles == ["新到的书签"]
    assert hot_titles == ["旧款笔记本"]
    assert "草稿商品" not in page.get_text()
    names = [c.contents[0] for c in page.select(".chip")]
    assert names == ["精神食粮", "生存处方", "文具精选", "逼格工场"]


def test_category_page_lists_its_live_products(app, client):
    with app.app_context():
        from shop.models import Category

        stationery = db.session.scalar(select(Category).where(Category.slug == "stationery"))
        assert stationery is not None
        cat_id = stationery.id
    make_product(app, slug="pen", title="钢笔", category_id=cat_id)
    make_product(app, slug="tea", title="茶叶")
    page = html(client.get("/shop/c/stationery"))
    assert [t.get_text() for t in page.select(".tile-title")] == ["钢笔"]
    assert client.get("/shop/c/nope").status_code == 404


def test_product_page_shows_member_price_as_a_reason_to_join(app, client, make_user, login):
    make_product(app, slug="pen", members_only=True, stock=12)
    page = html(client.get("/shop/p/pen"))
    assert "会员价 ¥99.00" in page.select_one(".price").get_text()
    assert page.select_one(".amount").get_text() == "¥128.00"
    assert page.select_one("a.buy") is None  # members only: a join prompt instead
    assert "会员专享" in page.select_one(".join-invite").get_text()
    assert "仅剩 12 件" in " ".join(page.select_one(".stock").get_text().split())


def test_members_see_their_price_and_a_buy_button(app, client, member):
    make_product(app, slug="pen", members_only=True, stock=3)
    page = html(client.get("/shop/p/pen"))
    assert page.select_one(".amount").get_text() == "¥99.00"
    assert page.select_one("a.buy")["href"] == "/shop/p/pen/buy"
    live = page.select_one(".drop-live")
    assert live["hx-get"] == "/shop/p/pen/live" and "every 5s" in live["hx-trigger"]


def test_before_a_drop_a_countdown_holds_the_hidden_buy_button(app, client, member, clock):
    make_product(app, slug="drop", starts_at=DEFAULT_NOW + timedelta(minutes=3, seconds=5))
    page = html(client.get("/shop/p/drop"))
    countdown = page.select_one("[data-countdown]")
    assert countdown["data-countdown"] == "185"
    assert countdown.select_one("[data-countdown-clock]").get_text() == "00:03:05"
    button = page.select_one("[data-countdown-reveal]")
    assert button.has_attr("hidden") and button["href"] == "/shop/p/drop/buy"
    # Buying early is refused with a reason, and takes nothing.
    response = buy(client, "drop")
    assert response.status_code == 422
    assert "还没有开始发售" in response.get_data(as_text=True)
    clock.advance(minutes=3, seconds=5)
    page = html(client.get("/shop/p/drop/live"))
    assert page.select_one("[data-countdown]") is None
    assert not page.select_one("a.buy").has_attr("hidden")


def test_sold_out_and_ended_states(app, client, member, clock):
    make_product(app, slug="gone", stock=1)
    make_product(app, slug="over", ends_at=DEFAULT_NOW + timedelta(minutes=1))
    number_from(buy(client, "gone"))
    page = html(client.get("/shop/p/gone/live"))
    assert page.select_one(".sold-out").get_text() == "已售罄"
    assert "1 件等待付款" in page.get_text()
    assert page.select_one("a.buy") is None
    clock.advance(minutes=2)
    page = html(client.get("/shop/p/over"))
    assert "本次发售已结束" in page.get_text()


def session_token_of(form_token: str) -> str:
    return form_token.split(".", 1)[0]  # the session's token; the rest is its signed time


def session_token(page) -> str:
    """The session's form token in a page's htmx headers."""
    return session_token_of(json.loads(page.body["hx-headers"])["X-CSRFToken"])


def test_after_the_last_unit_a_buy_is_a_short_refusal_that_changes_nothing(
    app, client, member, make_user
):
    pid = make_product(app, slug="pen", stock=1)
    number_from(buy(client, "pen"))
    make_user("late@example.com")
    late = app.test_client()
    post_form(late, "/login", {"email": "late@example.com", "password": "correct horse"})
    token = csrf_token_from(late, "/shop/p/pen")
    form = {"csrf_token": token, "quantity": "1", "delivery": "pickup", "note": ""}
    for _ in range(2):  # the first answer is rendered, the second kept
        response, statements = sql_of(app, lambda: late.post("/shop/p/pen/buy", data=form))
        assert response.status_code == 422
        page = html(response)
        assert page.select_one("h1").get_text() == "没能下单"
        assert "库存不足，已经卖完了" in page.select_one("[role=alert]").get_text()
        assert page.select_one("a.button")["href"] == "/shop/p/pen"
        assert page.select_one("input[name=quantity]") is None
        # The page is signed-in and carries this reader's own form token.
        assert session_token(page) == session_token_of(token)
    # Told from the product's counters alone: the buyer was not even loaded.
    assert not [s for s in statements if "users" in s or "login_sessions" in s], statements
    assert all(s.lstrip().upper().startswith(("SELECT", "BEGIN")) for s in statements)
    with app.app_context():
        assert counters(pid) == (1, 0, 1, 0)
        assert db.session.scalar(select(func.count()).select_from(Order)) == 1
    # The buyer who holds the unit still sees their own form token, not the late one's.
    mine = html(buy(client, "pen"))
    assert session_token(mine) == session_token_of(csrf_token_from(client, "/"))
    assert session_token(mine) != session_token_of(token)


def test_a_sold_out_refusal_needs_the_form_token(app, client, member):
    make_product(app, slug="pen", stock=0)
    response = client.post("/shop/p/pen/buy", data={"quantity": "1", "delivery": "pickup"})
    assert response.status_code == 400
    assert client.post("/shop/p/nothing/buy", data={}).status_code == 400


def test_a_buyer_at_the_limit_is_refused_with_the_short_page(app, client, member):
    pid = make_product(app, slug="pen", stock=5, per_member_limit=1)
    number_from(buy(client, "pen"))
    response = buy(client, "pen")
    assert response.status_code == 422
    page = html(response)
    assert page.select_one("h1").get_text() == "没能下单"
    assert "每人限购 1 件，你还能买 0 件" in page.get_text()
    with app.app_context():
        assert counters(pid) == (5, 4, 1, 0)


def test_draft_products_are_404_for_readers(app, client):
    make_product(app, slug="secret", status="draft")
    assert client.get("/shop/p/secret").status_code == 404
    assert client.get("/shop/p/secret/live").status_code == 404
    assert client.get("/shop/p/nothing").status_code == 404


# --- the card in articles ----------------------------------------------------------------


def publish(app, body: str, slug: str = "with-card") -> None:
    with app.app_context():
        articles.save_article(
            Draft(
                title="带商品卡片的文章",
                body_md=body,
                slug=slug,
                status="published",
                publish_at="2026-11-20 08:00",
            )
        )


def test_article_card_is_a_link_that_loads_the_live_card(app, client, member):
    make_product(app, slug="pen", title="限量钢笔", stock=7)
    publish(app, "今天推荐一支笔。\n\n[[product:pen]]\n\n[[product:unknown]]\n\n完。")
    page = html(client.get("/a/with-card"))
    embeds = page.select(".product-embed")
    assert len(embeds) == 1  # the unknown slug renders nothing
    link = embeds[0].select_one("a")
    assert link["href"] == "/shop/p/pen"  # without JavaScript: a plain link
    assert link["hx-get"] == "/shop/p/pen/card" and link["hx-trigger"] == "load"
    assert "仅剩" not in page.get_text()  # the stored article holds no stock figure
    card = html(client.get("/shop/p/pen/card"))
    assert card.select_one(".product-card-title").get_text().strip() == "限量钢笔"
    assert "仅剩 7 件" in " ".join(card.get_text().split())
    number_from(buy(client, "pen"))
    card = html(client.get("/shop/p/pen/card"))
    assert "仅剩 6 件" in " ".join(card.get_text().split())


def test_card_of_an_archived_or_unknown_product_is_empty(app, client):
    pid = make_product(app, slug="pen")
    with app.app_context(), write_transaction() as session:
        session.get(Product, pid).status = "archived"
    for slug in ("pen", "nope"):
        response = client.get(f"/shop/p/{slug}/card")
        assert response.status_code == 200 and response.get_data(as_text=True) == ""


# --- buying with the dev cashier ---------------------------------------------------------


def test_member_buys_with_the_dev_cashier_and_sees_it_paid(app, client, member):
    pid = make_product(app, slug="pen", members_only=True, stock=5)
    form = html(client.get("/shop/p/pen/buy"))
    assert form.select_one("input[name=delivery][value=pickup]").has_attr("checked")
    number = number_from(buy(client, "pen", note="  请包装好  "))
    assert number.startswith("20261121-")
    with app.app_context():
        assert counters(pid) == (5, 4, 1, 0)
    cashier = html(client.get(f"/pay/{number}"))
    buttons = [b.get_text() for b in cashier.select("button[name=result]")]
    assert buttons == ["模拟支付成功", "模拟支付失败"]
    failed = post_form(
        client, f"/pay/{number}/dev", {"result": "fail"}, token_from=f"/pay/{number}"
    )
    assert failed.status_code == 303 and order_of(app, number).status == "pending"
    paid = post_form(
        client, f"/pay/{number}/dev", {"result": "success"}, token_from=f"/pay/{number}"
    )
    assert paid.headers["Location"] == f"/orders/{number}"
    order = order_of(app, number)
    assert order.status == "paid" and order.total_fen == 9900 and order.note == "请包装好"
    assert order.delivery.startswith("自提：")
    with app.app_context():
        assert counters(pid) == (5, 4, 0, 1)
    mine = html(client.get("/orders"))
    assert number in mine.get_text() and "已付款，待发货" in mine.get_text()
    detail = html(client.get(f"/orders/{number}"))
    assert "¥99.00" in detail.get_text()
    # A paid order's cashier sends the buyer to the order; paying twice changes nothing.
    assert client.get(f"/pay/{number}").status_code == 303
    again = post_form(
        client, f"/pay/{number}/dev", {"result": "success"}, token_from=f"/orders/{number}"
    )
    assert again.status_code == 303
    with app.app_context():
        assert counters(pid) == (5, 4, 0, 1)
        refund = db.session.scalar(select(Refund))
        assert refund is not None and refund.status == "succeeded"  # the extra money went back


def test_the_dev_cashier_does_not_exist_under_wechatpay(app, client, member):
    make_product(app, slug="pen")
    number = number_from(buy(client, "pen"))
    app.config["PAYMENTS"] = "wechatpay"
    response = post_form(
        client, f"/pay/{number}/dev", {"result": "success"}, token_from=f"/orders/{number}"
    )
    assert response.status_code == 404
    assert order_of(app, number).status == "pending"


def test_bad_buy_input_changes_nothing(app, client, member):
    pid = make_product(app, slug="pen", stock=5, per_member_limit=2)
    other = html(client.get("/shop/p/pen/buy"))
    assert other.select_one("input[name=quantity]")["max"] == "2"
    for fields, message in [
        ({"quantity": "0"}, "请填写购买数量"),
        ({"quantity": "abc"}, "请填写购买数量"),
        ({"quantity": "1e3"}, "请填写购买数量"),
        ({"quantity": "100"}, "请填写购买数量"),
        ({"quantity": "3"}, "每人限购 2 件"),
        ({"delivery": "999"}, "请选择收货地址或自提"),
        ({"delivery": ""}, "请选择收货地址或自提"),
        ({"note": "长" * 201}, "备注最多 200 字"),
    ]:
        response = buy(client, "pen", **fields)
        assert response.status_code == 422, fields
        assert message in response.get_data(as_text=True), fields
    with app.app_context():
        assert counters(pid) == (5, 5, 0, 0)
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_buying_needs_a_login(app, client):
    make_product(app, slug="pen")
    response = client.get("/shop/p/pen/buy")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_non_members_cannot_buy_members_only(app, client, make_user, login):
    make_user()
    login()
    pid = make_product(app, slug="pen", members_only=True)
    response = buy(client, "pen")
    assert response.status_code == 422
    with app.app_context():
        assert counters(pid) == (10, 10, 0, 0)


def test_buying_to_a_saved_address(app, client, member):
    make_product(app, slug="pen")
    bad = post_form(
        client,
        "/me/addresses/new",
        {
            "name": "",
            "phone": "123",
            "province": "上海",
            "city": "上海",
            "district": "徐汇",
            "street": "x" * 121,
        },
    )
    assert bad.status_code == 422
    text = bad.get_data(as_text=True)
    assert "请填写收货人" in text and "11 位手机号" in text and "详细地址最多 120" in text
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Address)) == 0
    saved = post_form(
        client,
        "/me/addresses/new",
        {
            "name": "林晨",
            "phone": "13800138000",
            "province": "上海市",
            "city": "上海市",
            "district": "徐汇区",
            "street": "漕溪北路 1 号",
            "next": "/shop/p/pen/buy",
        },
    )
    assert saved.headers["Location"] == "/shop/p/pen/buy"
    with app.app_context():
        address_id = db.session.scalar(select(Address.id))
    number = number_from(buy(client, "pen", delivery=str(address_id)))
    assert order_of(app, number).delivery == "林晨 13800138000 上海市上海市徐汇区漕溪北路 1 号"


def test_someone_elses_address_and_order_are_404(app, client, member, make_user):
    make_product(app, slug="pen")
    number = number_from(buy(client, "pen"))
    make_user("other@example.com")
    with app.app_context(), write_transaction() as session:
        address = Address(
            user_id=user_id(app, "other@example.com"),
            name="他人",
            phone="13900139000",
            province="北京市",
            city="北京市",
            district="东城区",
            street="某路",
            created_at=DEFAULT_NOW,
        )
        session.add(address)
        session.flush()
        other_address = address.id
    response = buy(client, "pen", delivery=str(other_address))
    assert response.status_code == 422
    gone = post_form(
        client, f"/me/addresses/{other_address}/delete", {}, token_from="/me/addresses"
    )
    assert gone.status_code == 404
    other = app.test_client()
    post_form(other, "/login", {"email": "other@example.com", "password": "correct horse"})
    for path in (f"/orders/{number}", f"/pay/{number}", f"/orders/{number}/status"):
        assert other.get(path).status_code == 404, path
    cancel = post_form(other, f"/orders/{number}/cancel", {}, token_from="/orders")
    assert cancel.status_code == 404
    assert order_of(app, number).status == "pending"


# --- after the purchase ------------------------------------------------------------------


def test_buyer_cancels_an_unpaid_order_and_the_stock_returns(app, client, member):
    pid = make_product(app, slug="pen", stock=2)
    number = number_from(buy(client, "pen"))
    response = post_form(client, f"/orders/{number}/cancel", {}, token_from=f"/orders/{number}")
    assert response.status_code == 303
    assert order_of(app, number).status == "cancelled"
    with app.app_context():
        assert counters(pid) == (2, 2, 0, 0)
        reasons = db.session.scalars(select(OrderEvent.reason).order_by(OrderEvent.id)).all()
        assert reasons == ["下单", "买家取消"]


def test_an_expired_hold_returns_its_stock_when_stock_is_read(app, client, member, clock):
    pid = make_product(app, slug="pen", stock=1)
    number = number_from(buy(client, "pen"))
    assert "已售罄" in client.get("/shop/p/pen").get_data(as_text=True)
    clock.advance(minutes=15)
    page = html(client.get("/shop/p/pen"))
    assert "仅剩 1 件" in " ".join(page.get_text().split())
    assert order_of(app, number).status == "cancelled"
    with app.app_context():
        assert counters(pid) == (1, 1, 0, 0)
    # Money that comes after the release goes back, and the unit stays for sale.
    late = post_form(client, f"/pay/{number}/dev", {"result": "success"}, token_from="/orders")
    assert late.status_code == 303
    with app.app_context():
        assert counters(pid) == (1, 1, 0, 0)
        refund = db.session.scalar(select(Refund))
        assert refund is not None and refund.status == "succeeded"
    assert order_of(app, number).status == "cancelled"
    assert "已原路退回" in client.get(f"/orders/{number}").get_data(as_text=True)


def paid_order(app, client, slug: str = "pen") -> str:
    number = number_from(buy(client, slug))
    post_form(client, f"/pay/{number}/dev", {"result": "success"}, token_from=f"/pay/{number}")
    assert order_of(app, number).status == "paid"
    return number


def test_shipped_order_is_confirmed_and_refund_window_closes_after_seven_days(
    app, client, member, make_user, clock
):
    make_product(app, slug="pen")
    number = paid_order(app, client)
    editor_id = make_user("editor@example.com", role="editor")
    order_id = order_of(app, number).id
    with app.app_context():
        assert checkout.mark_shipped(order_id, actor=editor_id, carrier="顺丰", tracking_no="SF1")
    page = html(client.get(f"/orders/{number}"))
    assert "顺丰" in page.get_text() and "SF1" in page.get_text()
    post_form(client, f"/orders/{number}/received", {}, token_from=f"/orders/{number}")
    assert order_of(app, number).status == "completed"
    page = html(client.get(f"/orders/{number}"))
    assert page.select_one("#refund") is not None
    clock.advance(days=7, seconds=1)
    page = html(client.get(f"/orders/{number}"))
    assert page.select_one("#refund") is None
    late = post_form(
        client, f"/orders/{number}/refund", {"reason": "不想要了"}, token_from="/orders"
    )
    assert late.status_code == 422
    assert order_of(app, number).status == "completed"


def test_refund_request_needs_a_reason_and_the_buyer_sees_where_it_stands(
    app, client, member, make_user
):
    pid = make_product(app, slug="pen", stock=3)
    number = paid_order(app, client)
    empty = post_form(
        client, f"/orders/{number}/refund", {"reason": "  "}, token_from=f"/orders/{number}"
    )
    assert empty.status_code == 422 and "请写下退款原因" in empty.get_data(as_text=True)
    assert order_of(app, number).status == "paid"
    asked = post_form(
        client,
        f"/orders/{number}/refund",
        {"reason": "收到时外壳破损"},
        token_from=f"/orders/{number}",
    )
    assert asked.status_code == 303
    page = html(client.get(f"/orders/{number}"))
    assert "退款审核中" in page.get_text() and "收到时外壳破损" in page.get_text()
    editor_id = make_user("editor@example.com", role="editor")
    order_id = order_of(app, number).id
    with app.app_context():
        assert payments.approve_refund(order_id, actor=editor_id)
        assert counters(pid) == (3, 3, 0, 0)  # refunded units are for sale again
    page = html(client.get(f"/orders/{number}"))
    assert "已退款" in page.get_text() and "款项已原路退回" in page.get_text()


def test_rejected_refund_shows_the_reason(app, client, member, make_user):
    make_product(app, slug="pen")
    number = paid_order(app, client)
    post_form(
        client, f"/orders/{number}/refund", {"reason": "想换颜色"}, token_from=f"/orders/{number}"
    )
    editor_id = make_user("editor@example.com", role="editor")
    with app.app_context():
        assert checkout.reject_refund(
            order_of(app, number).id, actor=editor_id, reason="限量款不支持换色"
        )
    page = html(client.get(f"/orders/{number}"))
    assert "退款未通过" in page.get_text() and "限量款不支持换色" in page.get_text()


def test_product_description_renders(app, client):
    make_product(app, slug="pen", description_html="<p>一支<strong>好笔</strong></p>")
    page = html(client.get("/shop/p/pen"))
    assert page.select_one(".prose strong").get_text() == "好笔"


def test_address_phone_is_checked_as_account_phones_are(app, client, member):
    fields = {
        "name": "林晨",
        "province": "上海市",
        "city": "上海市",
        "district": "徐汇区",
        "street": "漕溪北路 1 号",
    }
    for phone in ("１３８００１３８０００", "1380013800"):  # full-width digits; too short
        bad = post_form(client, "/me/addresses/new", {**fields, "phone": phone})
        assert bad.status_code == 422 and "11 位手机号" in bad.get_data(as_text=True)
    # A next address that is not a plain path on this site is ignored.
    saved = post_form(
        client,
        "/me/addresses/new",
        {**fields, "phone": "+86 138-0013-8000", "next": "/\\evil.example.com"},
    )
    assert saved.headers["Location"] == "/me/addresses"
    with app.app_context():
        assert db.session.scalar(select(Address.phone)) == "13800138000"
