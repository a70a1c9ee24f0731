"""Writing the catalogue: products as the desk form and the CSV import submit them, and their
images.

`save_product` is the one way a product is created or changed. It checks every field at once
(a `ProductError` maps each bad field to its message), renders the description once, and
changes a product's stock only through single conditional UPDATEs that can never take
`available` below zero:

- limited to limited (N): `available = available + (N - stock), stock = N` where the stock is
  still what was read and the new `available` is not negative, so stock never falls below
  what is sold and held;
- limited to unlimited: only while nothing is held or sold (`held = 0 AND sold = 0`); else the
  checkout could no longer move those units between the counters;
- unlimited to limited (N): the units of the product's pending and sold orders become `held`
  and `sold`, and `available = N - held - sold` (refused below zero), so that paying for, or
  refunding, an order placed while the product was unlimited keeps the counters adding up.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import db, in_write_transaction, local_time, utcnow, write_transaction
from content import media
from content.articles import SLUG_RE, UNPRINTABLE, parse_local_time
from content.media import MediaError
from content.models import Media
from content.rendering import render_markdown
from shop import checkout
from shop.models import (
    HOLDING,
    SOLD,
    Category,
    Order,
    OrderLine,
    Product,
    ProductImage,
    ProductStatus,
)

log = logging.getLogger(__name__)

TITLE_MAX = 120
DESCRIPTION_MAX = 20_000
PRICE_MAX_FEN = 1_000_000 * 100  # one million yuan
STOCK_MAX = 1_000_000
LIMIT_MAX = 10_000
IMAGES_MAX = 6

STATUS_LABELS = {"draft": "草稿", "live": "在售", "archived": "已下架"}
TRUE_WORDS = {"1", "true", "yes", "y", "on", "是"}
FALSE_WORDS = {"0", "false", "no", "n", "off", "否"}
PRICE_RE = re.compile(r"^[0-9]{1,9}(?:\.[0-9]+)?$")
COUNT_RE = re.compile(r"^[0-9]{1,9}$")
DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")


class ProductError(Exception):
    """Fields at fault, each with the message shown next to it; `status` is 413 for an
    image that is too big, 422 otherwise."""

    def __init__(self, errors: dict[str, str], status: int = 422) -> None:
        self.errors = errors
        self.status = status
        super().__init__(" ".join(errors.values()))


@dataclass
class ProductDraft:
    """What an editor (or a CSV line) submits for a product; strings as typed."""

    title: str = ""
    slug: str = ""
    category: str = ""  # a category's slug or name, or empty
    description_md: str = ""
    price: str = ""  # yuan: "12.80", "12", "12.8"
    member_price: str = ""  # empty: none
    stock: str = ""  # empty: unlimited
    per_member_limit: str = ""  # empty: none (1 for a new limited product)
    starts_at: str = ""  # Shanghai "YYYY-MM-DD HH:MM"; empty: now
    ends_at: str = ""
    members_only: str = "1"  # 1/0, true/false, 是/否; empty: members only
    ships_at: str = ""  # presale ship date, "YYYY-MM-DD" (or with a time)
    status: str = ProductStatus.DRAFT.value
    # The stock the form showed (None: not a form). A different stock at save time means
    # someone changed it meanwhile; saving must not silently put the old number back.
    stock_was: str | None = None


@dataclass(frozen=True)
class Saved:
    product: Product
    created: bool
    changed: bool


# --- reading what was typed ----------------------------------------------------------------


def yuan_text(fen: int | None) -> str:
    """ "12.80" for 1280 (as typed in forms and CSV); "" for None."""
    if fen is None:
        return ""
    return f"{fen // 100}.{fen % 100:02d}"


def local_text(value: datetime | None) -> str:
    return local_time(value).strftime("%Y-%m-%d %H:%M") if value else ""


def ship_date_text(value: datetime | None) -> str:
    if value is None:
        return ""
    local = local_time(value)
    return local.strftime("%Y-%m-%d" if (local.hour, local.minute) == (0, 0) else "%Y-%m-%d %H:%M")


def parse_yuan(text: str, what: str) -> int:
    """Fen from yuan as typed ("12.80", "12", "12.8"), exactly (Decimal, never float)."""
    text = text.strip().lstrip("¥￥").strip()
    if text.startswith("-"):
        raise ValueError(f"{what}不能是负数。")
    if not PRICE_RE.match(text):
        raise ValueError(f"{what}请填写金额（元），如 12.80。")
    if "." in text and len(text.split(".")[1]) > 2:
        raise ValueError(f"{what}最多两位小数（精确到分）。")
    try:
        fen = int(Decimal(text) * 100)
    except InvalidOperation:
        raise ValueError(f"{what}请填写金额（元），如 12.80。") from None
    if fen > PRICE_MAX_FEN:
        raise ValueError(f"{what}不能超过 1000000 元。")
    return fen


def parse_count(text: str, low: int, high: int, message: str) -> int:
    text = text.strip()
    if not COUNT_RE.match(text) or not low <= int(text) <= high:
        raise ValueError(message)
    return int(text)


def parse_flag(text: str | bool, default: bool) -> bool:
    if isinstance(text, bool):
        return text
    word = text.strip().lower()
    if not word:
        return default
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ValueError("请填 1（仅会员）或 0（所有人），也可以写 是/否、true/false。")


def _minute(value: datetime | None) -> datetime | None:
    return value.replace(second=0, microsecond=0) if value else None


def _parse_time(text: str, *, date_only_ok: bool = False) -> datetime | None:
    text = text.strip()
    if date_only_ok and DATE_RE.match(text):
        text += " 00:00"
    return _minute(parse_local_time(text))


def _clean(text: str) -> str:
    return UNPRINTABLE.sub("", text or "")


def _check(draft: ProductDraft) -> tuple[dict[str, Any], dict[str, str]]:
    """Every field's own rule at once: the values read, and the faults found."""
    errors: dict[str, str] = {}
    values: dict[str, Any] = {}
    title = " ".join(_clean(draft.title).split())
    if not title:
        errors["title"] = "请填写商品名称。"
    elif len(title) > TITLE_MAX:
        errors["title"] = f"商品名称最多 {TITLE_MAX} 个字。"
    values["title"] = title
    slug = draft.slug.strip()
    if not slug:
        errors["slug"] = "请填写链接名，如 pen-2026。"
    elif not SLUG_RE.match(slug):
        errors["slug"] = "链接名只能用小写字母、数字和连字符，且不能以连字符开头或结尾。"
    values["slug"] = slug
    values["category"] = draft.category.strip()
    description = _clean(draft.description_md).replace("\r\n", "\n")
    if len(description) > DESCRIPTION_MAX:
        errors["description_md"] = f"商品介绍最多 {DESCRIPTION_MAX} 个字符。"
    values["description_md"] = description
    for name, what, optional in (("price", "价格", False), ("member_price", "会员价", True)):
        typed = getattr(draft, name).strip()
        if not typed and optional:
            values[f"{name}_fen"] = None
        elif not typed:
            errors[name] = "请填写价格（元），如 12.80。"
        else:
            try:
                values[f"{name}_fen"] = parse_yuan(typed, what)
            except ValueError as error:
                errors[name] = str(error)
    price, member = values.get("price_fen"), values.get("member_price_fen")
    if price is not None and member is not None and member > price:
        errors["member_price"] = "会员价不能高于价格。"
    values["stock"] = None
    if draft.stock.strip():
        try:
            values["stock"] = parse_count(
                draft.stock, 0, STOCK_MAX, f"库存请填写 0 到 {STOCK_MAX} 的整数；留空表示不限量。"
            )
        except ValueError as error:
            errors["stock"] = str(error)
    values["per_member_limit"] = None
    if draft.per_member_limit.strip():
        try:
            values["per_member_limit"] = parse_count(
                draft.per_member_limit,
                1,
                LIMIT_MAX,
                f"每人限购请填写 1 到 {LIMIT_MAX} 的整数；留空表示不限购。",
            )
        except ValueError as error:
            errors["per_member_limit"] = str(error)
    for name in ("starts_at", "ends_at", "ships_at"):
        try:
            values[name] = _parse_time(getattr(draft, name), date_only_ok=name == "ships_at")
        except ValueError:
            errors[name] = (
                "发货日期的格式应为 2026-12-01。"
                if name == "ships_at"
                else "时间的格式应为 2026-11-21 20:00（北京时间）。"
            )
    starts, ends = values.get("starts_at"), values.get("ends_at")
    if starts is not None and ends is not None and ends <= starts:
        errors["ends_at"] = "结束时间要晚于开始时间。"
    try:
        values["members_only"] = parse_flag(draft.members_only, True)
    except ValueError as error:
        errors["members_only"] = str(error)
    status = draft.status.strip().lower()
    status = {label: key for key, label in STATUS_LABELS.items()}.get(status, status)
    if status not in STATUS_LABELS:
        errors["status"] = "状态请选择 draft（草稿）、live（在售）或 archived（已下架）。"
    values["status"] = status
    return values, errors


def parse_stock_was(text: str | None) -> int | None | str:
    """The stock a form showed: an int, None (unlimited), or "" when not given."""
    if text is None:
        return ""
    text = text.strip()
    if not text:
        return None
    return int(text) if COUNT_RE.match(text) else -1


# --- stock --------------------------------------------------------------------------------


def units_in_orders(session: Session, product_id: int) -> tuple[int, int]:
    """Units of a product in pending orders and in sold orders (paid and after)."""

    def units(statuses: tuple[str, ...]) -> int:
        return (
            session.scalar(
                select(func.coalesce(func.sum(OrderLine.quantity), 0))
                .join(Order)
                .where(
                    OrderLine.kind == "product",
                    OrderLine.ref_id == product_id,
                    Order.status.in_(statuses),
                )
            )
            or 0
        )

    return units(HOLDING), units(SOLD)


def _stock_fault(
    session: Session, product: Product, new: int | None, *, live_stock_may_fall: bool
) -> str | None:
    """Why the stock of `product` cannot become `new`, or None when it can."""
    old = product.stock
    if new == old:
        return None
    live = product.status == ProductStatus.LIVE
    if old is not None and new is None:
        taken = product.held + product.sold
        if taken:
            return f"已有 {taken} 件售出或保留，不能改为不限量；要加货请把库存调大。"
        return None
    if not live_stock_may_fall and live and (old is None or (new is not None and new < old)):
        shown = "不限量" if old is None else f"{old} 件"
        return f"在售商品的库存只能调高，不能调低（现在是 {shown}）；请到编辑页修改。"
    if old is None:
        held, sold = units_in_orders(session, product.id)
    else:
        held, sold = product.held, product.sold
    if new is not None and new < held + sold:
        return f"库存不能少于已售加保留的 {held + sold} 件。"
    return None


def _set_stock(session: Session, product: Product, new: int | None) -> str | None:
    """Change the stock with one conditional UPDATE; the reason when it was refused."""
    old = product.stock
    if new == old:
        return None
    query = update(Product).where(Product.id == product.id)
    if old is not None and new is not None:
        delta = new - old
        changed = session.execute(
            query.where(Product.stock == old, Product.available + delta >= 0).values(
                available=Product.available + delta, stock=new
            )
        )
    elif old is not None:
        changed = session.execute(
            query.where(Product.stock == old, Product.held == 0, Product.sold == 0).values(
                stock=None, available=None
            )
        )
    else:
        assert new is not None
        held, sold = units_in_orders(session, product.id)
        if new < held + sold:
            return f"库存不能少于已售加保留的 {held + sold} 件。"
        changed = session.execute(
            query.where(Product.stock.is_(None)).values(
                stock=new, available=new - held - sold, held=held, sold=sold
            )
        )
    if changed.rowcount == 1:
        return None
    now = session.execute(select(Product.held, Product.sold).where(Product.id == product.id)).one()
    return f"库存不能少于已售加保留的 {now.held + now.sold} 件。"


# --- saving -------------------------------------------------------------------------------


def categories() -> list[Category]:
    return list(db.session.scalars(select(Category).order_by(Category.position, Category.id)))


def _category(session: Session, typed: str) -> Category | None:
    return session.scalar(
        select(Category).where((Category.slug == typed) | (Category.name == typed))
    )


def image_count(session: Session, product_id: int | None) -> int:
    if product_id is None:
        return 0
    return (
        session.scalar(
            select(func.count())
            .select_from(ProductImage)
            .where(ProductImage.product_id == product_id)
        )
        or 0
    )


COLUMNS = (
    "title",
    "slug",
    "category_id",
    "description_md",
    "price_fen",
    "member_price_fen",
    "per_member_limit",
    "starts_at",
    "ends_at",
    "members_only",
    "ships_at",
    "status",
)


def save_product(
    draft: ProductDraft,
    product_id: int | None = None,
    *,
    actor: int | None,
    new_images: Sequence[tuple[Any, str]] = (),
    live_stock_may_fall: bool = True,
) -> Product:
    """Create (no `product_id`) or update a product. Raises ProductError with every fault."""
    return apply_product(
        draft,
        product_id,
        actor=actor,
        new_images=new_images,
        live_stock_may_fall=live_stock_may_fall,
    ).product


def apply_product(
    draft: ProductDraft,
    product_id: int | None = None,
    *,
    actor: int | None,
    new_images: Sequence[tuple[Any, str]] = (),
    live_stock_may_fall: bool = True,
) -> Saved:
    """`save_product`, also saying whether the product was created and whether anything
    changed (a line of an imported catalogue that matches the product writes nothing).

    `new_images` are images checked by `content.media.check_image`, with their file names;
    they are stored and added in the same transaction. `live_stock_may_fall=False` (the
    import) refuses any lowering of a live product's stock.
    """
    now = utcnow()
    values, errors = _check(draft)
    if not in_write_transaction():
        checkout.release_expired_holds()  # expired holds must not block a lower stock
    created_files: list[str] = []
    try:
        with write_transaction() as session:
            saved = _apply(
                session,
                draft,
                product_id,
                values,
                errors,
                now,
                actor=actor,
                new_images=new_images,
                live_stock_may_fall=live_stock_may_fall,
                created_files=created_files,
            )
    except IntegrityError:
        _remove(created_files)
        raise ProductError({"slug": "这个链接名刚被另一件商品占用，请换一个。"}) from None
    except BaseException:
        _remove(created_files)
        raise
    if saved.changed:
        log.info(
            "product %s (%s) %s by user %s",
            saved.product.id,
            saved.product.slug,
            "created" if saved.created else "updated",
            actor,
        )
    return saved


def _remove(names: list[str]) -> None:
    """The files a failed save wrote (see content.media.store)."""
    store = media.media_store()
    for name in names:
        store.remove(name)


def _apply(
    session: Session,
    draft: ProductDraft,
    product_id: int | None,
    values: dict[str, Any],
    errors: dict[str, str],
    now: datetime,
    *,
    actor: int | None,
    new_images: Sequence[tuple[Any, str]],
    live_stock_may_fall: bool,
    created_files: list[str],
) -> Saved:
    product: Product | None = None
    if product_id is not None:
        product = session.scalar(
            select(Product)
            .where(Product.id == product_id)
            .with_for_update(of=Product)
            .execution_options(populate_existing=True)
        )
        if product is None:
            raise ProductError({"title": "这件商品不存在或已被删除。"})
    category = None
    if values["category"] and "category" not in errors:
        category = _category(session, values["category"])
        if category is None:
            names = "、".join(c.name for c in session.scalars(select(Category)))
            errors["category"] = f"没有「{values['category']}」这个分类；可选：{names}。"
    if "slug" not in errors:
        taken = session.scalar(select(Product.id).where(Product.slug == values["slug"]))
        if taken is not None and (product is None or taken != product.id):
            errors["slug"] = f"链接名 {values['slug']} 已被另一件商品使用。"
    if "stock" not in errors and product is not None:
        was = parse_stock_was(draft.stock_was)
        if was != "" and was != product.stock and values["stock"] == was:
            values["stock"] = product.stock  # left as shown: keep what someone set meanwhile
        if was != "" and was != product.stock and values["stock"] != product.stock:
            now_text = "不限量" if product.stock is None else f"{product.stock} 件"
            errors["stock"] = f"库存刚被别人改成了 {now_text}，请核对后再保存。"
        else:
            fault = _stock_fault(
                session, product, values["stock"], live_stock_may_fall=live_stock_may_fall
            )
            if fault:
                errors["stock"] = fault
    images_after = image_count(session, product.id if product else None) + len(new_images)
    if images_after > IMAGES_MAX:
        errors["image_file"] = f"每件商品最多 {IMAGES_MAX} 张图片。"
    if values["status"] == ProductStatus.LIVE and images_after == 0 and "status" not in errors:
        errors["status"] = "上架前请至少上传一张商品图片（可以先存为草稿）。"
    if errors:
        raise ProductError(errors)

    created = product is None
    going_live = values["status"] == ProductStatus.LIVE and (
        created or product.status != ProductStatus.LIVE
    )
    limit = values["per_member_limit"]
    if created and limit is None and values["stock"] is not None:
        limit = 1  # a limited edition is one per member unless the editor says otherwise
    starts = values["starts_at"] or _minute(now)
    new = {
        "title": values["title"],
        "slug": values["slug"],
        "category_id": category.id if category else None,
        "description_md": values["description_md"],
        "price_fen": values["price_fen"],
        "member_price_fen": values["member_price_fen"],
        "per_member_limit": limit,
        "starts_at": starts,
        "ends_at": values["ends_at"],
        "members_only": values["members_only"],
        "ships_at": values["ships_at"],
        "status": values["status"],
    }
    if product is None:
        product = Product(
            held=0,
            sold=0,
            stock=values["stock"],
            available=values["stock"],
            created_at=now,
            updated_at=now,
            description_html=render_markdown(new["description_md"]).html,
            **new,
        )
        changed = True
    else:
        for name in ("starts_at", "ends_at", "ships_at"):
            # A time shown to the minute and saved unchanged keeps its stored seconds.
            old = getattr(product, name)
            if old is not None and new[name] is not None and _minute(old) == new[name]:
                new[name] = old
        changed = any(getattr(product, name) != new[name] for name in COLUMNS)
        if new["description_md"] != product.description_md:
            product.description_html = render_markdown(new["description_md"]).html
        stock_changed = values["stock"] != product.stock
        if stock_changed:
            fault = _set_stock(session, product, values["stock"])
            if fault:
                raise ProductError({"stock": fault})
        changed = changed or stock_changed or bool(new_images)
        for name in COLUMNS:
            if getattr(product, name) != new[name]:
                setattr(product, name, new[name])
        if changed:
            product.updated_at = now
    if going_live and product.live_at is None:
        product.live_at = now  # the first time it goes on sale
    session.add(product)
    session.flush()
    for checked, filename in new_images:
        _link_image(session, product.id, checked, filename, actor, created_files)
    return Saved(product, created, changed)


# --- images -------------------------------------------------------------------------------


def images_of(product_id: int) -> list[tuple[ProductImage, Media]]:
    return [
        (image, found)
        for image, found in db.session.execute(
            select(ProductImage, Media)
            .join(Media, Media.id == ProductImage.media_id)
            .where(ProductImage.product_id == product_id)
            .order_by(ProductImage.position, ProductImage.id)
        ).tuples()
    ]


def check_image(stream: Any) -> Any:
    """An uploaded product image checked by its content (JPEG, PNG or WebP), not stored yet;
    ProductError({"image_file": ...}) when it is refused."""
    try:
        return media.check_image(stream)
    except MediaError as error:
        raise ProductError({"image_file": error.message}, error.status) from None


def _link_image(
    session: Session,
    product_id: int,
    checked: Any,
    filename: str,
    actor: int | None,
    created_files: list[str],
) -> ProductImage:
    kept = media.store(checked, original_name=filename, uploaded_by=actor, created=created_files)
    if session.scalar(
        select(ProductImage.id).where(
            ProductImage.product_id == product_id, ProductImage.media_id == kept.id
        )
    ):
        raise ProductError({"image_file": "这张图片已经在这件商品里了。"})
    last = session.scalar(
        select(func.max(ProductImage.position)).where(ProductImage.product_id == product_id)
    )
    image = ProductImage(
        product_id=product_id, media_id=kept.id, position=0 if last is None else last + 1
    )
    session.add(image)
    session.flush()
    return image


def add_image(product_id: int, stream: Any, filename: str, *, actor: int | None) -> ProductImage:
    """Check an upload by its content and add it as the product's last image."""
    checked = check_image(stream)
    created_files: list[str] = []
    try:
        with write_transaction() as session:
            product = session.scalar(
                select(Product).where(Product.id == product_id).with_for_update(of=Product)
            )
            if product is None:
                raise ProductError({"image_file": "这件商品不存在或已被删除。"})
            if image_count(session, product_id) >= IMAGES_MAX:
                raise ProductError({"image_file": f"每件商品最多 {IMAGES_MAX} 张图片。"})
            image = _link_image(session, product_id, checked, filename, actor, created_files)
            product.updated_at = utcnow()
    except BaseException:
        _remove(created_files)
        raise
    return image


def remove_image(product_id: int, image_id: int, *, actor: int | None) -> None:
    """Take an image off a product (the file stays in the media library). A live product
    keeps at least one."""
    with write_transaction() as session:
        product = session.scalar(
            select(Product).where(Product.id == product_id).with_for_update(of=Product)
        )
        image = session.get(ProductImage, image_id)
        if product is None or image is None or image.product_id != product_id:
            raise ProductError({"images": "这张图片已经不在这件商品里了。"}, 404)
        if product.status == ProductStatus.LIVE and image_count(session, product_id) <= 1:
            raise ProductError({"images": "在售商品至少要有一张图片；要换图请先上传新图片。"})
        session.execute(delete(ProductImage).where(ProductImage.id == image_id))
        product.updated_at = utcnow()


def move_image_up(product_id: int, image_id: int, *, actor: int | None) -> None:
    """Move an image one place towards the front (the first image is the product's cover)."""
    with write_transaction() as session:
        found = list(
            session.scalars(
                select(ProductImage)
                .where(ProductImage.product_id == product_id)
                .order_by(ProductImage.position, ProductImage.id)
            )
        )
        index = next((i for i, image in enumerate(found) if image.id == image_id), None)
        if index is None:
            raise ProductError({"images": "这张图片已经不在这件商品里了。"}, 404)
        if index > 0:
            found[index - 1], found[index] = found[index], found[index - 1]
        for position, image in enumerate(found):
            image.position = position


def archive_product(product_id: int, *, actor: int | None) -> bool:
    """Take a product off sale (orders already placed go on as usual). False when it was
    archived already."""
    with write_transaction() as session:
        changed = session.execute(
            update(Product)
            .where(Product.id == product_id, Product.status != ProductStatus.ARCHIVED)
            .values(status=ProductStatus.ARCHIVED.value, updated_at=utcnow())
        )
    if changed.rowcount == 1:
        log.info("product %s archived by user %s", product_id, actor)
    return changed.rowcount == 1


# --- the form -----------------------------------------------------------------------------


def draft_from(product: Product) -> ProductDraft:
    """The form of a product as it is saved now."""
    return ProductDraft(
        title=product.title,
        slug=product.slug,
        category=product.category.slug if product.category else "",
        description_md=product.description_md,
        price=yuan_text(product.price_fen),
        member_price=yuan_text(product.member_price_fen),
        stock="" if product.stock is None else str(product.stock),
        per_member_limit="" if product.per_member_limit is None else str(product.per_member_limit),
        starts_at=local_text(product.starts_at),
        ends_at=local_text(product.ends_at),
        members_only="1" if product.members_only else "0",
        ships_at=ship_date_text(product.ships_at),
        status=product.status,
        stock_was="" if product.stock is None else str(product.stock),
    )


def new_draft() -> ProductDraft:
    """The form of a new product: members only, a draft, on sale from now."""
    return ProductDraft(starts_at=local_text(_minute(utcnow())))
