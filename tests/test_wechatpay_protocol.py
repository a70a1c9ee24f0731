"""shop/wechatpay.py against the fake WeChat Pay server: real HTTP, real signatures both ways."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.hashes import SHA256
from wechatpayv3.utils import build_authorization

from shop.wechatpay import (
    NotifyError,
    RefundResult,
    Transaction,
    WechatPay,
    WechatPayConfig,
    WechatPayError,
)
from tests.wechatpay_fake import WechatPayFake, make_merchant_key, private_pem

NOW = datetime(2026, 11, 21, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"


@pytest.fixture
def fake(tmp_path: Path) -> Iterator[WechatPayFake]:
    with WechatPayFake(tmp_path / "wechatpay", clock=lambda: NOW) as fake:
        yield fake
    assert fake.errors == []


@pytest.fixture
def config(fake: WechatPayFake) -> WechatPayConfig:
    return WechatPayConfig.from_app_config(fake.app_config())


@pytest.fixture
def wechatpay(config: WechatPayConfig) -> WechatPay:
    return WechatPay(config)


def open_trade(wechatpay: WechatPay, out_trade_no: str = "CD202611210001", **kw) -> str:
    params = {
        "description": "晨读 · 限量笔记本",
        "amount_fen": 6800,
        "openid": OPENID,
        "time_expire": NOW + timedelta(minutes=15),
    }
    params.update(kw)
    return wechatpay.jsapi_prepay(out_trade_no=out_trade_no, **params)


def paid_trade(wechatpay: WechatPay, fake: WechatPayFake, out_trade_no: str = "CD202611210001"):
    open_trade(wechatpay, out_trade_no)
    return fake.pay(out_trade_no)


# ------------------------------------------------------------------------------------------
# Settings
# ------------------------------------------------------------------------------------------


def test_config_reads_the_settings_and_both_key_files(fake: WechatPayFake) -> None:
    settings = fake.app_config()
    config = WechatPayConfig.from_app_config(settings)
    assert config.base_url == fake.url
    assert config.mchid == fake.mchid
    assert config.public_key_id == fake.public_key_id
    assert config.private_key.startswith("-----BEGIN PRIVATE KEY-----")
    assert config.public_key.startswith("-----BEGIN PUBLIC KEY-----")
    assert "PRIVATE" not in repr(config) and fake.apiv3_key not in repr(config)


@pytest.mark.parametrize(
    "setting",
    ["WECHATPAY_MCHID", "WECHATPAY_APIV3_KEY", "WECHATPAY_PUBLIC_KEY_ID", "WECHATPAY_NOTIFY_URL"],
)
def test_config_names_the_missing_setting(fake: WechatPayFake, setting: str) -> None:
    settings = fake.app_config() | {setting: ""}
    with pytest.raises(WechatPayError, match=setting):
        WechatPayConfig.from_app_config(settings)


def test_config_names_an_unreadable_key_file(fake: WechatPayFake, tmp_path: Path) -> None:
    settings = fake.app_config() | {"WECHATPAY_PUBLIC_KEY_FILE": str(tmp_path / "nowhere.pem")}
    with pytest.raises(WechatPayError, match="WECHATPAY_PUBLIC_KEY_FILE"):
        WechatPayConfig.from_app_config(settings)


def test_a_key_that_is_not_pem_is_refused(config: WechatPayConfig) -> None:
    with pytest.raises(WechatPayError):
        WechatPay(replace(config, private_key="not a key"))


# ------------------------------------------------------------------------------------------
# Paying
# ------------------------------------------------------------------------------------------


def test_prepay_sends_a_signed_jsapi_order_and_returns_the_prepay_id(
    wechatpay: WechatPay, fake: WechatPayFake, config: WechatPayConfig
) -> None:
    prepay_id = open_trade(wechatpay, "CD202611210001", amount_fen=6800)

    assert prepay_id.startswith("wx")
    [call] = fake.calls("POST", "/v3/pay/transactions/jsapi")
    assert call.status == 200
    assert call.headers["authorization"].startswith(
        f'WECHATPAY2-SHA256-RSA2048 mchid="{fake.mchid}",'
    )
    assert call.headers["wechatpay-serial"] == fake.public_key_id
    assert call.json == {
        "appid": fake.appid,
        "mchid": fake.mchid,
        "description": "晨读 · 限量笔记本",
        "out_trade_no": "CD202611210001",
        "notify_url": config.notify_url,
        "amount": {"total": 6800, "currency": "CNY"},
        "payer": {"openid": OPENID},
        "time_expire": "2026-11-21T08:15:00+08:00",
    }
    assert fake.trades["CD202611210001"].state == "NOTPAY"


def test_prepay_again_with_the_same_order_gives_the_same_prepay_id(
    wechatpay: WechatPay,
) -> None:
    assert open_trade(wechatpay) == open_trade(wechatpay)


def test_prepay_again_with_another_amount_is_refused(wechatpay: WechatPay) -> None:
    open_trade(wechatpay, amount_fen=6800)
    with pytest.raises(WechatPayError) as caught:
        open_trade(wechatpay, amount_fen=100)
    assert (caught.value.status, caught.value.code) == (400, "INVALID_REQUEST")


def test_prepay_of_a_paid_order_is_refused(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    paid_trade(wechatpay, fake)
    with pytest.raises(WechatPayError) as caught:
        open_trade(wechatpay)
    assert (caught.value.status, caught.value.code) == (400, "ORDERPAID")


def test_prepay_needs_an_aware_expiry(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    with pytest.raises(ValueError, match="aware"):
        open_trade(wechatpay, time_expire=datetime(2026, 11, 21, 8, 15))
    assert fake.requests == []


def test_jsapi_params_are_signed_with_the_merchant_key(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    params = wechatpay.jsapi_params("wx21080000abcdef")

    assert set(params) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert params["appId"] == fake.appid
    assert params["package"] == "prepay_id=wx21080000abcdef"
    assert params["signType"] == "RSA"
    assert params["timeStamp"].isdigit()
    message = "".join(params[name] + "\n" for name in ("appId", "timeStamp", "nonceStr", "package"))
    fake.merchant_key.public_key().verify(  # raises InvalidSignature if wrong
        base64.b64decode(params["paySign"]), message.encode(), padding.PKCS1v15(), SHA256()
    )


# ------------------------------------------------------------------------------------------
# Asking and undoing
# ------------------------------------------------------------------------------------------


def test_query_of_an_unpaid_order(wechatpay: WechatPay) -> None:
    open_trade(wechatpay, amount_fen=6800)
    assert wechatpay.query("CD202611210001") == Transaction(
        out_trade_no="CD202611210001",
        transaction_id="",
        trade_state="NOTPAY",
        amount_fen=6800,
        payer_total_fen=None,
        currency="CNY",
        success_time=None,
        openid=None,
        appid=wechatpay.config.appid,
        mchid=wechatpay.config.mchid,
    )


def test_query_of_a_paid_order(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    open_trade(wechatpay, amount_fen=6800)
    fake.pay("CD202611210001", payer_total=6300, transaction_id="4200002637202611210000000001")

    transaction = wechatpay.query("CD202611210001")

    assert transaction is not None
    assert transaction.trade_state == "SUCCESS"
    assert transaction.transaction_id == "4200002637202611210000000001"
    assert (transaction.amount_fen, transaction.payer_total_fen) == (6800, 6300)
    assert transaction.success_time == NOW
    assert transaction.success_time.tzinfo == UTC
    assert transaction.openid == OPENID
    [call] = fake.calls("GET", "/v3/pay/transactions/out-trade-no/CD202611210001")
    assert call.path.endswith(f"?mchid={fake.mchid}")


def test_query_of_an_unknown_order_is_none(wechatpay: WechatPay) -> None:
    assert wechatpay.query("CD209912310001") is None


def test_close_an_unpaid_order(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    open_trade(wechatpay)

    wechatpay.close("CD202611210001")

    [call] = fake.calls("POST", "/v3/pay/transactions/out-trade-no/CD202611210001/close")
    assert (call.status, call.json) == (204, {"mchid": fake.mchid})
    transaction = wechatpay.query("CD202611210001")
    assert transaction is not None and transaction.trade_state == "CLOSED"


def test_close_a_paid_order_is_refused(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    paid_trade(wechatpay, fake)
    with pytest.raises(WechatPayError) as caught:
        wechatpay.close("CD202611210001")
    assert (caught.value.status, caught.value.code) == (400, "ORDERPAID")


def test_refund_and_query_refund(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    paid_trade(wechatpay, fake)

    result = wechatpay.refund(
        out_trade_no="CD202611210001",
        out_refund_no="RF202611210001",
        amount_fen=6800,
        total_fen=6800,
        reason="七日内退货",
    )

    assert result.out_refund_no == "RF202611210001"
    assert result.status == "SUCCESS"
    assert wechatpay.query_refund("RF202611210001") == result
    [call] = fake.calls("POST", "/v3/refund/domestic/refunds")
    assert call.json == {
        "out_refund_no": "RF202611210001",
        "amount": {"refund": 6800, "total": 6800, "currency": "CNY"},
        "out_trade_no": "CD202611210001",
        "reason": "七日内退货",
    }
    transaction = wechatpay.query("CD202611210001")
    assert transaction is not None and transaction.trade_state == "REFUND"


def test_asking_the_same_refund_twice_refunds_once(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    paid_trade(wechatpay, fake)
    ask = {
        "out_trade_no": "CD202611210001",
        "out_refund_no": "RF202611210001",
        "amount_fen": 6800,
        "total_fen": 6800,
        "reason": "",
    }

    first, second = wechatpay.refund(**ask), wechatpay.refund(**ask)

    assert first == second
    assert len(fake.calls("POST", "/v3/refund/domestic/refunds")) == 2
    assert list(fake.refunds) == ["RF202611210001"]


def test_a_processing_refund_is_followed_with_query_refund(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    paid_trade(wechatpay, fake)
    fake.refund_status = "PROCESSING"

    result = wechatpay.refund(
        out_trade_no="CD202611210001",
        out_refund_no="RF202611210001",
        amount_fen=1000,
        total_fen=6800,
        reason="",
    )
    assert result.status == "PROCESSING"
    fake.settle_refund("RF202611210001", "SUCCESS")

    assert wechatpay.query_refund("RF202611210001") == RefundResult(
        "RF202611210001", result.refund_id, "SUCCESS"
    )


@pytest.mark.parametrize(
    ("amount_fen", "total_fen", "code"),
    [(6801, 6800, "INVALID_REQUEST"), (100, 9900, "INVALID_REQUEST")],
    ids=["more-than-paid", "wrong-total"],
)
def test_refund_beyond_the_order_is_refused(
    wechatpay: WechatPay, fake: WechatPayFake, amount_fen: int, total_fen: int, code: str
) -> None:
    paid_trade(wechatpay, fake)
    with pytest.raises(WechatPayError) as caught:
        wechatpay.refund(
            out_trade_no="CD202611210001",
            out_refund_no="RF202611210001",
            amount_fen=amount_fen,
            total_fen=total_fen,
            reason="",
        )
    assert (caught.value.status, caught.value.code) == (400, code)
    assert fake.refunds == {}


def test_refund_of_an_unpaid_order_is_refused(wechatpay: WechatPay) -> None:
    open_trade(wechatpay)
    with pytest.raises(WechatPayError) as caught:
        wechatpay.refund(
            out_trade_no="CD202611210001",
            out_refund_no="RF202611210001",
            amount_fen=6800,
            total_fen=6800,
            reason="",
        )
    assert caught.value.status == 400


def test_query_of_an_unknown_refund_fails(wechatpay: WechatPay) -> None:
    with pytest.raises(WechatPayError) as caught:
        wechatpay.query_refund("RF209912310001")
    assert (caught.value.status, caught.value.code) == (404, "RESOURCE_NOT_EXISTS")


# ------------------------------------------------------------------------------------------
# When WeChat, the network or our keys fail
# ------------------------------------------------------------------------------------------


def test_a_response_with_a_bad_signature_is_not_believed(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    open_trade(wechatpay)
    fake.pay("CD202611210001")
    fake.corrupt_signatures = True

    with pytest.raises(WechatPayError) as caught:
        wechatpay.query("CD202611210001")
    assert caught.value.status is None
    assert "signature" in str(caught.value)


def test_a_response_under_another_serial_is_not_believed(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    fake.response_serial = "PUB_KEY_ID_" + "0" * 32

    with pytest.raises(WechatPayError, match="unknown serial"):
        open_trade(wechatpay)
    # and public-key mode never goes looking for platform certificates
    assert fake.calls("GET", "/v3/certificates") == []


def test_a_request_without_the_public_key_id_gets_a_certificate_signed_answer(
    fake: WechatPayFake,
) -> None:
    """As WeChat does, the fake signs with the platform public key only for a request that
    names its id in Wechatpay-Serial (which wechatpayv3 sends in public-key mode, as the
    prepay test shows): any other answer would not verify."""
    path = f"/v3/pay/transactions/out-trade-no/CD202611210001?mchid={fake.mchid}"
    authorization = build_authorization(
        path, "GET", fake.mchid, fake.merchant_serial_no, fake.merchant_key
    )
    request = urllib.request.Request(fake.url + path, headers={"Authorization": authorization})
    try:
        urllib.request.urlopen(request, timeout=5).close()
        pytest.fail("the fake knows no such order")
    except urllib.error.HTTPError as error:
        with error:
            status, serial = error.code, error.headers["Wechatpay-Serial"]
    assert status == 404
    assert serial and serial != fake.public_key_id


def test_a_request_signed_with_the_wrong_merchant_key_is_refused(
    config: WechatPayConfig, fake: WechatPayFake
) -> None:
    wechatpay = WechatPay(replace(config, private_key=private_pem(make_merchant_key())))
    with pytest.raises(WechatPayError) as caught:
        open_trade(wechatpay)
    assert (caught.value.status, caught.value.code) == (401, "SIGN_ERROR")
    assert fake.trades == {}


def test_a_request_with_the_wrong_serial_no_is_refused(config: WechatPayConfig) -> None:
    wechatpay = WechatPay(replace(config, cert_serial_no="0" * 40))
    with pytest.raises(WechatPayError) as caught:
        wechatpay.query("CD202611210001")
    assert (caught.value.status, caught.value.code) == (401, "SIGN_ERROR")


def test_an_error_from_wechat_carries_its_status_and_code(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    fake.fail_next(500, "SYSTEM_ERROR", "系统错误")
    with pytest.raises(WechatPayError) as caught:
        open_trade(wechatpay)
    assert (caught.value.status, caught.value.code, caught.value.message) == (
        500,
        "SYSTEM_ERROR",
        "系统错误",
    )


def test_a_network_error_is_a_wechatpay_error(config: WechatPayConfig, tmp_path: Path) -> None:
    with WechatPayFake(tmp_path / "gone") as gone:
        closed = gone.url
    wechatpay = WechatPay(replace(config, base_url=closed), timeout=2)
    with pytest.raises(WechatPayError) as caught:
        wechatpay.query("CD202611210001")
    assert caught.value.status is None
    assert "network" in str(caught.value)


# ------------------------------------------------------------------------------------------
# Notifications
# ------------------------------------------------------------------------------------------


def test_a_good_notification_gives_the_transaction(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    open_trade(wechatpay, amount_fen=6800)
    paid = fake.pay("CD202611210001")
    headers, body = fake.notification("CD202611210001")

    transaction = wechatpay.parse_notification(headers, body, now=NOW)

    assert transaction == Transaction(
        out_trade_no="CD202611210001",
        transaction_id=paid["transaction_id"],
        trade_state="SUCCESS",
        amount_fen=6800,
        payer_total_fen=6800,
        currency="CNY",
        success_time=NOW,
        openid=OPENID,
        appid=fake.appid,
        mchid=fake.mchid,
    )


def test_header_names_are_matched_in_any_case(wechatpay: WechatPay, fake: WechatPayFake) -> None:
    paid_trade(wechatpay, fake)
    headers, body = fake.notification("CD202611210001")
    lowered = {name.lower(): value for name, value in headers.items()}
    assert wechatpay.parse_notification(lowered, body, now=NOW).trade_state == "SUCCESS"


@pytest.mark.parametrize("skew", [timedelta(minutes=-5), timedelta(minutes=5)])
def test_a_notification_within_five_minutes_is_fresh(
    wechatpay: WechatPay, fake: WechatPayFake, skew: timedelta
) -> None:
    paid_trade(wechatpay, fake)
    headers, body = fake.notification("CD202611210001", timestamp=NOW + skew)
    assert wechatpay.parse_notification(headers, body, now=NOW).out_trade_no == "CD202611210001"


def test_a_notification_with_another_amount_reports_that_amount(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    """Comparing it with the order is the caller's job; the notice itself is genuine."""
    paid_trade(wechatpay, fake)
    headers, body = fake.notification("CD202611210001", amount_total=1)
    assert wechatpay.parse_notification(headers, body, now=NOW).amount_fen == 1


SPOILED = {
    "tampered-body": ({"tamper": True}, 401),
    "wrong-key": ({"key": "other"}, 401),
    "wrong-serial": ({"serial": "PUB_KEY_ID_" + "0" * 32}, 401),
    "stale": ({"timestamp": NOW - timedelta(minutes=6)}, 401),
    "from-the-future": ({"timestamp": NOW + timedelta(minutes=6)}, 401),
    "bad-ciphertext": ({"apiv3_key": "0" * 32}, 400),
    "refund-event": ({"event_type": "REFUND.SUCCESS"}, 400),
    "other-mchid": ({"mchid": "1900000001"}, 400),
    "other-appid": ({"appid": "wx0000000000000000"}, 400),
}


@pytest.mark.parametrize(("options", "status"), SPOILED.values(), ids=SPOILED.keys())
def test_a_spoiled_notification_is_refused(
    wechatpay: WechatPay, fake: WechatPayFake, options: dict, status: int
) -> None:
    paid_trade(wechatpay, fake)
    if options.get("key") == "other":
        options = options | {"key": make_merchant_key()}
    headers, body = fake.notification("CD202611210001", **options)

    with pytest.raises(NotifyError) as caught:
        wechatpay.parse_notification(headers, body, now=NOW)
    assert caught.value.status == status
    assert caught.value.message


@pytest.mark.parametrize(
    "header",
    ["Wechatpay-Timestamp", "Wechatpay-Nonce", "Wechatpay-Signature", "Wechatpay-Serial"],
)
def test_a_notification_without_a_signature_header_is_refused(
    wechatpay: WechatPay, fake: WechatPayFake, header: str
) -> None:
    paid_trade(wechatpay, fake)
    headers, body = fake.notification("CD202611210001")
    del headers[header]

    with pytest.raises(NotifyError) as caught:
        wechatpay.parse_notification(headers, body, now=NOW)
    assert caught.value.status == 401


def test_a_signed_body_that_is_not_a_notice_is_refused(
    wechatpay: WechatPay, fake: WechatPayFake
) -> None:
    body = b"<xml>not json</xml>"
    headers = fake._signature_headers(body, timestamp=int(NOW.timestamp()), request_id=False)

    with pytest.raises(NotifyError) as caught:
        wechatpay.parse_notification(headers, body, now=NOW)
    assert caught.value.status == 400


def test_a_notification_can_be_posted_to_a_url(
    wechatpay: WechatPay, fake: WechatPayFake, tmp_path: Path
) -> None:
    """send_notification delivers the same signed notice over HTTP (here to another fake,
    which, like any server that is not the shop, answers 401 to an unsigned request)."""
    paid_trade(wechatpay, fake)
    with WechatPayFake(tmp_path / "receiver") as receiver:
        status, answer = fake.send_notification("CD202611210001", url=receiver.url + "/notify")
        [received] = receiver.calls("POST", "/notify")
    assert status == 401 and "SIGN_ERROR" in answer
    assert wechatpay.parse_notification(received.headers, received.body, now=NOW).out_trade_no == (
        "CD202611210001"
    )
