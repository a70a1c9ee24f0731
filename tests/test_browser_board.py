"""The board in real Chromium on a phone: a member asks, another member answers (with an image
uploaded through htmx) and votes in place, the asker accepts the answer and it moves to the
top; a reader sees a join prompt where the answer form would be."""

from __future__ import annotations

import re
from io import BytesIO

import pytest
from PIL import Image
from playwright.sync_api import expect

from members import accounts
from tests.conftest import log_in, no_sideways_scroll

pytestmark = pytest.mark.browser


def png() -> bytes:
    out = BytesIO()
    Image.new("RGB", (600, 400), (194, 65, 12)).save(out, "PNG")
    return out.getvalue()


def switch_to(phone, email: str | None) -> None:
    phone.page.context.clear_cookies()
    if email is not None:
        log_in(phone, email)


def test_a_question_answered_voted_and_accepted_on_a_phone(phone, app, make_user):
    for email in ("member@example.com", "member2@example.com"):
        make_user(email)
        with app.app_context():
            accounts.grant_membership(email, "普通会员", 365, reason="测试")
    page = phone.page

    # member@ asks a question.
    log_in(phone, "member@example.com")
    phone.open("/board/")
    page.get_by_role("link", name="发帖").click()
    page.select_option("#f-section", label="问答")
    page.fill("#f-title", "孩子十岁不爱读书，怎样培养阅读习惯？")
    page.fill("#f-tags", "亲子 阅读 习惯")
    page.fill("#f-body", "儿子放学回家只想玩平板，买了很多书基本没翻过。有没有过来人分享一下？")
    no_sideways_scroll(page)
    phone.screenshot("board-new-thread")
    page.get_by_role("button", name="发布", exact=True).click()
    expect(page.locator("h1")).to_have_text("孩子十岁不爱读书，怎样培养阅读习惯？")
    thread_url = page.url

    # Another member answers, with an image uploaded in place, and votes for the question.
    switch_to(phone, "member2@example.com")
    page.goto(thread_url)
    page.set_input_files(
        "#f-image", files=[{"name": "shelf.png", "mimeType": "image/png", "buffer": png()}]
    )
    page.locator(".upload-form").get_by_role("button", name="上传").click()
    snippet = page.locator("#upload-result input.copy")
    expect(snippet).to_have_value(re.compile(r"^!\[\]\(/media/[0-9a-f]{40}\.png\)$"))
    page.fill(
        "#f-body",
        "先读他感兴趣的书，大人也一起读，读完聊聊而不是考他。\n\n" + snippet.input_value(),
    )
    page.get_by_role("button", name="发布回答").click()
    answer = page.locator("#answers .post").first
    expect(answer.locator(".post-body img")).to_be_visible()
    page.evaluate("window.stillHere = true")  # gone if the page reloads
    vote = page.locator("article.thread .vote-button")
    expect(vote).to_have_attribute("aria-pressed", "false")
    vote.click()
    expect(vote).to_have_attribute("aria-pressed", "true")
    expect(vote.locator(".vote-count")).to_have_text("1")
    assert page.evaluate("window.stillHere === true")
    no_sideways_scroll(page)
    phone.screenshot("board-thread-voted")
    vote.click()
    expect(vote).to_have_attribute("aria-pressed", "false")
    expect(vote.locator(".vote-count")).to_have_text("0")
    vote.click()
    expect(vote.locator(".vote-count")).to_have_text("1")
    assert page.evaluate("window.stillHere === true")

    # A second, later answer by the asker; then the asker accepts the first one.
    switch_to(phone, "member@example.com")
    page.goto(thread_url)
    page.fill("#f-body", "谢谢，今晚就试试全家一起读。")
    page.get_by_role("button", name="发布回答").click()
    first_answer = page.locator("#answers .post").first
    expect(first_answer).to_contain_text("先读他感兴趣的书")
    page.locator("#answers .post").filter(has_text="先读他感兴趣的书").get_by_role(
        "button", name="采纳"
    ).click()
    expect(page.locator("#notice")).to_contain_text("已采纳这个回答。")
    top = page.locator("#answers .post").first
    expect(top).to_have_class("post post-accepted")
    expect(top.locator(".badge")).to_have_text("已采纳")
    no_sideways_scroll(page)
    phone.screenshot("board-thread-accepted")

    # A reader sees the thread and a join prompt where the form would be.
    switch_to(phone, None)
    page.goto(thread_url)
    expect(page.locator("#answer .join-prompt")).to_be_visible()
    expect(page.locator("#answer-form")).to_have_count(0)
    no_sideways_scroll(page)
    phone.screenshot("board-thread-reader")
    phone.open("/board/")
    expect(page.locator("#thread-list .thread-item")).to_have_count(1)
    no_sideways_scroll(page)
    phone.screenshot("board-index")
