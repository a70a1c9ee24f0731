"""The checkout core: taking stock, holds that expire, paying, the per-member limit, and a
race of many buyers for one drop that must never oversell."""

from __future__ import annotations

import random
import re
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import event, func, insert, select, update

from app import create_app, db, write_transaction
from members.models import Membership, User
from shop import checkout
from shop.checkout import CheckoutError
from shop.models import Order, OrderEvent, OrderLine, OrderStatus, Product
from tests.conftest import DEFAULT_NOW, make_config


def make_product(app, **fields) -> int:
    values = {
        "slug": "drop",
        "title": "限量笔记本",
        "price_fen": 12800,
        "member_price_fen": 9900,
        "stock": 10,
        "per_member_limit": None,
        "starts_at": DEFAULT_NOW - timedelta(minutes=1),
        "members_only": False,
        "status": "live",
        "created_at": DEFAULT_NOW,
        "updated_at": DEFAULT_NOW,
    }
    values.update(fields)
    values.setdefault("available", values["stock"])
    with app.app_context():
        with write_transaction() as session:
            product = Product(**values)
            session.add(product)
        return product.id


def make_buyers(app, count: int, *, members: bool = False) -> list[int]:
    """`count` accounts, inserted in bulk (their passwords are never used)."""
    rows = [
        {
            "email": f"buyer{n}@example.com",
            "password_hash": "unused",
            "role": "reader",
            "created_at": DEFAULT_NOW,
        }
        for n in range(count)
    ]
    with app.app_context(), write_transaction() as session:
        session.execute(insert(User), rows)
        ids = session.scalars(select(User.id).order_by(User.id)).all()
        if members:
            session.execute(
                insert(Membership),
                [
                    {
                        "user_id": i,
                        "tier": "年度会员",
                        "starts_at": DEFAULT_NOW - timedelta(days=1),
                        "ends_at": DEFAULT_NOW + timedelta(days=365),
                        "created_at": DEFAULT_NOW,
                    }
                    for i in ids
                ],
            )
    return list(ids)


def counters(product_id: int) -> tuple[int, int, int, int]:
    p = db.session.scalar(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    )
    return p.stock, p.available, p.held, p.sold


def buy(app, user_id: int, product_id: int, quantity: int = 1) -> SimpleNamespace:
    with app.app_context():
        order = checkout.place_order(db.session.get(User, user_id), product_id, quantity)
        return SimpleNamespace(
            id=order.id, number=order.number, total_fen=order.total_fen, status=order.status
        )


# --- one buyer ---------------------------------------------------------------------------


def test_an_order_holds_stock_and_paying_makes_it_sold(app):
    product = make_product(app)
    [buyer] = make_buyers(app, 1)
    order = buy(app, buyer, product, 2)
    assert re.fullmatch(r"20261121-000001", order.number)
    assert order.total_fen == 2 * 12800 and order.status == "pending"
    with app.app_context():
        assert counters(product) == (10, 8, 2, 0)
        assert checkout.mark_paid(order.id)
        assert counters(product) == (10, 8, 0, 2)
        assert not checkout.mark_paid(order.id)  # exactly once
        assert counters(product) == (10, 8, 0, 2)
        events = db.session.scalars(select(OrderEvent.to_status).order_by(OrderEvent.id)).all()
        assert events == ["pending", "paid"]


def test_order_numbers_count_up_per_shanghai_day(app, clock):
    product = make_product(app, stock=None)
    [buyer] = make_buyers(app, 1)
    assert buy(app, buyer, product).number == "20261121-000001"
    assert buy(app, buyer, product).number == "20261121-000002"
    clock.advance(hours=16)  # 2026-11-22 00:00 in Shanghai
    assert buy(app, buyer, product).number == "20261122-000001"


def test_members_pay_the_member_price(app):
    product = make_product(app)
    [member] = make_buyers(app, 1, members=True)
    assert buy(app, member, product).total_fen == 9900


def test_an_expired_hold_gives_its_stock_back(app, clock):
    product = make_product(app, stock=3)
    first, second = make_buyers(app, 2)
    order = buy(app, first, product, 3)
    with pytest.raises(CheckoutError, match="卖完"):
        buy(app, second, product)
    clock.advance(minutes=15)
    # The next buyer's attempt releases the expired hold first.
    buy(app, second, product)
    with app.app_context():
        assert db.session.get(Order, order.id).status == "cancelled"
        assert counters(product) == (3, 2, 1, 0)
        # A payment that arrives after the release does not take stock.
        assert not checkout.mark_paid(order.id)
        assert counters(product) == (3, 2, 1, 0)


def test_release_holds_releases_each_hold_once(app, clock):
    product = make_product(app, stock=5)
    buyers = make_buyers(app, 3)
    for b in buyers:
        buy(app, b, product)
    clock.advance(minutes=16)
    with app.app_context():
        assert checkout.release_expired_holds() == 3
        assert checkout.release_expired_holds() == 0
        assert counters(product) == (5, 5, 0, 0)


def test_holds_are_looked_for_only_when_one_can_have_expired(app, clock, tmp_path):
    """Each process remembers when the next hold can expire and asks nothing before then, yet
    every hold is released on time: one opened after it last looked, and one opened by
    another process (another site on the same database)."""
    product = make_product(app, stock=5)
    first, second, third = make_buyers(app, 3)
    statements: list[str] = []

    def release() -> int:
        def record(_conn, _cursor, statement, *_args) -> None:
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            return checkout.release_expired_holds()
        finally:
            event.remove(db.engine, "before_cursor_execute", record)

    buy(app, first, product)  # it looked before the order: its hold ends at +15 min
    with app.app_context():
        clock.advance(minutes=5)
        assert release() == 0 and statements == []  # nothing can have expired: not asked
    buy(app, second, product)  # +5: its hold ends at +20
    other = create_app(make_config(tmp_path / "data", CLOCK=clock))
    with other.app_context():
        clock.advance(minutes=5)
        assert checkout.release_expired_holds() == 0
        third_order = checkout.place_order(db.session.get(User, third), product, 1)  # +10 -> +25
    with app.app_context():
        clock.advance(minutes=5, seconds=-1)  # +15 less a second
        assert release() == 0 and statements == []
        clock.advance(seconds=1)  # +15: the first hold ends
        assert release() == 1 and statements
        statements.clear()
        clock.advance(minutes=4, seconds=59)
        assert release() == 0 and statements == []
        clock.advance(seconds=1)  # +20: the second
        assert release() == 1
        clock.advance(minutes=5)  # +25: the third, opened by the other site
        assert release() == 1
        assert db.session.get(Order, third_order.id).status == "cancelled"
        assert counters(product) == (5, 5, 0, 0)
    # A clock set back before the last look: a hold opened then is released on time.
    clock.advance(minutes=-5)  # +20, before the look at +25
    buy(app, first, product)
    clock.advance(minutes=15)
    with app.app_context():
        assert release() == 1
    with other.app_context():
        db.engine.dispose()


def test_cancelling_gives_the_stock_back_once(app):
    product = make_product(app, stock=2)
    [buyer] = make_buyers(app, 1)
    order = buy(app, buyer, product, 2)
    with app.app_context():
        assert checkout.cancel(order.id, actor=buyer, reason="不想要了")
        assert not checkout.cancel(order.id, actor=buyer, reason="再来一次")
        assert counters(product) == (2, 2, 0, 0)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"status": "draft"}, "已下架"),
        ({"status": "archived"}, "已下架"),
        ({"starts_at": DEFAULT_NOW + timedelta(minutes=5)}, "还没有开始"),
        ({"ends_at": DEFAULT_NOW - timedelta(seconds=1)}, "已经结束"),
        ({"members_only": True}, "仅对会员"),
        ({"stock": 1}, "卖完"),
    ],
)
def test_orders_that_cannot_be_placed_change_nothing(app, fields, message):
    product = make_product(app, **fields)
    [buyer] = make_buyers(app, 1)
    with pytest.raises(CheckoutError, match=message):
        buy(app, buyer, product, 2)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(Order)) == 0
        stock, available, held, sold = counters(product)
        assert (available, held, sold) == (stock, 0, 0)


@pytest.mark.parametrize("quantity", [0, -1, True, "1", 1.5])
def test_a_bad_quantity_is_refused(app, quantity):
    product = make_product(app)
    [buyer] = make_buyers(app, 1)
    with app.app_context(), pytest.raises(CheckoutError):
        checkout.place_order(db.session.get(User, buyer), product, quantity)


def test_the_per_member_limit_counts_held_and_bought(app, clock):
    product = make_product(app, per_member_limit=2)
    [buyer] = make_buyers(app, 1)
    first = buy(app, buyer, product)
    buy(app, buyer, product)
    with pytest.raises(CheckoutError, match="你还能买 0 件"):
        buy(app, buyer, product)
    with app.app_context():
        checkout.mark_paid(first.id)
    clock.advance(minutes=20)  # the second hold expires and frees one of the two
    buy(app, buyer, product)


def test_unlimited_stock_never_runs_out(app):
    product = make_product(app, stock=None, available=None)
    [buyer] = make_buyers(app, 1)
    order = buy(app, buyer, product, 50)
    with app.app_context():
        assert checkout.mark_paid(order.id)
        assert counters(product) == (None, None, 0, 0)


def test_the_database_refuses_counters_that_do_not_add_up(app):
    product = make_product(app)
    refused = pytest.raises(Exception, match="(?i)check|constraint")
    with app.app_context(), refused, write_transaction() as session:
        session.execute(update(Product).where(Product.id == product).values(available=-1))


# --- the drop: many buyers at once -------------------------------------------------------

STOCK = 500
THREADS = 50
ATTEMPTS = 2000
LIMIT = 2


def race(app, product: int, buyers: list[int], attempt) -> dict[str, int]:
    """THREADS threads make ATTEMPTS purchase attempts between them, as fast as they can."""
    outcomes = {"ok": 0, "refused": 0, "error": 0}
    errors: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(THREADS)
    per_thread = ATTEMPTS // THREADS

    def worker(n: int) -> None:
        rng = random.Random(n)
        with app.app_context():
            start.wait()
            for _ in range(per_thread):
                user_id = rng.choice(buyers)
                try:
                    attempt(user_id, product, rng.randint(1, 2))
                    result = "ok"
                except CheckoutError:
                    result = "refused"
                except Exception as error:
                    result = "error"
                    with lock:
                        errors.append(repr(error)[:300])
                finally:
                    db.session.rollback()
                with lock:
                    outcomes[result] += 1

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    outcomes["first_error"] = errors[0] if errors else ""  # type: ignore[assignment]
    return outcomes


def place(user_id: int, product_id: int, quantity: int) -> None:
    checkout.place_order(db.session.get(User, user_id), product_id, quantity)


def test_fifty_threads_racing_for_500_units_never_oversell(app):
    product = make_product(app, stock=STOCK, per_member_limit=LIMIT)
    buyers = make_buyers(app, 400)
    outcomes = race(app, product, buyers, place)
    assert outcomes["error"] == 0, outcomes
    assert outcomes["ok"] + outcomes["refused"] == ATTEMPTS, outcomes
    with app.app_context():
        stock, available, held, sold = counters(product)
        assert available == 0 and held == STOCK and sold == 0
        assert available + held + sold == stock
        units = db.session.scalar(select(func.sum(OrderLine.quantity)))
        assert units == STOCK  # exactly 500 taken, not one more
        per_buyer = db.session.execute(
            select(Order.user_id, func.sum(OrderLine.quantity))
            .join(OrderLine)
            .group_by(Order.user_id)
        ).all()
        assert max(total for _, total in per_buyer) <= LIMIT
        # The figures docs/BENCHMARKS.md records (shown with `pytest -s`).
        print(
            f"\nrace [{db.engine.dialect.name}]: {THREADS} threads, {ATTEMPTS} attempts by "
            f"{len(buyers)} buyers for {STOCK} units: {outcomes['ok']} orders, "
            f"{outcomes['refused']} refused, {outcomes['error']} errors, units taken {units}, "
            f"oversold {units - STOCK}, most by one buyer {max(t for _, t in per_buyer)} "
            f"(limit {LIMIT}), invariant {available}+{held}+{sold}={stock}"
        )
        numbers = db.session.scalars(select(Order.number)).all()
        assert len(numbers) == len(set(numbers)) == outcomes["ok"]
        assert all(o == OrderStatus.PENDING for o in db.session.scalars(select(Order.status)))


def naive_place(user_id: int, product_id: int, quantity: int) -> None:
    """The mistake the real checkout avoids: read the stock, decide, then write what was
    read minus the quantity, in separate steps."""
    left, held = db.session.execute(
        select(Product.available, Product.held).where(Product.id == product_id)
    ).one()
    db.session.rollback()
    if left < quantity:
        raise CheckoutError("卖完")
    with write_transaction() as session:
        session.execute(
            update(Product)
            .where(Product.id == product_id)
            .values(available=left - quantity, held=held + quantity)
        )
        session.add(
            Order(
                number=f"n-{random.getrandbits(64):016x}",
                user_id=user_id,
                total_fen=0,
                created_at=DEFAULT_NOW,
                lines=[
                    OrderLine(
                        kind="product", ref_id=product_id, title="x", unit_fen=0, quantity=quantity
                    )
                ],
            )
        )


def test_negative_control_the_race_catches_a_naive_read_then_write(app):
    """The same race against the naive version oversells: more units are ordered than the
    stock, though its counters still add up."""
    product = make_product(app, stock=STOCK)
    buyers = make_buyers(app, 400)
    outcomes = race(app, product, buyers, naive_place)
    with app.app_context():
        units = db.session.scalar(select(func.sum(OrderLine.quantity))) or 0
        assert units > STOCK, f"the naive checkout did not oversell ({units} units): {outcomes}"
        print(
            f"\nnegative control [{db.engine.dialect.name}]: the naive read-then-write took "
            f"{units} units of {STOCK}: oversold {units - STOCK}"
        )


def test_release_holds_command(app, clock):
    product = make_product(app, stock=4)
    for b in make_buyers(app, 2):
        buy(app, b, product, 2)
    clock.advance(minutes=15)
    result = app.test_cli_runner().invoke(args=["shop", "release-holds"])
    assert result.exit_code == 0, result.output
    assert "已释放 2 个过期订单" in result.output
    with app.app_context():
        assert counters(product) == (4, 4, 0, 0)
