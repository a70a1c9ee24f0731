"""The join page as readers meet it: before, during and after a window; joining with the dev
cashier; the member card on /me; the renewal banner."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import db
from content import articles
from content.articles import Draft
from members import enrollment
from members.models import EnrollmentReminder, User
from shop.models import Order
from tests.conftest import csrf_token_from, html, post_form, sql_of
from tests.test_content import MEMBERS_BODY
from tests.test_enrollment import CLOSES, OPENS, SECOND, new_user, setup_tiers


def orders() -> int:
    return db.session.scalar(select(func.count(Order.id))) or 0


def join_form(client, slug: str = "putong"):
    return post_form(client, f"/join/{slug}", {}, token_from="/join")


def test_without_any_window_the_page_says_so(client):
    page = html(client.get("/join"))
    assert "暂无会员招募" in page.select_one("#join-live").get_text()
    assert page.select_one("form[action^='/join/']") is None


def test_before_the_window_tiers_seats_and_a_countdown_to_the_opening_second(
    app, client, clock, make_user, login
):
    setup_tiers(app, seats=5000, iron=500)
    clock.set(OPENS - timedelta(hours=1, seconds=1))
    page = html(client.get("/join"))
    live = page.select_one("#join-live")
    text = " ".join(live.get_text().split())
    assert "2026年11月21日 10:00 开放" in text
    assert "普通会员" in text and "¥200.00" in text and "名额 5000 个" in text
    assert "铁杆会员" in text and "名额 500 个" in text and "线下活动" in text
    assert live.select_one("[data-countdown]")["data-countdown"] == "3601"
    # Not polling yet: it refreshes when the countdown ends.
    assert live["hx-trigger"] == "started"
    # An anonymous reader is asked to log in for the reminder.
    assert "登录后订阅开放提醒" in page.select_one("#remind").get_text()

    make_user()
    login()
    page = html(client.get("/join"))
    hidden = page.select("#join-live form[data-countdown-reveal][hidden]")
    assert len(hidden) == 2  # revealed by the countdown at zero
    response = post_form(client, "/join/remind", {"window": "1"}, token_from="/join")
    assert response.status_code == 303
    page = html(client.get("/join", follow_redirects=True))
    assert "已订阅" in page.select_one("#remind").get_text()
    response = post_form(client, "/join/remind", {"window": "1"}, token_from="/join")
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(EnrollmentReminder)) == 1


@pytest.mark.parametrize("window", ["", "abc", "99", "1; drop"])
def test_a_reminder_for_no_window_is_404(app, client, make_user, login, window):
    setup_tiers(app)
    make_user()
    login()
    response = post_form(client, "/join/remind", {"window": window}, token_from="/join")
    assert response.status_code == 404


def test_joining_at_0959_59_is_refused_and_at_1000_00_goes_to_the_cashier(
    app, client, clock, make_user, login
):
    setup_tiers(app)
    make_user()
    login()
    clock.set(OPENS - SECOND)
    response = join_form(client)
    assert response.status_code == 409
    assert "招募还没有开始" in html(response).select_one(".join-hero .error").get_text()
    with app.app_context():
        assert orders() == 0
    clock.set(OPENS)
    response = join_form(client)
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/pay/")


def test_a_fresh_reader_joins_pays_gets_a_numbered_card_and_reads_members_only(
    app, client, clock, make_user, login
):
    setup_tiers(app)
    with app.app_context():
        slug = articles.save_article(
            Draft(title="会员文章", body_md=MEMBERS_BODY, status="published", visibility="members")
        ).slug
    clock.set(OPENS + timedelta(minutes=5))
    make_user()
    login()
    assert "秘密段落" not in client.get(f"/a/{slug}").get_data(as_text=True)
    response = join_form(client, "tiegan")
    pay_page = response.headers["Location"]
    number = pay_page.rsplit("/", 1)[1]
    assert "¥1200.00" in html(client.get(pay_page)).get_text()
    response = post_form(client, f"/pay/{number}/dev", {"result": "success"}, token_from=pay_page)
    assert response.status_code == 303
    order_page = html(client.get(f"/orders/{number}"))
    assert "已完成" in order_page.get_text()
    card = html(client.get("/me")).select_one("#member-card")
    text = " ".join(card.get_text().split())
    assert "第 1 号会员" in text and "铁杆会员" in text
    assert "有效期至 2027年11月21日" in text and "线下活动" in text
    prose = html(client.get(f"/a/{slug}")).select_one(".prose").get_text()
    assert "秘密段落" in prose
    # The join page now says so, with no second button.
    live = html(client.get("/join")).select_one("#join-live")
    assert "你已加入本期招募" in live.get_text()
    assert live.select_one("form") is None
    assert join_form(client).status_code == 409


def test_a_full_tier_refuses_with_a_clear_message_and_no_order(
    app, client, clock, make_user, login
):
    setup_tiers(app, seats=1, iron=1)
    clock.set(OPENS)
    other = new_user(app, "x@example.com")
    with app.app_context():
        enrollment.join(db.session.get(User, other), "putong")
    make_user()
    login()
    live = html(client.get("/join")).select_one("#join-live")
    assert "已满" in live.get_text()
    assert len(live.select("form")) == 1  # only 铁杆会员 still has a seat
    token = csrf_token_from(client, "/join")
    for _ in range(2):  # the first answer is rendered, the second kept
        response, statements = sql_of(
            app, lambda: client.post("/join/putong", data={"csrf_token": token})
        )
        assert response.status_code == 409
        page = html(response)
        assert "本期普通会员名额已满" in page.select_one(".error").get_text()
        assert page.select_one(".join-hero a.button")["href"] == "/join"  # the way back
    # Told from the seats alone, before the reader is loaded.
    assert not [s for s in statements if "users" in s or "login_sessions" in s], statements
    with app.app_context():
        assert orders() == 1
    # A tier that has seats still takes this reader's join.
    assert post_form(client, "/join/tiegan", {}, token_from="/join").status_code == 303


def test_the_renewal_period_page_and_joins(app, client, clock, make_user, login):
    setup_tiers(app, renewal_hours=24)
    clock.set(OPENS - timedelta(hours=2))
    make_user()
    make_user("member@example.com")
    with app.app_context():
        enrollment.grant(
            db.session.scalar(select(User.id).where(User.email == "member@example.com")),
            "putong",
            10,
            actor=None,
            reason="测试",
        )
    login()
    live = html(client.get("/join")).select_one("#join-live")
    assert "续费优先期" in live.get_text()
    assert live.select_one("form:not([hidden])") is None
    assert live.select_one("[data-countdown]")["data-countdown"] == "7200"
    response = join_form(client)
    assert response.status_code == 409
    assert "续费优先期" in html(response).select_one(".error").get_text()
    client.post("/logout", data={"csrf_token": "x"})
    client.delete_cookie("session")
    login("member@example.com")
    live = html(client.get("/join")).select_one("#join-live")
    assert "every 3s" in live["hx-trigger"]
    buttons = [b.get_text() for b in live.select("form:not([hidden]) button")]
    assert buttons == ["续费 普通会员", "续费 铁杆会员"]
    assert join_form(client).status_code == 303


def test_after_the_window_it_is_closed(app, client, clock):
    setup_tiers(app)
    clock.set(CLOSES)
    live = html(client.get("/join")).select_one("#join-live")
    assert "2027 会员招募已结束" in live.get_text()
    assert live.select_one("form") is None
    assert "every" not in live["hx-trigger"]


def test_the_live_block_is_a_fragment_polled_during_the_window(app, client, clock):
    setup_tiers(app)
    clock.set(OPENS)
    response = client.get("/join/live", headers={"HX-Request": "true"})
    fragment = html(response)
    assert fragment.select_one("html") is None
    assert "剩余 5 / 5 个名额" in " ".join(fragment.get_text().split())


def test_joining_needs_a_login_and_a_form_token(app, client, clock, make_user, login):
    setup_tiers(app)
    clock.set(OPENS)
    response = join_form(client)
    assert response.status_code == 302 and "/login" in response.headers["Location"]
    make_user()
    login()
    assert client.post("/join/putong").status_code == 400
    with app.app_context():
        assert orders() == 0


def test_the_renewal_banner_shows_in_the_last_thirty_days(app, client, clock, make_user, login):
    setup_tiers(app)
    make_user()
    with app.app_context():
        enrollment.grant(1, "putong", 40, actor=None, reason="测试")
    login()
    ends = clock.at + timedelta(days=40)
    clock.set(ends - timedelta(days=30, seconds=1))
    assert html(client.get("/")).select_one(".renewal-banner") is None
    clock.set(ends - timedelta(days=30))
    for path in ("/", "/me"):
        banner = html(client.get(path)).select_one(".renewal-banner")
        assert banner is not None, path
        assert "到期" in banner.get_text()
        assert banner.select_one("a")["href"] == "/join"


def test_me_for_a_non_member_shows_what_membership_gives_and_when(
    app, client, clock, make_user, login
):
    setup_tiers(app)
    make_user()
    login()
    invite = html(client.get("/me")).select_one("#join-invite")
    text = " ".join(invite.get_text().split())
    assert "普通会员 ¥200.00 / 365 天" in text and "社群发帖" in text
    assert "2027 会员招募将于 2026年11月21日 10:00 开放" in text


def test_members_only_reading_stops_at_ends_at(app, client, clock, make_user, login):
    with app.app_context():
        slug = articles.save_article(
            Draft(title="会员文章", body_md=MEMBERS_BODY, status="published", visibility="members")
        ).slug
    make_user()
    with app.app_context():
        enrollment.grant(1, "年度会员", 10, actor=None, reason="测试")
    login()
    ends = clock.at + timedelta(days=10)
    clock.set(ends - SECOND)
    assert "秘密段落" in client.get(f"/a/{slug}").get_data(as_text=True)
    clock.set(ends)
    page = client.get(f"/a/{slug}").get_data(as_text=True)
    assert "秘密段落" not in page and "以下内容仅会员可读" in page
