"""Paying inside WeChat with the openid that WeChat login stored: login against the fake
WeChat, then a JSAPI prepay at the fake WeChat Pay made for that same openid."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from app import create_app, db
from members import accounts
from members.models import User
from tests.conftest import CheckedClient, html, make_config, post_form, reset_database
from tests.test_checkout import make_product
from tests.test_wechat_login import UA, walk
from tests.wechat_api_fake import Person, WeChatApiFake
from tests.wechatpay_fake import WechatPayFake


@pytest.fixture
def app(tmp_path):
    with WechatPayFake(tmp_path / "wechatpay") as pay, WeChatApiFake() as wechat:
        config = make_config(
            tmp_path / "data",
            PAYMENTS="wechatpay",
            **pay.app_config(notify_url="https://chendu.example.com/pay/wechat/notify"),
            **wechat.app_config(),
        )
        site = create_app(config)
        site.test_client_class = CheckedClient
        pay.clock = site.extensions["clock"].now
        wechat.auto_consent = True
        site.extensions["fakes"] = (pay, wechat)
        with site.app_context():
            reset_database()
        yield site
        with site.app_context():
            db.engine.dispose()
        assert pay.errors == []


def test_a_wechat_login_pays_with_its_own_openid(app, client):
    pay, wechat = app.extensions["fakes"]
    wechat.user = Person("oPAYINGfollower00000000001", nickname="买笔的人")
    assert walk(client, "/login/wechat", wechat).request.path == "/me"
    with app.app_context():
        email = db.session.scalars(select(User)).one().email
        accounts.grant_membership(email, "年度会员", 365, reason="测试")
    make_product(app, slug="pen", stock=5, members_only=True)
    response = post_form(
        client,
        "/shop/p/pen/buy",
        {"quantity": "1", "delivery": "pickup", "note": ""},
        headers=UA,
    )
    assert response.status_code == 303, response.get_data(as_text=True)
    number = response.headers["Location"].rsplit("/", 1)[-1]
    page = html(client.get(f"/pay/{number}", headers=UA))
    assert page.select_one("[data-wechat-pay]") is not None
    [call] = pay.calls("POST", "/v3/pay/transactions/jsapi")
    assert call.json["payer"] == {"openid": "oPAYINGfollower00000000001"}
    assert call.json["appid"] == pay.app_config()["WECHATPAY_APPID"]
