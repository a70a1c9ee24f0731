"""A buyer's side after "buy now": paying (`/pay/...`), their orders (`/orders`), cancelling,
confirming receipt, asking for a refund, and their saved addresses (`/me/addresses`).

Another user's order is 404, never 403: an order number says nothing about whether it
exists. WeChat Pay's notification (`/pay/wechat/notify`) is the one POST without a CSRF
token; its signature is its proof.
"""

from __future__ import annotations

import json
import logging
import secrets

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import delete, func, select

from app import csrf, db, is_htmx, parse_id, utcnow, write_transaction
from members import accounts
from members.accounts import AccountError
from members.views import safe_next
from shop import checkout, payments
from shop.checkout import CheckoutError
from shop.models import Address, Order, OrderStatus, Refund

log = logging.getLogger(__name__)

bp = Blueprint("orders", __name__)

ORDERS_PAGE = 30
MAX_ADDRESSES = 20

STATUS_LABELS = {
    "pending": "待付款",
    "paid": "已付款，待发货",
    "shipped": "已发货",
    "completed": "已完成",
    "cancelled": "已取消",
    "refund_requested": "退款审核中",
    "refunded": "已退款",
    "refund_rejected": "退款未通过",
}


@bp.app_context_processor
def _labels() -> dict:
    return {"order_status_labels": STATUS_LABELS}


def _my_order(number: str) -> Order:
    order = db.session.scalar(
        select(Order).where(Order.number == number, Order.user_id == current_user.id)
    )
    if order is None:
        abort(404)
    return order


# --- my orders -------------------------------------------------------------------------------


@bp.get("/orders")
@login_required
def mine():
    checkout.release_expired_holds()
    page = min(parse_id(request.args.get("page", "1")) or 1, 10_000)
    found = db.session.scalars(
        select(Order)
        .where(Order.user_id == current_user.id)
        .order_by(Order.id.desc())
        .offset((page - 1) * ORDERS_PAGE)
        .limit(ORDERS_PAGE + 1)
    ).all()
    return render_template(
        "shop/orders.html", orders=found[:ORDERS_PAGE], more=len(found) > ORDERS_PAGE, page=page
    )


def _order_context(order: Order) -> dict:
    refunds = db.session.scalars(
        select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)
    ).all()
    return {
        "order": order,
        "events": checkout.events_of(order.id),
        "refunds": refunds,
        "can_refund": checkout.can_request_refund(order),
        "refund_deadline": checkout.refund_deadline(order),
        "now": utcnow(),
    }


@bp.get("/orders/<number>")
@login_required
def detail(number: str):
    checkout.release_expired_holds()
    order = _my_order(number)
    return render_template("shop/order.html", **_order_context(order))


@bp.get("/orders/<number>/status")
@login_required
def status(number: str):
    """The order's state, polled by htmx while it waits for the payment notice."""
    checkout.release_expired_holds()
    order = _my_order(number)
    return render_template("shop/_order_status.html", **_order_context(order))


@bp.post("/orders/<number>/cancel")
@login_required
def cancel(number: str):
    order = _my_order(number)
    if checkout.cancel(order.id, actor=current_user.id, reason="买家取消"):
        flash("订单已取消，库存已释放。")
    else:
        flash("这个订单已经不能取消了。")
    return redirect(url_for("orders.detail", number=number), code=303)


@bp.post("/orders/<number>/received")
@login_required
def received(number: str):
    order = _my_order(number)
    if order.status == OrderStatus.SHIPPED and checkout.complete(
        order.id, actor=current_user.id, reason="买家确认收货"
    ):
        flash("已确认收货。")
    else:
        flash("这个订单现在不能确认收货。")
    return redirect(url_for("orders.detail", number=number), code=303)


@bp.post("/orders/<number>/refund")
@login_required
def refund(number: str):
    order = _my_order(number)
    try:
        checkout.request_refund(
            order.id, actor=current_user.id, reason=request.form.get("reason", "")
        )
    except CheckoutError as error:
        db.session.rollback()
        context = _order_context(db.session.get(Order, order.id, populate_existing=True) or order)
        return (
            render_template(
                "shop/order.html",
                **context,
                refund_error=error.message,
                refund_reason=request.form.get("reason", "")[:300],
            ),
            422,
        )
    flash("退款申请已提交，编辑部会尽快处理。")
    return redirect(url_for("orders.detail", number=number), code=303)


# --- paying ----------------------------------------------------------------------------------


@bp.get("/pay/<number>")
@login_required
def pay(number: str):
    checkout.release_expired_holds()
    order = _my_order(number)
    if order.status != OrderStatus.PENDING:
        return redirect(url_for("orders.detail", number=number), code=303)
    provider = order.provider or payments.provider_name()
    context = _order_context(order)
    if provider == "dev" and payments.dev_payments():
        return render_template("shop/pay_dev.html", **context)
    if provider != "wechatpay" or payments.provider_name() != "wechatpay":
        # Started with a provider this site no longer uses: it cannot be paid here.
        return render_template("shop/pay_wechat.html", **context, problem="unavailable"), 409
    openid = current_user.wechat_openid
    if not openid:
        return render_template("shop/pay_wechat.html", **context, problem="openid")
    try:
        client = payments.provider("wechatpay").client  # type: ignore[attr-defined]
        prepay_id = client.jsapi_prepay(
            out_trade_no=order.number,
            description=order.lines[0].title[:127] if order.lines else order.number,
            amount_fen=order.total_fen,
            openid=openid,
            time_expire=order.hold_expires_at,
        )
        params = client.jsapi_params(prepay_id)
    except Exception:
        log.exception("prepay for %s failed", order.number)
        return render_template("shop/pay_wechat.html", **context, problem="prepay"), 502
    return render_template("shop/pay_wechat.html", **context, params=json.dumps(params))


@bp.post("/pay/<number>/dev")
@login_required
def pay_dev(number: str):
    """The dev cashier's buttons. This route does not exist unless PAYMENTS=dev."""
    if not payments.dev_payments():
        abort(404)
    order = _my_order(number)
    if request.form.get("result") == "fail":
        flash("支付失败（模拟），订单仍为待付款，可以再试一次。")
        return redirect(url_for("orders.pay", number=number), code=303)
    if request.form.get("result") != "success":
        abort(400)
    outcome = payments.record_payment(
        order.number,
        provider="dev",
        transaction_id=f"dev-{secrets.token_hex(12)}",
        amount_fen=order.total_fen,
        paid_at=utcnow(),
    )
    if outcome == payments.Outcome.PAID:
        flash("支付成功（模拟）。")
    elif outcome == payments.Outcome.REFUNDING:
        flash("订单已超时取消，这笔模拟付款已自动退回。")
    return redirect(url_for("orders.detail", number=number), code=303)


def _fail(status: int, message: str) -> Response:
    body = json.dumps({"code": "FAIL", "message": message})
    return Response(body, status=status, mimetype="application/json")


@bp.post("/pay/wechat/notify")
@csrf.exempt
def wechat_notify():
    """WeChat Pay's payment notice: verified, decrypted, checked against the order, and
    recorded once however often it comes. 204 on success; WeChat retries anything else."""
    if payments.provider_name() != "wechatpay":
        return _fail(404, "wechatpay is not enabled")
    from shop.wechatpay import NotifyError

    body = request.get_data(cache=False)
    try:
        client = payments.provider("wechatpay").client  # type: ignore[attr-defined]
        notice = client.parse_notification(request.headers, body, now=utcnow())
    except NotifyError as error:
        return _fail(error.status, error.message)
    if notice.trade_state != "SUCCESS" or notice.success_time is None:
        return _fail(400, "not a successful payment")
    outcome = payments.record_payment(
        notice.out_trade_no,
        provider="wechatpay",
        transaction_id=notice.transaction_id,
        amount_fen=notice.amount_fen,
        paid_at=notice.success_time,
        settle=False,
    )
    if outcome == payments.Outcome.UNKNOWN_ORDER:
        return _fail(404, "unknown out_trade_no")
    if outcome == payments.Outcome.WRONG_AMOUNT:
        return _fail(400, "amount does not match the order")
    response = Response(status=204)
    if outcome == payments.Outcome.REFUNDING:
        # Ask for the refund after WeChat has its answer, which must come within seconds.
        app = current_app._get_current_object()  # type: ignore[attr-defined]

        def refund_later() -> None:
            with app.app_context():
                payments.settle_refunds()

        response.call_on_close(refund_later)
    return response


# --- saved addresses -------------------------------------------------------------------------

ADDRESS_FIELDS = {
    "name": ("收货人", 40),
    "phone": ("手机号", 20),
    "province": ("省份", 20),
    "city": ("城市", 30),
    "district": ("区县", 30),
    "street": ("详细地址", 120),
}


@bp.get("/me/addresses")
@login_required
def addresses():
    found = db.session.scalars(
        select(Address).where(Address.user_id == current_user.id).order_by(Address.id.desc())
    ).all()
    return render_template("shop/addresses.html", addresses=found)


@bp.route("/me/addresses/new", methods=["GET", "POST"])
@login_required
def address_new():
    values = {key: " ".join(request.form.get(key, "").split()) for key in ADDRESS_FIELDS}
    errors: dict[str, str] = {}
    next_url = safe_next(request.values.get("next"))
    if request.method == "POST":
        for key, (label, limit) in ADDRESS_FIELDS.items():
            if not values[key]:
                errors[key] = f"请填写{label}。"
            elif len(values[key]) > limit:
                errors[key] = f"{label}最多 {limit} 个字。"
        if "phone" not in errors:
            try:
                values["phone"] = accounts.check_phone(values["phone"]) or ""
            except AccountError:
                errors["phone"] = "请填写 11 位手机号。"
        if not errors:
            with write_transaction() as session:
                count = session.scalar(
                    select(func.count()).where(Address.user_id == current_user.id)
                )
                if count >= MAX_ADDRESSES:
                    errors["street"] = f"最多保存 {MAX_ADDRESSES} 个地址，请先删除不用的。"
                else:
                    session.add(Address(user_id=current_user.id, created_at=utcnow(), **values))
            if not errors:
                flash("地址已保存。")
                return redirect(next_url or url_for("orders.addresses"), code=303)
    return (
        render_template(
            "shop/address_form.html",
            values=values,
            errors=errors,
            next_url=next_url,
            htmx=is_htmx(),
        ),
        422 if errors else 200,
    )


@bp.post("/me/addresses/<int:address_id>/delete")
@login_required
def address_delete(address_id: int):
    with write_transaction() as session:
        gone = session.execute(
            delete(Address).where(Address.id == address_id, Address.user_id == current_user.id)
        )
    if gone.rowcount != 1:
        abort(404)
    flash("地址已删除。")
    return redirect(url_for("orders.addresses"), code=303)
