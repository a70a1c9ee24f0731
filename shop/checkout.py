"""The checkout core: placing an order takes stock, paying turns held into sold, an expired
hold gives it back. Nothing here knows about pages; the shop and the membership seats
(members/enrollment.py, through `register_line_kind`) call it.

Every change of the stock counters is one conditional UPDATE (`available >= :quantity`), so
`available` can never go below zero whatever the number of processes, and each order's own
state change is conditional too (`status = 'pending'`), so a hold is released, or paid,
exactly once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import db, local_time, utcnow, write_transaction
from members.models import User
from shop.models import (
    HOLDING,
    SOLD,
    Order,
    OrderCounter,
    OrderEvent,
    OrderLine,
    OrderStatus,
    Product,
    ProductStatus,
)

RELEASE_BATCH = 200


@dataclass(frozen=True)
class LineKind:
    """What an order can buy, and how: a model whose rows keep `available`, `held` and `sold`
    counters (selected by the line's `ref_id`; `limited` narrows it to rows that count), and
    what paying for or refunding a line does besides moving its counters. Kinds delivered on
    payment (a membership seat) complete their order when it is paid."""

    counters: Any
    limited: tuple[Any, ...] = ()
    on_paid: Callable[[Session, Order, OrderLine], None] | None = None
    on_refunded: Callable[[Session, Order, OrderLine], None] | None = None
    delivered_on_payment: bool = False


LINE_KINDS: dict[str, LineKind] = {
    "product": LineKind(counters=Product, limited=(Product.stock.is_not(None),)),
}


def register_line_kind(name: str, kind: LineKind) -> None:
    """Let orders buy something new (members/enrollment.py registers "seat")."""
    LINE_KINDS[name] = kind


class CheckoutError(Exception):
    """Why an order cannot be placed or changed, in words for the buyer. `final` when nothing
    the buyer could change in the form would help (sold out, not or no longer on sale, the
    per-member limit used up)."""

    def __init__(self, message: str, *, field: str = "quantity", final: bool = False) -> None:
        self.message = message
        self.field = field
        self.final = final
        super().__init__(message)


SOLD_OUT = "库存不足，已经卖完了。"


@dataclass(frozen=True)
class Price:
    unit_fen: int
    member_price: bool


def hold_minutes() -> int:
    return int(current_app.config.get("SHOP_HOLD_MINUTES", 15))


def price_for(product: Any, is_member: bool) -> Price:
    """The price `product` (a Product, or a row with its price columns) has for this buyer."""
    if is_member and product.member_price_fen is not None:
        return Price(product.member_price_fen, True)
    return Price(product.price_fen, False)


def yuan(fen: int) -> str:
    """¥12.80 for 1280."""
    return f"¥{fen // 100}.{fen % 100:02d}"


def _event(session: Session, order_id: int, old: str | None, new: str, actor, reason: str):
    session.add(
        OrderEvent(
            order_id=order_id,
            from_status=old,
            to_status=new,
            actor_id=actor,
            reason=reason,
            at=utcnow(),
        )
    )


# The statements of the buy path are built once, not per request: in the first seconds of a
# drop, building them cost more than running them (bench/flash_sale.py --profile).
_NEXT_NUMBER = (
    update(OrderCounter)
    .where(OrderCounter.day == bindparam("today"))
    .values(last=OrderCounter.last + 1)
    .returning(OrderCounter.last)
)


def _next_number(session: Session, now: datetime) -> str:
    """Today's next order number, e.g. 20261121-000123 (days in the site's time zone)."""
    day = local_time(now).strftime("%Y%m%d")
    for _ in range(3):
        last = session.connection().execute(_NEXT_NUMBER, {"today": day}).scalar()
        if last is not None:
            return f"{day}-{last:06d}"
        try:
            with session.begin_nested():
                session.add(OrderCounter(day=day, last=1))
        except IntegrityError:
            continue  # another order started the day a moment ago
        return f"{day}-000001"
    raise CheckoutError("下单的人太多了，请再试一次。")


# A buyer's orders first, then their lines. As one join, SQLite (which has no statistics)
# walks the lines of the product, or of the window's seats, by (kind, ref_id): every order of
# the drop, for each buyer, so each order costs more than the one before.
_HOLDING_OR_SOLD = select(Order.id).where(
    Order.user_id == bindparam("user_id"), Order.status.in_([*HOLDING, *SOLD])
)
_LINES_OF = (
    select(OrderLine.order_id, OrderLine.kind, OrderLine.ref_id, OrderLine.quantity)
    .where(OrderLine.order_id.in_(bindparam("ids", expanding=True)))
    .order_by(OrderLine.order_id.desc())
)
_STOCK_LEFT = select(Product.stock, Product.available).where(Product.id == bindparam("id"))
_LOCK_BUYER = select(User.id).where(User.id == bindparam("id")).with_for_update()
# The columns placing an order needs, not the ORM entity (which joins its category): read
# under the write lock, locked on PostgreSQL.
_PRODUCT_LOCKED = (
    select(
        Product.id,
        Product.title,
        Product.status,
        Product.starts_at,
        Product.ends_at,
        Product.members_only,
        Product.per_member_limit,
        Product.stock,
        Product.price_fen,
        Product.member_price_fen,
    )
    .where(Product.id == bindparam("id"))
    .with_for_update()
)
# Stock changes only here: one conditional update that can never go below zero.
_TAKE_STOCK = (
    update(Product)
    .where(Product.id == bindparam("product_id"), Product.available >= bindparam("wanted"))
    .values(
        available=Product.available - bindparam("wanted"), held=Product.held + bindparam("wanted")
    )
)


def lines_held_or_bought(session: Session, user_id: int) -> list[Any]:
    """The lines (order_id, kind, ref_id, quantity) of a user's orders that hold their units
    or paid for them, newest order first."""
    connection = session.connection()
    ids = connection.execute(_HOLDING_OR_SOLD, {"user_id": user_id}).scalars().all()
    return list(connection.execute(_LINES_OF, {"ids": ids})) if ids else []


def bought_by(session: Session, user_id: int, product_id: int) -> int:
    """Units of a product a user holds or has bought."""
    lines = lines_held_or_bought(session, user_id)
    return sum(
        line.quantity for line in lines if line.kind == "product" and line.ref_id == product_id
    )


@dataclass(frozen=True)
class PlacedOrder:
    """An order just opened: what its buyer is sent on to pay (load the Order for more)."""

    id: int
    number: str
    total_fen: int
    status: str = OrderStatus.PENDING.value


def place_order(
    user: User,
    product_id: int,
    quantity: int,
    *,
    delivery: str = "pickup",
    note: str = "",
    provider: str | None = None,
    available: int | None = None,
) -> PlacedOrder:
    """Take `quantity` units for `user` and hold them for SHOP_HOLD_MINUTES as a pending
    order. Raises CheckoutError with the reason when it cannot.

    This is the first minutes of a drop, thousands at once: it runs prebuilt Core statements
    on the session's connection and loads no ORM object; a refusal from the plain read of
    the stock never takes the write lock. `available`: the product's counter as the
    caller has just read it, after giving back expired holds (release_expired_holds); the
    plain read below is then not made again."""
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise CheckoutError("请选择购买数量。")
    now = utcnow()
    if available is None:
        release_expired_holds()
        # Most buyers in a drop come after the last unit: they are told so from a plain read,
        # without queueing for the write lock. (A refusal needs no lock; only taking stock
        # does.) Unlimited stock has no counter: None.
        left = db.session.connection().execute(_STOCK_LEFT, {"id": product_id}).first()
        available = left.available if left is not None and left.stock is not None else None
    if available is not None and available < quantity:
        raise CheckoutError(SOLD_OUT, final=not available)
    # Read before the write lock, not while holding it (beginning it expires the loaded user).
    user_id = user.id
    is_member = user.membership is not None  # asked once per request
    with write_transaction() as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql":
            # One buyer's orders one at a time, so that the per-member limit holds (SQLite's
            # BEGIN IMMEDIATE already serialises every writer).
            connection.execute(_LOCK_BUYER, {"id": user_id})
        # Locked on PostgreSQL, so an editor turning unlimited stock into limited counts
        # this order (shop/products.py locks the row too); SQLite holds the write lock.
        product = connection.execute(_PRODUCT_LOCKED, {"id": product_id}).first()
        if product is None or product.status != ProductStatus.LIVE:
            raise CheckoutError("这件商品不存在或已下架。", final=True)
        if product.starts_at > now:
            raise CheckoutError("还没有开始发售。", final=True)
        if product.ends_at is not None and product.ends_at <= now:
            raise CheckoutError("发售已经结束。", final=True)
        if product.members_only and not is_member:
            raise CheckoutError("这件商品仅对会员发售。")
        if product.per_member_limit is not None:
            already = bought_by(session, user_id, product.id)
            if already + quantity > product.per_member_limit:
                left = max(0, product.per_member_limit - already)
                raise CheckoutError(
                    f"每人限购 {product.per_member_limit} 件，你还能买 {left} 件。", final=not left
                )
        if product.stock is not None:
            taken = connection.execute(_TAKE_STOCK, {"product_id": product.id, "wanted": quantity})
            if taken.rowcount != 1:
                raise CheckoutError(SOLD_OUT)
        price = price_for(product, is_member)
        line = OrderLine(
            kind="product",
            ref_id=product.id,
            title=product.title,
            unit_fen=price.unit_fen,
            quantity=quantity,
        )
        order = open_order(
            session, user_id, line, delivery=delivery, note=note, provider=provider, now=now
        )
    return order


def open_order(
    session: Session,
    user_id: int,
    line: OrderLine,
    *,
    now: datetime,
    delivery: str = "",
    note: str = "",
    provider: str | None = None,
) -> PlacedOrder:
    """A pending order for one line whose units the caller has just taken (moved from
    `available` to `held`), held for SHOP_HOLD_MINUTES. Runs in the caller's transaction.

    Written with three prebuilt inserts rather than the ORM's flush: this runs under the write
    lock in the first seconds of a drop, where every millisecond holds up the next buyer."""
    connection = session.connection()
    number = _next_number(session, now)
    total_fen = line.unit_fen * line.quantity
    order_id = connection.execute(
        _INSERT_ORDER,
        {
            "number": number,
            "user_id": user_id,
            "status": OrderStatus.PENDING.value,
            "total_fen": total_fen,
            "hold_expires_at": now + timedelta(minutes=hold_minutes()),
            "delivery": delivery,
            "note": note[:200],
            "created_at": now,
            "provider": provider,
        },
    ).scalar_one()
    line_values = {c: getattr(line, c) for c in ("kind", "ref_id", "title", "unit_fen", "quantity")}
    connection.execute(_INSERT_LINE, {**line_values, "order_id": order_id})
    connection.execute(
        _INSERT_EVENT,
        {"order_id": order_id, "from_status": None, "to_status": OrderStatus.PENDING.value,
         "actor_id": user_id, "reason": "下单", "at": utcnow()},
    )  # fmt: skip
    return PlacedOrder(order_id, number, total_fen)


_INSERT_ORDER = insert(Order).returning(Order.id)
_INSERT_LINE = insert(OrderLine)
_INSERT_EVENT = insert(OrderEvent)


def _move_stock(session: Session, order: Order, source: str, target: str) -> None:
    """The units of each line of `order` move between two counters ("available", "held",
    "sold") of what it bought; the CHECK constraints refuse any move that would break the
    invariant."""
    for line in order.lines:
        kind = LINE_KINDS[line.kind]
        model = kind.counters
        from_, to = getattr(model, source), getattr(model, target)
        session.execute(
            update(model)
            .where(model.id == line.ref_id, *kind.limited)
            .values({from_: from_ - line.quantity, to: to + line.quantity})
        )


def _transition(
    session: Session,
    order_id: int,
    from_statuses: tuple[str, ...],
    new: OrderStatus,
    **values,
) -> tuple[str, Order] | None:
    """Move an order from one of `from_statuses` to `new` in one conditional UPDATE: the
    status it had and the order, or None when it was in none of them (someone else moved it
    first). On PostgreSQL the row is locked first so the old status read is the one changed."""
    old = session.scalar(
        select(Order.status)
        .where(Order.id == order_id, Order.status.in_(from_statuses))
        .with_for_update()
    )
    if old is None:
        return None
    changed = session.execute(
        update(Order)
        .where(Order.id == order_id, Order.status == old)
        .values(status=new.value, **values)
    )
    if changed.rowcount != 1:
        return None
    order = session.scalar(
        select(Order).where(Order.id == order_id).execution_options(populate_existing=True)
    )
    assert order is not None
    return old, order


def _leave_pending(session: Session, order_id: int, new: OrderStatus, **values) -> Order | None:
    """Move a pending order to `new` if it is still pending; None when it was not."""
    moved = _transition(session, order_id, HOLDING, new, hold_expires_at=None, **values)
    return moved[1] if moved else None


def cancel(order_id: int, *, actor: int | None, reason: str) -> bool:
    """Cancel a pending order and give its stock back. False when it was not pending."""
    with write_transaction() as session:
        order = _leave_pending(session, order_id, OrderStatus.CANCELLED)
        if order is None:
            return False
        _move_stock(session, order, "held", "available")
        _event(session, order.id, OrderStatus.PENDING, OrderStatus.CANCELLED, actor, reason)
    return True


def mark_paid(order_id: int, *, reason: str = "支付成功") -> bool:
    """A pending order is paid: its held units become sold. False when it was not pending
    (already paid, or its hold was released: the caller refunds that payment)."""
    now = utcnow()
    with write_transaction() as session:
        order = _leave_pending(session, order_id, OrderStatus.PAID, paid_at=now)
        if order is None:
            return False
        _move_stock(session, order, "held", "sold")
        _event(session, order.id, OrderStatus.PENDING, OrderStatus.PAID, None, reason)
        kinds = [LINE_KINDS[line.kind] for line in order.lines]
        for kind, line in zip(kinds, order.lines, strict=True):
            if kind.on_paid is not None:
                kind.on_paid(session, order, line)
        if kinds and all(kind.delivered_on_payment for kind in kinds):
            # Nothing to ship: delivered the moment it is paid (the refund window starts).
            session.execute(
                update(Order)
                .where(Order.id == order.id, Order.status == OrderStatus.PAID)
                .values(status=OrderStatus.COMPLETED.value, completed_at=now)
            )
            _event(session, order.id, OrderStatus.PAID, OrderStatus.COMPLETED, None, "已生效")
    return True


_EXPIRED = (
    select(Order.id)
    .where(Order.status == OrderStatus.PENDING, Order.hold_expires_at <= bindparam("now"))
    .order_by(Order.id)
    .limit(bindparam("limit"))
)


_NEXT_EXPIRY = select(func.min(Order.hold_expires_at)).where(Order.status == OrderStatus.PENDING)


def release_expired_holds(limit: int = RELEASE_BATCH) -> int:
    """Cancel pending orders whose hold has expired, giving their stock back. Called before
    stock is read or taken, and by `flask --app app shop release-holds`.

    Each process remembers when the next hold can expire, and asks nothing before then: the
    earliest pending hold, and no sooner than a hold opened from then on (every hold is
    opened for SHOP_HOLD_MINUTES from its order's time, by open_order alone). An order whose
    time was read just before it looked, and committed just after, is released that much
    late: the time of one request. A clock set back (tests do) makes it look again."""
    now = utcnow()
    minutes = hold_minutes()
    known = current_app.extensions.setdefault("shop.next_expiry", {})
    if known.get("minutes") == minutes and known["looked"] <= now < known["at"]:
        return 0
    connection = db.session.connection()
    expired = connection.execute(_EXPIRED, {"now": now, "limit": limit}).scalars().all()
    released = 0
    for order_id in expired:
        if cancel(order_id, actor=None, reason="超时未支付，库存已释放"):
            released += 1
    earliest = db.session.connection().execute(_NEXT_EXPIRY).scalar()
    soonest = now + timedelta(minutes=minutes)
    at = min(earliest, soonest) if earliest else soonest
    known.update(minutes=minutes, looked=now, at=at)
    return released


# --- Fulfilment and after-sales ------------------------------------------------------------

REFUNDABLE = (OrderStatus.PAID, OrderStatus.SHIPPED, OrderStatus.COMPLETED)


def refund_days() -> int:
    return int(current_app.config.get("SHOP_REFUND_DAYS", 7))


def refund_deadline(order: Order) -> datetime | None:
    """Until when the buyer may ask for a refund: REFUND_DAYS after delivery; None while it
    has not been delivered yet (they may ask at any time before)."""
    if order.completed_at is None:
        return None
    return order.completed_at + timedelta(days=refund_days())


def can_request_refund(order: Order, now: datetime | None = None) -> bool:
    if order.status not in REFUNDABLE:
        return False
    deadline = refund_deadline(order)
    return deadline is None or (now or utcnow()) < deadline


def mark_shipped(order_id: int, *, actor: int, carrier: str, tracking_no: str) -> bool:
    """A paid order leaves with a carrier and a tracking number. False if it was not paid."""
    carrier, tracking_no = carrier.strip(), tracking_no.strip()
    if not carrier or not tracking_no:
        raise CheckoutError("请填写快递公司和运单号。", field="tracking_no")
    with write_transaction() as session:
        moved = _transition(
            session,
            order_id,
            (OrderStatus.PAID,),
            OrderStatus.SHIPPED,
            carrier=carrier[:40],
            tracking_no=tracking_no[:60],
            shipped_at=utcnow(),
        )
        if moved is None:
            return False
        _event(session, order_id, moved[0], OrderStatus.SHIPPED, actor, f"{carrier} {tracking_no}")
    return True


def complete(order_id: int, *, actor: int, reason: str) -> bool:
    """Delivered: the buyer confirms receipt of a shipped order, or an editor hands over a
    pickup order. The refund window starts now. False if it was not shipped or paid."""
    with write_transaction() as session:
        moved = _transition(
            session,
            order_id,
            (OrderStatus.PAID, OrderStatus.SHIPPED),
            OrderStatus.COMPLETED,
            completed_at=utcnow(),
        )
        if moved is None:
            return False
        _event(session, order_id, moved[0], OrderStatus.COMPLETED, actor, reason)
    return True


def request_refund(order_id: int, *, actor: int, reason: str) -> None:
    """The buyer asks for their money back (a reason is required)."""
    reason = " ".join(reason.split())
    if not reason:
        raise CheckoutError("请写下退款原因。", field="reason")
    if len(reason) > 300:
        raise CheckoutError("退款原因最多 300 字。", field="reason")
    with write_transaction() as session:
        order = session.get(Order, order_id, populate_existing=True)
        if order is None or not can_request_refund(order):
            raise CheckoutError("这个订单现在不能申请退款。", field="reason")
        moved = _transition(session, order_id, REFUNDABLE, OrderStatus.REFUND_REQUESTED)
        if moved is None:
            raise CheckoutError("这个订单现在不能申请退款。", field="reason")
        _event(session, order_id, moved[0], OrderStatus.REFUND_REQUESTED, actor, reason)


def reject_refund(order_id: int, *, actor: int, reason: str) -> bool:
    """An editor turns a refund request down, saying why (the buyer sees it)."""
    reason = " ".join(reason.split())
    if not reason:
        raise CheckoutError("请写下拒绝的理由，买家会看到。", field="reason")
    with write_transaction() as session:
        moved = _transition(
            session, order_id, (OrderStatus.REFUND_REQUESTED,), OrderStatus.REFUND_REJECTED
        )
        if moved is None:
            return False
        _event(session, order_id, moved[0], OrderStatus.REFUND_REJECTED, actor, reason[:300])
    return True


def finish_refund(session: Session, order_id: int, *, reason: str) -> bool:
    """The money of a refund request is back with the buyer: the order is refunded and its
    units are for sale again. Runs inside the caller's transaction."""
    moved = _transition(session, order_id, (OrderStatus.REFUND_REQUESTED,), OrderStatus.REFUNDED)
    if moved is None:
        return False
    order = moved[1]
    _move_stock(session, order, "sold", "available")
    _event(session, order_id, moved[0], OrderStatus.REFUNDED, None, reason)
    for line in order.lines:
        kind = LINE_KINDS[line.kind]
        if kind.on_refunded is not None:
            kind.on_refunded(session, order, line)
    return True


def events_of(order_id: int) -> list[OrderEvent]:
    return list(
        db.session.scalars(
            select(OrderEvent).where(OrderEvent.order_id == order_id).order_by(OrderEvent.id)
        )
    )
