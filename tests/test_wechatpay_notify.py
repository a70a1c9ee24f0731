"""WeChat Pay end to end against the fake WeChat Pay server on 127.0.0.1: the JSAPI prepay
behind the pay button, the payment notice (good, duplicated, concurrent, late, forged,
stale, tampered, wrong amount), reconciliation when no notice comes, and refunds.

Exactly one state change for a good notice however often it comes; 4xx and no change at
all for a bad one."""

from __future__ import annotations

import json
import threading
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app, db, write_transaction
from members import accounts
from members.models import User
from shop import checkout, payments
from shop.models import Order, OrderEvent, Payment, Product, Refund
from tests.conftest import (
    DEFAULT_NOW,
    CheckedClient,
    html,
    make_config,
    post_form,
    reset_database,
)
from tests.test_checkout import counters, make_product
from tests.wechatpay_fake import WechatPayFake, make_merchant_key

NOTIFY = "/pay/wechat/notify"


@pytest.fixture
def fake(tmp_path):
    with WechatPayFake(tmp_path / "wechatpay") as server:
        yield server
    assert server.errors == []


@pytest.fixture
def app(tmp_path, fake):
    config = make_config(
        tmp_path / "data",
        PAYMENTS="wechatpay",
        **fake.app_config(notify_url="https://chendu.example.com/pay/wechat/notify"),
    )
    site = create_app(config)
    site.test_client_class = CheckedClient
    fake.clock = site.extensions["clock"].now
    with site.app_context():
        reset_database()
    yield site
    with site.app_context():
        db.engine.dispose()


@pytest.fixture
def buyer(app, client, make_user, login):
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
        with write_transaction() as session:
            user = session.scalar(select(User).where(User.email == "member@example.com"))
            user.wechat_openid = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
    login("member@example.com")
    return client


@pytest.fixture
def product(app) -> int:
    return make_product(app, slug="pen", stock=5, members_only=True)


def place(client) -> str:
    response = post_form(
        client, "/shop/p/pen/buy", {"quantity": "1", "delivery": "pickup", "note": ""}
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    number = response.headers["Location"].rsplit("/", 1)[-1]
    page = html(client.get(f"/pay/{number}"))  # opens the payment at WeChat
    button = page.select_one("[data-wechat-pay]")
    assert button is not None, page.get_text()
    return number


def notify(client, headers, body):
    return client.post(NOTIFY, data=body, headers=headers)


def state(app, number: str) -> tuple[str, int, int]:
    """The order's status, its payments and its events."""
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        assert order is not None
        paid = db.session.scalar(select(func.count()).where(Payment.order_id == order.id))
        events = db.session.scalar(select(func.count()).where(OrderEvent.order_id == order.id))
        return order.status, paid, events


def test_the_pay_button_carries_signed_jsapi_parameters(app, buyer, product, fake):
    number = place(buyer)
    [call] = fake.calls("POST", "/v3/pay/transactions/jsapi")
    assert call.json["out_trade_no"] == number
    assert call.json["amount"] == {"total": 9900, "currency": "CNY"}
    assert call.json["payer"] == {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"}
    assert call.json["notify_url"] == "https://chendu.example.com/pay/wechat/notify"
    page = html(buyer.get(f"/pay/{number}"))
    params = json.loads(page.select_one("[data-wechat-pay]")["data-wechat-pay"])
    assert params["package"].startswith("prepay_id=")
    assert params["signType"] == "RSA" and params["appId"] == fake.appid
    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}


def test_a_reader_without_wechat_login_is_told_to_open_wechat(app, client, make_user, login):
    make_user()
    login()
    make_product(app, slug="pen", stock=5)
    response = post_form(client, "/shop/p/pen/buy", {"quantity": "1", "delivery": "pickup"})
    number = response.headers["Location"].rsplit("/", 1)[-1]
    page = html(client.get(f"/pay/{number}"))
    assert "请在微信中打开" in page.get_text()
    assert page.select_one("[data-wechat-pay]") is None


def test_a_good_notice_pays_once_however_often_it_comes(app, buyer, product, fake):
    number = place(buyer)
    fake.pay(number)
    headers, body = fake.notification(number)
    first = notify(buyer, headers, body)
    assert first.status_code == 204 and first.get_data() == b""
    assert state(app, number) == ("paid", 1, 2)
    with app.app_context():
        assert counters(product) == (5, 4, 0, 1)
    for _ in range(14):  # WeChat resends up to 15 times
        again = notify(buyer, *fake.notification(number))
        assert again.status_code == 204
    assert state(app, number) == ("paid", 1, 2)
    with app.app_context():
        assert counters(product) == (5, 4, 0, 1)
    assert fake.calls("POST", "/v3/refund") == []


def test_concurrent_duplicate_notices_change_the_order_once(app, buyer, product, fake):
    number = place(buyer)
    fake.pay(number)
    notices = [fake.notification(number) for _ in range(12)]
    statuses: list[int] = []
    start = threading.Barrier(len(notices))

    def send(headers, body):
        client = app.test_client()
        start.wait()
        statuses.append(notify(client, headers, body).status_code)

    threads = [threading.Thread(target=send, args=n) for n in notices]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert statuses == [204] * len(notices)
    assert state(app, number) == ("paid", 1, 2)
    with app.app_context():
        assert counters(product) == (5, 4, 0, 1)
    assert fake.calls("POST", "/v3/refund") == []


def test_a_notice_after_the_hold_was_released_refunds_and_never_oversells(
    app, buyer, product, fake, clock
):
    number = place(buyer)
    clock.advance(minutes=16)
    with app.app_context():
        assert checkout.release_expired_holds() == 1
        assert counters(product) == (5, 5, 0, 0)
    fake.pay(number)  # the reader paid at the last second; WeChat tells us late
    response = notify(buyer, *fake.notification(number))
    assert response.status_code == 204
    status, paid, _ = state(app, number)
    assert (status, paid) == ("cancelled", 1)
    with app.app_context():
        assert counters(product) == (5, 5, 0, 0)
        refund = db.session.scalar(select(Refund))
        assert refund is not None and refund.status == "succeeded"
    [call] = fake.calls("POST", "/v3/refund/domestic/refunds")
    assert call.json["out_trade_no"] == number
    assert call.json["amount"]["refund"] == 9900 and call.json["amount"]["total"] == 9900
    # The same notice again: no second refund.
    assert notify(buyer, *fake.notification(number)).status_code == 204
    assert len(fake.calls("POST", "/v3/refund/domestic/refunds")) == 1
    assert "已原路退回" in buyer.get(f"/orders/{number}").get_data(as_text=True)


def test_a_resend_after_the_order_moved_on_changes_nothing(app, buyer, product, fake, make_user):
    number = place(buyer)
    fake.pay(number)
    headers, body = fake.notification(number)
    assert notify(buyer, headers, body).status_code == 204
    editor = make_user("editor@example.com", role="editor")
    with app.app_context():
        order_id = db.session.scalar(select(Order.id).where(Order.number == number))
        assert checkout.mark_shipped(order_id, actor=editor, carrier="顺丰", tracking_no="SF9")
    assert notify(buyer, *fake.notification(number)).status_code == 204
    assert state(app, number) == ("shipped", 1, 3)


@pytest.mark.parametrize(
    ("spoil", "status"),
    [
        ({"tamper": True}, 401),
        ({"key": "other"}, 401),
        ({"serial": "PUB_KEY_ID_0000000000000000000000000000000"}, 401),
        ({"timestamp": "stale"}, 401),
        ({"timestamp": "future"}, 401),
        ({"apiv3_key": "x" * 32}, 400),
        ({"mchid": "1900000000"}, 400),
        ({"event_type": "REFUND.SUCCESS"}, 400),
        ({"amount_total": 1}, 400),
    ],
)
def test_bad_notices_are_refused_and_change_nothing(app, buyer, product, fake, spoil, status):
    number = place(buyer)
    fake.pay(number)
    options = dict(spoil)
    if options.get("key") == "other":
        options["key"] = make_merchant_key()
    if options.get("timestamp") == "stale":
        options["timestamp"] = DEFAULT_NOW - timedelta(minutes=6)
    if options.get("timestamp") == "future":
        options["timestamp"] = DEFAULT_NOW + timedelta(minutes=6)
    response = notify(buyer, *fake.notification(number, **options))
    assert response.status_code == status
    answer = response.get_json()
    assert answer["code"] == "FAIL" and answer["message"]
    assert state(app, number) == ("pending", 0, 1)
    with app.app_context():
        assert counters(product) == (5, 4, 1, 0)


def test_missing_headers_and_garbage_are_refused(app, buyer, product, fake):
    number = place(buyer)
    fake.pay(number)
    headers, body = fake.notification(number)
    for name in ("Wechatpay-Signature", "Wechatpay-Timestamp", "Wechatpay-Nonce"):
        partial = {k: v for k, v in headers.items() if k != name}
        assert notify(buyer, partial, body).status_code == 401
    assert notify(buyer, {}, b"not json").status_code == 401
    assert state(app, number) == ("pending", 0, 1)


def test_a_replayed_notice_for_another_order_is_refused(app, buyer, product, fake):
    """A notice is bound to its order by its encrypted resource: replaying a genuine notice
    cannot pay anything else, and an unknown order is refused."""
    number = place(buyer)
    fake.pay(number)
    headers, body = fake.notification(number)
    with app.app_context(), write_transaction() as session:
        order = session.scalar(select(Order).where(Order.number == number))
        order.number = "20261121-999999"  # as if the notice were for an order we never made
    response = notify(buyer, headers, body)
    assert response.status_code == 404 and response.get_json()["code"] == "FAIL"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Payment)) == 0


def test_reconcile_records_a_payment_whose_notice_never_came(app, buyer, product, fake, clock):
    number = place(buyer)
    fake.pay(number)
    clock.advance(minutes=2)
    cli = app.test_cli_runner()
    result = cli.invoke(args=["shop", "reconcile"])
    assert result.exit_code == 0, result.output
    assert "paid 1" in result.output
    assert state(app, number)[0] == "paid"
    again = cli.invoke(args=["shop", "reconcile"])
    assert "paid 0" in again.output
    assert state(app, number) == ("paid", 1, 2)


def test_refunds_go_through_the_refund_api_and_reconcile_follows_them(
    app, buyer, product, fake, make_user
):
    number = place(buyer)
    fake.pay(number)
    assert notify(buyer, *fake.notification(number)).status_code == 204
    editor = make_user("editor@example.com", role="editor")
    with app.app_context():
        order_id = db.session.scalar(select(Order.id).where(Order.number == number))
        checkout.request_refund(order_id, actor=editor, reason="颜色不对")
        fake.refund_status = "PROCESSING"
        assert payments.approve_refund(order_id, actor=editor)
    assert state(app, number)[0] == "refund_requested"
    [call] = fake.calls("POST", "/v3/refund/domestic/refunds")
    fake.settle_refund(call.json["out_refund_no"], "SUCCESS")
    result = app.test_cli_runner().invoke(args=["shop", "reconcile"])
    assert "refunds settled 1" in result.output, result.output
    assert state(app, number)[0] == "refunded"
    with app.app_context():
        assert counters(product) == (5, 5, 0, 0)
        assert db.session.get(Product, product).sold == 0


def test_wechat_being_down_keeps_the_refund_for_later(app, buyer, product, fake, make_user):
    number = place(buyer)
    fake.pay(number)
    notify(buyer, *fake.notification(number))
    editor = make_user("editor@example.com", role="editor")
    with app.app_context():
        order_id = db.session.scalar(select(Order.id).where(Order.number == number))
        checkout.request_refund(order_id, actor=editor, reason="不想要了")
        fake.fail_next(500)
        assert payments.approve_refund(order_id, actor=editor)
        refund = db.session.scalar(select(Refund))
        assert refund.status == "processing" and refund.provider_refund_id is None
    assert state(app, number)[0] == "refund_requested"
    result = app.test_cli_runner().invoke(args=["shop", "reconcile"])
    assert "refunds settled 1" in result.output, result.output
    assert state(app, number)[0] == "refunded"
