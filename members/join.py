"""The join page (`/join`): the tiers of the enrollment window with their seats, a countdown
before it opens, joining (a seat held as a pending order, paid at the shop's cashier) and
「开放时提醒我」.

At the opening second thousands open this page and press the button at once. The page and
its live block (`/join/live`, polled every few seconds while seats can change) are a handful
of indexed reads; a join that cannot succeed is answered from one read without waiting for
the write lock (members/enrollment.py).
"""

from __future__ import annotations

from datetime import datetime
from functools import partial

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from app import db, parse_id, utcnow
from content import pages
from members import enrollment
from members.enrollment import EnrollmentError, Phase
from members.models import EnrollmentWindow
from shop import payments

bp = Blueprint("join", __name__)

POLL_SECONDS = 3


def _seconds_until(moment_at: datetime, now: datetime) -> int:
    """Whole seconds left, rounded up, so a countdown never reaches zero early."""
    return max(0, int((moment_at - now).total_seconds() + 0.999))


def _context(error: str | None = None) -> dict:
    now = utcnow()
    moment = enrollment.moment(now)
    window = moment.window
    seats = enrollment.seats_of(window.id) if window is not None else []
    signed_in = current_user.is_authenticated
    membership = current_user.membership if signed_in else None
    phase = moment.phase
    # Who may press a join button now, and when the countdown ends for this reader.
    opens_for_me: datetime | None = None
    if window is not None and phase in (Phase.UPCOMING, Phase.RENEWAL):
        opens_for_me = (
            window.renewal_starts_at
            if membership is not None and window.renewal_starts_at < window.opens_at
            else window.opens_at
        )
        if opens_for_me <= now:  # a member in the renewal period
            opens_for_me = None
    may_join = phase == Phase.OPEN or (phase == Phase.RENEWAL and membership is not None)
    mine = (
        enrollment.pending_seat_order(current_user.id, window.id)
        if signed_in and window is not None and phase != Phase.CLOSED
        else None
    )
    sold_out = bool(seats) and all(seat.available == 0 for seat in seats)
    return {
        "now": now,
        "moment": moment,
        "Phase": Phase,
        "window": window,
        "seats": seats,
        "membership": membership,
        "may_join": may_join and mine is None,
        "mine": mine,
        "sold_out": sold_out,
        "countdown": _seconds_until(opens_for_me, now) if opens_for_me else 0,
        "reminded": (
            signed_in
            and window is not None
            and phase in (Phase.UPCOMING, Phase.RENEWAL)
            and enrollment.wants_reminder(current_user.id, window.id)
        ),
        "polling": phase in (Phase.RENEWAL, Phase.OPEN) and not (sold_out and not _held(seats)),
        "poll_seconds": POLL_SECONDS,
        "error": error,
    }


def _held(seats) -> int:
    return sum(seat.held for seat in seats)


@bp.get("/join")
def page():
    return render_template("members/join.html", **_context())


@bp.get("/join/live")
def live():
    """The part of the join page that changes: seats left, buttons, the countdown."""
    return render_template("members/_join_live.html", **_context())


@bp.post("/join/<slug>")
def join(slug: str):
    # At the opening second most of the crowd lands on a refusal, after the last seat: it is
    # told before they are even loaded, with a short kept page (the reason and the way back),
    # not the whole join page read again.
    refused = enrollment.refusal_for_anyone(slug)
    if refused is None:
        if not current_user.is_authenticated:
            return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
        try:
            seated = enrollment.join(current_user, slug, provider=payments.provider_name())
        except EnrollmentError as error:
            refused = error
        else:
            return redirect(url_for("orders.pay", number=seated.number), code=303)
    message = refused.message
    render = partial(render_template, "members/refused.html", message=message)
    return pages.kept_answer("join.refusals", (message,), render, pages.REFUSAL_SECONDS), 409


@bp.post("/join/remind")
@login_required
def remind():
    window_id = parse_id(request.form.get("window"))
    window = db.session.get(EnrollmentWindow, window_id) if window_id else None
    if window is None:
        abort(404)
    if window.opens_at <= utcnow():
        flash("这期招募已经开放了。")
    elif enrollment.remind(current_user.id, window.id):
        flash("好的，招募开放时会提醒你。")
    else:
        flash("你已经订阅过开放提醒了。")
    return redirect(url_for("join.page"), code=303)
