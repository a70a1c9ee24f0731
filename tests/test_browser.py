"""Journeys in real Chromium, as a phone in WeChat's in-app browser sees them."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.conftest import PHONE, log_in, no_sideways_scroll

pytestmark = pytest.mark.browser


def test_home_on_a_phone(phone):
    page = phone.page
    phone.open("/")
    expect(page.locator(".today h1")).to_be_visible()
    tabbar = page.locator("nav.tabbar")
    box = tabbar.bounding_box()
    assert box is not None
    assert box["y"] + box["height"] == pytest.approx(PHONE["viewport"]["height"], abs=1)
    for tab in page.locator("nav.tabbar a").all():
        tab_box = tab.bounding_box()
        assert tab_box and tab_box["height"] >= 44 and tab_box["width"] >= 44
    no_sideways_scroll(page)
    assert page.evaluate("typeof htmx") == "object"
    assert page.evaluate("htmx.version").startswith("2.0.")
    phone.screenshot("home")


def test_sign_up_then_see_my_page(phone):
    page = phone.page
    phone.open("/signup")
    page.fill("#f-email", "weixin-reader@example.com")
    page.fill("#f-password", "short")
    page.fill("#f-phone", "13800138000")
    # The browser's own check would stop a too-short password; the server's must hold alone.
    page.evaluate("document.querySelector('form.form').noValidate = true")
    page.click("button[type=submit]")
    expect(page.locator("#e-password")).to_contain_text("密码长度")
    expect(page.locator("#f-email")).to_have_value("weixin-reader@example.com")
    phone.screenshot("signup-error")
    page.fill("#f-password", "a long enough password")
    page.click("button[type=submit]")
    expect(page).to_have_url(phone.server.url + "/me")
    expect(page.locator(".profile .email")).to_have_text("weixin-reader@example.com")
    expect(page.locator("nav.tabbar a[aria-current=page]")).to_contain_text("我的")
    no_sideways_scroll(page)
    phone.screenshot("me")


def test_log_in_wrong_then_right_then_out(phone, make_user):
    make_user("reader@example.com", "correct horse")
    page = phone.page
    phone.open("/me")
    expect(page).to_have_url(phone.server.url + "/login?next=/me")
    page.fill("#f-email", "reader@example.com")
    page.fill("#f-password", "wrong horse")
    page.click("button[type=submit]")
    expect(page.locator("#e-password")).to_have_text("邮箱或密码不正确。")
    phone.screenshot("login-error")
    page.fill("#f-password", "correct horse")
    page.click("button[type=submit]")
    expect(page).to_have_url(phone.server.url + "/me")
    page.click("text=退出登录")
    expect(page.locator("#notice")).to_contain_text("你已退出登录")
    expect(page).to_have_url(phone.server.url + "/")


def test_change_password_in_place_with_htmx(phone, make_user):
    make_user()
    log_in(phone)
    page = phone.page
    phone.open("/me/password")
    page.evaluate("window.samePage = true")
    page.fill("#f-current_password", "not my password")
    page.fill("#f-new_password", "battery staple")
    page.fill("#f-confirm_password", "battery staple")
    page.click("#password-form button[type=submit]")
    expect(page.locator("#e-current_password")).to_have_text("当前密码不正确。")
    assert page.evaluate("window.samePage") is True  # swapped in place, no reload
    page.fill("#f-current_password", "correct horse")
    page.fill("#f-new_password", "battery staple")
    page.fill("#f-confirm_password", "battery staple")
    page.click("#password-form button[type=submit]")
    expect(page.locator("#password-form .success")).to_contain_text("密码已修改")
    assert page.evaluate("window.samePage") is True
    phone.screenshot("password-changed")


def test_an_expired_form_token_on_htmx_reloads_the_page(phone, make_user, app):
    make_user()
    log_in(phone)
    page = phone.page
    phone.open("/me/password")
    page.evaluate("window.samePage = true")
    # As if the tab had been left open past the token's life: the server refuses every token.
    app.config["WTF_CSRF_TIME_LIMIT"] = -1
    page.fill("#f-current_password", "correct horse")
    page.fill("#f-new_password", "battery staple")
    page.fill("#f-confirm_password", "battery staple")
    with page.expect_navigation():
        page.click("#password-form button[type=submit]")
    expect(page.locator("#password-form")).to_be_visible()
    assert page.evaluate("window.samePage") is None  # the page reloaded itself
    expect(page.locator("#f-current_password")).to_have_value("")


def test_everything_works_with_javascript_off(browser, live_server, make_user):
    make_user()
    context = browser.new_context(**PHONE, java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(live_server.url + "/login")
        page.fill("#f-email", "reader@example.com")
        page.fill("#f-password", "correct horse")
        page.click("button[type=submit]")
        expect(page).to_have_url(live_server.url + "/me")
        page.goto(live_server.url + "/me/password")
        page.fill("#f-current_password", "correct horse")
        page.fill("#f-new_password", "battery staple")
        page.fill("#f-confirm_password", "battery staple")
        page.click("#password-form button[type=submit]")
        expect(page).to_have_url(live_server.url + "/me")
        expect(page.locator("#notice")).to_contain_text("密码已修改")
    finally:
        context.close()


def test_dark_mode_and_error_page(phone):
    page = phone.page
    page.emulate_media(color_scheme="dark")
    response = phone.open("/no-such-page")
    assert response is not None and response.status == 404
    expect(page.locator("h1")).to_have_text("页面不存在")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(20, 19, 17)"
    phone.screenshot("404-dark")


def test_a_proxy_error_keeps_what_was_typed(phone, make_user):
    """A 502 page from a proxy (no HX-Retarget) must not replace the form being filled in."""
    make_user()
    log_in(phone)
    page = phone.page
    phone.open("/me/password")
    page.route(
        "**/me/password",
        lambda route: (
            route.fulfill(status=502, body="<html><body>Bad Gateway</body></html>")
            if route.request.method == "POST"
            else route.continue_()
        ),
    )
    page.fill("#f-current_password", "correct horse")
    page.fill("#f-new_password", "battery staple")
    page.fill("#f-confirm_password", "battery staple")
    page.click("#password-form button[type=submit]")
    expect(page.locator("#notice")).to_contain_text("服务器暂时没有响应")
    expect(page.locator("#f-new_password")).to_have_value("battery staple")
    assert "Bad Gateway" not in page.content()
    phone.server_errors.clear()  # the 502 was ours
    phone.problems.clear()  # htmx logs the failed response
    phone.screenshot("proxy-error")


def test_reading_today_and_a_members_only_piece_on_a_phone(phone, app):
    with app.app_context():
        from content import demo

        demo.load()
    page = phone.page
    phone.open("/")
    expect(page.locator(".today h1")).to_have_text("晨读的第一天")
    expect(page.locator(".keyword-hint")).to_contain_text("晨读")
    no_sideways_scroll(page)
    phone.screenshot("home-today")
    page.fill("#k-q", "复利")
    page.press("#k-q", "Enter")
    expect(page.locator("article h1")).to_have_text("知识的复利")
    expect(page.locator(".join-invite")).to_contain_text("以下内容仅会员可读")
    assert "给会员的完整内容" not in page.content()
    no_sideways_scroll(page)
    phone.screenshot("article-members-preview")
    phone.open("/archive")
    expect(page.locator("#archive-items .item")).to_have_count(14)
    phone.screenshot("archive")
