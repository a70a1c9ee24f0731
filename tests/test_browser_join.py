"""Membership in real Chromium on a phone: the join page counting down to the opening second,
the join buttons appearing without a reload, a seat paid at the dev cashier, and the numbered
member card on /me."""

from __future__ import annotations

from datetime import timedelta

import pytest
from playwright.sync_api import expect

from members import enrollment
from tests.conftest import log_in, no_sideways_scroll
from tests.test_enrollment import OPENS, setup_tiers

pytestmark = pytest.mark.browser


def test_countdown_opens_the_window_then_a_reader_joins_and_gets_a_card(
    phone, app, clock, make_user
):
    setup_tiers(app, seats=5000, iron=500)
    make_user()
    clock.set(OPENS - timedelta(minutes=10))
    log_in(phone)
    clock.set(OPENS - timedelta(seconds=3))
    page = phone.page
    phone.open("/join")
    expect(page.locator("[data-countdown]")).to_be_visible()
    buttons = page.locator("#join-live form button")
    expect(buttons.first).to_be_hidden()
    no_sideways_scroll(page)
    phone.screenshot("join-countdown")
    clock.set(OPENS)  # the server's instant reaches the opening second as the phone counts
    expect(page.locator("#join-live .stock")).to_contain_text("招募进行中", timeout=8000)
    expect(page.locator("#join-live .seats").first).to_contain_text("剩余 5000 / 5000")
    expect(buttons.first).to_be_visible()
    assert page.url.endswith("/join")  # no reload, no navigation
    phone.screenshot("join-open")

    page.get_by_role("button", name="立即加入 普通会员").click()
    expect(page.locator("h1")).to_contain_text("¥200.00")
    page.get_by_role("button", name="模拟支付成功").click()
    expect(page.locator(".order")).to_contain_text("已完成")
    phone.open("/me")
    card = page.locator("#member-card")
    expect(card).to_contain_text("第 1 号会员")
    expect(card).to_contain_text("普通会员")
    no_sideways_scroll(page)
    phone.screenshot("join-member-card")
    phone.open("/join")
    expect(page.locator("#join-live")).to_contain_text("你已加入本期招募")
    expect(page.locator("#join-live .seats").first).to_contain_text("剩余 4999 / 5000")


def test_renewal_banner_on_a_phone(phone, app, clock, make_user):
    setup_tiers(app, renewal_hours=24)
    make_user()
    with app.app_context():
        enrollment.grant(1, "tiegan", 20, actor=None, reason="测试")
    log_in(phone)
    phone.open("/")
    banner = phone.page.locator(".renewal-banner")
    expect(banner).to_contain_text("到期")
    expect(banner).to_contain_text("2027 会员招募正在进行，现在就可以续费")
    no_sideways_scroll(phone.page)
    phone.screenshot("home-renewal-banner")


def test_the_enrollment_desk_on_a_phone(phone, app, clock, make_user):
    """An admin watches the window's dashboard count a seat paid while it is open, then grants
    a membership by hand with a reason."""
    from app import db
    from members.models import User
    from shop import payments
    from tests.test_enrollment import new_user

    setup_tiers(app, seats=50, iron=5)
    make_user("admin@example.com", role="admin")
    clock.set(OPENS - timedelta(minutes=5))
    log_in(phone, "admin@example.com")
    clock.set(OPENS + timedelta(minutes=20))
    with app.app_context():
        for n in range(3):
            buyer = new_user(app, f"b{n}@example.com")
            seated = enrollment.join(db.session.get(User, buyer), "putong" if n else "tiegan")
            if n < 2:
                payments.record_payment(
                    seated.number,
                    provider="dev",
                    transaction_id=f"t-{n}",
                    amount_fen=seated.total_fen,
                    paid_at=clock.at,
                )
    page = phone.page
    phone.open("/editor/members/")
    expect(page.get_by_text("2027 会员招募").first).to_be_visible()
    no_sideways_scroll(page)
    phone.screenshot("desk-members-overview")
    phone.open("/editor/members/windows/1")
    expect(page.locator("svg").first).to_be_visible()
    expect(page.get_by_text("¥1400.00").first).to_be_visible()
    no_sideways_scroll(page)
    phone.screenshot("desk-members-window")
    phone.open("/editor/members/users/2")
    expect(page.get_by_text("第 1 号").first).to_be_visible()
    no_sideways_scroll(page)
    phone.screenshot("desk-members-user")
