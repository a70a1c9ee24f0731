"""Account pages: sign up, log in, log out, the reader's own page and password change."""

from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app import db, is_htmx, limiter, login_manager, utcnow
from members import accounts
from members.accounts import AccountError
from members.models import Tier, User

bp = Blueprint("members", __name__)


@login_manager.user_loader
def load_user(session_key: str) -> User | None:
    return accounts.user_for_session(session_key)


@login_manager.unauthorized_handler
def must_log_in():
    """Send a reader who is not signed in to the login form, and back afterwards."""
    if is_htmx():
        # A swap would put the whole login page inside the widget: move the page instead.
        page = urlsplit(request.headers.get("HX-Current-URL", ""))
        back = safe_next(page.path + (f"?{page.query}" if page.query else "")) or None
        return "", 204, {"HX-Redirect": url_for("members.login", next=back)}
    flash("请先登录。")
    back = request.full_path if request.query_string else request.path
    return redirect(url_for("members.login", next=back))


def sign_in(user: User, remember: bool) -> None:
    user.session_key = accounts.open_session(user)
    login_user(user, remember=remember)


def role_required(*roles: str):
    """Let only signed-in users with one of `roles` through; others get a 403 page."""

    def decorator(view):
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any):
            if current_user.role not in roles:
                abort(403)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


def _email_tried() -> str:
    # A second bucket per account, so that guessing one password from many addresses is
    # limited too.
    return "email:" + accounts.normalize_email(request.form.get("email", ""))[:254]


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def signup():
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {k: request.form.get(k, "") for k in ("email", "phone")}
        try:
            user = accounts.create_user(
                values["email"], request.form.get("password", ""), phone=values["phone"]
            )
        except AccountError as error:
            errors = error.errors
        else:
            sign_in(user, remember=True)
            flash("注册成功，欢迎来到晨读。")
            return redirect(safe_next(request.args.get("next")) or url_for("members.me"))
    status = 422 if errors else 200
    return render_template("members/signup.html", values=values, errors=errors), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
@limiter.limit(_login_limit, methods=["POST"], key_func=_email_tried)
def login():
    values: dict[str, str] = {}
    errors: dict[str, str] = {}
    if request.method == "POST":
        values = {
            "email": request.form.get("email", ""),
            "remember": request.form.get("remember", ""),
        }
        user = accounts.authenticate(values["email"], request.form.get("password", ""))
        if user is None:
            errors = {"password": "邮箱或密码不正确。"}
        else:
            sign_in(user, remember=bool(values["remember"]))
            return redirect(safe_next(request.args.get("next")) or url_for("members.me"))
    status = 422 if errors else 200
    return render_template("members/login.html", values=values, errors=errors), status


@bp.post("/logout")
def logout():
    accounts.close_session(getattr(current_user, "session_key", None))
    logout_user()
    flash("你已退出登录。")
    return redirect(url_for("content.home"))


def _me_page(status: int = 200, **extra: Any):
    from members import enrollment

    now = utcnow()
    membership = current_user.membership
    tier = db.session.get(Tier, membership.tier_id) if membership and membership.tier_id else None
    context: dict[str, Any] = {
        "nickname": current_user.nickname or "",
        "nickname_error": None,
        **extra,
    }
    return render_template(
        "members/me.html",
        membership=membership,
        tier=tier,
        tiers=[] if membership else enrollment.tiers(),
        moment=enrollment.moment(now),
        **enrollment.renewal_banner(current_user),
        **context,
    ), status


@bp.get("/me")
@login_required
def me():
    return _me_page()


@bp.post("/me/nickname")
@login_required
def nickname():
    """Set the name the board shows; a bad one re-renders /me with the message next to it."""
    typed = request.form.get("nickname", "")
    try:
        accounts.set_nickname(current_user, typed)
    except AccountError as error:
        return _me_page(422, nickname=typed[:100], nickname_error=error.errors["nickname"])
    flash("昵称已保存。" if current_user.nickname else "昵称已清除。")
    return redirect(url_for("members.me", _anchor="nickname"), 303)


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
@limiter.limit(_login_limit, methods=["POST"])
def password():
    errors: dict[str, str] = {}
    done = False
    if request.method == "POST":
        form = request.form
        try:
            accounts.change_password(
                current_user,
                form.get("current_password", ""),
                form.get("new_password", ""),
                form.get("confirm_password", ""),
                keep=current_user.session_key,
            )
        except AccountError as error:
            errors = error.errors
        else:
            done = True
            if not is_htmx():
                flash("密码已修改，其他设备需要重新登录。")
                return redirect(url_for("members.me"))
    status = 422 if errors else 200
    template = "members/_password_form.html" if is_htmx() else "members/password.html"
    return render_template(template, errors=errors, done=done), status
