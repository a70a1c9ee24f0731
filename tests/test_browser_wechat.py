"""WeChat login in real Chromium with WeChat's user agent, against the fake WeChat on
127.0.0.1: 「微信一键登录」, the silent try, the consent page, and the signed-in /me."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from app import db
from members.models import User
from tests.conftest import no_sideways_scroll
from tests.wechat_api_fake import Person, WeChatApiFake

pytestmark = pytest.mark.browser


def test_one_tap_login_inside_wechat_makes_an_account_and_signs_in(phone, app):
    with WeChatApiFake() as fake:
        app.config.update(fake.app_config())
        phone.allowed_hosts.add(urlsplit(fake.url).netloc)
        fake.user = Person("oBROWSERfollower0000000001", nickname="晨读老读者")
        page = phone.page
        phone.open("/login")
        button = page.locator("#wechat-login")
        expect(button).to_have_text("微信一键登录")
        no_sideways_scroll(page)
        phone.screenshot("wechat-login")
        button.click()
        # The silent try found no account: WeChat asks for the nickname and avatar once.
        expect(page.locator("h1")).to_have_text("授权登录")
        page.click("#allow")
        expect(page).to_have_url(phone.server.url + "/me")
        expect(page.locator(".profile .email")).to_have_text("微信登录的账号")
        expect(page.locator("#wechat")).to_contain_text("已绑定微信")
        expect(page.locator("#nickname")).to_contain_text("晨读老读者")
        no_sideways_scroll(page)
        phone.screenshot("wechat-me")
        assert fake.calls["/sns/userinfo"] == 1
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert user.wechat_openid == "oBROWSERfollower0000000001"
