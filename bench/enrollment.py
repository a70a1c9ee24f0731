"""Benchmark the opening second of a membership enrollment window on the real site.

    .venv/bin/python bench/enrollment.py

Builds a fresh site the way bench/flash_sale.py does (SQLite in a temporary data directory,
or PostgreSQL with --database-url or TEST_DATABASE_URL; `flask --app app db upgrade`), seeds
one tier with `--seats` seats in an enrollment window open since a minute ago, and
`--attempts` readers, by bulk inserts. It serves the site with gunicorn on 127.0.0.1, logs
every reader in and opens /join over HTTP (untimed), then has every reader POST the join form
once, all at once, `--concurrency` requests in flight. It prints seats/s, attempts/s,
latency, the answers, and what the database holds afterwards: it exits non-zero when any
seat is over the cap or the seat counters do not add up (and on any error with --strict). No
test asserts a timing (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

# Run as `python bench/enrollment.py` from anywhere: the site's modules live one level up.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select  # noqa: E402

from app import db, write_transaction  # noqa: E402
from bench.flash_sale import (  # noqa: E402
    EMAIL_DOMAIN,
    ERROR_SAMPLES,
    GOAL_P99_MS,
    RACE_TIMEOUT,
    Answer,
    Buyer,
    ServerSetup,
    add_server_arguments,
    choose_database,
    describe_error,
    goal,
    insert_readers,
    machine_line,
    migrate,
    print_log_tail,
    race_figures,
    run_in_temporary_dir,
    serve_and_race,
    server_env,
    server_setup,
    site,
    wipe_postgres,
)
from members.enrollment import SEAT  # noqa: E402
from members.models import EnrollmentWindow, Tier, WindowSeat  # noqa: E402
from shop.models import HOLDING, SOLD, Order, OrderLine  # noqa: E402

TIER_SLUG = "putong"
JOIN_PAGE = "/join"
JOIN_PATH = f"/join/{TIER_SLUG}"
FULL = "名额已满"  # what the refusal after the last seat says ("本期普通会员名额已满。")


# --- the database ------------------------------------------------------------------------


def seed(env: dict[str, str], seats: int, readers: int) -> list[str]:
    """One tier with `seats` seats in a window open since a minute ago (no renewal period),
    and `readers` readers who are not members yet; their emails."""
    app = site(env)
    now = datetime.now(UTC)
    emails = [f"reader{n:06d}@{EMAIL_DOMAIN}" for n in range(1, readers + 1)]
    opens = now - timedelta(minutes=1)
    with app.app_context():
        with write_transaction() as session:
            session.execute(
                insert(Tier),
                [
                    {
                        "slug": TIER_SLUG,
                        "name": "普通会员",
                        "price_fen": 19_900,
                        "days": 365,
                        "perks": "全部会员文章\n每月一次读书会",
                        "position": 1,
                        "created_at": now - timedelta(days=30),
                        "updated_at": now - timedelta(days=30),
                    }
                ],
            )
            session.execute(
                insert(EnrollmentWindow),
                [
                    {
                        "name": "会员招募（压测）",
                        "renewal_starts_at": opens,
                        "opens_at": opens,
                        "closes_at": now + timedelta(hours=1),
                        "created_at": now - timedelta(days=7),
                        "updated_at": now - timedelta(days=7),
                    }
                ],
            )
            session.execute(
                insert(WindowSeat),
                [
                    {
                        "window_id": session.scalar(select(EnrollmentWindow.id)),
                        "tier_id": session.scalar(select(Tier.id)),
                        "cap": seats,
                        "available": seats,
                        "held": 0,
                        "sold": 0,
                    }
                ],
            )
            insert_readers(session, emails, now)
        db.engine.dispose()
    return emails


@dataclass(frozen=True)
class Seats:
    """The tier's seats after the opening, as the database holds them."""

    cap: int
    available: int
    held: int
    sold: int
    pending: int  # pending orders of a seat of the tier (holding it)
    paid: int  # paid ones, none in this run: nobody pays
    readers_over_one: int  # readers holding or owning more than one seat

    @property
    def taken(self) -> int:
        return self.held + self.sold

    @property
    def over_cap(self) -> int:
        return max(0, self.taken - self.cap, self.pending + self.paid - self.cap)

    @property
    def counters_add_up(self) -> bool:
        return self.available >= 0 and self.available + self.held + self.sold == self.cap

    @property
    def invariant_holds(self) -> bool:
        return (
            self.counters_add_up
            and self.pending == self.held
            and self.paid == self.sold
            and self.readers_over_one == 0
        )


def seats_after(env: dict[str, str]) -> Seats:
    """What the database holds after the opening."""
    app = site(env)
    with app.app_context():
        seat = db.session.scalars(select(WindowSeat).join(Tier).where(Tier.slug == TIER_SLUG)).one()
        orders = (
            select(Order.id, Order.user_id, Order.status)
            .join(OrderLine)
            .where(
                OrderLine.kind == SEAT,
                OrderLine.ref_id == seat.id,
                Order.status.in_([*HOLDING, *SOLD]),
            )
            .subquery()
        )
        by_status = dict(
            db.session.execute(
                select(orders.c.status, func.count(orders.c.id.distinct())).group_by(
                    orders.c.status
                )
            ).all()
        )
        over_one = (
            select(orders.c.user_id)
            .group_by(orders.c.user_id)
            .having(func.count(orders.c.id.distinct()) > 1)
            .subquery()
        )
        found = Seats(
            cap=seat.cap,
            available=seat.available,
            held=seat.held,
            sold=seat.sold,
            pending=sum(by_status.get(s, 0) for s in HOLDING),
            paid=sum(by_status.get(s, 0) for s in SOLD),
            readers_over_one=db.session.scalar(select(func.count()).select_from(over_one)) or 0,
        )
        db.session.rollback()
        db.engine.dispose()
    return found


# --- reading the answers -------------------------------------------------------------------


def sorted_answers(answers: Sequence[Answer]) -> tuple[list[Answer], list[Answer], list[Answer]]:
    """Seats taken (303 to /pay/...), refusals because every seat is taken (409 saying so),
    and errors: anything else, other refusals included, since every reader tries once in a
    window that is open."""
    joined, full, errors = [], [], []
    for a in answers:
        if a.status == 303 and "/pay/" in a.location:
            joined.append(a)
        elif a.status == 409 and FULL in a.body:
            full.append(a)
        else:
            errors.append(a)
    return joined, full, errors


def join_form(reader: Buyer) -> dict[str, str]:
    return {"csrf_token": reader.token}


# --- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Options:
    seats: int
    attempts: int
    concurrency: int
    setup: ServerSetup
    timeout: float
    database_url: str | None
    wipe_allowed: bool
    keep: bool
    strict: bool


def run(options: Options, where: Path, app_spec: str = "app:create_app()") -> int:
    """The whole benchmark in `where`; the exit status. `app_spec` is what gunicorn serves
    (a profiling wrapper around the site, say)."""
    database = choose_database(options.database_url, where, options.wipe_allowed)
    env = server_env(where, database, secrets.token_hex(16))
    print(
        f"enrollment benchmark: {database.kind}, {options.setup.describe()}, "
        f"{options.seats:,} seats, {options.attempts:,} attempts, "
        f"concurrency {options.concurrency}"
    )
    print(machine_line())

    start = time.perf_counter()
    if database.kind == "postgresql":
        wipe_postgres(database.url)
    migrate(env)
    emails = seed(env, options.seats, options.attempts)
    print(
        f"seed: migrated, 1 tier, 1 window of {options.seats:,} seats, {len(emails):,} readers "
        f"in {time.perf_counter() - start:.1f} s"
    )

    log_path = where / "gunicorn.log"
    raced = serve_and_race(
        env,
        options.setup,
        log_path,
        [Buyer(email) for email in emails],
        options.concurrency,
        app_spec,
        who="readers",
        form_path=JOIN_PAGE,
        path=JOIN_PATH,
        form=join_form,
        timeout=options.timeout,
    )
    if raced is None:
        return 1
    answers, wall = raced.answers, raced.wall

    joined, full, errors = sorted_answers(answers)
    figures = race_figures(answers, joined, wall)
    print(
        f"opening: {len(answers):,} attempts in {wall:.2f} s, "
        f"{figures.requests_per_s:,.0f} attempts/s"
    )
    if joined:
        print(
            f"seats: {len(joined):,} joined, the last at {figures.last_order:.2f} s: "
            f"{figures.orders_per_s:,.0f} seats/s while seats lasted "
            f"({len(joined) / wall:,.0f} seats/s over the whole opening)"
        )
    else:
        print("seats: none joined")
    print(
        f"latency: p50 {figures.p50:.0f} ms, p90 {figures.p90:.0f} ms, "
        f"p99 {figures.p99:.0f} ms, max {figures.max:.0f} ms"
    )
    print(
        f"answers: {len(joined):,} joined (303), {len(full):,} full (409), {len(errors):,} errors"
    )
    statuses = Counter(a.status for a in answers)
    print(
        "by status: "
        + ", ".join(
            f"{status or 'no answer'} × {count:,}" for status, count in sorted(statuses.items())
        )
    )
    for kind, count in Counter(describe_error(a) for a in errors).most_common(ERROR_SAMPLES):
        print(f"  error: {count} × {kind}")
    print(f"CPU during the opening: {raced.cpu_line(database.kind)}")
    if errors:
        print_log_tail(log_path, "errors were answered", lines=15)

    found = seats_after(env)
    adds_up = "adds up" if found.counters_add_up else "DOES NOT ADD UP"
    print(
        f"seat counters: cap {found.cap:,} = available {found.available:,} "
        f"+ held {found.held:,} + sold {found.sold:,}: {adds_up}"
    )
    print(
        f"database: {found.pending:,} pending and {found.paid:,} paid seat orders; "
        f"seats taken {found.taken:,} of {found.cap:,}; {len(joined):,} answered as joined"
    )
    print(f"readers with more than one seat: {found.readers_over_one}")
    print(f"OVER THE CAP: {found.over_cap}")
    print(f"invariant: {'holds' if found.invariant_holds else 'BROKEN'}")

    print(goal("0 over the cap", found.over_cap == 0, str(found.over_cap)))
    print(goal("0 errors", not errors, str(len(errors))))
    print(goal(f"p99 <= {GOAL_P99_MS:g} ms", figures.p99 <= GOAL_P99_MS, f"{figures.p99:.0f} ms"))
    if options.keep:
        print(f"kept: {where} (gunicorn.log, chendu.db for SQLite)")

    # A seat answered as taken must be in the database; the reverse (a seat taken whose
    # answer was lost to a timeout) is an error, counted above.
    if found.over_cap or not found.invariant_holds or len(joined) > found.pending + found.paid:
        return 1
    if options.strict and (errors or raced.failures):
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seats", type=int, default=5000, help="seats of the tier (5000)")
    parser.add_argument(
        "--attempts", type=int, default=20000, help="readers, each tries to join once (20000)"
    )
    add_server_arguments(parser)
    parser.add_argument(
        "--timeout",
        type=float,
        default=RACE_TIMEOUT,
        help=f"seconds after which no join is sent any more ({RACE_TIMEOUT:g})",
    )
    args = parser.parse_args(argv)
    if not 1 <= args.seats <= 1_000_000 or not 1 <= args.attempts <= 100_000:
        parser.error("--seats must be 1..1000000 and --attempts 1..100000")
    if not 1 <= args.timeout <= 3600:
        parser.error("--timeout must be 1..3600 seconds")
    options = Options(
        seats=args.seats,
        attempts=args.attempts,
        concurrency=args.concurrency,
        setup=server_setup(parser, args),
        timeout=args.timeout,
        database_url=args.database_url,
        wipe_allowed=args.wipe_allowed,
        keep=args.keep,
        strict=args.strict,
    )
    return run_in_temporary_dir(args.keep, "chendu-enrollment-", lambda where: run(options, where))


if __name__ == "__main__":
    sys.exit(main())
