"""The shop desk (`/editor/shop`): products, catalogue CSV, orders, refunds, drop dashboards.
Editors and admins only.

Products are written by `shop.products` (the form) and `shop.catalogue_csv` (the file), both
with the same rules; orders move only through `shop.checkout` and `shop.payments`. An action on
an order that has meanwhile moved on (two editors, an old tab) changes nothing and says so.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select

from app import (
    csv_bytes,
    csv_cell,
    csv_download,
    db,
    local_time,
    page_number,
    parse_id,
    render_page,
    row_or_404,
    today_stamp,
    utcnow,
)
from members import role_required
from members.accounts import emails_of
from shop import catalogue_csv, charts, checkout, payments, products
from shop.catalogue_csv import CatalogueFileError
from shop.checkout import CheckoutError
from shop.models import (
    SOLD,
    Order,
    OrderLine,
    OrderStatus,
    Payment,
    Product,
    Refund,
)
from shop.products import STATUS_LABELS, ProductDraft, ProductError

bp = Blueprint("shop_desk", __name__, url_prefix="/editor/shop")

LIST_PAGE = 50
ORDER_STATES = {
    "pending": "待付款",
    "paid": "待发货",
    "shipped": "已发货",
    "completed": "已完成",
    "refund_requested": "申请退款",
    "refunded": "已退款",
    "refund_rejected": "退款被拒",
    "cancelled": "已取消",
}
EVENT_STATES = {**ORDER_STATES, "refund_failed": "退款失败"}
REFUND_STATES = {"processing": "处理中", "succeeded": "已到账", "failed": "失败"}
PAYMENT_OUTCOMES = {"paid": "付款", "late": "迟到的付款（已自动退回）"}
CARRIER_MAX, TRACKING_MAX, REASON_MAX = 40, 60, 300


@bp.before_request
@role_required("editor", "admin")
def only_editors() -> None:
    """Every shop desk page is for editors and admins."""


def _product_or_404(product_id: object) -> Product:
    return row_or_404(Product, product_id)


# --- products -----------------------------------------------------------------------------


@bp.get("/")
def index():
    checkout.release_expired_holds()
    status = request.args.get("status", "")
    if status and status not in STATUS_LABELS:
        abort(404)
    categories = products.categories()
    category = None
    if request.args.get("category"):
        category = next((c for c in categories if c.slug == request.args["category"]), None)
        if category is None:
            abort(404)
    query = select(Product)
    if status:
        query = query.where(Product.status == status)
    if category:
        query = query.where(Product.category_id == category.id)
    page = page_number()
    found = db.session.scalars(
        query.order_by(Product.updated_at.desc(), Product.id.desc())
        .offset((page - 1) * LIST_PAGE)
        .limit(LIST_PAGE + 1)
        .execution_options(populate_existing=True)
    ).all()
    return render_template(
        "editor/shop/index.html",
        items=found[:LIST_PAGE],
        more=len(found) > LIST_PAGE,
        page=page,
        status=status,
        category=category,
        categories=categories,
        states=STATUS_LABELS,
        yuan=checkout.yuan,
    )


def _form_context(draft: ProductDraft, product: Product | None, **extra: Any) -> dict[str, Any]:
    return {
        "draft": draft,
        "product": product,
        "categories": products.categories(),
        "images": products.images_of(product.id) if product else [],
        "images_max": products.IMAGES_MAX,
        "states": STATUS_LABELS,
        "errors": {},
        "yuan": checkout.yuan,
        **extra,
    }


def _form_page(draft: ProductDraft, product: Product | None, status: int = 200, **extra: Any):
    context = _form_context(draft, product, **extra)
    return render_template("editor/shop/edit.html", **context), status


def _draft_from_form() -> ProductDraft:
    form = request.form
    return ProductDraft(
        title=form.get("title", ""),
        slug=form.get("slug", ""),
        category=form.get("category", ""),
        description_md=form.get("description_md", ""),
        price=form.get("price", ""),
        member_price=form.get("member_price", ""),
        stock=form.get("stock", ""),
        per_member_limit=form.get("per_member_limit", ""),
        starts_at=form.get("starts_at", ""),
        ends_at=form.get("ends_at", ""),
        members_only=form.get("members_only", ""),
        ships_at=form.get("ships_at", ""),
        status=form.get("status", "draft"),
        stock_was=form.get("stock_was") if "stock_was" in form else None,
    )


@bp.get("/new")
def new():
    return _form_page(products.new_draft(), None)


@bp.get("/p/<int:product_id>")
def edit(product_id: int):
    checkout.release_expired_holds()
    product = _product_or_404(product_id)
    return _form_page(products.draft_from(product), product)


@bp.post("/new")
def create():
    return _save(None)


@bp.post("/p/<int:product_id>")
def update(product_id: int):
    return _save(_product_or_404(product_id))


def _save(product: Product | None):
    """Create or update a product from the form (an image may come with it)."""
    draft = _draft_from_form()
    new_images = []
    upload = request.files.get("image_file")
    if upload is not None and upload.filename:
        try:
            new_images.append((products.check_image(upload.stream), upload.filename))
        except ProductError as error:
            return _form_page(draft, product, error.status, errors=error.errors)
    try:
        saved = products.save_product(
            draft,
            product.id if product else None,
            actor=current_user.id,
            new_images=new_images,
        )
    except ProductError as error:
        errors = dict(error.errors)
        if new_images:
            errors.setdefault("image_file", "图片还没有保存：请改好其他内容后重新选择图片。")
        return _form_page(draft, product, 422, errors=errors)
    flash("商品已保存。" if product else "商品已创建。")
    return redirect(url_for("shop_desk.edit", product_id=saved.id))


@bp.post("/p/<int:product_id>/archive")
def archive(product_id: int):
    product = _product_or_404(product_id)
    if products.archive_product(product.id, actor=current_user.id):
        flash("商品已下架，已下的订单照常处理。")
    else:
        flash("这件商品已经下架了。")
    return redirect(url_for("shop_desk.edit", product_id=product.id))


def _image_failed(product: Product, error: ProductError):
    if error.status == 404:
        abort(404)
    product = _product_or_404(product.id)
    return _form_page(products.draft_from(product), product, error.status, errors=error.errors)


@bp.post("/p/<int:product_id>/images")
def add_image(product_id: int):
    product = _product_or_404(product_id)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return _image_failed(product, ProductError({"images": "请选择要上传的图片。"}))
    try:
        products.add_image(product.id, upload.stream, upload.filename, actor=current_user.id)
    except ProductError as error:
        errors = {"images": error.errors.get("image_file") or " ".join(error.errors.values())}
        return _image_failed(product, ProductError(errors, error.status))
    flash("图片已添加。")
    return redirect(url_for("shop_desk.edit", product_id=product.id, _anchor="images"))


@bp.post("/p/<int:product_id>/images/<int:image_id>/remove")
def remove_image(product_id: int, image_id: int):
    product = _product_or_404(product_id)
    try:
        products.remove_image(product.id, parse_id(image_id) or 0, actor=current_user.id)
    except ProductError as error:
        return _image_failed(product, error)
    flash("图片已移除。")
    return redirect(url_for("shop_desk.edit", product_id=product.id, _anchor="images"))


@bp.post("/p/<int:product_id>/images/<int:image_id>/up")
def move_image_up(product_id: int, image_id: int):
    product = _product_or_404(product_id)
    try:
        products.move_image_up(product.id, parse_id(image_id) or 0, actor=current_user.id)
    except ProductError as error:
        return _image_failed(product, error)
    return redirect(url_for("shop_desk.edit", product_id=product.id, _anchor="images"))


# --- the catalogue as CSV -----------------------------------------------------------------


@bp.get("/catalogue.csv")
def catalogue_file():
    return csv_download(catalogue_csv.export_catalogue(), f"catalogue-{today_stamp()}.csv")


@bp.route("/import", methods=["GET", "POST"])
def import_catalogue():
    """Upload a catalogue CSV: all of it is saved, or (with any bad line) none of it."""
    if request.method == "GET":
        return render_template("editor/shop/import.html", error=None, report=None)
    upload = request.files.get("file")
    if upload is None or not upload.filename:
        return render_template(
            "editor/shop/import.html", error="请选择要导入的 CSV 文件。", report=None
        ), 422
    data = upload.stream.read(catalogue_csv.MAX_BYTES + 1)
    try:
        report = catalogue_csv.import_catalogue(data, actor=current_user.id)
    except CatalogueFileError as error:
        status = 413 if len(data) > catalogue_csv.MAX_BYTES else 422
        return render_template("editor/shop/import.html", error=error.message, report=None), status
    if not report.ok:
        return render_template("editor/shop/import.html", error=None, report=report), 422
    flash("导入完成：" + report.summary())
    return redirect(url_for("shop_desk.index"))


# --- orders -------------------------------------------------------------------------------


def _order_filters() -> tuple[str, Product | None]:
    status = request.args.get("status", "")
    if status and status not in ORDER_STATES:
        abort(404)
    product = _product_or_404(request.args["product"]) if request.args.get("product") else None
    return status, product


def _with_product(query, product: Product | None):
    if product is None:
        return query
    return query.where(
        select(OrderLine.id)
        .where(
            OrderLine.order_id == Order.id,
            OrderLine.kind == "product",
            OrderLine.ref_id == product.id,
        )
        .exists()
    )


@bp.get("/orders")
def orders():
    checkout.release_expired_holds()
    status, product = _order_filters()
    query = _with_product(select(Order), product)
    if status:
        query = query.where(Order.status == status)
    page = page_number()
    found = db.session.scalars(
        query.order_by(Order.created_at.desc(), Order.id.desc())
        .offset((page - 1) * LIST_PAGE)
        .limit(LIST_PAGE + 1)
    ).all()
    choices = db.session.execute(
        select(Product.id, Product.title).order_by(Product.updated_at.desc()).limit(200)
    ).all()
    if product is not None and all(c.id != product.id for c in choices):
        choices = [(product.id, product.title), *choices]
    return render_template(
        "editor/shop/orders.html",
        items=found[:LIST_PAGE],
        more=len(found) > LIST_PAGE,
        page=page,
        status=status,
        product=product,
        products=choices,
        states=ORDER_STATES,
        buyers=emails_of({o.user_id for o in found}),
        yuan=checkout.yuan,
    )


def _delivery_text(delivery: str) -> str:
    if delivery == "pickup":
        return "到店自提：" + current_app.config["SHOP_PICKUP_POINT"]
    return delivery


@bp.get("/orders.csv")
def orders_file():
    """Paid orders waiting to be shipped, oldest payment first: for the packing table."""
    _, product = _order_filters()
    query = _with_product(select(Order).where(Order.status == OrderStatus.PAID), product)
    header = ["订单号", "付款时间", "商品", "金额（元）", "收货信息", "备注"]
    rows = (
        [
            order.number,
            products.local_text(order.paid_at),
            csv_cell("；".join(f"{line.title} × {line.quantity}" for line in order.lines)),
            products.yuan_text(order.total_fen),
            csv_cell(_delivery_text(order.delivery)),
            csv_cell(order.note),
        ]
        for order in db.session.scalars(query.order_by(Order.paid_at, Order.id))
    )
    today = today_stamp()
    name = f"orders-paid-{product.id}-{today}.csv" if product else f"orders-paid-{today}.csv"
    return csv_download(csv_bytes(header, rows), name)


def _order_or_404(order_id: object) -> Order:
    return row_or_404(Order, order_id)


def _order_page(order_id: int, status: int = 200, **extra: Any):
    order = _order_or_404(order_id)
    events = checkout.events_of(order.id)
    found_payments = db.session.scalars(
        select(Payment).where(Payment.order_id == order.id).order_by(Payment.id)
    ).all()
    refunds = db.session.scalars(
        select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
    ).all()
    asked = next((e for e in reversed(events) if e.to_status == "refund_requested"), None)
    context = {
        "order": order,
        "events": events,
        "payments": found_payments,
        "refunds": refunds,
        "refund_reason": asked.reason if asked else "",
        "people": emails_of({order.user_id, *(e.actor_id for e in events)}),
        "states": ORDER_STATES,
        "event_states": EVENT_STATES,
        "refund_states": REFUND_STATES,
        "outcomes": PAYMENT_OUTCOMES,
        "delivery": _delivery_text(order.delivery),
        "yuan": checkout.yuan,
        "errors": {},
        "values": {},
        "stale": None,
        **extra,
    }
    return render_template("editor/shop/order.html", **context), status


@bp.get("/orders/<int:order_id>")
def order(order_id: int):
    return _order_page(order_id)


def _stale(order_id: int, doing: str):
    """The order moved on before this action: nothing changed; show where it is now."""
    order = _order_or_404(order_id)
    now = ORDER_STATES.get(order.status, order.status)
    message = f"没有{doing}：这个订单现在是「{now}」，可能已被别人处理。请看下面的最新状态。"
    return _order_page(order_id, 409, stale=message)


@bp.post("/orders/<int:order_id>/ship")
def ship(order_id: int):
    order = _order_or_404(order_id)
    values = {k: request.form.get(k, "").strip() for k in ("carrier", "tracking_no")}
    errors = {}
    if not values["carrier"]:
        errors["carrier"] = "请填写快递公司。"
    elif len(values["carrier"]) > CARRIER_MAX:
        errors["carrier"] = f"快递公司最多 {CARRIER_MAX} 个字。"
    if not values["tracking_no"]:
        errors["tracking_no"] = "请填写运单号。"
    elif len(values["tracking_no"]) > TRACKING_MAX:
        errors["tracking_no"] = f"运单号最多 {TRACKING_MAX} 个字符。"
    if errors:
        return _order_page(order.id, 422, errors=errors, values=values)
    try:
        shipped = checkout.mark_shipped(order.id, actor=current_user.id, **values)
    except CheckoutError as error:
        return _order_page(order.id, 422, errors={error.field: error.message}, values=values)
    if not shipped:
        return _stale(order.id, "标记发货")
    flash(f"订单 {order.number} 已发货。")
    return redirect(url_for("shop_desk.order", order_id=order.id))


@bp.post("/orders/<int:order_id>/complete")
def complete(order_id: int):
    order = _order_or_404(order_id)
    reason = "已在自提点交给买家" if order.delivery == "pickup" else "编辑确认已送达"
    if not checkout.complete(order.id, actor=current_user.id, reason=reason):
        return _stale(order.id, "标记完成")
    flash(f"订单 {order.number} 已完成。")
    return redirect(url_for("shop_desk.order", order_id=order.id))


@bp.post("/orders/<int:order_id>/refund/approve")
def approve_refund(order_id: int):
    order = _order_or_404(order_id)
    if not payments.approve_refund(order.id, actor=current_user.id):
        return _stale(order.id, "同意退款")
    order = _order_or_404(order.id)
    if order.status == OrderStatus.REFUNDED:
        flash(f"订单 {order.number} 已退款，商品已回到库存。")
    else:
        flash(f"已向支付平台提交订单 {order.number} 的退款，到账后订单会变为已退款。")
    return redirect(url_for("shop_desk.order", order_id=order.id))


@bp.post("/orders/<int:order_id>/refund/reject")
def reject_refund(order_id: int):
    order = _order_or_404(order_id)
    reason = request.form.get("reason", "")
    values = {"reason": reason}
    if len(" ".join(reason.split())) > REASON_MAX:
        errors = {"reason": f"理由最多 {REASON_MAX} 个字。"}
        return _order_page(order.id, 422, errors=errors, values=values)
    try:
        rejected = checkout.reject_refund(order.id, actor=current_user.id, reason=reason)
    except CheckoutError as error:
        return _order_page(order.id, 422, errors={"reason": error.message}, values=values)
    if not rejected:
        return _stale(order.id, "拒绝退款")
    flash(f"已拒绝订单 {order.number} 的退款申请，买家会看到你写的理由。")
    return redirect(url_for("shop_desk.order", order_id=order.id))


# --- the live drop dashboard --------------------------------------------------------------


FULL_WINDOW = timedelta(hours=3)  # a drop younger than this is drawn from its start


def _paid_chart(product: Product, now: datetime) -> charts.Chart | None:
    """Cumulative paid units per minute: from the start of the drop, or over the last hour of
    an older one."""
    if product.starts_at > now:
        return None
    start = product.starts_at
    if now - start > FULL_WINDOW:
        start = now - timedelta(hours=1)
    start = start.replace(second=0, microsecond=0)
    minutes = max(1, math.ceil((now - start).total_seconds() / 60))
    sold_lines = (
        OrderLine.kind == "product",
        OrderLine.ref_id == product.id,
        Order.status.in_(SOLD),
        Order.paid_at.is_not(None),
    )
    before = db.session.scalar(
        select(func.coalesce(func.sum(OrderLine.quantity), 0))
        .join(Order, OrderLine.order_id == Order.id)
        .where(*sold_lines, Order.paid_at < start)
    )
    paid = db.session.execute(
        select(Order.paid_at, OrderLine.quantity)
        .join(OrderLine, OrderLine.order_id == Order.id)
        .where(*sold_lines, Order.paid_at >= start, Order.paid_at <= now)
    ).tuples()
    totals = charts.running_totals(
        paid, start=start, steps=minutes, step_seconds=60, before=int(before or 0)
    )

    def clock(at: datetime) -> str:
        return local_time(at).strftime("%H:%M")

    half = minutes // 2
    return charts.line_chart(
        [charts.Line(totals)],
        start=clock(start),
        middle=(half, clock(start + timedelta(minutes=half))),
        end=clock(now),
        summary=(
            f"{clock(start)} 到 {clock(now)} 每分钟累计付款件数：共 {totals[-1]} 件，"
            f"最近一分钟 {totals[-1] - totals[-2]} 件"
        ),
    )


@bp.get("/p/<int:product_id>/drop")
@bp.get("/p/<int:product_id>/drop/live", endpoint="drop_live")
def drop(product_id: int):
    """The drop dashboard. Its /live address, asked by htmx every 5 seconds, gives the numbers
    and the chart alone (a full page otherwise)."""
    checkout.release_expired_holds()  # lazily, so that expired holds show as available
    product = _product_or_404(product_id)
    now = utcnow()
    if product.limited:
        held, sold = product.held, product.sold
    else:
        held, sold = products.units_in_orders(db.session, product.id)
    return render_page(
        "editor/shop/drop.html",
        "editor/shop/_drop_live.html",
        product=product,
        available=product.available,
        held=held,
        sold=sold,
        chart=_paid_chart(product, now),
        now=now,
        states=STATUS_LABELS,
    )
