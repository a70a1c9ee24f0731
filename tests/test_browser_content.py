"""The daily content in real Chromium on a phone: the voice player, search as you type, and
the editor desk with its live preview and autosave."""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import expect

from content import articles, media
from content.articles import Draft
from tests.conftest import log_in, no_sideways_scroll

pytestmark = pytest.mark.browser

FIXTURES = Path(__file__).parent / "fixtures"


def test_the_voice_player_and_its_speed_buttons(phone, app):
    with app.app_context(), open(FIXTURES / "tone.mp3", "rb") as f:
        voice = media.save_audio(f)
        articles.save_article(
            Draft(
                title="今天的语音",
                summary="六十秒，一个关键词。",
                body_md="正文。",
                keywords="语音",
                status="published",
                slug="voice",
                voice_id=voice.id,
            )
        )
    page = phone.page
    # What each page load moved after its first paint (Lighthouse counts it as layout shift):
    # the page's own elements, by tag and class. Chromium's player may move parts of its own
    # controls (they have no node in the page), which is not ours to hold still.
    page.add_init_script(
        """window.__shifts = [];
        new PerformanceObserver((list) => {
            for (const entry of list.getEntries()) {
                for (const source of entry.sources) {
                    if (source.node) {
                        window.__shifts.push(source.node.nodeName + "." + source.node.className);
                    }
                }
            }
        }).observe({type: "layout-shift", buffered: true});"""
    )
    phone.open("/")
    expect(page.locator(".today .voice audio")).to_have_attribute("preload", "none")
    expect(page.locator(".today .voice .speeds")).to_be_visible()
    assert page.evaluate("window.__shifts") == []  # revealing the speed buttons moved nothing
    phone.screenshot("home-voice")
    phone.open("/a/voice")
    speeds = page.locator(".voice .speeds")
    expect(speeds).to_be_visible()
    assert page.evaluate("window.__shifts") == []
    page.click("button[data-speed='1.5']")
    assert page.evaluate("document.querySelector('.voice audio').playbackRate") == 1.5
    expect(page.locator("button[data-speed='1.5']")).to_have_attribute("aria-pressed", "true")
    expect(page.locator("button[data-speed='1']")).to_have_attribute("aria-pressed", "false")
    # The browser can load and decode the voice through our Range-serving route.
    duration = page.evaluate(
        """() => new Promise((resolve) => {
            const audio = document.querySelector('.voice audio');
            audio.preload = 'metadata';
            audio.addEventListener('loadedmetadata', () => resolve(audio.duration));
            audio.load();
        })"""
    )
    assert 1.5 < duration < 2.5
    no_sideways_scroll(page)
    phone.screenshot("article-voice")


def test_search_as_you_type(phone, app):
    with app.app_context():
        articles.save_article(
            Draft(
                title="罗辑思维：把知识变成习惯",
                body_md="知识的价值在于用起来。罗辑思维每天六十秒。",
                status="published",
                slug="luoji",
            )
        )
        articles.save_article(Draft(title="历史的细节", body_md="史记。", status="published"))
    page = phone.page
    phone.open("/search")
    page.locator("#s-q").press_sequentially("思维", delay=50)
    expect(page.locator("#results .item")).to_have_count(1)
    expect(page.locator("#results .item-title mark")).to_have_text("思维")
    expect(page).to_have_url(phone.server.url + "/search?q=%E6%80%9D%E7%BB%B4")
    no_sideways_scroll(page)
    phone.screenshot("search")
    phone.open("/k?q=思维")
    expect(page.locator("#results .item")).to_have_count(1)


def test_an_editor_writes_with_live_preview_and_autosave(phone, app, make_user):
    make_user("editor@example.com", role="editor")
    page = phone.page
    page.clock.install()
    log_in(phone, "editor@example.com")
    phone.open("/editor/new")
    page.fill("#f-title", "明天的晨读")
    page.fill("#f-body_md", "人人可读的开头。\n\n<!--more-->\n\n只给会员的部分。")
    page.clock.run_for(1000)  # the preview's debounce
    expect(page.locator("#preview")).to_contain_text("只给会员的部分")
    page.check("#f-visibility-members")
    page.check("input[name=preview_as][value=guest]")
    expect(page.locator("#preview")).not_to_contain_text("只给会员的部分")
    expect(page.locator("#preview .join-invite")).to_be_visible()
    no_sideways_scroll(page)
    phone.screenshot("desk-new-preview")
    page.clock.run_for(31_000)  # the autosave interval
    expect(page.locator("#autosave-status")).to_contain_text("草稿已于")
    article_id = page.locator("#f-article_id").input_value()
    assert article_id.isdigit()
    expect(page).to_have_url(phone.server.url + f"/editor/a/{article_id}")
    page.select_option("#f-status", "scheduled")
    page.fill("#f-publish_at", "2026-11-22 06:30")
    page.fill("#f-keywords", "明天")
    page.click("button.primary[type=submit]")
    expect(page.locator("#notice")).to_contain_text("将在设定时间发布")
    expect(page.locator("#f-title")).to_have_value("明天的晨读")
    phone.screenshot("desk-saved")
    phone.open("/editor/?state=scheduled")
    expect(page.locator(".desk-items .item-title")).to_have_text(["明天的晨读"])
    no_sideways_scroll(page)
    phone.screenshot("desk-list")


def test_a_member_gets_a_private_podcast_feed_on_my_page(phone, app, make_user):
    from members import accounts

    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    page = phone.page
    log_in(phone, "member@example.com")
    page.click("text=生成私人订阅地址")
    expect(page.locator("#notice")).to_contain_text("新的私人订阅地址已生成")
    url = page.locator("#podcast-url").input_value()
    assert url.startswith(phone.server.url + "/podcast/") and url.endswith(".xml")
    no_sideways_scroll(page)
    phone.screenshot("me-podcast")
    page.click("text=停用")
    expect(page.locator("#notice")).to_contain_text("已停用")
    expect(page.locator("#podcast-url")).to_have_count(0)
