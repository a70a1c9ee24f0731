"""The catalogue and the checkout core: products with their stock counters, orders, their lines
and every state change.

Stock is three counters on the product that always add up to what the editor set:
`available + held + sold == stock`. They change only through single conditional UPDATEs in
`shop/checkout.py`, which can never take `available` below zero. A product with `stock`
NULL is unlimited and its `available` is NULL too.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import UTCDateTime, db


class ProductStatus(enum.StrEnum):
    DRAFT = "draft"
    LIVE = "live"
    ARCHIVED = "archived"


class OrderStatus(enum.StrEnum):
    PENDING = "pending"  # placed, stock held, waiting for payment
    PAID = "paid"
    SHIPPED = "shipped"
    COMPLETED = "completed"
    CANCELLED = "cancelled"  # by the buyer before paying, or an expired hold
    REFUND_REQUESTED = "refund_requested"
    REFUNDED = "refunded"
    REFUND_REJECTED = "refund_rejected"


# Orders whose lines count against stock and against a member's limit.
HOLDING = (OrderStatus.PENDING,)
SOLD = (
    OrderStatus.PAID,
    OrderStatus.SHIPPED,
    OrderStatus.COMPLETED,
    OrderStatus.REFUND_REQUESTED,
    OrderStatus.REFUND_REJECTED,
)


class Category(db.Model):
    __tablename__ = "shop_categories"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(60), unique=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)


class Product(db.Model):
    __tablename__ = "products"
    __table_args__ = (
        CheckConstraint("status IN ('draft', 'live', 'archived')", name="status"),
        CheckConstraint("price_fen >= 0", name="price"),
        CheckConstraint("member_price_fen IS NULL OR member_price_fen >= 0", name="member_price"),
        CheckConstraint("per_member_limit IS NULL OR per_member_limit > 0", name="limit"),
        # The stock invariant, held by the database itself.
        CheckConstraint(
            "(stock IS NULL AND available IS NULL) OR "
            "(available >= 0 AND held >= 0 AND sold >= 0 AND available + held + sold = stock)",
            name="stock_adds_up",
        ),
        Index("ix_products_status_starts_at", "status", "starts_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(120), unique=True)
    title: Mapped[str] = mapped_column(String(120))
    category_id: Mapped[int | None] = mapped_column(
        ForeignKey("shop_categories.id", ondelete="SET NULL"), index=True
    )
    description_md: Mapped[str] = mapped_column(Text, default="")
    description_html: Mapped[str] = mapped_column(Text, default="")
    price_fen: Mapped[int] = mapped_column(Integer)
    member_price_fen: Mapped[int | None] = mapped_column(Integer)
    stock: Mapped[int | None] = mapped_column(Integer)  # None: unlimited
    available: Mapped[int | None] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)
    per_member_limit: Mapped[int | None] = mapped_column(Integer)  # None: no limit
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    members_only: Mapped[bool] = mapped_column(Boolean, default=True)
    ships_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # presale (预售)
    status: Mapped[str] = mapped_column(String(10), default=ProductStatus.DRAFT.value)
    live_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    category: Mapped[Category | None] = relationship(lazy="joined")

    @property
    def limited(self) -> bool:
        return self.stock is not None


class ProductImage(db.Model):
    __tablename__ = "product_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(
        ForeignKey("products.id", ondelete="CASCADE"), index=True
    )
    media_id: Mapped[int] = mapped_column(ForeignKey("media.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer, default=0)


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        CheckConstraint(
            "status IN ('pending', 'paid', 'shipped', 'completed', 'cancelled', "
            "'refund_requested', 'refunded', 'refund_rejected')",
            name="status",
        ),
        CheckConstraint("total_fen >= 0", name="total"),
        Index("ix_orders_status_hold_expires_at", "status", "hold_expires_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(20), unique=True)  # 20261121-000123
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=OrderStatus.PENDING.value)
    total_fen: Mapped[int] = mapped_column(Integer)
    hold_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A snapshot of where it goes: "pickup" or the address as it was when ordered.
    delivery: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(String(200), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Which payment provider the order was started with ("dev" or "wechatpay").
    provider: Mapped[str | None] = mapped_column(String(20))
    carrier: Mapped[str] = mapped_column(String(40), default="")
    tracking_no: Mapped[str] = mapped_column(String(60), default="")
    shipped_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Delivered: the buyer confirmed receipt (or picked it up). Refunds may be asked for
    # within REFUND_DAYS of this instant.
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    lines: Mapped[list[OrderLine]] = relationship(
        back_populates="order", cascade="all, delete-orphan", lazy="selectin"
    )


class OrderLine(db.Model):
    """What an order buys: a product (or, later, a membership seat), as it was when bought."""

    __tablename__ = "order_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="quantity"),
        Index("ix_order_lines_kind_ref_id", "kind", "ref_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(20))  # "product"
    ref_id: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(120))
    unit_fen: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)

    order: Mapped[Order] = relationship(back_populates="lines")


class PaymentStatus(enum.StrEnum):
    SUCCEEDED = "succeeded"


class Payment(db.Model):
    """Money that arrived for an order, once per provider transaction: a second notice of the
    same transaction meets the unique constraint and changes nothing."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("provider", "transaction_id", name="uq_payments_transaction"),
        CheckConstraint("amount_fen >= 0", name="amount"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    provider: Mapped[str] = mapped_column(String(20))
    transaction_id: Mapped[str] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(Integer)
    # What the money did: "paid" the order, or came "late" (after the hold was released)
    # and is refunded.
    outcome: Mapped[str] = mapped_column(String(10))
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class RefundStatus(enum.StrEnum):
    PROCESSING = "processing"  # asked of the provider, not yet confirmed
    SUCCEEDED = "succeeded"
    FAILED = "failed"


class Refund(db.Model):
    """Money going back: an approved refund request, or a payment that came too late."""

    __tablename__ = "refunds"
    __table_args__ = (
        CheckConstraint("amount_fen > 0", name="amount"),
        CheckConstraint("status IN ('processing', 'succeeded', 'failed')", name="status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="RESTRICT"), index=True)
    payment_id: Mapped[int] = mapped_column(
        ForeignKey("payments.id", ondelete="RESTRICT"), unique=True
    )
    out_refund_no: Mapped[str] = mapped_column(String(64), unique=True)
    provider_refund_id: Mapped[str | None] = mapped_column(String(64))
    amount_fen: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(300), default="")
    status: Mapped[str] = mapped_column(String(12), default=RefundStatus.PROCESSING.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Address(db.Model):
    """A saved delivery address of a buyer (`/me/addresses`)."""

    __tablename__ = "addresses"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(40))
    phone: Mapped[str] = mapped_column(String(20))
    province: Mapped[str] = mapped_column(String(20))
    city: Mapped[str] = mapped_column(String(30))
    district: Mapped[str] = mapped_column(String(30))
    street: Mapped[str] = mapped_column(String(120))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    def label(self) -> str:
        """The address as one line, as it is snapshotted into an order."""
        return f"{self.name} {self.phone} {self.province}{self.city}{self.district}{self.street}"


class OrderEvent(db.Model):
    """Every state change of an order: when, by whom (None for the system), and why."""

    __tablename__ = "order_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id", ondelete="CASCADE"), index=True)
    from_status: Mapped[str | None] = mapped_column(String(20))
    to_status: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime)


class OrderCounter(db.Model):
    """The last order number given out on each (Shanghai) day."""

    __tablename__ = "order_counters"

    day: Mapped[str] = mapped_column(String(8), primary_key=True)  # 20261121
    last: Mapped[int] = mapped_column(Integer, default=0)


DEFAULT_CATEGORIES = [
    {"slug": "food-for-thought", "name": "精神食粮", "position": 1},
    {"slug": "survival", "name": "生存处方", "position": 2},
    {"slug": "stationery", "name": "文具精选", "position": 3},
    {"slug": "workshop", "name": "逼格工场", "position": 4},
]
