"""Payments: a provider takes the money, this module decides what the money does.

Two providers, chosen by `PAYMENTS`:

- `dev`: a local cashier (`/pay/<number>` with 模拟支付成功/失败 buttons) so a purchase can be
  completed on any machine. Its routes do not exist under any other setting.
- `wechatpay`: WeChat Pay API v3, JSAPI (`shop/wechatpay.py` speaks the protocol).

Whatever the provider, money that arrives goes through `record_payment`, which is
idempotent: a payment is stored once per provider transaction (a unique constraint), so a
notice resent fifteen times, even concurrently, changes the order once. Money that arrives
for an order that can no longer take it (its hold was released, or it was paid already) is
refunded automatically; it never oversells.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from shop import checkout
from shop.models import (
    Order,
    OrderStatus,
    Payment,
    Refund,
    RefundStatus,
)

log = logging.getLogger(__name__)


class Outcome(enum.StrEnum):
    PAID = "paid"  # the order is paid now
    DUPLICATE = "duplicate"  # this transaction was recorded before: nothing changed
    REFUNDING = "refunding"  # the order could not take the money: it goes back
    UNKNOWN_ORDER = "unknown_order"
    WRONG_AMOUNT = "wrong_amount"


@dataclass(frozen=True)
class RefundAnswer:
    status: RefundStatus
    provider_refund_id: str | None = None


class Provider:
    """What the checkout asks of a payment provider."""

    name = ""

    def refund(self, order: Order, payment: Payment, refund: Refund) -> RefundAnswer:
        raise NotImplementedError

    def refund_status(self, refund: Refund) -> RefundAnswer:
        raise NotImplementedError

    def query(self, order: Order) -> PaidTransaction | None:
        """The provider's word on an order whose notice never came: a paid transaction or
        None."""
        raise NotImplementedError


@dataclass(frozen=True)
class PaidTransaction:
    transaction_id: str
    amount_fen: int
    paid_at: datetime


class DevProvider(Provider):
    """The local cashier: money moves when a button is pressed, refunds succeed at once."""

    name = "dev"

    def refund(self, order: Order, payment: Payment, refund: Refund) -> RefundAnswer:
        return RefundAnswer(RefundStatus.SUCCEEDED, f"dev-refund-{refund.id}")

    def refund_status(self, refund: Refund) -> RefundAnswer:
        return RefundAnswer(RefundStatus(refund.status), refund.provider_refund_id)

    def query(self, order: Order) -> PaidTransaction | None:
        return None


class WechatPayProvider(Provider):
    name = "wechatpay"

    def __init__(self) -> None:
        from shop.wechatpay import WechatPay, WechatPayConfig

        # One client per site and configuration: it holds parsed keys.
        config = WechatPayConfig.from_app_config(current_app.config)
        cached = current_app.extensions.get("wechatpay")
        if cached is None or cached[0] != config:
            cached = (config, WechatPay(config))
            current_app.extensions["wechatpay"] = cached
        self.client = cached[1]

    def refund(self, order: Order, payment: Payment, refund: Refund) -> RefundAnswer:
        result = self.client.refund(
            out_trade_no=order.number,
            out_refund_no=refund.out_refund_no,
            amount_fen=refund.amount_fen,
            total_fen=payment.amount_fen,
            reason=refund.reason[:80],
        )
        return RefundAnswer(_refund_status(result.status), result.refund_id)

    def refund_status(self, refund: Refund) -> RefundAnswer:
        result = self.client.query_refund(refund.out_refund_no)
        return RefundAnswer(_refund_status(result.status), result.refund_id)

    def query(self, order: Order) -> PaidTransaction | None:
        found = self.client.query(order.number)
        if found is None or found.trade_state != "SUCCESS" or found.success_time is None:
            return None
        return PaidTransaction(found.transaction_id, found.amount_fen, found.success_time)


def _refund_status(wechat_status: str) -> RefundStatus:
    if wechat_status == "SUCCESS":
        return RefundStatus.SUCCEEDED
    if wechat_status in ("CLOSED", "ABNORMAL"):
        return RefundStatus.FAILED
    return RefundStatus.PROCESSING


PROVIDERS: dict[str, type[Provider]] = {"dev": DevProvider, "wechatpay": WechatPayProvider}


def provider_name() -> str:
    name = current_app.config.get("PAYMENTS", "dev")
    if name not in PROVIDERS:
        raise RuntimeError(f"PAYMENTS must be one of {sorted(PROVIDERS)}, not {name!r}")
    return name


def provider(name: str | None = None) -> Provider:
    return PROVIDERS[name or provider_name()]()


def dev_payments() -> bool:
    return provider_name() == "dev"


# --- Money in --------------------------------------------------------------------------------


def record_payment(
    number: str,
    *,
    provider: str,
    transaction_id: str,
    amount_fen: int,
    paid_at: datetime,
    settle: bool = True,
) -> Outcome:
    """Money for order `number` arrived. Exactly one call per transaction changes anything;
    the others answer DUPLICATE. When the order cannot take the money any more, a refund is
    recorded and, unless `settle` is False (the caller does it later), asked of the
    provider (`settle_refunds`)."""
    order = db.session.scalar(select(Order).where(Order.number == number))
    if order is None:
        return Outcome.UNKNOWN_ORDER
    if amount_fen != order.total_fen:
        return Outcome.WRONG_AMOUNT
    now = utcnow()
    try:
        with write_transaction() as session:
            seen = session.scalar(
                select(Payment.id).where(
                    Payment.provider == provider, Payment.transaction_id == transaction_id
                )
            )
            if seen is not None:
                return Outcome.DUPLICATE
            payment = Payment(
                order_id=order.id,
                provider=provider,
                transaction_id=transaction_id,
                amount_fen=amount_fen,
                outcome="paid",
                paid_at=paid_at,
                created_at=now,
            )
            session.add(payment)
            session.flush()  # a concurrent twin fails here, on the unique constraint
            if checkout.mark_paid(order.id, reason=f"支付成功（{transaction_id}）"):
                return Outcome.PAID
            status = session.scalar(select(Order.status).where(Order.id == order.id))
            payment.outcome = "late"
            session.add(
                Refund(
                    order_id=order.id,
                    payment_id=payment.id,
                    out_refund_no=_refund_number(order.number),
                    amount_fen=amount_fen,
                    reason="订单已取消或已支付，这笔付款自动退回",
                    status=RefundStatus.PROCESSING.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            checkout._event(session, order.id, status, status, None, "收到迟到的付款，已自动退款")
    except IntegrityError:
        db.session.rollback()
        return Outcome.DUPLICATE
    if settle:
        settle_refunds(order.id)
    return Outcome.REFUNDING


def _refund_number(order_number: str) -> str:
    return f"R{order_number.replace('-', '')}{secrets.token_hex(4)}"


# --- Money out -------------------------------------------------------------------------------


def approve_refund(order_id: int, *, actor: int) -> bool:
    """An editor approves a refund request: the payment goes back through its provider.
    The order becomes refunded when the provider confirms (at once for the dev cashier;
    WeChat may take a while, `shop reconcile` follows it up)."""
    now = utcnow()
    with write_transaction() as session:
        order = session.get(Order, order_id, populate_existing=True)
        if order is None or order.status != OrderStatus.REFUND_REQUESTED:
            return False
        payment = session.scalar(
            select(Payment).where(Payment.order_id == order_id, Payment.outcome == "paid")
        )
        if payment is None:
            return False
        existing = session.scalar(select(Refund).where(Refund.payment_id == payment.id))
        if existing is None:
            session.add(
                Refund(
                    order_id=order_id,
                    payment_id=payment.id,
                    out_refund_no=_refund_number(order.number),
                    amount_fen=payment.amount_fen,
                    reason="退款申请已同意",
                    status=RefundStatus.PROCESSING.value,
                    created_at=now,
                    updated_at=now,
                )
            )
            checkout._event(session, order_id, order.status, order.status, actor, "同意退款")
    settle_refunds(order_id)
    return True


def settle_refunds(order_id: int | None = None) -> int:
    """Ask the provider about every refund still processing (of one order, or all of them)
    and record what it says. Returns how many were settled."""
    query = select(Refund.id).where(Refund.status == RefundStatus.PROCESSING)
    if order_id is not None:
        query = query.where(Refund.order_id == order_id)
    settled = 0
    for refund_id in db.session.scalars(query.order_by(Refund.id)).all():
        refund = db.session.get(Refund, refund_id, populate_existing=True)
        assert refund is not None
        order = db.session.get(Order, refund.order_id)
        payment = db.session.get(Payment, refund.payment_id)
        assert order is not None and payment is not None
        try:
            handler = provider(payment.provider)
            first_ask = refund.provider_refund_id is None
            answer = (
                handler.refund(order, payment, refund)
                if first_ask
                else handler.refund_status(refund)
            )
        except Exception:  # the provider is down: the refund stays processing, retried later
            log.exception(
                "refund %s could not be asked of %s", refund.out_refund_no, payment.provider
            )
            db.session.rollback()
            continue
        db.session.rollback()
        if _record_refund(refund.id, answer):
            settled += 1
    return settled


def _record_refund(refund_id: int, answer: RefundAnswer) -> bool:
    with write_transaction() as session:
        changed = session.execute(
            update(Refund)
            .where(Refund.id == refund_id, Refund.status == RefundStatus.PROCESSING)
            .values(
                status=answer.status.value,
                provider_refund_id=answer.provider_refund_id,
                updated_at=utcnow(),
            )
        )
        if changed.rowcount != 1 or answer.status == RefundStatus.PROCESSING:
            return False
        refund = session.get(Refund, refund_id, populate_existing=True)
        assert refund is not None
        if answer.status == RefundStatus.SUCCEEDED:
            checkout.finish_refund(session, refund.order_id, reason="退款已到账")
        else:
            checkout._event(
                session, refund.order_id, None, "refund_failed", None, "退款失败，请联系编辑部"
            )
    return True


# --- Reconciliation --------------------------------------------------------------------------


def reconcile(*, older_than: timedelta = timedelta(minutes=1)) -> dict[str, int]:
    """For orders whose payment notice never came: ask the provider about every pending order
    started with it (placed more than `older_than` ago) and record what was paid; then follow
    up refunds still processing. Returns counts for the command to print."""
    counts = {"checked": 0, "paid": 0, "refunding": 0, "refunds_settled": 0}
    cutoff = utcnow() - older_than
    candidates = db.session.scalars(
        select(Order)
        .where(
            Order.provider.is_not(None),
            Order.created_at <= cutoff,
            Order.status.in_([OrderStatus.PENDING, OrderStatus.CANCELLED]),
            ~select(Payment.id).where(Payment.order_id == Order.id).exists(),
            Order.created_at >= utcnow() - timedelta(days=2),
        )
        .order_by(Order.id)
    ).all()
    for order in candidates:
        counts["checked"] += 1
        try:
            found = provider(order.provider).query(order)
        except Exception:
            log.exception("order %s could not be queried", order.number)
            continue
        if found is None:
            continue
        outcome = record_payment(
            order.number,
            provider=order.provider or "",
            transaction_id=found.transaction_id,
            amount_fen=found.amount_fen,
            paid_at=found.paid_at,
        )
        if outcome == Outcome.PAID:
            counts["paid"] += 1
        elif outcome == Outcome.REFUNDING:
            counts["refunding"] += 1
    counts["refunds_settled"] = settle_refunds()
    return counts
