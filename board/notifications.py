"""A member's notifications (`/me/notifications`): answers to their threads, their answers
accepted, their posts hidden with the reason; and the unread count on the 我的 tab, which
htmx asks for when a page loads and once a minute after."""

from __future__ import annotations

from flask import Blueprint, render_template, url_for
from flask_login import current_user, login_required

from board import posts

bp = Blueprint("notifications", __name__)

KINDS = {"answered": "新回答", "accepted": "回答被采纳", "hidden": "帖子被隐藏"}


@bp.app_template_global()
def board_thread_url(thread_id: int, post_id: int | None = None) -> str:
    """The public page of a thread, scrolled to the post when one is named (the thread page
    gives each answer the id `p<id>`)."""
    return url_for("board.thread", thread_id=thread_id, _anchor=f"p{post_id}" if post_id else None)


@bp.get("/me/notifications")
@login_required
def index():
    """The newest notifications, the unread ones marked; seeing them marks them read."""
    user_id = current_user.id
    items = posts.notifications_of(user_id)
    # Rendered before marking: the commit would expire what was read.
    unread = {n.id for n in items if n.read_at is None}
    page = render_template("board/notifications.html", items=items, unread=unread, kinds=KINDS)
    if unread:
        posts.mark_read(user_id)
    return page


@bp.get("/me/notifications/count")
def count():
    """The unread badge alone (empty for none, and for a reader who is not signed in, so that
    a poll after the session ended does not send the page to the login form)."""
    unread = posts.unread_count(current_user.id) if current_user.is_authenticated else 0
    body = render_template("board/_unread.html", unread=unread)
    return body, 200, {"Cache-Control": "no-store"}
