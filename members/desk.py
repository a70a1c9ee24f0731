"""The enrollment desk (`/editor/members`, admins): tiers, windows, the live window
dashboard, members, grants and revocations, CSV exports.

Tiers and windows are written by `members.enrollment` (`save_tier`, `save_window`), with the
same rules as the command line; memberships change only through `enrollment.grant` and
`enrollment.revoke`, which write the audit log with the admin as the actor.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from app import (
    csv_bytes,
    csv_cell,
    csv_download,
    db,
    local_time,
    page_number,
    render_page,
    row_or_404,
    today_stamp,
    utcnow,
)
from members import accounts, enrollment, role_required
from members.enrollment import EnrollmentError, Phase, TierForm, WindowForm
from members.models import (
    EnrollmentReminder,
    EnrollmentWindow,
    Membership,
    Role,
    Tier,
    User,
    WindowSeat,
)
from shop import charts, checkout
from shop.models import HOLDING, SOLD, Order, OrderLine
from shop.products import local_text

bp = Blueprint("members_desk", __name__, url_prefix="/editor/members")

LIST_PAGE = 50
PHASES = {
    Phase.NONE: "还没有设置招募",
    Phase.UPCOMING: "即将开始",
    Phase.RENEWAL: "续费优先期",
    Phase.OPEN: "招募中",
    Phase.CLOSED: "已结束",
}
ACTIONS = {
    "joined": "入会",
    "renewed": "续费",
    "granted": "赠送",
    "revoked": "撤销",
    "refunded": "退款",
}
ROLES = {"reader": "读者", "editor": "编辑", "admin": "管理员"}
TIER_FIELDS = ("slug", "name", "price", "days", "perks")
WINDOW_FIELDS = ("name", "opens", "closes", "renewal_hours", "seats")
GRANT_FIELDS = ("tier", "days", "reason")
NUMBER_RE = re.compile(r"(?:第\s*)?([0-9]{1,9})\s*(?:号)?")


@bp.before_request
@role_required(Role.ADMIN.value)
def only_admins() -> None:
    """Every enrollment desk page is for admins."""


def _unplaced(errors: dict[str, str], shown: Iterable[str]) -> str:
    """The messages of errors that have no field of their own on the form."""
    shown = set(shown)
    return " ".join(
        message
        for field, message in errors.items()
        if field not in shown and not field.startswith("seats-")
    )


# --- the overview ----------------------------------------------------------------------------


@bp.get("/")
def index():
    checkout.release_expired_holds()  # so that expired holds show as available
    now = utcnow()
    return render_template(
        "editor/members/index.html",
        moment=enrollment.moment(now),
        phases=PHASES,
        tiers=enrollment.tiers(),
        windows=enrollment.windows(),
        members=_current_members_count(now),
        now=now,
    )


# --- tiers -----------------------------------------------------------------------------------


def _tier_page(form: TierForm, tier: Tier | None, errors: dict[str, str] | None = None):
    errors = errors or {}
    return render_template(
        "editor/members/tier.html",
        form=form,
        tier=tier,
        errors=errors,
        general=_unplaced(errors, TIER_FIELDS),
    ), (422 if errors else 200)


def _tier_from_request() -> TierForm:
    return TierForm(**{name: request.form.get(name, "") for name in TIER_FIELDS})


@bp.get("/tiers/new")
def new_tier():
    return _tier_page(TierForm(), None)


@bp.get("/tiers/<int:tier_id>")
def edit_tier(tier_id: int):
    tier = row_or_404(Tier, tier_id)
    return _tier_page(enrollment.tier_form(tier), tier)


@bp.post("/tiers/new")
def create_tier():
    return _save_tier(None)


@bp.post("/tiers/<int:tier_id>")
def update_tier(tier_id: int):
    return _save_tier(row_or_404(Tier, tier_id))


def _save_tier(tier: Tier | None):
    form = _tier_from_request()
    try:
        saved = enrollment.save_tier(form, tier.id if tier else None)
    except EnrollmentError as error:
        return _tier_page(form, tier, error.errors)
    flash(f"会员等级「{saved.name}」已保存。" if tier else f"会员等级「{saved.name}」已创建。")
    return redirect(url_for("members_desk.index"))


# --- windows ---------------------------------------------------------------------------------


def _window_page(
    form: WindowForm, window: EnrollmentWindow | None, errors: dict[str, str] | None = None
):
    errors = errors or {}
    taken = {seat.tier_id: seat for seat in enrollment.seats_of(window.id)} if window else {}
    return render_template(
        "editor/members/window_form.html",
        form=form,
        window=window,
        tiers=enrollment.tiers(),
        taken=taken,
        errors=errors,
        general=_unplaced(errors, WINDOW_FIELDS),
    ), (422 if errors else 200)


def _window_from_request() -> WindowForm:
    values = request.form
    return WindowForm(
        name=values.get("name", ""),
        opens=values.get("opens", ""),
        closes=values.get("closes", ""),
        renewal_hours=values.get("renewal_hours", ""),
        seats={t.slug: values.get(f"seats-{t.slug}", "") for t in enrollment.tiers()},
    )


@bp.get("/windows/new")
def new_window():
    return _window_page(WindowForm(seats={}), None)


@bp.get("/windows/<int:window_id>/edit")
def edit_window(window_id: int):
    window = row_or_404(EnrollmentWindow, window_id)
    return _window_page(enrollment.window_form(window), window)


@bp.post("/windows/new")
def create_window():
    return _save_window(None)


@bp.post("/windows/<int:window_id>/edit")
def update_window(window_id: int):
    return _save_window(row_or_404(EnrollmentWindow, window_id))


def _save_window(window: EnrollmentWindow | None):
    form = _window_from_request()
    try:
        saved = enrollment.save_window(form, window.id if window else None)
    except EnrollmentError as error:
        return _window_page(form, window, error.errors)
    flash(f"「{saved.name}」已保存。" if window else f"「{saved.name}」已创建。")
    return redirect(url_for("members_desk.window", window_id=saved.id))


@bp.get("/windows/<int:window_id>/reminders.csv")
def reminders_file(window_id: int):
    """Who asked to be told when the window opens, in the order they asked."""
    window = row_or_404(EnrollmentWindow, window_id)
    found = db.session.execute(
        select(User.email, User.phone, EnrollmentReminder.created_at)
        .join(EnrollmentReminder, EnrollmentReminder.user_id == User.id)
        .where(EnrollmentReminder.window_id == window.id)
        .order_by(EnrollmentReminder.created_at, User.id)
    ).all()
    rows = ([csv_cell(email), csv_cell(phone), local_text(at)] for email, phone, at in found)
    name = f"reminders-{window.id}-{today_stamp()}.csv"
    return csv_download(csv_bytes(["邮箱", "手机", "登记时间（北京时间）"], rows), name)


# --- the live window dashboard ---------------------------------------------------------------


CHART_BUCKETS = 96  # at most this many steps, one minute each for a short span


def _seats_taken_chart(
    window: EnrollmentWindow, seats: list[WindowSeat], now: datetime
) -> charts.Chart | None:
    """Cumulative seat orders (pending or paid, by the time they were placed) of each tier,
    from the start of the window (its renewal period included) to now or its close."""
    start, end = window.renewal_starts_at, min(now, window.closes_at)
    if now < start or not seats:
        return None
    span = max((end - start).total_seconds(), 60.0)
    buckets = max(1, min(CHART_BUCKETS, math.ceil(span / 60)))
    placed: dict[int, list[tuple[datetime, int]]] = {seat.id: [] for seat in seats}
    for ref_id, created_at in db.session.execute(
        select(OrderLine.ref_id, Order.created_at)
        .join(Order, OrderLine.order_id == Order.id)
        .where(
            OrderLine.kind == enrollment.SEAT,
            OrderLine.ref_id.in_(list(placed)),
            Order.status.in_([*HOLDING, *SOLD]),
            Order.created_at <= end,
        )
    ).tuples():
        placed[ref_id].append((created_at, 1))
    lines = [
        charts.Line(
            charts.running_totals(
                placed[seat.id], start=start, steps=buckets, step_seconds=span / buckets
            ),
            key=seat.tier.slug,
            name=seat.tier.name,
        )
        for seat in seats
    ]
    same_day = local_time(start).date() == local_time(end).date()

    def clock(at: datetime) -> str:
        return local_time(at).strftime("%H:%M" if same_day else "%m-%d %H:%M")

    taken = "，".join(f"{line.name} {line.totals[-1]} 个" for line in lines)
    return charts.line_chart(
        lines,
        start=clock(start),
        middle=(buckets / 2, clock(start + (end - start) / 2)),
        end=clock(end),
        summary=f"{clock(start)} 到 {clock(end)} 各等级累计占用名额（已付款加保留中）：{taken}",
    )


def _revenue(seat_ids: list[int]) -> tuple[int, int]:
    """How many seat orders are paid, and the money they brought (fen)."""
    paid, fen = db.session.execute(
        select(func.count(Order.id), func.coalesce(func.sum(Order.total_fen), 0)).where(
            Order.status.in_(SOLD),
            Order.id.in_(
                select(OrderLine.order_id).where(
                    OrderLine.kind == enrollment.SEAT, OrderLine.ref_id.in_(seat_ids)
                )
            ),
        )
    ).one()
    return int(paid or 0), int(fen or 0)


@bp.get("/windows/<int:window_id>")
@bp.get("/windows/<int:window_id>/live", endpoint="window_live")
def window(window_id: int):
    """The window dashboard. Its /live address, asked by htmx every 5 seconds, gives the
    numbers and the chart alone (a full page otherwise)."""
    window = row_or_404(EnrollmentWindow, window_id)
    seats = enrollment.seats_of(window.id)  # expired holds given back first
    now = utcnow()
    paid_orders, revenue = _revenue([seat.id for seat in seats])
    reminders = db.session.scalar(
        select(func.count())
        .select_from(EnrollmentReminder)
        .where(EnrollmentReminder.window_id == window.id)
    )
    if now < window.renewal_starts_at:
        phase = Phase.UPCOMING
    elif now >= window.closes_at:
        phase = Phase.CLOSED
    else:
        phase = Phase.OPEN if now >= window.opens_at else Phase.RENEWAL
    return render_page(
        "editor/members/window.html",
        "editor/members/_window_live.html",
        window=window,
        seats=seats,
        totals={
            "cap": sum(s.cap for s in seats),
            "sold": sum(s.sold for s in seats),
            "held": sum(s.held for s in seats),
            "available": sum(s.available for s in seats),
        },
        paid_orders=paid_orders,
        revenue=revenue,
        reminders=reminders or 0,
        chart=_seats_taken_chart(window, seats, now),
        phase=phase,
        phases=PHASES,
        now=now,
    )


# --- members ---------------------------------------------------------------------------------


def _in_force(now: datetime):
    return (Membership.starts_at <= now, Membership.ends_at > now)


def _current_members_count(now: datetime) -> int:
    return (
        db.session.scalar(
            select(func.count(func.distinct(Membership.user_id))).where(*_in_force(now))
        )
        or 0
    )


def _list_page(status: int = 200, **extra: Any):
    now = utcnow()
    q = " ".join(request.args.get("q", "").split())[:254]
    query = select(User, Membership).join(Membership, Membership.user_id == User.id)
    query = query.where(*_in_force(now))
    if q:
        matches = User.email.contains(q.lower(), autoescape=True)
        number = NUMBER_RE.fullmatch(q)
        if number:
            matches = matches | (User.member_number == int(number.group(1)))
        query = query.where(matches)
    page = page_number()
    found = db.session.execute(
        query.order_by(User.member_number.is_(None), User.member_number, User.id)
        .offset((page - 1) * LIST_PAGE)
        .limit(LIST_PAGE + 1)
    ).all()
    context = {
        "items": found[:LIST_PAGE],
        "more": len(found) > LIST_PAGE,
        "page": page,
        "q": q,
        "total": _current_members_count(now),
        "find_email": "",
        "find_error": None,
        **extra,
    }
    return render_template("editor/members/list.html", **context), status


@bp.get("/list")
def members():
    return _list_page()


@bp.get("/find")
def find_user():
    """Open the page of the user with this email (members or not: to grant to anyone)."""
    email = request.args.get("email", "").strip()[:254]
    if not email:
        return _list_page(422, find_email=email, find_error="请填写要查找的邮箱。")
    user = accounts.find_user(email)
    if user is None:
        message = f"没有找到邮箱为 {accounts.normalize_email(email)} 的用户：请确认对方已经注册。"
        return _list_page(422, find_email=email, find_error=message)
    return redirect(url_for("members_desk.user", user_id=user.id))


@bp.get("/members.csv")
def members_file():
    """Everyone who has or had a membership, with their latest one, by member number."""
    now = utcnow()
    users = db.session.scalars(
        select(User)
        .where(User.memberships.any())
        .options(selectinload(User.memberships))
        .order_by(User.member_number.is_(None), User.member_number, User.id)
    )
    rows = []
    for user in users:
        latest = max(user.memberships, key=lambda m: m.ends_at)
        active = any(m.starts_at <= now < m.ends_at for m in user.memberships)
        rows.append(
            [
                csv_cell(user.email),
                csv_cell(user.phone),
                str(user.member_number or ""),
                csv_cell(latest.tier),
                local_text(latest.starts_at),
                local_text(latest.ends_at),
                "是" if active else "否",
            ]
        )
    header = ["邮箱", "手机", "会员编号", "等级", "开始（北京时间）", "到期（北京时间）", "有效"]
    return csv_download(csv_bytes(header, rows), f"members-{today_stamp()}.csv")


# --- one user: membership, audit log, grant and revoke ---------------------------------------


def _user_page(user_id: int, status: int = 200, **extra: Any):
    user = row_or_404(User, user_id)
    now = utcnow()
    events = enrollment.events_of(user.id)
    tiers = enrollment.tiers()
    current = user.membership
    ahead = enrollment.membership_to_extend(db.session, user.id, now)
    chosen = next((t.slug for t in tiers if current and t.id == current.tier_id), None)
    context = {
        "user": user,
        "current": current,
        "ahead": ahead,
        "memberships": sorted(user.memberships, key=lambda m: m.starts_at, reverse=True),
        "events": events,
        "people": accounts.emails_of(e.actor_id for e in events),
        "orders": dict(
            db.session.execute(
                select(Order.id, Order.number).where(
                    Order.id.in_({e.order_id for e in events if e.order_id})
                )
            ).all()
        ),
        "actions": ACTIONS,
        "roles": ROLES,
        "tiers": tiers,
        "grant": {"tier": chosen or (tiers[0].slug if tiers else ""), "days": "365"},
        "grant_errors": {},
        "revoke": {},
        "revoke_errors": {},
        "now": now,
        **extra,
    }
    return render_template("editor/members/user.html", **context), status


@bp.get("/users/<int:user_id>")
def user(user_id: int):
    return _user_page(user_id)


@bp.post("/users/<int:user_id>/grant")
def grant(user_id: int):
    user = row_or_404(User, user_id)
    values = {k: request.form.get(k, "") for k in ("tier", "tier_name", "days", "reason")}
    chosen, typed = values["tier"].strip(), " ".join(values["tier_name"].split())
    if chosen and typed:
        errors = {"tier": "请在列表里选一个等级，或者选「其他」后填写名称，不要两样都填。"}
        return _user_page(user.id, 422, grant=values, grant_errors=errors)
    days_text = values["days"].strip()
    # Anything but a short run of ASCII digits becomes 0, which grant() refuses by name.
    digits = days_text.isascii() and days_text.isdigit() and len(days_text) <= 6
    days = int(days_text) if digits else 0
    try:
        membership = enrollment.grant(
            user.id,
            chosen or typed,
            days,
            actor=current_user.id,
            reason=values["reason"],
        )
    except EnrollmentError as error:
        errors = dict(error.errors)
        if not (chosen or typed) and "tier" in errors:
            errors["tier"] = "请选择会员等级，或者选「其他」后填写名称。"
        return _user_page(user.id, 422, grant=values, grant_errors=errors)
    ends = local_time(membership.ends_at).strftime("%Y-%m-%d %H:%M")
    flash(f"已为 {user.email} 赠送 {days} 天{membership.tier}，有效期至 {ends}。")
    return redirect(url_for("members_desk.user", user_id=user.id))


@bp.post("/users/<int:user_id>/revoke")
def revoke(user_id: int):
    user = row_or_404(User, user_id)
    values = {"reason": request.form.get("reason", "")}
    try:
        revoked = enrollment.revoke(user.id, actor=current_user.id, reason=values["reason"])
    except EnrollmentError as error:
        return _user_page(user.id, 422, revoke=values, revoke_errors=error.errors)
    if not revoked:
        errors = {"reason": "这位用户现在没有有效或待生效的会员资格，没有任何改动。"}
        return _user_page(user.id, 422, revoke=values, revoke_errors=errors)
    flash(f"已撤销 {user.email} 的会员资格。")
    return redirect(url_for("members_desk.user", user_id=user.id))
