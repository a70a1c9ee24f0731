"""Shop pages for readers: the shop front, categories, a product with its live drop state,
the product card that articles embed, and "buy now"."""

from __future__ import annotations

from functools import partial

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import bindparam, select

from app import db, is_htmx, parse_id, utcnow
from content import pages
from content.rendering import register_shortcode
from shop import catalogue, checkout, payments
from shop.catalogue import Phase
from shop.checkout import CheckoutError
from shop.models import Address, Category, Product, ProductStatus

bp = Blueprint("shop", __name__, url_prefix="/shop")

MAX_QUANTITY = 99


@bp.app_template_filter("yuan")
def yuan_filter(fen: int | None) -> str:
    return "" if fen is None else checkout.yuan(fen)


def _viewer_is_member() -> bool:
    return bool(current_user.is_authenticated and current_user.is_member)


def _viewer_is_editor() -> bool:
    return bool(current_user.is_authenticated and current_user.is_editor)


def _may_buy(product: Product) -> bool:
    return not product.members_only or _viewer_is_member()


def _context(product: Product, *, compact: bool = False) -> dict:
    """What every view of one product needs: images, the moment, who is looking."""
    return {
        "compact": compact,
        "product": product,
        "images": catalogue.images([product.id])[product.id],
        "moment": catalogue.moment(product),
        "is_member": _viewer_is_member(),
        "may_buy": _may_buy(product),
        "Phase": Phase,
    }


@bp.get("/")
def index():
    checkout.release_expired_holds()
    shelves = [catalogue.new_this_week(), catalogue.best_sellers()]
    ids = sorted({p.id for shelf in shelves for p in shelf})
    return render_template(
        "shop/index.html",
        new=shelves[0],
        hot=shelves[1],
        images=catalogue.images(ids),
        categories=catalogue.categories(),
    )


@bp.get("/c/<slug>")
def category(slug: str):
    found = db.session.scalar(select(Category).where(Category.slug == slug))
    if found is None:
        abort(404)
    checkout.release_expired_holds()
    products = catalogue.in_category(found)
    return render_template(
        "shop/category.html",
        category=found,
        products=products,
        images=catalogue.images([p.id for p in products]),
    )


def _product_or_404(slug: str) -> Product:
    product = catalogue.by_slug(slug, editors=_viewer_is_editor())
    if product is None:
        abort(404)
    fresh = catalogue.fresh(product.id)
    assert fresh is not None
    return fresh


@bp.get("/p/<slug>")
def product(slug: str):
    found = _product_or_404(slug)
    return render_template("shop/product.html", **_context(found))


@bp.get("/p/<slug>/live")
def live(slug: str):
    """The part of a product page that changes during a drop (polled by htmx)."""
    found = _product_or_404(slug)
    return render_template(
        "shop/_live.html", **_context(found, compact=request.args.get("card") == "1")
    )


@bp.get("/p/<slug>/card")
def card(slug: str):
    """The product card articles load: image, title, price, stock, a buy button. An unknown,
    draft or archived product gives an empty fragment, so an article never shows a broken
    card."""
    found = catalogue.by_slug(slug)
    if found is None or found.status != "live":
        return ""
    fresh = catalogue.fresh(found.id)
    assert fresh is not None
    return render_template("shop/_card.html", **_context(fresh, compact=True))


def product_shortcode(slug: str) -> str:
    """`[[product:slug]]` in an article: a plain link that htmx swaps for the live card, so
    the stored article never holds a stock figure. Unknown or archived slugs render nothing."""
    found = db.session.scalar(select(Product).where(Product.slug == slug))
    if found is None or found.status == "archived":
        return ""
    # Articles are also rendered outside requests (imports, the CLI): plain paths.
    href = f"/shop/p/{slug}"
    card_url = f"/shop/p/{slug}/card"
    return str(
        Markup(
            '<p class="product-embed"><a class="product-link" href="{href}" hx-get="{card}" '
            'hx-trigger="load" hx-target="closest .product-embed" hx-swap="innerHTML">'
            "{title} · 查看商品</a></p>"
        ).format(href=href, card=card_url, title=escape(found.title))
    )


@bp.record_once
def _register_shortcode(state) -> None:
    with state.app.app_context():
        register_shortcode("product", product_shortcode)


# --- buy now ---------------------------------------------------------------------------------


_ADDRESSES = (
    select(Address).where(Address.user_id == bindparam("user_id")).order_by(Address.id.desc())
)


def _addresses() -> list[Address]:
    return list(db.session.execute(_ADDRESSES, {"user_id": current_user.id}).scalars())


def _limit_left(found: Product) -> int:
    left = MAX_QUANTITY
    if found.per_member_limit is not None:
        already = checkout.bought_by(db.session, current_user.id, found.id)
        left = min(left, max(0, found.per_member_limit - already))
    if found.stock is not None:
        left = min(left, found.available or 0)
    return left


_ADDRESS = select(Address).where(
    Address.id == bindparam("id"), Address.user_id == bindparam("user_id")
)
# What the buy POST needs of the product before the checkout reads the rest under its lock.
_BUY_TARGET = select(
    Product.id, Product.slug, Product.title, Product.status, Product.stock, Product.available
).where(Product.slug == bindparam("slug"))


@bp.get("/p/<slug>/buy")
@login_required
def buy_form(slug: str):
    found = catalogue.by_slug(slug, editors=_viewer_is_editor())
    if found is None:
        abort(404)
    addresses = _addresses()
    form = {
        "quantity": "1",
        "delivery": str(addresses[0].id) if addresses else "pickup",
        "note": "",
    }
    return _buy_page(catalogue.fresh(found.id) or found, form, {}, addresses)


@bp.post("/p/<slug>/buy")
def buy(slug: str):
    """Buy now. This runs in the first seconds of a drop, thousands at once, and three of every
    four answers are "sold out". So it reads only what placing the order needs; "sold out" is
    told before the buyer is even loaded, with a kept page (it is the same for everyone); and
    another refusal that no change of the form could overcome is a short page too, not the
    whole form again."""
    checkout.release_expired_holds()  # stock whose hold expired is for sale again
    target = db.session.connection().execute(_BUY_TARGET, {"slug": slug}).first()
    if target is None or (target.status == ProductStatus.DRAFT and not _viewer_is_editor()):
        abort(404)
    if target.stock is not None and not target.available:
        return _refused(target, checkout.SOLD_OUT)
    if not current_user.is_authenticated:
        return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]
    form = {
        "quantity": request.form.get("quantity", "1"),
        "delivery": request.form.get("delivery", "pickup"),
        "note": request.form.get("note", ""),
    }
    errors: dict[str, str] = {}
    quantity = parse_id(form["quantity"].strip())
    if quantity is None or quantity > MAX_QUANTITY:
        errors["quantity"] = "请填写购买数量（1 到 99 之间的整数）。"
    delivery_text = ""
    if form["delivery"] == "pickup":
        delivery_text = "自提：" + _pickup_point()
    else:
        address_id = parse_id(form["delivery"])
        chosen = (
            db.session.execute(_ADDRESS, {"id": address_id, "user_id": current_user.id}).scalar()
            if address_id is not None
            else None
        )
        if chosen is None:
            errors["delivery"] = "请选择收货地址或自提。"
        else:
            delivery_text = chosen.label()
    note = " ".join(form["note"].split())
    if len(note) > 200:
        errors["note"] = "备注最多 200 字。"
    if not errors:
        assert quantity is not None
        try:
            placed = checkout.place_order(
                current_user,
                target.id,
                quantity,
                delivery=delivery_text,
                note=note,
                provider=payments.provider_name(),
                available=target.available if target.stock is not None else None,
            )
        except CheckoutError as error:
            if error.final:
                return _refused(target, error.message)
            errors[error.field if error.field in form else "quantity"] = error.message
        else:
            return redirect(url_for("orders.pay", number=placed.number), code=303)
    found = db.session.get(Product, target.id, populate_existing=True)
    assert found is not None
    return _buy_page(found, form, errors, _addresses(), status=422)


def _refused(product, message: str):
    """The short answer to a buy that cannot succeed, kept per product and reason: the crowd
    after the last unit costs no rendering (nor loading who they are)."""
    slug, title = product.slug, product.title
    render = partial(render_template, "shop/refused.html", message=message, slug=slug, title=title)
    return pages.kept_answer(
        "shop.refusals", (slug, title, message), render, pages.REFUSAL_SECONDS
    ), 422


def _buy_page(
    found: Product, form: dict, errors: dict[str, str], addresses: list[Address], status=200
):
    context = _context(found)
    # Not yet or no longer on sale, or members only: the page shows no form, so it needs
    # nothing of what the form says.
    on_sale = context["moment"].phase == Phase.ON_SALE and context["may_buy"]
    return (
        render_template(
            "shop/buy.html",
            **context,
            addresses=addresses,
            form=form,
            errors=errors,
            limit_left=_limit_left(found) if on_sale else 0,
            pickup_point=_pickup_point(),
            price=checkout.price_for(found, _viewer_is_member()),
            htmx=is_htmx(),
            now=utcnow(),
        ),
        status,
    )


def _pickup_point() -> str:
    return str(current_app.config["SHOP_PICKUP_POINT"])
