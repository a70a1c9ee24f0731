"""Account pages: sign up, log in, log out, the reader's own page and password change."""

from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required, login_user, logout_user

from app import db, is_htmx, limiter, login_manager
from members import accounts
from members.accounts import AccountError
from members.models import User

bp = Blueprint("members", __name__)


@login_manager.user_loader
def load_user(session_id: str) -> User | None:
    user_id, _, token = session_id.partition(":")
    if not user_id.isdigit() or not token:
        return None
    user = db.session.get(User, int(user_id))
    if user is None or not accounts.same_token(user.login_token, token):
        return None
    return user


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


def _safe_next(target: str | None) -> str | None:
    """`target` if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def _login_limit() -> str:
    return current_app.config["LOGIN_RATE_LIMIT"]


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
            login_user(user, remember=True)
            flash("注册成功，欢迎来到晨读。")
            return redirect(_safe_next(request.args.get("next")) or url_for("members.me"))
    status = 422 if errors else 200
    return render_template("members/signup.html", values=values, errors=errors), status


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
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
            login_user(user, remember=bool(values["remember"]))
            return redirect(_safe_next(request.args.get("next")) or url_for("members.me"))
    status = 422 if errors else 200
    return render_template("members/login.html", values=values, errors=errors), status


@bp.post("/logout")
def logout():
    logout_user()
    flash("你已退出登录。")
    return redirect(url_for("content.home"))


@bp.get("/me")
@login_required
def me():
    return render_template("members/me.html", membership=current_user.membership)


@bp.route("/me/password", methods=["GET", "POST"])
@login_required
def password():
    errors: dict[str, str] = {}
    done = False
    if request.method == "POST":
        form = request.form
        try:
            user = accounts.change_password(
                current_user,
                form.get("current_password", ""),
                form.get("new_password", ""),
                form.get("confirm_password", ""),
            )
        except AccountError as error:
            errors = error.errors
        else:
            # This session carries the new token; every other session and cookie is signed out.
            remembered = current_app.config.get("REMEMBER_COOKIE_NAME", "remember_token")
            login_user(user, remember=remembered in request.cookies)
            done = True
            if not is_htmx():
                flash("密码已修改，其他设备需要重新登录。")
                return redirect(url_for("members.me"))
    status = 422 if errors else 200
    template = "members/_password_form.html" if is_htmx() else "members/password.html"
    return render_template(template, errors=errors, done=done), status
