"""Shop pages for readers: the shop front, categories, a product with its live drop state,
the product card that articles embed, and "buy now"."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import bindparam, select

from app import db, is_htmx, parse_id, utcnow
from content.rendering import register_shortcode
from shop import catalogue, checkout, payments
from shop.catalogue import Phase
from shop.checkout import CheckoutError
from shop.models import Address, Category, Product

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


@bp.route("/p/<slug>/buy", methods=["GET", "POST"])
@login_required
def buy(slug: str):
    # The POST path runs in the first seconds of a drop, thousands at once: it asks the
    # database only what placing the order needs, and loads the page's extras on failure.
    found = catalogue.by_slug(slug, editors=_viewer_is_editor())
    if found is None:
        abort(404)
    addresses = _addresses()
    form = {
        "quantity": request.form.get("quantity", "1"),
        "delivery": request.form.get("delivery", str(addresses[0].id) if addresses else "pickup"),
        "note": request.form.get("note", ""),
    }
    errors: dict[str, str] = {}
    if request.method == "POST":
        quantity = parse_id(form["quantity"].strip())
        if quantity is None or quantity > MAX_QUANTITY:
            errors["quantity"] = "请填写购买数量（1 到 99 之间的整数）。"
        delivery_text = ""
        if form["delivery"] == "pickup":
            delivery_text = "自提：" + _pickup_point()
        else:
            chosen = next((a for a in addresses if str(a.id) == form["delivery"]), None)
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
                order = checkout.place_order(
                    current_user,
                    found.id,
                    quantity,
                    delivery=delivery_text,
                    note=note,
                    provider=payments.provider_name(),
                )
            except CheckoutError as error:
                errors[error.field if error.field in form else "quantity"] = error.message
            else:
                return redirect(url_for("orders.pay", number=order.number), code=303)
    if request.method == "GET":
        found = catalogue.fresh(found.id) or found
    else:  # place_order has just given back expired holds: read the counters as they are
        found = db.session.get(Product, found.id, populate_existing=True) or found
    context = _context(found)
    # Sold out (most answers of a drop), not yet or no longer on sale: the page shows no form,
    # so it needs nothing of what the form says.
    on_sale = context["moment"].phase == Phase.ON_SALE and context["may_buy"]
    status = 422 if errors else 200
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
