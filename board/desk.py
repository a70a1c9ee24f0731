"""The moderation desk (`/editor/board`, editors and admins): the queue of reported posts, one
post with its reports and its thread's log, the moderation log, and the board's sections.

Every action goes through `board.posts` (hide, restore, dismiss, set_flag, move), which checks
the moderator, asks for a reason, writes the moderation log and tells the author; a refused
action re-renders the post's page with the message next to the field, and nothing changes.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user
from markupsafe import Markup
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from app import db, page_number, parse_id, row_or_404
from board import posts
from board.models import ModerationAction, Post, Report, Section, Thread
from board.posts import BoardError
from board.sections import SectionForm, save_section
from members import role_required

bp = Blueprint("board_desk", __name__, url_prefix="/editor/board")

QUEUE_PAGE = 30
LOG_PAGE = 50
EXCERPT = 140
ACTIONS = {
    "hide": "隐藏",
    "restore": "恢复",
    "dismiss": "驳回举报",
    "lock": "锁定",
    "unlock": "解除锁定",
    "pin": "置顶",
    "unpin": "取消置顶",
    "move": "移动",
}
POST_ACTIONS = {"hide": posts.hide, "restore": posts.restore, "dismiss": posts.dismiss}
THREAD_FLAGS = {
    "lock": ("locked", True),
    "unlock": ("locked", False),
    "pin": ("pinned", True),
    "unpin": ("pinned", False),
}
DONE = {
    "hide": "已隐藏，作者会收到通知和原因。",
    "restore": "已恢复，大家又能看到了。",
    "lock": "已锁定，不能再回答。",
    "unlock": "已解除锁定。",
    "pin": "已置顶。",
    "unpin": "已取消置顶。",
}
SECTION_FIELDS = ("slug", "name", "description", "is_qa", "position")


@bp.before_request
@role_required("editor", "admin")
def only_moderators() -> None:
    """Every moderation desk page is for editors and admins."""


def _opening(thread_id: int) -> Post:
    return db.session.scalars(select(Post).where(Post.thread_id == thread_id, Post.opening)).one()


def excerpt(post: Post) -> str:
    """The start of a post as plain text (escaped again when shown)."""
    # body_html is nh3's output: only its text is kept here.
    text = Markup(post.body_html).striptags()  # noqa: S704
    return text if len(text) <= EXCERPT else text[:EXCERPT] + "…"


# --- the queue -------------------------------------------------------------------------------


@bp.get("/")
def index():
    """Posts with open reports: the most reported first, then the longest waiting."""
    waiting = (
        select(
            Report.post_id,
            func.count().label("reports"),
            func.min(Report.created_at).label("first"),
        )
        .where(Report.resolved_at.is_(None))
        .group_by(Report.post_id)
        .subquery()
    )
    page = page_number()
    found = db.session.execute(
        select(Post, waiting.c.reports)
        .join(waiting, waiting.c.post_id == Post.id)
        .options(joinedload(Post.thread))
        .order_by(waiting.c.reports.desc(), waiting.c.first, Post.id)
        .offset((page - 1) * QUEUE_PAGE)
        .limit(QUEUE_PAGE + 1)
    ).all()
    shown = found[:QUEUE_PAGE]
    reports: dict[int, list[Report]] = {post.id: [] for post, _ in shown}
    for report in db.session.scalars(
        select(Report)
        .where(Report.post_id.in_(list(reports)), Report.resolved_at.is_(None))
        .options(joinedload(Report.reporter))
        .order_by(Report.created_at, Report.id)
    ):
        reports[report.post_id].append(report)
    total = db.session.scalar(select(func.count()).select_from(waiting)) or 0
    return render_template(
        "editor/board/index.html",
        items=[(post, count, excerpt(post), reports[post.id]) for post, count in shown],
        total=total,
        page=page,
        more=len(found) > QUEUE_PAGE,
    )


# --- one post and its thread -----------------------------------------------------------------


def _post_page(
    post_id: int,
    status: int = 200,
    *,
    failed: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, str] | None = None,
):
    post = row_or_404(Post, post_id)
    thread = post.thread
    opening = post if post.opening else _opening(thread.id)
    reports = db.session.scalars(
        select(Report)
        .where(Report.post_id == post.id)
        .options(joinedload(Report.reporter))
        .order_by(Report.resolved_at.is_not(None), Report.created_at.desc(), Report.id.desc())
    ).all()
    log = db.session.scalars(
        select(ModerationAction)
        .where(ModerationAction.thread_id == thread.id)
        .order_by(ModerationAction.at.desc(), ModerationAction.id.desc())
        .limit(LOG_PAGE)
    ).all()
    errors = errors or {}
    shown = {"reason", "section"}
    context: dict[str, Any] = {
        "post": post,
        "thread": thread,
        "opening": opening,
        "reports": reports,
        "open_reports": sum(1 for r in reports if r.resolved_at is None),
        "log": [(entry, thread.title) for entry in log],
        "actions": ACTIONS,
        "sections": posts.sections(),
        "failed": failed,
        "errors": errors,
        "general": " ".join(m for f, m in errors.items() if f not in shown),
        "values": values or {},
    }
    return render_template("editor/board/post.html", **context), status


@bp.get("/p/<int:post_id>")
def post(post_id: int):
    return _post_page(post_id)


@bp.get("/t/<int:thread_id>")
def thread(thread_id: int):
    """A thread's desk page is its opening post's."""
    found = row_or_404(Thread, thread_id)
    return redirect(url_for("board_desk.post", post_id=_opening(found.id).id))


def _back(post_id: int):
    if request.form.get("back") == "queue":
        return redirect(url_for("board_desk.index"), 303)
    return redirect(url_for("board_desk.post", post_id=post_id), 303)


@bp.post("/p/<int:post_id>/<any(hide, restore, dismiss):action>")
def post_action(post_id: int, action: str):
    found = row_or_404(Post, post_id)
    reason = request.form.get("reason", "")
    try:
        done = POST_ACTIONS[action](current_user, found.id, reason)
    except BoardError as error:
        values = {"reason": reason}
        return _post_page(found.id, error.status, failed=action, errors=error.errors, values=values)
    flash(f"已驳回 {done} 条举报，帖子保持原样。" if action == "dismiss" else DONE[action])
    return _back(found.id)


def _shown_post(thread: Thread) -> int:
    """The post whose page a thread action came from (the opening post if it is not said)."""
    post_id = parse_id(request.form.get("post"))
    found = db.session.get(Post, post_id) if post_id else None
    if found is None or found.thread_id != thread.id:
        found = _opening(thread.id)
    return found.id


@bp.post("/t/<int:thread_id>/<any(lock, unlock, pin, unpin):action>")
def thread_flag(thread_id: int, action: str):
    found = row_or_404(Thread, thread_id)
    shown = _shown_post(found)
    flag, on = THREAD_FLAGS[action]
    reason = request.form.get("reason", "")
    try:
        posts.set_flag(current_user, found.id, flag, on, reason)
    except BoardError as error:
        values = {"reason": reason}
        return _post_page(shown, error.status, failed=action, errors=error.errors, values=values)
    flash(DONE[action])
    return _back(shown)


@bp.post("/t/<int:thread_id>/move")
def move(thread_id: int):
    found = row_or_404(Thread, thread_id)
    shown = _shown_post(found)
    reason, section = request.form.get("reason", ""), request.form.get("section", "")
    try:
        moved = posts.move(current_user, found.id, section, reason)
    except BoardError as error:
        values = {"reason": reason, "section": section}
        return _post_page(shown, error.status, failed="move", errors=error.errors, values=values)
    flash(f"已移到「{moved.section.name}」。")
    return _back(shown)


# --- the log ---------------------------------------------------------------------------------


@bp.get("/log")
def log():
    page = page_number()
    found = db.session.execute(
        select(ModerationAction, Thread.title)
        .join(Thread, Thread.id == ModerationAction.thread_id)
        .order_by(ModerationAction.at.desc(), ModerationAction.id.desc())
        .offset((page - 1) * LOG_PAGE)
        .limit(LOG_PAGE + 1)
    ).all()
    return render_template(
        "editor/board/log.html",
        items=found[:LOG_PAGE],
        more=len(found) > LOG_PAGE,
        page=page,
        actions=ACTIONS,
    )


# --- sections --------------------------------------------------------------------------------


def _sections_page(
    form: SectionForm | None = None, errors: dict[str, str] | None = None, status: int = 200
):
    visible = posts.visible_threads().subquery()
    counts = dict(
        db.session.execute(
            select(visible.c.section_id, func.count()).group_by(visible.c.section_id)
        ).all()
    )
    errors = errors or {}
    return render_template(
        "editor/board/sections.html",
        sections=posts.sections(),
        counts=counts,
        form=form or SectionForm(),
        errors=errors,
        general=" ".join(m for f, m in errors.items() if f not in SECTION_FIELDS),
    ), status


def _section_page(section: Section, form: SectionForm, errors: dict[str, str], status: int):
    return render_template(
        "editor/board/section.html",
        section=section,
        form=form,
        errors=errors,
        general=" ".join(m for f, m in errors.items() if f not in SECTION_FIELDS),
    ), status


@bp.get("/sections")
def sections():
    return _sections_page()


@bp.post("/sections")
def create_section():
    form = SectionForm.from_form(request.form)
    try:
        saved = save_section(form)
    except BoardError as error:
        return _sections_page(form, error.errors, error.status)
    flash(f"版块「{saved.name}」已创建。")
    return redirect(url_for("board_desk.sections"), 303)


@bp.get("/sections/<int:section_id>")
def section(section_id: int):
    found = row_or_404(Section, section_id)
    return _section_page(found, SectionForm.of(found), {}, 200)


@bp.post("/sections/<int:section_id>")
def update_section(section_id: int):
    found = row_or_404(Section, section_id)
    form = SectionForm.from_form(request.form)
    try:
        saved = save_section(form, found.id)
    except BoardError as error:
        if error.status == 404:
            abort(404)
        return _section_page(row_or_404(Section, section_id), form, error.errors, error.status)
    flash(f"版块「{saved.name}」已保存。")
    return redirect(url_for("board_desk.sections"), 303)
