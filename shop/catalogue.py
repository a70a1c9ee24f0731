"""What readers see of the shop: which products are on show, their images, prices and the
state of a drop at this instant. Reads only (apart from the lazy release of expired holds)."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import bindparam, func, select

from app import db, utcnow
from content.models import Media
from shop import checkout
from shop.models import (
    SOLD,
    Category,
    Order,
    OrderLine,
    Product,
    ProductImage,
    ProductStatus,
)

NEW_DAYS = 7
SHELF = 12


class Phase(enum.StrEnum):
    SOON = "soon"  # the drop has not started: a countdown
    ON_SALE = "on_sale"
    SOLD_OUT = "sold_out"  # nothing available (units may still be held and come back)
    ENDED = "ended"
    GONE = "gone"  # archived or never live


@dataclass(frozen=True)
class Moment:
    """A product as a buyer meets it now."""

    phase: Phase
    available: int | None  # None: unlimited
    held: int
    seconds_to_start: int  # > 0 only when SOON


def moment(product: Product, now: datetime | None = None) -> Moment:
    now = now or utcnow()
    if product.status != ProductStatus.LIVE:
        phase = Phase.GONE
    elif product.starts_at > now:
        phase = Phase.SOON
    elif product.ends_at is not None and product.ends_at <= now:
        phase = Phase.ENDED
    elif product.stock is not None and (product.available or 0) <= 0:
        phase = Phase.SOLD_OUT
    else:
        phase = Phase.ON_SALE
    wait = max(0, int((product.starts_at - now).total_seconds() + 0.999))
    return Moment(phase, product.available, product.held, wait if phase == Phase.SOON else 0)


def fresh(product_id: int) -> Product | None:
    """The product with its counters as they are now: expired holds are given back first."""
    checkout.release_expired_holds()
    return db.session.scalar(
        select(Product).where(Product.id == product_id).execution_options(populate_existing=True)
    )


_BY_SLUG = select(Product).where(Product.slug == bindparam("slug"))  # built once: every buy asks


def by_slug(slug: str, *, editors: bool = False) -> Product | None:
    """A product readers may open (live, or archived to show it is over); editors also see
    drafts."""
    product = db.session.execute(_BY_SLUG, {"slug": slug}).scalar()
    if product is None:
        return None
    if product.status == ProductStatus.DRAFT and not editors:
        return None
    return product


def _on_show():
    return select(Product).where(Product.status == ProductStatus.LIVE)


def new_this_week(now: datetime | None = None) -> list[Product]:
    now = now or utcnow()
    return list(
        db.session.scalars(
            _on_show()
            .where(Product.live_at >= now - timedelta(days=NEW_DAYS))
            .order_by(Product.live_at.desc(), Product.id.desc())
            .limit(SHELF)
        )
    )


def best_sellers(now: datetime | None = None) -> list[Product]:
    """Most units paid for in the last seven days."""
    now = now or utcnow()
    units = func.sum(OrderLine.quantity).label("units")
    ranked = (
        select(OrderLine.ref_id, units)
        .join(Order)
        .where(
            OrderLine.kind == "product",
            Order.status.in_(SOLD),
            Order.paid_at >= now - timedelta(days=NEW_DAYS),
        )
        .group_by(OrderLine.ref_id)
        .subquery()
    )
    return list(
        db.session.scalars(
            _on_show()
            .join(ranked, ranked.c.ref_id == Product.id)
            .order_by(ranked.c.units.desc(), Product.id.desc())
            .limit(SHELF)
        )
    )


def categories() -> list[tuple[Category, int]]:
    """Every category with how many products are on show in it."""
    on_show = (
        select(Product.category_id, func.count().label("n"))
        .where(Product.status == ProductStatus.LIVE)
        .group_by(Product.category_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Category, func.coalesce(on_show.c.n, 0))
        .outerjoin(on_show, on_show.c.category_id == Category.id)
        .order_by(Category.position, Category.id)
    ).all()
    return [(category, count) for category, count in rows]


def in_category(category: Category) -> list[Product]:
    return list(
        db.session.scalars(
            _on_show()
            .where(Product.category_id == category.id)
            .order_by(Product.starts_at.desc(), Product.id.desc())
            .limit(200)
        )
    )


def images(product_ids: list[int]) -> dict[int, list[Media]]:
    """The images of each product, in their order."""
    found: dict[int, list[Media]] = {pid: [] for pid in product_ids}
    if not product_ids:
        return found
    rows = db.session.execute(
        select(ProductImage.product_id, Media)
        .join(Media, Media.id == ProductImage.media_id)
        .where(ProductImage.product_id.in_(product_ids))
        .order_by(ProductImage.product_id, ProductImage.position, ProductImage.id)
    ).all()
    for product_id, media in rows:
        found[product_id].append(media)
    return found
