"""Paying inside WeChat with the openid that WeChat login stored: login against the fake
WeChat, then a JSAPI prepay at the fake WeChat Pay made for that same openid."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from app import create_app, db
from members import accounts
from members.models import User
from tests.conftest import CheckedClient, html, make_config, post_form, reset_database
from tests.test_checkout import make_product
from tests.test_wechat_login import UA, at_wechat, walk
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


def test_an_email_member_links_wechat_from_the_pay_page_and_comes_back_to_pay(
    app, client, make_user, login
):
    pay, wechat = app.extensions["fakes"]
    wechat.user = Person("oLINKtoPAY0000000000000001")
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365, reason="测试")
    login("member@example.com")
    make_product(app, slug="pen", stock=5, members_only=True)
    response = post_form(
        client, "/shop/p/pen/buy", {"quantity": "1", "delivery": "pickup", "note": ""}, headers=UA
    )
    pay_path = urlsplit(response.headers["Location"]).path
    page = html(client.get(pay_path, headers=UA))
    form = page.select_one("#wechat-link-to-pay")
    assert form is not None and pay.calls("POST", "/v3/pay/transactions/jsapi") == []
    data = {i["name"]: i["value"] for i in form.select("input")}
    started = client.post(form["action"], data=data, headers=UA)
    _, back, _ = at_wechat(started.location)
    parts = urlsplit(back)
    done = client.get(parts.path + "?" + parts.query, headers=UA)
    assert done.status_code == 302 and done.location == pay_path
    page = html(client.get(pay_path, headers=UA))
    assert page.select_one("[data-wechat-pay]") is not None
    [call] = pay.calls("POST", "/v3/pay/transactions/jsapi")
    assert call.json["payer"] == {"openid": "oLINKtoPAY0000000000000001"}
