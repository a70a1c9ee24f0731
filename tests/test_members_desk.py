"""The enrollment desk: only admins may use it; tier and window forms (every bad field is
named and changes nothing, overlapping windows are refused); the live window dashboard with
its numbers and its chart; the member list, lookups and CSV exports; grants and revocations
that need a reason and are logged with the admin as the actor."""

from __future__ import annotations

import codecs
import csv
import io
import re
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from app import db
from members import desk, enrollment
from members.enrollment import TierForm, WindowForm
from members.models import EnrollmentWindow, Membership, MembershipEvent, Tier, User, WindowSeat
from shop import payments
from shop.models import Order
from tests.conftest import csrf_token_from, html, post_form

# The window of these tests: 2026-11-21 10:00 to 2026-11-22 10:00, Shanghai time.
OPENS = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
CLOSES = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)


def setup_window(app, *, putong: int = 5, tiegan: int = 2) -> int:
    with app.app_context():
        enrollment.save_tier(TierForm("putong", "普通会员", "200", "365", "每日语音\n社群发帖"))
        enrollment.save_tier(TierForm("tiegan", "铁杆会员", "1200", "365", "全部权益"))
        window = enrollment.save_window(
            WindowForm(
                "2027 会员招募",
                "2026-11-21 10:00",
                "2026-11-22 10:00",
                "0",
                {"putong": str(putong), "tiegan": str(tiegan)},
            )
        )
        return window.id


def join(app, user_id: int, tier: str = "putong") -> str:
    """Take a seat; the pending order's number."""
    with app.app_context():
        seated = enrollment.join(db.session.get(User, user_id), tier)
        return seated.number


def pay(app, number: str) -> None:
    with app.app_context():
        order = db.session.scalar(select(Order).where(Order.number == number))
        outcome = payments.record_payment(
            number,
            provider="dev",
            transaction_id=f"t-{number}",
            amount_fen=order.total_fen,
            paid_at=order.created_at,
        )
        assert outcome == payments.Outcome.PAID


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


def counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: count(model)
            for model in (Tier, EnrollmentWindow, WindowSeat, Membership, MembershipEvent)
        }


def read_csv(response) -> list[list[str]]:
    data = response.get_data()
    assert data.startswith(codecs.BOM_UTF8)
    return list(csv.reader(io.StringIO(data[len(codecs.BOM_UTF8) :].decode("utf-8"))))


@pytest.fixture
def admin(client, make_user, login):
    client.admin_id = make_user("admin@example.com", role="admin")
    login("admin@example.com")
    return client


# --- who may use it --------------------------------------------------------------------------

PAGES = [
    "/editor/members/",
    "/editor/members/tiers/new",
    "/editor/members/tiers/1",
    "/editor/members/windows/new",
    "/editor/members/windows/1",
    "/editor/members/windows/1/live",
    "/editor/members/windows/1/edit",
    "/editor/members/windows/1/reminders.csv",
    "/editor/members/list",
    "/editor/members/find?email=member@example.com",
    "/editor/members/members.csv",
    "/editor/members/users/1",
]
ACTIONS = [
    "/editor/members/tiers/new",
    "/editor/members/tiers/1",
    "/editor/members/windows/new",
    "/editor/members/windows/1/edit",
    "/editor/members/users/1/grant",
    "/editor/members/users/1/revoke",
]
# What a successful action would change if it were let through.
ACTION_DATA = {
    "slug": "mingyu",
    "name": "名誉会员",
    "price": "1",
    "days": "30",
    "opens": "2027-11-21 10:00",
    "closes": "2027-11-22 10:00",
    "renewal_hours": "0",
    "seats-putong": "1",
    "tier": "putong",
    "reason": "测试",
}


def test_strangers_are_sent_to_log_in(app, client, make_user):
    setup_window(app)
    make_user("member@example.com")
    before = counts(app)
    for path in PAGES:
        response = client.get(path)
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    token = csrf_token_from(client, "/login")
    for path in ACTIONS:
        response = client.post(path, data={"csrf_token": token, **ACTION_DATA})
        assert response.status_code == 302, path
        assert response.headers["Location"].startswith("/login"), path
    assert counts(app) == before


@pytest.mark.parametrize("role", ["reader", "editor"])
def test_readers_and_editors_get_403_and_change_nothing(app, client, make_user, login, role):
    setup_window(app)
    make_user("member@example.com", role=role)
    login("member@example.com")
    before = counts(app)
    for path in PAGES:
        assert client.get(path).status_code == 403, path
    token = csrf_token_from(client, "/me")
    for path in ACTIONS:
        response = client.post(path, data={"csrf_token": token, **ACTION_DATA})
        assert response.status_code == 403, path
    assert counts(app) == before
    if role == "editor":
        nav = html(client.get("/editor/shop/")).select_one(".desk-nav")
        assert "会员" not in nav.get_text()


def test_admins_open_every_page(app, admin, make_user):
    setup_window(app)
    member_id = make_user("member@example.com")
    for path in PAGES:
        response = admin.get(path)
        if path.startswith("/editor/members/find"):
            assert response.status_code == 302
            assert response.headers["Location"] == f"/editor/members/users/{member_id}"
        else:
            assert response.status_code == 200, path
    nav = html(admin.get("/editor/members/")).select_one(".desk-nav")
    link = nav.select_one("a[href='/editor/members/']")
    assert link.get_text() == "会员" and link.has_attr("aria-current")


@pytest.mark.parametrize(
    "path",
    [
        "/editor/members/tiers/999",
        "/editor/members/windows/999",
        "/editor/members/windows/999/live",
        "/editor/members/windows/999/edit",
        "/editor/members/windows/999/reminders.csv",
        "/editor/members/users/999",
        "/editor/members/tiers/abc",
    ],
)
def test_what_does_not_exist_is_404(app, admin, path):
    setup_window(app)
    assert admin.get(path).status_code == 404


def test_actions_on_what_does_not_exist_are_404_and_change_nothing(app, admin):
    setup_window(app)
    before = counts(app)
    for path in (
        "/editor/members/tiers/999",
        "/editor/members/windows/999/edit",
        "/editor/members/users/999/grant",
        "/editor/members/users/999/revoke",
    ):
        response = post_form(admin, path, ACTION_DATA, token_from="/editor/members/")
        assert response.status_code == 404, path
    assert counts(app) == before


def test_desk_actions_need_the_form_token(app, admin):
    setup_window(app)
    before = counts(app)
    response = admin.post("/editor/members/tiers/new", data=ACTION_DATA)
    assert response.status_code == 400
    response = admin.post(f"/editor/members/users/{admin.admin_id}/grant", data=ACTION_DATA)
    assert response.status_code == 400
    assert counts(app) == before


# --- the overview ----------------------------------------------------------------------------


def test_the_overview_shows_the_window_tiers_and_links(app, admin, clock):
    page = html(admin.get("/editor/members/"))
    assert "还没有设置招募" in page.select_one("#moment").get_text()
    window_id = setup_window(app)
    page = html(admin.get("/editor/members/"))
    moment = page.select_one("#moment")
    assert "即将开始" in moment.get_text() and "2027 会员招募" in moment.get_text()
    assert moment.select_one(f"a[href='/editor/members/windows/{window_id}']") is not None
    clock.set(OPENS)
    page = html(admin.get("/editor/members/"))
    assert "招募中" in page.select_one("#moment").get_text()
    rows = page.select("#tiers tr[data-tier]")
    assert [r["data-tier"] for r in rows] == ["putong", "tiegan"]
    assert "¥200.00" in rows[0].get_text()
    assert rows[0].select_one("a[href^='/editor/members/tiers/']") is not None
    window = page.select_one(f"#windows [data-window='{window_id}']")
    assert "普通会员 0/5" in window.get_text()
    assert window.select_one(f"a[href='/editor/members/windows/{window_id}/edit']") is not None
    assert window.select_one(f"a[href='/editor/members/windows/{window_id}/reminders.csv']")
    for href in ("/editor/members/list", "/editor/members/members.csv"):
        assert page.select_one(f"a[href='{href}']") is not None, href


# --- tiers -----------------------------------------------------------------------------------


TIER = {"slug": "putong", "name": "普通会员", "price": "200", "days": "365", "perks": "语音\n社群"}


def test_an_admin_creates_and_edits_a_tier(app, admin):
    form = html(admin.get("/editor/members/tiers/new")).select_one("#tier-form")
    assert form.select_one("#f-days")["value"] == "365"
    response = post_form(admin, "/editor/members/tiers/new", TIER)
    assert response.status_code == 302 and response.headers["Location"] == "/editor/members/"
    with app.app_context():
        tier = db.session.scalar(select(Tier))
        assert (tier.slug, tier.name, tier.days) == ("putong", "普通会员", 365)
        assert tier.price_fen == 20000
        assert tier.perk_lines == ["语音", "社群"]
        tier_id = tier.id
    path = f"/editor/members/tiers/{tier_id}"
    form = html(admin.get(path)).select_one("#tier-form")
    assert form.select_one("#f-price")["value"] == "200.00"
    assert form.select_one("#f-perks").get_text() == "语音\n社群"
    response = post_form(admin, path, {**TIER, "price": "218.5", "name": "普通会员 2027"})
    assert response.status_code == 302
    with app.app_context():
        tier = db.session.get(Tier, tier_id)
        assert (tier.name, tier.price_fen) == ("普通会员 2027", 21850)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("slug", "Pu Tong", "标识只能用小写字母"),
        ("slug", "", "标识只能用小写字母"),
        ("name", "   ", "请填写等级名称"),
        ("price", "abc", "价格请填写金额"),
        ("price", "0", "价格必须大于 0"),
        ("price", "1.234", "最多两位小数"),
        ("days", "0", "有效天数请填 1 到"),
        ("days", "一年", "有效天数请填 1 到"),
        ("perks", "长" * 2001, "最多 2000 字"),
    ],
)
def test_a_bad_tier_is_refused_next_to_its_field(app, admin, field, value, message):
    response = post_form(admin, "/editor/members/tiers/new", {**TIER, field: value})
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one(f"#e-{field}").get_text()
    assert "等级还没有保存" in page.select_one("[role=alert]").get_text()
    typed = page.select_one("#f-name")["value"]
    assert typed == (value if field == "name" else TIER["name"])
    with app.app_context():
        assert count(Tier) == 0


def test_editing_a_tier_into_a_taken_slug_changes_nothing(app, admin):
    setup_window(app)
    with app.app_context():
        iron = db.session.scalar(select(Tier).where(Tier.slug == "tiegan"))
        iron_id, before = iron.id, (iron.slug, iron.name, iron.price_fen)
    path = f"/editor/members/tiers/{iron_id}"
    response = post_form(admin, path, {**TIER, "slug": "putong", "name": "铁杆会员"})
    assert response.status_code == 422
    page = html(response)
    assert "已被另一个等级使用" in page.select_one("#e-slug").get_text()
    assert page.select_one("#f-slug")["value"] == "putong"
    assert "等级没有改动" in page.select_one("[role=alert]").get_text()
    with app.app_context():
        iron = db.session.get(Tier, iron_id)
        assert (iron.slug, iron.name, iron.price_fen) == before


# --- windows ---------------------------------------------------------------------------------


WINDOW = {
    "name": "2028 会员招募",
    "opens": "2027-11-21 10:00",
    "closes": "2027-11-28T10:00",
    "renewal_hours": "48",
    "seats-putong": "5000",
    "seats-tiegan": "",
}


def test_an_admin_creates_a_window_with_a_cap_per_tier(app, admin):
    setup_window(app)
    form = html(admin.get("/editor/members/windows/new")).select_one("#window-form")
    assert form.select_one("#f-seats-putong") is not None
    assert form.select_one("#f-seats-tiegan") is not None
    response = post_form(admin, "/editor/members/windows/new", WINDOW)
    assert response.status_code == 302
    with app.app_context():
        window = db.session.scalar(select(EnrollmentWindow).where(EnrollmentWindow.id != 1))
        assert response.headers["Location"] == f"/editor/members/windows/{window.id}"
        assert window.opens_at == datetime(2027, 11, 21, 2, 0, tzinfo=UTC)
        assert window.closes_at == datetime(2027, 11, 28, 2, 0, tzinfo=UTC)
        assert window.renewal_hours == 48
        assert [(s.tier.slug, s.cap, s.available) for s in window.seats] == [("putong", 5000, 5000)]
        window_id = window.id
    form = html(admin.get(f"/editor/members/windows/{window_id}/edit")).select_one("#window-form")
    assert form.select_one("#f-opens")["value"] == "2027-11-21 10:00"
    assert form.select_one("#f-closes")["value"] == "2027-11-28 10:00"
    assert form.select_one("#f-seats-putong")["value"] == "5000"
    assert form.select_one("#f-seats-tiegan")["value"] == ""


def test_an_overlapping_window_is_refused_and_nothing_is_saved(app, admin):
    setup_window(app)
    before = counts(app)
    values = {**WINDOW, "opens": "2026-11-22 09:00", "closes": "2026-11-30 10:00"}
    response = post_form(admin, "/editor/members/windows/new", values)
    assert response.status_code == 422
    page = html(response)
    error = page.select_one("#e-opens").get_text()
    assert "和「2027 会员招募」" in error and "时间重叠" in error
    assert "招募还没有保存" in page.select_one("[role=alert]").get_text()
    assert page.select_one("#f-opens")["value"] == "2026-11-22 09:00"
    assert page.select_one("#f-name")["value"] == "2028 会员招募"
    assert page.select_one("#f-seats-putong")["value"] == "5000"
    assert counts(app) == before


def test_a_renewal_period_reaching_back_into_another_window_overlaps_too(app, admin):
    setup_window(app)
    before = counts(app)
    values = {**WINDOW, "opens": "2026-11-23 10:00", "renewal_hours": "25"}
    response = post_form(admin, "/editor/members/windows/new", values)
    assert response.status_code == 422
    assert "时间重叠" in html(response).select_one("#e-opens").get_text()
    assert counts(app) == before


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "", "请填写招募名称"),
        ("opens", "明天", "请按 YYYY-MM-DD HH:MM 填写北京时间"),
        ("closes", "2027-11-20 10:00", "结束时间必须晚于开始时间"),
        ("renewal_hours", "-1", "续费优先期请填 0 到"),
        ("seats-putong", "很多", "名额请填 0 到"),
        ("seats-putong", "0", "至少给一个会员等级设置名额"),
    ],
)
def test_a_bad_window_is_refused_next_to_its_field(app, admin, field, value, message):
    setup_window(app)
    before = counts(app)
    response = post_form(admin, "/editor/members/windows/new", {**WINDOW, field: value})
    assert response.status_code == 422
    page = html(response)
    shown = "seats" if message.startswith("至少") else field
    assert message in page.select_one(f"#e-{shown}").get_text()
    assert page.select_one(f"#f-{field}")["value"] == value
    assert counts(app) == before


def test_a_cap_cannot_go_below_the_seats_taken(app, admin, make_user, clock):
    window_id = setup_window(app)
    clock.set(OPENS)
    for n in range(3):
        join(app, make_user(f"r{n}@example.com"))
    path = f"/editor/members/windows/{window_id}/edit"
    hint = html(admin.get(path)).select_one("#f-seats-putong").find_next("p").get_text()
    assert "已付款 0，保留中 3" in hint
    values = {
        "name": "2027 会员招募",
        "opens": "2026-11-21 10:00",
        "closes": "2026-11-22 10:00",
        "renewal_hours": "0",
        "seats-putong": "2",
        "seats-tiegan": "2",
    }
    response = post_form(admin, path, values)
    assert response.status_code == 422
    page = html(response)
    assert "名额不能少于这个数" in page.select_one("#e-seats-putong").get_text()
    assert "招募没有改动" in page.select_one("[role=alert]").get_text()
    with app.app_context():
        assert db.session.scalar(select(WindowSeat.cap).where(WindowSeat.tier_id == 1)) == 5
    response = post_form(admin, path, {**values, "seats-putong": "8", "name": "2027 招募"})
    assert response.status_code == 302
    with app.app_context():
        seat = db.session.scalar(select(WindowSeat).where(WindowSeat.tier_id == 1))
        assert (seat.cap, seat.available, seat.held) == (8, 5, 3)
        assert db.session.get(EnrollmentWindow, window_id).name == "2027 招募"


# --- the live window dashboard ---------------------------------------------------------------


def chart_of(response) -> ET.Element:
    """The dashboard's chart, parsed as XML: it fails unless the SVG is well-formed."""
    found = re.search(r'<svg[^>]*class="chart".*?</svg>', response.get_data(as_text=True), re.S)
    assert found is not None
    return ET.fromstring(found.group(0))


def polyline_values(svg: ET.Element, slug: str) -> list[tuple[float, float]]:
    line = next(
        e for e in svg.iter("{http://www.w3.org/2000/svg}polyline") if e.get("data-tier") == slug
    )
    return [tuple(map(float, point.split(","))) for point in line.get("points").split()]


def test_the_dashboard_shows_seats_holds_revenue_and_a_chart(app, admin, make_user, clock):
    window_id = setup_window(app)
    path = f"/editor/members/windows/{window_id}"
    page = html(admin.get(path))
    assert "还没有开始" in page.select_one("#window-live").get_text()
    assert page.select_one("#window-live svg") is None

    clock.set(OPENS + timedelta(minutes=10))
    pay(app, join(app, make_user("a@example.com")))
    clock.set(OPENS + timedelta(minutes=30))
    pay(app, join(app, make_user("c@example.com"), "tiegan"))
    clock.set(OPENS + timedelta(minutes=50))
    join(app, make_user("b@example.com"))  # still held: not paid yet
    clock.set(OPENS + timedelta(minutes=60))

    response = admin.get(path)
    page = html(response)
    live = page.select_one("#window-live")
    assert live["hx-get"] == f"/editor/members/windows/{window_id}/live"
    assert live["hx-trigger"] == "every 5s"
    numbers = {
        name: live.select_one(f"#window-{name}").get_text()
        for name in ("sold", "held", "available", "cap", "revenue")
    }
    assert numbers == {
        "sold": "2",
        "held": "1",
        "available": "4",
        "cap": "7",
        "revenue": "¥1400.00",
    }
    rows = {
        row["data-tier"]: [td.get_text() for td in row.select("td")][1:]
        for row in live.select("#window-seats tr[data-tier]")
    }
    assert rows == {"putong": ["5", "1", "1", "3"], "tiegan": ["2", "1", "0", "1"]}
    assert "招募中" in live.select_one("#window-phase").get_text()

    # The chart is well-formed SVG: one line per tier, with its axis labels.
    svg = chart_of(response)
    ns = "{http://www.w3.org/2000/svg}"
    labels = [t.text for t in svg.iter(f"{ns}text")]
    assert labels[:3] == ["0", "2", "5"]  # 0, the middle and the top of the y axis
    assert labels[3:6] == ["10:00", "10:30", "11:00"]
    assert "普通会员 2" in labels and "铁杆会员 1" in labels
    title = svg.find(f"{ns}title").text
    assert "普通会员 2 个" in title and "铁杆会员 1 个" in title
    putong, tiegan = polyline_values(svg, "putong"), polyline_values(svg, "tiegan")
    assert len(putong) == len(tiegan) == 61  # one point a minute, both ends included
    bottom, top = 208.0, 12.0
    step = (bottom - top) / 5
    assert putong[0][1] == bottom and tiegan[0][1] == bottom
    # a's seat, taken at 10:10, is counted from the eleventh minute on.
    assert putong[10][1] == bottom and putong[11][1] == pytest.approx(bottom - step)
    assert putong[-1][1] == pytest.approx(bottom - 2 * step)
    assert tiegan[-1][1] == pytest.approx(bottom - step)
    assert putong[0][0] == 44.0 and putong[-1][0] == 628.0

    fragment = admin.get(f"{path}/live", headers={"HX-Request": "true"})
    text = fragment.get_data(as_text=True)
    assert fragment.status_code == 200
    assert "<html" not in text and 'id="window-live"' in text
    assert html(fragment).select_one("#window-sold").get_text() == "2"
    full = admin.get(f"{path}/live")
    assert "<html" in full.get_data(as_text=True)

    # The hold runs out: the seat shows as available again, and leaves the chart.
    clock.set(OPENS + timedelta(minutes=70))
    page = html(admin.get(f"{path}/live", headers={"HX-Request": "true"}))
    assert page.select_one("#window-held").get_text() == "0"
    assert page.select_one("#window-available").get_text() == "5"
    assert page.select_one("#window-revenue").get_text() == "¥1400.00"


def test_the_chart_stops_at_the_close(app, admin, make_user, clock):
    window_id = setup_window(app)
    clock.set(OPENS + timedelta(hours=3))
    pay(app, join(app, make_user("a@example.com")))
    clock.set(CLOSES + timedelta(days=2))
    response = admin.get(f"/editor/members/windows/{window_id}")
    page = html(response)
    assert "已结束" in page.select_one("#window-phase").get_text()
    svg = chart_of(response)
    labels = [t.text for t in svg.iter("{http://www.w3.org/2000/svg}text")]
    assert labels[3:6] == ["11-21 10:00", "11-21 22:00", "11-22 10:00"]
    assert len(polyline_values(svg, "putong")) == desk.CHART_BUCKETS + 1


def test_every_tier_has_its_line_and_its_place_in_the_legend(app, admin, clock):
    with app.app_context():
        for n in range(5):
            enrollment.save_tier(TierForm(f"t{n}", f"等级{n}", "10", "365", ""))
        seats = {f"t{n}": "3" for n in range(5)}
        window_id = enrollment.save_window(
            WindowForm("多等级", "2026-11-21 10:00", "2026-11-22 10:00", "0", seats)
        ).id
    clock.set(OPENS + timedelta(minutes=5))
    svg = chart_of(admin.get(f"/editor/members/windows/{window_id}"))
    ns = "{http://www.w3.org/2000/svg}"
    lines = [e.get("data-tier") for e in svg.iter(f"{ns}polyline")]
    assert lines == ["t0", "t1", "t2", "t3", "t4"]
    assert len({e.get("stroke") for e in svg.iter(f"{ns}polyline")}) == 5
    assert svg.get("viewBox") == "0 0 640 282"  # a second row for the fifth tier
    legend = {t.text: (t.get("x"), t.get("y")) for t in svg.iter(f"{ns}text")}
    assert legend["等级0 0"] == legend["等级4 0"][:1] + ("250",)
    assert legend["等级4 0"] == ("68", "270")


# --- members ---------------------------------------------------------------------------------


def members_with_a_lapsed_one(app, admin, make_user, clock) -> dict[str, int]:
    setup_window(app)
    clock.set(OPENS)
    ids = {
        "a": make_user("a@example.com", phone="13800138000"),
        "b": make_user("b@example.com"),
        "gone": make_user("gone@example.com"),
        "reader": make_user("reader@example.com"),
    }
    pay(app, join(app, ids["a"]))
    pay(app, join(app, ids["b"], "tiegan"))
    with app.app_context():
        enrollment.grant(ids["gone"], "=荣誉会员", 30, actor=admin.admin_id, reason="嘉宾")
        clock.advance(days=1)
        enrollment.revoke(ids["gone"], actor=admin.admin_id, reason="嘉宾活动取消")
    return ids


def test_the_member_list_searches_by_email_or_number(app, admin, make_user, clock):
    ids = members_with_a_lapsed_one(app, admin, make_user, clock)
    page = html(admin.get("/editor/members/list"))
    rows = page.select("#member-list tr[data-user]")
    assert [r["data-user"] for r in rows] == [str(ids["a"]), str(ids["b"])]
    cells = [td.get_text(strip=True) for td in rows[0].select("td")]
    assert cells == ["1", "a@example.com", "普通会员", "2027-11-21 10:00"]
    link = rows[0].select_one("a")["href"]
    assert link == f"/editor/members/users/{ids['a']}"
    found = html(admin.get("/editor/members/list?q=B@EXAMPLE"))
    assert [r["data-user"] for r in found.select("#member-list tr[data-user]")] == [str(ids["b"])]
    found = html(admin.get("/editor/members/list?q=第1号"))
    assert [r["data-user"] for r in found.select("#member-list tr[data-user]")] == [str(ids["a"])]
    assert found.select_one("#f-q")["value"] == "第1号"
    none = html(admin.get("/editor/members/list?q=gone"))
    assert none.select("#member-list") == [] and "没有符合" in none.get_text()
    percent = html(admin.get("/editor/members/list?q=%25"))
    assert percent.select("#member-list") == []


def test_the_member_list_is_paginated(app, admin, make_user, clock, monkeypatch):
    ids = members_with_a_lapsed_one(app, admin, make_user, clock)
    monkeypatch.setattr(desk, "LIST_PAGE", 1)
    page = html(admin.get("/editor/members/list"))
    assert [r["data-user"] for r in page.select("#member-list tr[data-user]")] == [str(ids["a"])]
    assert page.select_one(".pager a")["href"] == "/editor/members/list?page=2"
    page = html(admin.get("/editor/members/list?page=2"))
    assert [r["data-user"] for r in page.select("#member-list tr[data-user]")] == [str(ids["b"])]
    assert [a.get_text() for a in page.select(".pager a")] == ["上一页"]


def test_finding_a_user_by_email_opens_their_page(app, admin, make_user):
    reader_id = make_user("reader@example.com")
    response = admin.get("/editor/members/find?email=%20Reader@Example.com")
    assert response.status_code == 302
    assert response.headers["Location"] == f"/editor/members/users/{reader_id}"
    response = admin.get("/editor/members/find?email=nobody@example.com")
    assert response.status_code == 422
    page = html(response)
    assert "没有找到邮箱为 nobody@example.com 的用户" in page.select_one("#e-email").get_text()
    assert page.select_one("#f-email")["value"] == "nobody@example.com"
    response = admin.get("/editor/members/find?email=")
    assert response.status_code == 422
    assert "请填写要查找的邮箱" in html(response).select_one("#e-email").get_text()


def test_the_members_csv_has_everyone_who_had_a_membership(app, admin, make_user, clock):
    ids = members_with_a_lapsed_one(app, admin, make_user, clock)
    response = admin.get("/editor/members/members.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert re.fullmatch(
        r'attachment; filename="members-\d{8}\.csv"', response.headers["Content-Disposition"]
    )
    rows = read_csv(response)
    times = ["开始（北京时间）", "到期（北京时间）"]
    assert rows[0] == ["邮箱", "手机", "会员编号", "等级", *times, "有效"]
    year, day = ("2026-11-21 10:00", "2027-11-21 10:00"), ("2026-11-21 10:00", "2026-11-22 10:00")
    assert rows[1:] == [
        ["a@example.com", "13800138000", "1", "普通会员", *year, "是"],
        ["b@example.com", "", "2", "铁杆会员", *year, "是"],
        # A tier typed by hand cannot run as a spreadsheet formula.
        ["gone@example.com", "", "3", "'=荣誉会员", *day, "否"],
    ]
    assert str(ids["reader"]) not in response.get_data(as_text=True)


def test_the_reminders_csv_lists_who_asked(app, admin, make_user, clock):
    window_id = setup_window(app)
    first = make_user("first@example.com", phone="13900139000")
    second = make_user("second@example.com")
    with app.app_context():
        enrollment.remind(first, window_id)
        clock.advance(minutes=5)
        enrollment.remind(second, window_id)
    response = admin.get(f"/editor/members/windows/{window_id}/reminders.csv")
    assert response.status_code == 200
    assert response.headers["Content-Disposition"].startswith(
        f'attachment; filename="reminders-{window_id}-'
    )
    assert read_csv(response) == [
        ["邮箱", "手机", "登记时间（北京时间）"],
        ["first@example.com", "13900139000", "2026-11-21 08:00"],
        ["second@example.com", "", "2026-11-21 08:05"],
    ]
    page = html(admin.get(f"/editor/members/windows/{window_id}"))
    assert page.select_one("#window-reminders").get_text() == "2"


# --- grants and revocations ------------------------------------------------------------------


def events(app, user_id: int) -> list[tuple]:
    with app.app_context():
        return [
            (e.action, e.tier, e.days, e.actor_id, e.reason) for e in enrollment.events_of(user_id)
        ]


def test_the_user_page_shows_membership_number_and_log(app, admin, make_user, clock):
    setup_window(app)
    clock.set(OPENS)
    reader = make_user("a@example.com")
    pay(app, join(app, reader))
    page = html(admin.get(f"/editor/members/users/{reader}"))
    assert page.select_one("h1").get_text() == "a@example.com"
    assert page.select_one("#member-number").get_text() == "第 1 号会员"
    assert "普通会员" in page.select_one("#membership").get_text()
    assert "2027-11-21 10:00" in page.select_one("#membership").get_text()
    row = page.select_one("#events tr[data-action=joined]")
    assert "系统" in row.get_text() and "已支付" in row.get_text()
    assert row.select_one("a[href^='/editor/shop/orders/']") is not None
    options = [o["value"] for o in page.select("#f-grant-tier option")]
    assert options == ["putong", "tiegan", ""]
    assert page.select_one("#f-grant-tier option[selected]")["value"] == "putong"
    assert page.select_one("#revoke-form") is not None


def test_an_admin_grants_a_membership_to_a_reader(app, admin, make_user):
    setup_window(app)
    reader = make_user("reader@example.com")
    path = f"/editor/members/users/{reader}"
    assert html(admin.get(path)).select_one("#revoke-form") is None
    response = post_form(
        admin,
        f"{path}/grant",
        {"tier": "tiegan", "tier_name": "", "days": "30", "reason": "作者赠送"},
        token_from=path,
    )
    assert response.status_code == 302 and response.headers["Location"] == path
    page = html(admin.get(path))
    assert "已为 reader@example.com 赠送 30 天铁杆会员" in page.select_one("#notice").get_text()
    assert page.select_one("#member-number").get_text() == "第 1 号会员"
    assert events(app, reader) == [("granted", "铁杆会员", 30, admin.admin_id, "作者赠送")]
    row = page.select_one("#events tr[data-action=granted]")
    assert "admin@example.com" in row.get_text() and "作者赠送" in row.get_text()
    # A name typed by hand, for a tier not sold in windows.
    response = post_form(
        admin,
        f"{path}/grant",
        {"tier": "", "tier_name": "荣誉会员", "days": "365", "reason": "年度嘉宾"},
        token_from=path,
    )
    assert response.status_code == 302
    assert events(app, reader)[0] == ("granted", "荣誉会员", 365, admin.admin_id, "年度嘉宾")
    with app.app_context():
        assert db.session.get(User, reader).membership.tier == "荣誉会员"


@pytest.mark.parametrize(
    ("values", "field", "message"),
    [
        ({"reason": "  "}, "reason", "请写下原因"),
        ({"reason": "长" * 301}, "reason", "原因最多 300 字"),
        ({"days": "0"}, "days", "天数需在 1 到"),
        ({"days": "三十"}, "days", "天数需在 1 到"),
        ({"days": "99999999999999999999"}, "days", "天数需在 1 到"),
        ({"days": "9" * 5000}, "days", "天数需在 1 到"),
        ({"tier": ""}, "tier", "请选择会员等级"),
        ({"tier": "", "tier_name": "长" * 41}, "tier", "会员等级名称需在 1 到 40"),
        ({"tier_name": "荣誉会员"}, "tier", "不要两样都填"),
    ],
)
def test_a_grant_needs_a_reason_and_sane_values(app, admin, make_user, values, field, message):
    setup_window(app)
    reader = make_user("reader@example.com")
    path = f"/editor/members/users/{reader}"
    before = counts(app)
    data = {"tier": "putong", "tier_name": "", "days": "30", "reason": "赠送", **values}
    response = post_form(admin, f"{path}/grant", data, token_from=path)
    assert response.status_code == 422
    page = html(response)
    assert message in page.select_one(f"#e-grant-{field}").get_text()
    assert page.select_one("#f-grant-days")["value"] == data["days"]
    assert page.select_one("#f-grant-reason").get_text() == data["reason"]
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(User, reader).member_number is None


def test_an_admin_revokes_a_membership_with_a_reason(app, admin, make_user, clock):
    setup_window(app)
    clock.set(OPENS)
    reader = make_user("a@example.com")
    pay(app, join(app, reader))
    path = f"/editor/members/users/{reader}"
    before = counts(app)
    response = post_form(admin, f"{path}/revoke", {"reason": " "}, token_from=path)
    assert response.status_code == 422
    assert "请写下原因" in html(response).select_one("#e-revoke-reason").get_text()
    assert counts(app) == before
    with app.app_context():
        assert db.session.get(User, reader).is_member

    clock.advance(days=10)
    response = post_form(admin, f"{path}/revoke", {"reason": "线下退款"}, token_from=path)
    assert response.status_code == 302 and response.headers["Location"] == path
    page = html(admin.get(path))
    assert "已撤销 a@example.com 的会员资格" in page.select_one("#notice").get_text()
    assert "现在不是会员" in page.select_one("#membership").get_text()
    assert page.select_one("#member-number").get_text() == "第 1 号会员"  # kept for life
    assert page.select_one("#revoke-form") is None
    assert events(app, reader)[0] == ("revoked", "普通会员", 0, admin.admin_id, "线下退款")
    with app.app_context():
        assert not db.session.get(User, reader).is_member

    response = post_form(admin, f"{path}/revoke", {"reason": "再来一次"}, token_from=path)
    assert response.status_code == 422
    assert "没有任何改动" in html(response).select_one("#e-revoke-reason").get_text()
    assert len(events(app, reader)) == 2
