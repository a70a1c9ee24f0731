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


# A stand-in for WeChat's JS-SDK, served by Playwright in place of res.wx.qq.com (nothing
# leaves the machine): it records what the page configured and shared.
FAKE_JSSDK = """
window.wx = {
  config: function (c) { window.__wxConfig = c; },
  ready: function (f) { window.setTimeout(f, 0); },
  updateAppMessageShareData: function (d) { window.__wxFriend = d; },
  updateTimelineShareData: function (d) { window.__wxMoments = d; }
};
"""


def test_an_article_configures_the_share_card_in_wechat(phone, app):
    from content import articles
    from content.articles import Draft
    from wechat import jssdk

    with WeChatApiFake() as fake:
        app.config.update(fake.app_config())
        with app.app_context():
            slug = articles.save_article(
                Draft(
                    title="一分钟读懂复利",
                    body_md="第一段。",
                    summary="复利是时间的朋友",
                    status="published",
                )
            ).slug
        page = phone.page
        page.route(
            jssdk.JSSDK_URL,
            lambda route: route.fulfill(body=FAKE_JSSDK, content_type="application/javascript"),
        )
        phone.allowed_hosts.add(jssdk.JSSDK_HOST)  # answered above, never fetched
        phone.open(f"/a/{slug}?from=朋友圈&tag=a b#p1")
        page.wait_for_function("window.__wxFriend !== undefined")
        config = page.evaluate("window.__wxConfig")
        assert config["appId"] == fake.appid
        assert config["jsApiList"] == ["updateAppMessageShareData", "updateTimelineShareData"]
        [ticket] = fake.tickets
        # Signed for the address WeChat signs: the phone's own location.href without the #.
        href = page.evaluate("window.location.href.split('#')[0]")
        assert "%E6%9C%8B" in href
        assert config["signature"] == jssdk.signature(
            ticket, config["nonceStr"], config["timestamp"], href
        )
        friend = page.evaluate("window.__wxFriend")
        assert friend["title"] == "一分钟读懂复利" and friend["desc"] == "复利是时间的朋友"
        assert friend["link"] == f"{phone.server.url}/a/{slug}"
        assert page.evaluate("window.__wxMoments")["link"] == friend["link"]
        no_sideways_scroll(page)
        phone.screenshot("wechat-share-article")


def test_the_wechat_desk_lists_keywords_and_messages(phone, app, make_user):
    from content import articles
    from content.articles import Draft
    from tests.conftest import log_in
    from wechat import replies

    with app.app_context():
        articles.save_article(
            Draft(title="读书的方法", body_md="正文。", keywords="读书 阅读", status="published")
        )
    with app.test_request_context():
        for i, text in enumerate(["读书", "怎么加入会员"]):
            replies.receive(
                {
                    "ToUserName": "gh_1",
                    "FromUserName": "oFOLLOWER0000000001",
                    "MsgType": "text",
                    "Content": text,
                    "MsgId": str(900 + i),
                    "CreateTime": "1",
                }
            )
    make_user("editor@example.com", role="editor")
    log_in(phone, "editor@example.com")
    phone.open("/editor/wechat/")
    page = phone.page
    expect(page.locator("#keywords .keyword")).to_have_count(2)
    expect(page.locator(".wechat-message")).to_have_count(2)
    expect(page.locator(".wechat-message").last).to_contain_text("图文：读书的方法")
    no_sideways_scroll(page)
    phone.screenshot("desk-wechat")
