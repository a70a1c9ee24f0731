"""Paid membership: tiers, once-a-year enrollment windows with a fixed number of seats per
tier, joining and renewing through the shop's checkout, member numbers, and the grants and
revocations editors make by hand.

A seat is an order line of kind "seat" (`shop.checkout.register_line_kind`): joining takes
one with a conditional UPDATE on `window_seats` (`available >= 1`), so the cap can never be
exceeded whatever the number of processes; the pending order holds it like a product unit
(an expired hold gives it back); paying turns it into a membership, numbered in payment
order. Every change to a membership is written to `membership_events` with the actor and the
reason.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import UTCDateTime, db, local_time, utcnow, write_transaction
from content.articles import parse_local_time
from members.models import (
    EnrollmentReminder,
    EnrollmentWindow,
    MemberNumberCounter,
    Membership,
    MembershipEvent,
    Tier,
    User,
    WindowSeat,
)
from shop import checkout
from shop.models import Order, OrderLine
from shop.products import local_text, parse_yuan, yuan_text

SEAT = "seat"
RENEWAL_NOTICE = timedelta(days=30)  # the renewal banner shows this long before the end
MAX_SEATS = 1_000_000
MAX_DAYS = 3660
MAX_RENEWAL_HOURS = 24 * 30
SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?")


class EnrollmentError(Exception):
    """Why something cannot be done, in words for the reader or the editor, by form field."""

    def __init__(self, errors: dict[str, str] | str, *, field: str = "tier") -> None:
        self.errors = {field: errors} if isinstance(errors, str) else errors
        self.message = " ".join(self.errors.values())
        super().__init__(self.message)


def _when(value: datetime) -> str:
    return local_time(value).strftime("%Y-%m-%d %H:%M")


# --- tiers -----------------------------------------------------------------------------------


@dataclass
class TierForm:
    """A tier as typed: in the desk's form or on the command line."""

    slug: str = ""
    name: str = ""
    price: str = ""  # yuan
    days: str = "365"
    perks: str = ""


def tiers() -> list[Tier]:
    return list(db.session.scalars(select(Tier).order_by(Tier.position, Tier.id)))


def tier_form(tier: Tier) -> TierForm:
    return TierForm(tier.slug, tier.name, yuan_text(tier.price_fen), str(tier.days), tier.perks)


def save_tier(form: TierForm, tier_id: int | None = None) -> Tier:
    """Create a tier (or change the one with `tier_id`); EnrollmentError names each bad
    field. The price of seats already held or sold stays as it was on their orders."""
    errors: dict[str, str] = {}
    slug, name = form.slug.strip().lower(), " ".join(form.name.split())
    if not SLUG_RE.fullmatch(slug):
        errors["slug"] = "标识只能用小写字母、数字和连字符，最多 40 个字符，如 putong。"
    if not 1 <= len(name) <= 40:
        errors["name"] = "请填写等级名称（最多 40 个字）。"
    price = 0
    try:
        price = parse_yuan(form.price, "价格")
        if price <= 0:
            errors["price"] = "价格必须大于 0。"
    except ValueError as error:
        errors["price"] = str(error)
    days_text = form.days.strip() or "365"
    days = int(days_text) if days_text.isascii() and days_text.isdigit() else 0
    if not 1 <= days <= MAX_DAYS:
        errors["days"] = f"有效天数请填 1 到 {MAX_DAYS} 之间的整数。"
    perks = form.perks.replace("\r\n", "\n").strip()
    if len(perks) > 2000:
        errors["perks"] = "会员权益最多 2000 字。"
    if errors:
        raise EnrollmentError(errors)
    now = utcnow()
    try:
        with write_transaction() as session:
            tier = session.get(Tier, tier_id) if tier_id is not None else None
            if tier_id is not None and tier is None:
                raise EnrollmentError("这个会员等级不存在。", field="slug")
            for column, value, field_name, message in (
                (Tier.slug, slug, "slug", f"标识 {slug} 已被另一个等级使用。"),
                (Tier.name, name, "name", f"名称「{name}」已被另一个等级使用。"),
            ):
                other = session.scalar(select(Tier.id).where(column == value))
                if other is not None and other != tier_id:
                    errors[field_name] = message
            if errors:
                raise EnrollmentError(errors)
            if tier is None:
                position = session.scalar(select(func.coalesce(func.max(Tier.position), 0)))
                tier = Tier(created_at=now, position=(position or 0) + 1)
                session.add(tier)
            tier.slug, tier.name, tier.price_fen, tier.days = slug, name, price, days
            tier.perks, tier.updated_at = perks, now
    except IntegrityError:  # the same slug or name saved at the same moment elsewhere
        db.session.rollback()
        raise EnrollmentError("标识或名称已被使用。", field="slug") from None
    return tier


def tier_by_slug(slug: str) -> Tier | None:
    return db.session.scalar(select(Tier).where(Tier.slug == slug.strip().lower()))


# --- windows ---------------------------------------------------------------------------------


@dataclass
class WindowForm:
    """A window as typed: times in the site's zone ("YYYY-MM-DD HH:MM"), seats per tier
    slug (a blank or 0 leaves the tier out)."""

    name: str = ""
    opens: str = ""
    closes: str = ""
    renewal_hours: str = "0"
    seats: dict[str, str] | None = None


def window_form(window: EnrollmentWindow) -> WindowForm:
    return WindowForm(
        window.name,
        local_text(window.opens_at),
        local_text(window.closes_at),
        str(window.renewal_hours),
        {seat.tier.slug: str(seat.cap) for seat in window.seats},
    )


def windows() -> list[EnrollmentWindow]:
    return list(
        db.session.scalars(select(EnrollmentWindow).order_by(EnrollmentWindow.opens_at.desc()))
    )


def _parse_time(text_: str, field: str, errors: dict[str, str]) -> datetime | None:
    try:
        parsed = parse_local_time(text_)
    except ValueError:
        parsed = None
    if parsed is None:
        errors[field] = "请按 YYYY-MM-DD HH:MM 填写北京时间，如 2027-01-10 10:00。"
    return parsed


def _check_window(form: WindowForm) -> tuple[dict, dict[str, int], dict[str, str]]:
    errors: dict[str, str] = {}
    name = " ".join(form.name.split())
    if not 1 <= len(name) <= 60:
        errors["name"] = "请填写招募名称（最多 60 个字），如 2027 会员招募。"
    opens = _parse_time(form.opens, "opens", errors)
    closes = _parse_time(form.closes, "closes", errors)
    if opens and closes and closes <= opens:
        errors["closes"] = "结束时间必须晚于开始时间。"
    hours_text = (form.renewal_hours or "0").strip() or "0"
    hours = int(hours_text) if hours_text.isascii() and hours_text.isdigit() else -1
    if not 0 <= hours <= MAX_RENEWAL_HOURS:
        errors["renewal_hours"] = f"续费优先期请填 0 到 {MAX_RENEWAL_HOURS} 之间的小时数。"
    caps: dict[str, int] = {}
    for slug, typed in (form.seats or {}).items():
        typed = typed.strip()
        if not typed:
            continue
        if not (typed.isascii() and typed.isdigit()) or int(typed) > MAX_SEATS:
            errors[f"seats-{slug}"] = f"名额请填 0 到 {MAX_SEATS} 之间的整数。"
            continue
        if int(typed) > 0:
            caps[slug] = int(typed)
    if not caps and not any(key.startswith("seats-") for key in errors):
        errors["seats"] = "至少给一个会员等级设置名额。"
    values = {"name": name, "opens": opens, "closes": closes, "hours": max(hours, 0)}
    return values, caps, errors


def _lock_windows(session: Session) -> None:
    """Windows are created and edited one at a time, so that two overlapping ones cannot both
    pass the overlap check (SQLite's BEGIN IMMEDIATE already serialises writers)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("LOCK TABLE enrollment_windows IN SHARE ROW EXCLUSIVE MODE"))


def save_window(form: WindowForm, window_id: int | None = None) -> EnrollmentWindow:
    """Create a window (or change the one with `window_id`). Refused, by field: bad times, a
    span (renewal period included) that overlaps another window, unknown tiers, and a cap
    below the seats already held or sold."""
    values, caps, errors = _check_window(form)
    if errors:
        raise EnrollmentError(errors)
    now = utcnow()
    opens, closes, hours = values["opens"], values["closes"], values["hours"]
    starts = opens - timedelta(hours=hours)
    with write_transaction() as session:
        _lock_windows(session)
        window = session.get(EnrollmentWindow, window_id) if window_id is not None else None
        if window_id is not None and window is None:
            raise EnrollmentError("这期招募不存在。", field="name")
        clash = session.scalar(
            select(EnrollmentWindow).where(
                EnrollmentWindow.renewal_starts_at < closes,
                EnrollmentWindow.closes_at > starts,
                EnrollmentWindow.id != (window_id or 0),
            )
        )
        if clash is not None:
            raise EnrollmentError(
                f"和「{clash.name}」（{_when(clash.renewal_starts_at)} 至 "
                f"{_when(clash.closes_at)}）时间重叠：同一时刻只能有一期招募。",
                field="opens",
            )
        known = {t.slug: t for t in session.scalars(select(Tier).where(Tier.slug.in_(caps)))}
        for slug in caps:
            if slug not in known:
                errors[f"seats-{slug}"] = f"没有标识为 {slug} 的会员等级。"
        if errors:
            raise EnrollmentError(errors)
        if window is None:
            window = EnrollmentWindow(created_at=now)
            session.add(window)
        window.name, window.opens_at, window.closes_at = values["name"], opens, closes
        window.renewal_starts_at, window.updated_at = starts, now
        session.flush()
        current = {seat.tier_id: seat for seat in window.seats}
        wanted = {known[slug].id: cap for slug, cap in caps.items()}
        for tier_id in current.keys() | wanted.keys():
            fault = _set_cap(session, window, current.get(tier_id), tier_id, wanted.get(tier_id, 0))
            if fault:
                tier = session.get(Tier, tier_id)
                errors[f"seats-{tier.slug if tier else tier_id}"] = fault
        if errors:
            raise EnrollmentError(errors)
    return window


def _set_cap(
    session: Session, window: EnrollmentWindow, seat: WindowSeat | None, tier_id: int, cap: int
) -> str | None:
    """Change a tier's cap in one conditional UPDATE (never below the seats held or sold);
    the reason when it cannot."""
    if seat is None:
        session.add(WindowSeat(window=window, tier_id=tier_id, cap=cap, available=cap))
        return None
    if cap == 0:
        gone = session.execute(
            delete(WindowSeat).where(
                WindowSeat.id == seat.id, WindowSeat.held == 0, WindowSeat.sold == 0
            )
        )
        if gone.rowcount == 1:
            window.seats.remove(seat)
            return None
        return "已有人占用这个等级的名额，不能取消，只能减少到已占用的数量。"
    delta = cap - seat.cap
    changed = session.execute(
        update(WindowSeat)
        .where(WindowSeat.id == seat.id, WindowSeat.available + delta >= 0)
        .values(cap=cap, available=WindowSeat.available + delta)
    )
    if changed.rowcount != 1:
        taken = session.scalar(
            select(WindowSeat.held + WindowSeat.sold).where(WindowSeat.id == seat.id)
        )
        return f"已有 {taken} 个名额被占用或售出，名额不能少于这个数。"
    return None


def window_at(now: datetime) -> EnrollmentWindow | None:
    """The window taking joins at `now` (its renewal period included), if any."""
    return db.session.scalar(
        select(EnrollmentWindow)
        .where(EnrollmentWindow.renewal_starts_at <= now, EnrollmentWindow.closes_at > now)
        .limit(1)
    )


def next_window(now: datetime) -> EnrollmentWindow | None:
    return db.session.scalar(
        select(EnrollmentWindow)
        .where(EnrollmentWindow.renewal_starts_at > now)
        .order_by(EnrollmentWindow.renewal_starts_at)
        .limit(1)
    )


def last_window(now: datetime) -> EnrollmentWindow | None:
    return db.session.scalar(
        select(EnrollmentWindow)
        .where(EnrollmentWindow.closes_at <= now)
        .order_by(EnrollmentWindow.closes_at.desc())
        .limit(1)
    )


def seats_of(window_id: int) -> list[WindowSeat]:
    """The window's seats with their tiers, counted now (fresh from the database)."""
    checkout.release_expired_holds()
    return list(
        db.session.scalars(
            select(WindowSeat)
            .where(WindowSeat.window_id == window_id)
            .join(Tier)
            .order_by(Tier.position, Tier.id)
            .execution_options(populate_existing=True)
        )
    )


# --- the join page's view of things ----------------------------------------------------------


class Phase(enum.StrEnum):
    NONE = "none"  # no window set, none passed
    UPCOMING = "upcoming"  # the next window has not started (not even its renewal period)
    RENEWAL = "renewal"  # only current members may join
    OPEN = "open"
    CLOSED = "closed"  # the last one is over and no next one is set


@dataclass(frozen=True)
class Moment:
    phase: Phase
    window: EnrollmentWindow | None
    # The window after this one, when the page should say when it opens.
    next: EnrollmentWindow | None = None


def moment(now: datetime) -> Moment:
    window = window_at(now)
    if window is not None:
        phase = Phase.OPEN if now >= window.opens_at else Phase.RENEWAL
        return Moment(phase, window)
    upcoming = next_window(now)
    if upcoming is not None:
        return Moment(Phase.UPCOMING, upcoming, upcoming)
    last = last_window(now)
    return Moment(Phase.CLOSED if last else Phase.NONE, last)


def membership_to_extend(session: Session, user_id: int, now: datetime) -> Membership | None:
    """The membership a payment or a grant extends: the one in force (or still to come) that
    ends last; None when the user has none left."""
    return session.scalar(
        select(Membership)
        .where(Membership.user_id == user_id, Membership.ends_at > now)
        .order_by(Membership.ends_at.desc())
        .limit(1)
    )


def pending_seat_order(user_id: int, window_id: int) -> Order | None:
    """The user's order for a seat of this window that holds it or paid for it."""
    found = _seat_order_id(db.session, user_id, window_id)
    return db.session.get(Order, found) if found is not None else None


_SEATS_OF = select(WindowSeat.id).where(WindowSeat.window_id == bindparam("window_id"))


def _seat_order_id(session: Session, user_id: int, window_id: int) -> int | None:
    """The id of the user's newest order for a seat of this window that holds or paid."""
    lines = [line for line in checkout.lines_held_or_bought(session, user_id) if line.kind == SEAT]
    if not lines:
        return None
    seats = set(session.connection().execute(_SEATS_OF, {"window_id": window_id}).scalars())
    return next((line.order_id for line in lines if line.ref_id in seats), None)


def renewal_due(user: User, now: datetime) -> Membership | None:
    """The member's membership when it ends within 30 days (the renewal banner shows)."""
    membership = user.membership
    if membership is None or membership.ends_at - now > RENEWAL_NOTICE:
        return None
    return membership


def renewal_banner(user) -> dict:
    """What the renewal banner on / and /me needs: the membership ending within 30 days (or
    None: no banner) and the window in which to renew."""
    now = utcnow()
    due = renewal_due(user, now) if user.is_authenticated else None
    window = (window_at(now) or next_window(now)) if due is not None else None
    return {"renewal_due": due, "renewal_window": window, "banner_now": now}


# --- joining ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Seated:
    """A seat taken: the pending order that holds it."""

    order_id: int
    number: str
    total_fen: int


# The seat of a tier in the window taking joins at :now, with what a join needs: built once,
# since at the opening second this read answers most of the crowd.
_OFFER = (
    select(
        WindowSeat.id,
        WindowSeat.available,
        Tier.name,
        Tier.price_fen,
        EnrollmentWindow.id.label("window_id"),
        EnrollmentWindow.name.label("window_name"),
        EnrollmentWindow.opens_at,
    )
    .join(Tier, Tier.id == WindowSeat.tier_id)
    .join(EnrollmentWindow, EnrollmentWindow.id == WindowSeat.window_id)
    .where(
        Tier.slug == bindparam("slug"),
        EnrollmentWindow.renewal_starts_at <= bindparam("now", type_=UTCDateTime),
        EnrollmentWindow.closes_at > bindparam("now", type_=UTCDateTime),
    )
    .limit(1)
)
_AVAILABLE = select(WindowSeat.available).where(WindowSeat.id == bindparam("seat"))
_TAKE = (
    update(WindowSeat)
    .where(WindowSeat.id == bindparam("seat"), WindowSeat.available >= 1)
    .values(available=WindowSeat.available - 1, held=WindowSeat.held + 1)
)


def _why_not_open(now: datetime) -> EnrollmentError:
    if window_at(now) is not None:
        return EnrollmentError("本期招募没有这个会员等级。")
    upcoming = next_window(now)
    if upcoming is not None:
        return EnrollmentError(f"招募还没有开始，{_when(upcoming.opens_at)} 开放。")
    return EnrollmentError("现在不在招募期内。")


def _offer(tier_slug: str, now: datetime) -> Any:
    """The seats of `tier_slug` in the window open now (or in its renewal period), or None."""
    if len(tier_slug) > 40:
        return None
    # On the connection: the ORM's execution costs more than the read (a Core row anyway).
    connection = db.session.connection()
    return connection.execute(_OFFER, {"slug": tier_slug.strip().lower(), "now": now}).first()


def _seats_left(offer: Any) -> bool:
    """Whether the offer has a seat left. Most of the crowd at the opening second comes after
    the last seat: they are told so from this plain read, without queueing for the write
    lock. Seats whose hold expired are given back first."""
    if offer.available:
        return True
    return bool(
        checkout.release_expired_holds() and db.session.scalar(_AVAILABLE, {"seat": offer.id})
    )


def refusal_for_anyone(tier_slug: str) -> EnrollmentError | None:
    """Why joining `tier_slug` fails now whoever asks, if it does: no window open for it, or
    every seat taken while the window is open to all. The crowd after the last seat is
    answered from this, without loading who they are."""
    now = utcnow()
    offer = _offer(tier_slug, now)
    if offer is None:
        return _why_not_open(now)
    if now >= offer.opens_at and not _seats_left(offer):
        return EnrollmentError(f"本期{offer.name}名额已满。")
    return None


def join(user: User, tier_slug: str, *, provider: str | None = None) -> Seated:
    """Take a seat of `tier_slug` in the window open now and hold it as a pending order (paid
    through the shop's cashier). Raises EnrollmentError with the reason, creating nothing."""
    now = utcnow()
    offer = _offer(tier_slug, now)
    if offer is None:
        raise _why_not_open(now)
    if now < offer.opens_at and user.membership is None:
        raise EnrollmentError(f"现在是会员续费优先期，{_when(offer.opens_at)} 起向所有人开放。")
    user_id = user.id  # read before the write lock: beginning it expires the loaded user
    full = EnrollmentError(f"本期{offer.name}名额已满。")
    if not _seats_left(offer):
        raise full
    with write_transaction() as session:
        if session.get_bind().dialect.name == "postgresql":
            # One user's joins one at a time: one seat per user per window.
            session.execute(select(User.id).where(User.id == user_id).with_for_update())
        if _seat_order_id(session, user_id, offer.window_id) is not None:
            raise EnrollmentError("你在本期招募中已经有一个会员订单了。")
        if session.execute(_TAKE, {"seat": offer.id}).rowcount != 1:
            raise full
        line = OrderLine(
            kind=SEAT,
            ref_id=offer.id,
            title=f"{offer.name}（{offer.window_name}）"[:120],
            unit_fen=offer.price_fen,
            quantity=1,
        )
        order = checkout.open_order(
            session, user_id, line, now=now, delivery="会员资格，付款后立即生效", provider=provider
        )
        seated = Seated(order.id, order.number, order.total_fen)
    return seated


def _next_member_number(session: Session) -> int:
    for _ in range(3):
        number = session.scalar(
            update(MemberNumberCounter)
            .where(MemberNumberCounter.id == 1)
            .values(last=MemberNumberCounter.last + 1)
            .returning(MemberNumberCounter.last)
        )
        if number is not None:
            return number
        first = (session.scalar(select(func.max(User.member_number))) or 0) + 1
        try:
            with session.begin_nested():
                session.add(MemberNumberCounter(id=1, last=first))
        except IntegrityError:
            continue  # another payment made the row a moment ago
        return first
    raise RuntimeError("could not take a member number")


def _extend(
    session: Session,
    user_id: int,
    tier: Tier | None,
    tier_name: str,
    days: int,
    *,
    action: str,
    actor: int | None,
    reason: str,
    order_id: int | None = None,
) -> Membership:
    """Add `days` to the user's membership (from its end when they have one, from now when
    not), number them if they have no number yet, and log it. Runs in the caller's
    transaction; the user's row is locked first on PostgreSQL."""
    now = utcnow()
    user = session.scalar(
        select(User)
        .where(User.id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    assert user is not None
    membership = membership_to_extend(session, user_id, now)
    ends_before = membership.ends_at if membership is not None else None
    if membership is None:
        membership = Membership(
            user_id=user_id, starts_at=now, ends_at=now, tier=tier_name, created_at=now
        )
        session.add(membership)
        action = "joined" if action == "renewed" else action
    membership.ends_at = membership.ends_at + timedelta(days=days)
    membership.tier, membership.tier_id = tier_name, tier.id if tier is not None else None
    if user.member_number is None:
        user.member_number = _next_member_number(session)
    session.flush()
    session.add(
        MembershipEvent(
            user_id=user_id,
            membership_id=membership.id,
            action=action,
            tier=tier_name,
            days=days,
            ends_before=ends_before,
            ends_after=membership.ends_at,
            order_id=order_id,
            actor_id=actor,
            reason=reason[:300],
            at=now,
        )
    )
    return membership


def _seat_paid(session: Session, order: Order, line: OrderLine) -> None:
    seat = session.get(WindowSeat, line.ref_id)
    tier = seat.tier if seat is not None else None
    name = tier.name if tier is not None else line.title[:40]
    _extend(
        session,
        order.user_id,
        tier,
        name,
        tier.days if tier is not None else 365,
        action="renewed",
        actor=None,
        reason=f"订单 {order.number} 已支付",
        order_id=order.id,
    )
    _forget_cached_membership(order.user_id)


def _shorten(
    session: Session,
    user_id: int,
    days: int | None,
    *,
    action: str,
    actor: int | None,
    reason: str,
    order_id: int | None = None,
) -> Membership | None:
    """Take `days` off the end of the user's membership (all of it from now on when None)
    and log it; the membership left, if any."""
    now = utcnow()
    session.scalar(select(User.id).where(User.id == user_id).with_for_update())
    latest = membership_to_extend(session, user_id, now)
    if latest is None:
        return None
    ends_before = latest.ends_at
    new_end = now if days is None else max(now, latest.ends_at - timedelta(days=days))
    kept = None
    for row in session.scalars(
        select(Membership).where(Membership.user_id == user_id, Membership.ends_at > new_end)
    ):
        if row.starts_at >= new_end:
            session.delete(row)  # it would not have started yet
        else:
            row.ends_at = new_end
            kept = row if new_end > now else None
    session.flush()
    session.add(
        MembershipEvent(
            user_id=user_id,
            membership_id=latest.id if kept is latest else None,
            action=action,
            tier=latest.tier,
            days=days or 0,
            ends_before=ends_before,
            ends_after=new_end,
            order_id=order_id,
            actor_id=actor,
            reason=reason[:300],
            at=now,
        )
    )
    _forget_cached_membership(user_id)
    return kept


def _seat_refunded(session: Session, order: Order, line: OrderLine) -> None:
    """A refunded seat takes back the days its payment added."""
    added = session.scalar(
        select(MembershipEvent.days).where(
            MembershipEvent.order_id == order.id,
            MembershipEvent.action.in_(["joined", "renewed"]),
        )
    )
    if added:
        _shorten(
            session,
            order.user_id,
            added,
            action="refunded",
            actor=None,
            reason=f"订单 {order.number} 已退款",
            order_id=order.id,
        )


def _forget_cached_membership(user_id: int) -> None:
    from flask import g, has_request_context

    if has_request_context():
        g.setdefault("memberships", {}).pop(user_id, None)


checkout.register_line_kind(
    SEAT,
    checkout.LineKind(
        counters=WindowSeat,
        on_paid=_seat_paid,
        on_refunded=_seat_refunded,
        delivered_on_payment=True,
    ),
)


# --- by hand: grants, revocations, reminders -------------------------------------------------


def _reason(reason: str) -> str:
    reason = " ".join(reason.split())
    if not reason:
        raise EnrollmentError("请写下原因，它会记入会员日志。", field="reason")
    if len(reason) > 300:
        raise EnrollmentError("原因最多 300 字。", field="reason")
    return reason


def grant(user_id: int, tier_name: str, days: int, *, actor: int | None, reason: str) -> Membership:
    """Give `days` of membership (a gift): from the end of the one in force, or from now.
    `tier_name` is a tier's slug or name, or a free name for a tier not sold in windows."""
    reason = _reason(reason)
    if not isinstance(days, int) or not 1 <= days <= MAX_DAYS:
        raise EnrollmentError(f"天数需在 1 到 {MAX_DAYS} 之间。", field="days")
    name = " ".join(tier_name.split())
    if not 1 <= len(name) <= 40:
        raise EnrollmentError("会员等级名称需在 1 到 40 个字符之间。", field="tier")
    tier = db.session.scalar(select(Tier).where((Tier.slug == name.lower()) | (Tier.name == name)))
    with write_transaction() as session:
        if session.get(User, user_id) is None:
            raise EnrollmentError("没有这个用户。", field="email")
        membership = _extend(
            session,
            user_id,
            tier,
            tier.name if tier is not None else name,
            days,
            action="granted",
            actor=actor,
            reason=reason,
        )
    _forget_cached_membership(user_id)
    return membership


def revoke(user_id: int, *, actor: int | None, reason: str) -> bool:
    """End the user's membership now (a refund made outside the site, a broken rule). False
    when they had none."""
    reason = _reason(reason)
    with write_transaction() as session:
        if membership_to_extend(session, user_id, utcnow()) is None:
            return False
        _shorten(session, user_id, None, action="revoked", actor=actor, reason=reason)
    return True


def remind(user_id: int, window_id: int) -> bool:
    """Note that the user wants to be told when the window opens; False if noted before."""
    try:
        with write_transaction() as session:
            if session.get(EnrollmentReminder, (window_id, user_id)) is not None:
                return False
            session.add(
                EnrollmentReminder(window_id=window_id, user_id=user_id, created_at=utcnow())
            )
    except IntegrityError:
        db.session.rollback()
        return False
    return True


def wants_reminder(user_id: int, window_id: int) -> bool:
    return db.session.get(EnrollmentReminder, (window_id, user_id)) is not None


def events_of(user_id: int) -> list[MembershipEvent]:
    return list(
        db.session.scalars(
            select(MembershipEvent)
            .where(MembershipEvent.user_id == user_id)
            .order_by(MembershipEvent.id.desc())
        )
    )
