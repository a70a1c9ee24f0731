"""The moderation desk and notifications in real Chromium on a phone: an editor hides a
reported answer with a reason from the queue; its author sees the unread badge on the 我的 tab
appear (htmx) and reads why on /me/notifications."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from werkzeug.datastructures import MultiDict

from app import db
from board import posts
from members import accounts
from members.models import Role, User
from tests.conftest import log_in, no_sideways_scroll

pytestmark = pytest.mark.browser


def reported_answer(app) -> tuple[int, int]:
    """A question, an answer with a long unbroken line, and a report of it."""
    with app.app_context():
        for name in ("asker", "answerer", "editor"):
            role = Role.EDITOR if name == "editor" else Role.READER
            accounts.create_user(f"{name}@example.com", "correct horse", role=role)
        for name in ("asker", "answerer"):
            accounts.grant_membership(f"{name}@example.com", "年度会员", 365, reason="测试")
        asker, answerer = (
            db.session.scalar(db.select(User).where(User.email == f"{n}@example.com"))
            for n in ("asker", "answerer")
        )
        form = MultiDict(
            {
                "section": "1",
                "title": "有没有适合通勤路上听的书？每天地铁单程四十分钟，想把时间用起来",
                "tags": "通勤 听书",
                "body": "最好是能听懂的，不需要看图表。",
            }
        )
        thread = posts.start_thread(asker, posts.check_thread(form))
        reply = posts.answer(
            answerer,
            thread.id,
            "加我微信领取全套课程 https://example.com/a-very-long-link-that-never-breaks-"
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
        )
        posts.report(asker, reply.id, "广告，留了外部链接和微信")
        return thread.id, reply.id


def test_an_editor_hides_a_reported_post_and_its_author_is_told(phone, app):
    thread_id, answer_id = reported_answer(app)
    page = phone.page
    log_in(phone, "editor@example.com")
    phone.open("/editor/board/")
    item = page.locator(f"#queue [data-post='{answer_id}']")
    expect(item).to_contain_text("1 次举报")
    expect(item).to_contain_text("广告，留了外部链接和微信")
    no_sideways_scroll(page)
    phone.screenshot("desk-board-queue")

    # No reason: the browser's own check is switched off, the server's must hold alone.
    page.evaluate("document.querySelectorAll('form').forEach(f => f.noValidate = true)")
    item.get_by_role("button", name="隐藏").click()
    expect(page.locator("#e-hide-reason")).to_contain_text("请写明原因")
    no_sideways_scroll(page)
    phone.screenshot("desk-board-post-error")
    page.fill("#f-hide-reason", "广告引流")
    page.get_by_role("button", name="隐藏").click()
    expect(page.locator("#notice")).to_contain_text("已隐藏")
    expect(page.locator("#post-status")).to_contain_text("广告引流")
    expect(page.locator("#thread-log")).to_contain_text("广告引流")
    no_sideways_scroll(page)
    phone.screenshot("desk-board-post")
    phone.open("/editor/board/log")
    expect(page.locator("#log [data-action=hide]")).to_contain_text("editor@example.com")
    no_sideways_scroll(page)
    phone.screenshot("desk-board-log")

    page.context.clear_cookies()
    log_in(phone, "answerer@example.com")
    badge = page.locator("nav.tabbar .tab-count")
    expect(badge).to_have_text("1")  # loaded by htmx after the page
    phone.screenshot("me-unread-badge")
    page.locator(".menu a[href='/me/notifications']").click()
    expect(page.locator("#notifications [data-kind=hidden]")).to_contain_text("原因：广告引流")
    no_sideways_scroll(page)
    phone.screenshot("me-notifications")
    page.reload()
    expect(page.locator("#notifications .unread")).to_have_count(0)
    expect(badge).to_have_count(0)
