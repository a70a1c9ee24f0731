"""Membership enrollment: tiers, windows with seat caps, joining through the checkout, member
numbers, renewals, grants and revocations, at the exact seconds that matter."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import func, insert, select

from app import db, write_transaction
from members import enrollment
from members.enrollment import EnrollmentError, TierForm, WindowForm
from members.models import Membership, MembershipEvent, User, WindowSeat
from shop import checkout, payments
from shop.models import Order, OrderStatus
from tests.conftest import DEFAULT_NOW

# The window of these tests opens at 10:00:00 Shanghai time (02:00 UTC) on 2026-11-21.
OPENS = datetime(2026, 11, 21, 2, 0, tzinfo=UTC)
CLOSES = datetime(2026, 11, 22, 2, 0, tzinfo=UTC)
SECOND = timedelta(seconds=1)


def setup_tiers(app, *, seats: int = 5, iron: int = 2, renewal_hours: int = 0) -> int:
    with app.app_context():
        enrollment.save_tier(TierForm("putong", "普通会员", "200", "365", "每日语音\n社群发帖"))
        enrollment.save_tier(TierForm("tiegan", "铁杆会员", "1200", "365", "全部权益\n线下活动"))
        window = enrollment.save_window(
            WindowForm(
                "2027 会员招募",
                "2026-11-21 10:00",
                "2026-11-22 10:00",
                str(renewal_hours),
                {"putong": str(seats), "tiegan": str(iron)},
            )
        )
        return window.id


def new_user(app, email: str, *, member_until: datetime | None = None) -> int:
    with app.app_context(), write_transaction() as session:
        user = User(email=email, password_hash="unused", role="reader", created_at=DEFAULT_NOW)
        session.add(user)
        session.flush()
        if member_until is not None:
            session.add(
                Membership(
                    user_id=user.id,
                    tier="普通会员",
                    starts_at=DEFAULT_NOW - timedelta(days=300),
                    ends_at=member_until,
                    created_at=DEFAULT_NOW,
                )
            )
        return user.id


def join(app, user_id: int, tier: str = "putong") -> SimpleNamespace:
    with app.app_context():
        seated = enrollment.join(db.session.get(User, user_id), tier)
        order = db.session.get(Order, seated.order_id)
        return SimpleNamespace(
            id=order.id, number=order.number, total_fen=order.total_fen, status=order.status
        )


def pay(app, order: SimpleNamespace) -> payments.Outcome:
    with app.app_context():
        return payments.record_payment(
            order.number,
            provider="dev",
            transaction_id=f"t-{order.number}",
            amount_fen=order.total_fen,
            paid_at=DEFAULT_NOW,
        )


def seat_counts(tier: str = "putong") -> tuple[int, int, int, int]:
    seat = db.session.scalar(
        select(WindowSeat)
        .join(WindowSeat.tier)
        .where(WindowSeat.tier.has(slug=tier))
        .execution_options(populate_existing=True)
    )
    return seat.cap, seat.available, seat.held, seat.sold


def order_count() -> int:
    return db.session.scalar(select(func.count(Order.id))) or 0


# --- the seconds that matter -----------------------------------------------------------------


def test_the_window_refuses_at_0959_59_and_accepts_at_1000_00(app, clock):
    setup_tiers(app)
    reader = new_user(app, "a@example.com")
    clock.set(OPENS - SECOND)
    with pytest.raises(EnrollmentError, match="招募还没有开始，2026-11-21 10:00 开放"):
        join(app, reader)
    with app.app_context():
        assert order_count() == 0
    clock.set(OPENS)
    order = join(app, reader)
    assert order.status == OrderStatus.PENDING and order.total_fen == 20000
    with app.app_context():
        assert seat_counts() == (5, 4, 1, 0)


def test_the_window_accepts_until_its_closing_second(app, clock):
    setup_tiers(app)
    early, late = new_user(app, "a@example.com"), new_user(app, "b@example.com")
    clock.set(CLOSES - SECOND)
    join(app, early)
    clock.set(CLOSES)
    with pytest.raises(EnrollmentError, match="现在不在招募期内"):
        join(app, late)
    with app.app_context():
        assert order_count() == 1
        assert seat_counts() == (5, 4, 1, 0)


def test_the_renewal_period_is_for_current_members_only(app, clock):
    setup_tiers(app, renewal_hours=24)
    reader = new_user(app, "reader@example.com")
    member = new_user(app, "member@example.com", member_until=OPENS + timedelta(days=20))
    clock.set(OPENS - timedelta(hours=24) - SECOND)
    with pytest.raises(EnrollmentError, match="招募还没有开始"):
        join(app, member)
    clock.set(OPENS - timedelta(hours=24))
    with pytest.raises(EnrollmentError, match="续费优先期.*2026-11-21 10:00 起向所有人开放"):
        join(app, reader)
    order = join(app, member)
    assert pay(app, order) == payments.Outcome.PAID
    with app.app_context():
        memberships = db.session.scalars(
            select(Membership).where(Membership.user_id == member)
        ).all()
        # Extended from its current end, in the same record, with a number.
        assert len(memberships) == 1
        assert memberships[0].ends_at == OPENS + timedelta(days=20 + 365)
        assert memberships[0].tier == "普通会员"
        assert db.session.get(User, member).member_number == 1
        event = db.session.scalar(select(MembershipEvent))
        assert (event.action, event.days, event.ends_before) == (
            "renewed",
            365,
            OPENS + timedelta(days=20),
        )
        assert order_count() == 1
    clock.set(OPENS)
    join(app, reader)  # everyone, once the window opens


def test_perks_hold_until_the_last_second_and_stop_at_ends_at(app, clock):
    setup_tiers(app)
    reader = new_user(app, "a@example.com")
    clock.set(OPENS)
    pay(app, join(app, reader))
    ends = OPENS + timedelta(days=365)
    with app.app_context():
        user = db.session.get(User, reader)
        assert user.member_number == 1
        membership = user.membership
        assert (membership.starts_at, membership.ends_at) == (OPENS, ends)
    clock.set(ends - SECOND)
    with app.app_context():
        assert db.session.get(User, reader).is_member
    clock.set(ends)
    with app.app_context():
        assert not db.session.get(User, reader).is_member


def test_paying_makes_a_member_completes_the_order_and_numbers_follow_payment_order(app, clock):
    setup_tiers(app)
    clock.set(OPENS)
    first, second = new_user(app, "a@example.com"), new_user(app, "b@example.com")
    order_first, order_second = join(app, first), join(app, second, "tiegan")
    assert pay(app, order_second) == payments.Outcome.PAID  # the later order pays first
    assert pay(app, order_first) == payments.Outcome.PAID
    with app.app_context():
        assert db.session.get(User, second).member_number == 1
        assert db.session.get(User, first).member_number == 2
        assert db.session.get(User, second).membership.tier == "铁杆会员"
        done = db.session.get(Order, order_first.id)
        assert done.status == OrderStatus.COMPLETED and done.completed_at == OPENS
        assert seat_counts() == (5, 4, 0, 1)
        assert seat_counts("tiegan") == (2, 1, 0, 1)


def test_an_expired_hold_gives_the_seat_back(app, clock):
    setup_tiers(app, seats=1)
    clock.set(OPENS)
    late, next_in_line = new_user(app, "a@example.com"), new_user(app, "b@example.com")
    order = join(app, late)
    with pytest.raises(EnrollmentError, match="本期普通会员名额已满"):
        join(app, next_in_line)
    clock.advance(minutes=15)
    join(app, next_in_line)  # the hold expired: its seat went back and was taken again
    with app.app_context():
        assert db.session.get(Order, order.id).status == OrderStatus.CANCELLED
        assert seat_counts() == (1, 0, 1, 0)
    # The late payment is refunded, never a second seat.
    assert pay(app, order) == payments.Outcome.REFUNDING
    with app.app_context():
        assert db.session.get(User, late).member_number is None
        assert not db.session.get(User, late).is_member


def test_a_full_tier_refuses_without_creating_an_order(app, clock):
    setup_tiers(app, seats=1)
    clock.set(OPENS)
    join(app, new_user(app, "a@example.com"))
    with pytest.raises(EnrollmentError, match="名额已满"):
        join(app, new_user(app, "b@example.com"))
    with app.app_context():
        assert order_count() == 1
        assert seat_counts() == (1, 0, 1, 0)


def test_one_seat_per_reader_per_window(app, clock):
    setup_tiers(app)
    clock.set(OPENS)
    reader = new_user(app, "a@example.com")
    pay(app, join(app, reader))
    with pytest.raises(EnrollmentError, match="已经有一个会员订单"):
        join(app, reader, "tiegan")
    with app.app_context():
        assert order_count() == 1


@pytest.mark.parametrize("tier", ["nope", "x" * 200, ""])
def test_an_unknown_tier_is_refused(app, clock, tier):
    setup_tiers(app)
    clock.set(OPENS)
    with pytest.raises(EnrollmentError, match="没有这个会员等级"):
        join(app, new_user(app, "a@example.com"), tier)


def test_a_refunded_seat_takes_back_its_days_and_the_seat(app, clock):
    setup_tiers(app)
    clock.set(OPENS)
    member = new_user(app, "m@example.com", member_until=OPENS + timedelta(days=10))
    order = join(app, member)
    pay(app, order)
    with app.app_context():
        checkout.request_refund(order.id, actor=member, reason="买错了")
        assert payments.approve_refund(order.id, actor=member)
        assert db.session.get(Order, order.id).status == OrderStatus.REFUNDED
        user = db.session.get(User, member)
        assert user.membership.ends_at == OPENS + timedelta(days=10)
        assert user.member_number == 1  # kept, never reused
        assert seat_counts() == (5, 5, 0, 0)
        actions = [e.action for e in enrollment.events_of(member)]
        assert actions == ["refunded", "renewed"]


# --- tiers and windows -----------------------------------------------------------------------


def test_windows_may_not_overlap_renewal_periods_included(app):
    setup_tiers(app)
    with app.app_context():
        with pytest.raises(EnrollmentError) as refused:
            enrollment.save_window(
                WindowForm("补招", "2026-11-23 12:00", "2026-11-24 10:00", "48", {"putong": "9"})
            )
        assert "和「2027 会员招募」" in refused.value.errors["opens"]
        # Back to back is fine.
        enrollment.save_window(
            WindowForm("补招", "2026-11-23 10:00", "2026-11-24 10:00", "24", {"putong": "9"})
        )


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (WindowForm("", "2027-01-01 10:00", "2027-01-02 10:00", "0", {"putong": "1"}), "name"),
        (WindowForm("x", "2027-01-01", "2027-01-02 10:00", "0", {"putong": "1"}), "opens"),
        (WindowForm("x", "2027-01-02 10:00", "2027-01-01 10:00", "0", {"putong": "1"}), "closes"),
        (
            WindowForm("x", "2027-01-01 10:00", "2027-01-02 10:00", "-1", {"putong": "1"}),
            "renewal_hours",
        ),
        (
            WindowForm("x", "2027-01-01 10:00", "2027-01-02 10:00", "0", {"putong": "1.5"}),
            "seats-putong",
        ),
        (WindowForm("x", "2027-01-01 10:00", "2027-01-02 10:00", "0", {"putong": "0"}), "seats"),
        (WindowForm("x", "2027-01-01 10:00", "2027-01-02 10:00", "0", {"gold": "5"}), "seats-gold"),
    ],
)
def test_bad_windows_are_refused_by_field(app, form, field):
    setup_tiers(app)
    with app.app_context():
        with pytest.raises(EnrollmentError) as refused:
            enrollment.save_window(form)
        assert field in refused.value.errors
        assert len(enrollment.windows()) == 1


def test_a_cap_never_goes_below_the_seats_taken(app, clock):
    window = setup_tiers(app)
    clock.set(OPENS)
    join(app, new_user(app, "a@example.com"))
    join(app, new_user(app, "b@example.com"))
    with app.app_context():
        form = enrollment.window_form(db.session.get(enrollment.EnrollmentWindow, window))
        form.seats = {"putong": "1", "tiegan": "2"}
        with pytest.raises(EnrollmentError) as refused:
            enrollment.save_window(form, window)
        assert "已有 2 个名额" in refused.value.errors["seats-putong"]
        form.seats = {"putong": "2", "tiegan": ""}
        enrollment.save_window(form, window)
        assert seat_counts() == (2, 0, 2, 0)
        assert [s.tier.slug for s in enrollment.seats_of(window)] == ["putong"]


@pytest.mark.parametrize(
    ("form", "field"),
    [
        (TierForm("Bad Slug", "x", "200"), "slug"),
        (TierForm("ok", "", "200"), "name"),
        (TierForm("ok", "x", "0"), "price"),
        (TierForm("ok", "x", "abc"), "price"),
        (TierForm("ok", "x", "200", "0"), "days"),
        (TierForm("putong", "另一个", "200"), "slug"),
        (TierForm("ok", "普通会员", "200"), "name"),
    ],
)
def test_bad_tiers_are_refused_by_field(app, form, field):
    setup_tiers(app)
    with app.app_context():
        with pytest.raises(EnrollmentError) as refused:
            enrollment.save_tier(form)
        assert field in refused.value.errors
        assert len(enrollment.tiers()) == 2


# --- by hand ---------------------------------------------------------------------------------


def test_grants_and_revocations_need_a_reason_and_are_logged(app, clock):
    setup_tiers(app)
    reader = new_user(app, "a@example.com")
    editor = new_user(app, "e@example.com")
    with app.app_context():
        with pytest.raises(EnrollmentError, match="请写下原因"):
            enrollment.grant(reader, "putong", 30, actor=editor, reason="  ")
        assert db.session.scalar(select(func.count(MembershipEvent.id))) == 0
        enrollment.grant(reader, "putong", 30, actor=editor, reason="作者赠送")
        user = db.session.get(User, reader)
        assert user.is_member and user.member_number == 1
        assert user.membership.ends_at == DEFAULT_NOW + timedelta(days=30)
        with pytest.raises(EnrollmentError, match="请写下原因"):
            enrollment.revoke(reader, actor=editor, reason="")
        assert enrollment.revoke(reader, actor=editor, reason="线下已退款")
        assert not enrollment.revoke(reader, actor=editor, reason="再来一次")
    with app.app_context():
        assert not db.session.get(User, reader).is_member
        events = enrollment.events_of(reader)
        assert [(e.action, e.actor_id, e.reason) for e in events] == [
            ("revoked", editor, "线下已退款"),
            ("granted", editor, "作者赠送"),
        ]
        assert events[0].at == DEFAULT_NOW
        # A later grant gives the same number back to the same person, never a new one.
        enrollment.grant(reader, "铁杆会员", 10, actor=editor, reason="补偿")
        assert db.session.get(User, reader).member_number == 1


# --- the opening-second race ----------------------------------------------------------------

RACE_SEATS = 5_000
RACE_ATTEMPTS = 20_000
RACE_THREADS = 12


def test_twenty_thousand_attempts_for_five_thousand_seats_take_exactly_the_cap(app, clock):
    setup_tiers(app, seats=RACE_SEATS)
    with app.app_context(), write_transaction() as session:
        session.execute(
            insert(User),
            [
                {
                    "email": f"r{n}@example.com",
                    "password_hash": "unused",
                    "role": "reader",
                    "created_at": DEFAULT_NOW,
                }
                for n in range(RACE_ATTEMPTS)
            ],
        )
    with app.app_context():
        readers = db.session.scalars(select(User.id).order_by(User.id)).all()
    clock.set(OPENS)
    outcomes = {"ok": 0, "refused": 0, "error": 0}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(RACE_THREADS)
    taken: list[tuple[str, int]] = []

    def attempt(n: int) -> None:
        with app.app_context():
            start.wait()
            for user_id in readers[n::RACE_THREADS]:
                try:
                    order = enrollment.join(db.session.get(User, user_id), "putong")
                    result = "ok"
                    with lock:
                        taken.append((order.number, order.total_fen))
                except EnrollmentError:
                    result = "refused"
                except Exception as error:  # anything else is a failure of the test
                    result = "error"
                    with lock:
                        errors.append(repr(error)[:300])
                finally:
                    db.session.rollback()
                    db.session.expunge_all()
                with lock:
                    outcomes[result] += 1

    run_threads(attempt)
    assert outcomes == {"ok": RACE_SEATS, "refused": RACE_ATTEMPTS - RACE_SEATS, "error": 0}, (
        errors[:3]
    )
    with app.app_context():
        assert seat_counts() == (RACE_SEATS, 0, RACE_SEATS, 0)
        assert order_count() == RACE_SEATS

    # Everyone who got a seat pays at once: numbers are unique and gapless.
    paid = {"paid": 0, "other": 0}

    def pay_some(n: int) -> None:
        with app.app_context():
            start.wait()
            for number, total in taken[n::RACE_THREADS]:
                outcome = payments.record_payment(
                    number,
                    provider="dev",
                    transaction_id=f"t-{number}",
                    amount_fen=total,
                    paid_at=OPENS,
                )
                db.session.rollback()
                with lock:
                    paid["paid" if outcome == payments.Outcome.PAID else "other"] += 1

    run_threads(pay_some)
    assert paid == {"paid": RACE_SEATS, "other": 0}
    with app.app_context():
        assert seat_counts() == (RACE_SEATS, 0, 0, RACE_SEATS)
        numbers = db.session.scalars(
            select(User.member_number).where(User.member_number.is_not(None))
        ).all()
        assert sorted(numbers) == list(range(1, RACE_SEATS + 1))
        members = db.session.scalar(select(func.count(Membership.id)))
        assert members == RACE_SEATS
        print(
            f"\nenrollment race [{db.engine.dialect.name}]: {RACE_THREADS} threads, "
            f"{RACE_ATTEMPTS} attempts for {RACE_SEATS} seats: {outcomes['ok']} seats taken, "
            f"{outcomes['refused']} refused, {outcomes['error']} errors, over the cap "
            f"{outcomes['ok'] - RACE_SEATS}; {paid['paid']} paid, numbers 1..{max(numbers)} "
            f"unique and gapless"
        )


def run_threads(target) -> None:
    threads = [threading.Thread(target=target, args=(n,)) for n in range(RACE_THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(600)
    assert not any(thread.is_alive() for thread in threads)
