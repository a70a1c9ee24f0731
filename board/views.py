"""Board pages for readers and members: sections and their threads, a thread with its answers,
starting, answering, editing, deleting, voting, accepting, reporting, and image uploads.

The rules live in board/posts.py; these views read the request, call one function there and
render or redirect. A refused action (BoardError) re-renders its form with the typed text and
the status the rule gave (422 bad fields, 403 not allowed, 409 conflict, 429 too fast).
"""

from __future__ import annotations

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select

from app import db, is_htmx, page_number, parse_id, render_error, render_page, row_or_404, utcnow
from board import markup, posts
from board.models import Post, Section, Thread
from board.posts import BoardError
from content import media
from content.media import MediaError
from content.models import Article

bp = Blueprint("board", __name__, url_prefix="/board")

PAGE_SIZE = 20
# A new thread started from an article goes to 知识分享 unless another section is chosen.
ARTICLE_SECTION = "zhishi"


@bp.before_request
def reading_allowed():
    """With BOARD_READ=members, only members and moderators get past here."""
    if posts.may_read(current_user):
        return None
    if is_htmx():
        return render_error(403, "社群仅对会员开放，加入会员后即可阅读和参与讨论。")
    return render_template("board/members_only.html"), 403


@bp.app_template_global("may_post")
def may_post_global() -> bool:
    return posts.may_post(current_user)


# --- lists -----------------------------------------------------------------------------------


def _page(query) -> tuple[list[Thread], int, bool]:
    """One page of a thread list: the threads, the page number, whether a next page exists."""
    page = page_number()
    found = list(db.session.scalars(query.offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)))
    return found[:PAGE_SIZE], page, len(found) > PAGE_SIZE


def _list(template: str, query, **context):
    threads, number, more = _page(query)
    return render_page(
        template,
        "board/_threads.html",
        threads=threads,
        page_no=number,
        more=more,
        oob=is_htmx(),
        **context,
    )


@bp.get("/")
def index():
    return _list(
        "board/index.html",
        posts.listing(),
        sections=posts.sections(),
        list_endpoint="board.index",
        list_args={},
    )


@bp.get("/s/<slug>")
def section(slug: str):
    found = db.session.scalar(select(Section).where(Section.slug == slug))
    if found is None:
        abort(404)
    return _list(
        "board/section.html",
        posts.listing(found.id),
        section=found,
        list_endpoint="board.section",
        list_args={"slug": found.slug},
    )


@bp.get("/tag/<tag>")
def tag(tag: str):
    word = tag.strip().lower()[: posts.TAG_MAX]
    if not word:
        abort(404)
    return _list(
        "board/section.html",
        posts.listing(tag=word),
        tag=word,
        list_endpoint="board.tag",
        list_args={"tag": word},
    )


# --- a thread ----------------------------------------------------------------------------------


def _thread_or_404(thread_id: int) -> tuple[Thread, Post, list[Post]]:
    """The thread with its opening post and the answers this reader may see. A hidden opening
    post is a 404 for everyone but its author and moderators; a deleted one leaves 「已删除」
    with the answers still readable."""
    thread = row_or_404(Thread, thread_id)
    opening, answers = posts.posts_of(thread.id)
    if not posts.may_see(current_user, opening):
        abort(404)
    return thread, opening, [a for a in answers if posts.may_see(current_user, a)]


def _linked_article(article_id: int | None) -> Article | None:
    article = db.session.get(Article, article_id) if article_id else None
    if article is None or article.status != "published" or article.publish_at > utcnow():
        return None
    return article


def _thread_page(thread_id: int, *, answer_text: str = "", errors=None, status: int = 200):
    thread, opening, answers = _thread_or_404(thread_id)
    shown = [opening, *answers]
    return (
        render_template(
            "board/thread.html",
            thread=thread,
            opening=opening,
            answers=answers,
            voted=posts.voted_by(current_user, [p.id for p in shown]),
            editable={p.id for p in shown if posts.may_edit(current_user, p)},
            moderator=posts.is_moderator(current_user),
            article=_linked_article(thread.article_id),
            answer_text=answer_text,
            errors=errors or {},
        ),
        status,
    )


@bp.get("/t/<int:thread_id>")
def thread(thread_id: int):
    return _thread_page(thread_id)


@bp.post("/t/<int:thread_id>/answer")
def answer(thread_id: int):
    text = request.form.get("body", "")
    try:
        post = posts.answer(current_user, thread_id, text)
    except BoardError as refused:
        if refused.status == 404:
            abort(404)
        return _thread_page(
            thread_id, answer_text=text, errors=refused.errors, status=refused.status
        )
    return redirect(url_for("board.thread", thread_id=thread_id, _anchor=f"p{post.id}"), 303)


# --- starting a thread ---------------------------------------------------------------------------


def _thread_form(values: dict[str, str], errors: dict[str, str], status: int = 200):
    return (
        render_template(
            "board/new.html",
            sections=posts.sections(),
            values=values,
            errors=errors,
            article=_linked_article(parse_id(values.get("article"))),
        ),
        status,
    )


@bp.route("/new", methods=["GET", "POST"])
def new():
    if request.method == "GET":
        article = _linked_article(parse_id(request.args.get("article")))
        section_id = parse_id(request.args.get("section"))
        if section_id is None and article is not None:
            section_id = db.session.scalar(
                select(Section.id).where(Section.slug == ARTICLE_SECTION)
            )
        values = {
            "section": str(section_id or ""),
            "article": str(article.id) if article else "",
        }
        return _thread_form(values, {}, 200 if posts.may_post(current_user) else 403)
    values = {
        name: request.form.get(name, "") for name in ("section", "title", "tags", "body", "article")
    }
    if not posts.may_post(current_user):
        return _thread_form(values, {}, 403)
    try:
        draft = posts.check_thread(request.form)
        started = posts.start_thread(current_user, draft, article_id=parse_id(values["article"]))
    except BoardError as refused:
        return _thread_form(values, refused.errors, refused.status)
    return redirect(url_for("board.thread", thread_id=started.id), 303)


# --- one post: vote, accept, edit, delete, report, revisions -------------------------------------


def _post_or_404(post_id: int) -> Post:
    post = row_or_404(Post, post_id)
    if not posts.may_see(current_user, post):
        abort(404)
    return post


def _back_to(post: Post):
    return redirect(url_for("board.thread", thread_id=post.thread_id, _anchor=f"p{post.id}"), 303)


@bp.post("/p/<int:post_id>/vote")
def vote(post_id: int):
    post = _post_or_404(post_id)
    try:
        voted, count = posts.toggle_vote(current_user, post.id)
    except BoardError as refused:
        if is_htmx():
            return render_error(refused.status, refused.message)
        flash(refused.message)
        return _back_to(post)
    if is_htmx():
        return render_template(
            "board/_vote.html", post=post, count=count, is_voted=voted, may_vote=True
        )
    return _back_to(post)


@bp.post("/p/<int:post_id>/accept")
def accept(post_id: int):
    post = _post_or_404(post_id)
    try:
        accepted = posts.accept(current_user, post.id)
    except BoardError as refused:
        return render_error(refused.status, refused.message)
    flash("已采纳这个回答。" if accepted.accepted else "已取消采纳。")
    return _back_to(post)


@bp.route("/p/<int:post_id>/edit", methods=["GET", "POST"])
@login_required
def edit(post_id: int):
    post = _post_or_404(post_id)
    thread = post.thread
    if request.method == "GET":
        if not posts.may_edit(current_user, post):
            return render_error(403, "只有作者本人可以修改，已删除或被隐藏的帖子不能修改。")
        values = {"title": thread.title, "tags": " ".join(thread.tag_list), "body": post.body_md}
        return render_template(
            "board/edit.html", post=post, thread=thread, values=values, errors={}
        )
    values = {name: request.form.get(name, "") for name in ("title", "tags", "body")}
    try:
        posts.edit(current_user, post.id, request.form)
    except BoardError as refused:
        return (
            render_template(
                "board/edit.html", post=post, thread=thread, values=values, errors=refused.errors
            ),
            refused.status,
        )
    flash("已保存修改。")
    return _back_to(post)


@bp.route("/p/<int:post_id>/delete", methods=["GET", "POST"])
@login_required
def delete(post_id: int):
    post = _post_or_404(post_id)
    if request.method == "GET":
        if not posts.may_edit(current_user, post):
            return render_error(403, "只有作者本人可以删除。")
        return render_template("board/delete.html", post=post, thread=post.thread)
    try:
        posts.delete_post(current_user, post.id)
    except BoardError as refused:
        return render_error(refused.status, refused.message)
    flash("已删除。")
    if post.opening:
        return redirect(url_for("board.section", slug=post.thread.section.slug), 303)
    return _back_to(post)


@bp.route("/p/<int:post_id>/report", methods=["GET", "POST"])
def report(post_id: int):
    post = _post_or_404(post_id)
    if post.deleted_at is not None:
        abort(404)
    reason = request.form.get("reason", "")
    errors: dict[str, str] = {}
    status = 200 if posts.may_post(current_user) else 403
    if request.method == "POST" and status == 200:
        try:
            posts.report(current_user, post.id, reason)
        except BoardError as refused:
            errors, status = refused.errors, refused.status
        else:
            flash("已举报，管理员会尽快处理。")
            return _back_to(post)
    return (
        render_template(
            "board/report.html", post=post, thread=post.thread, reason=reason, errors=errors
        ),
        status,
    )


@bp.get("/p/<int:post_id>/revisions")
def revisions(post_id: int):
    post = _post_or_404(post_id)
    if post.deleted_at is not None:
        abort(404)
    thread = post.thread
    opening = post if post.opening else posts.posts_of(thread.id)[0]
    if not posts.may_see(current_user, opening):
        abort(404)
    return render_template(
        "board/revisions.html",
        post=post,
        thread=thread,
        revisions=posts.revisions_of(post.id),
        render=markup.render,
    )


# --- images ------------------------------------------------------------------------------------


@bp.route("/upload", methods=["GET", "POST"])
def upload():
    """An image for a post: the markdown to paste comes back (a fragment for htmx)."""
    error = None
    uploaded = None
    status = 200 if posts.may_post(current_user) else 403
    if request.method == "POST" and status == 200:
        image = request.files.get("image")
        try:
            if image is None or not image.filename:
                raise MediaError("请选择要上传的图片。")
            uploaded = media.save_image(
                image.stream, uploaded_by=current_user.id, original_name=image.filename
            )
        except MediaError as refused:
            error, status = refused.message, refused.status
    if status == 403 and is_htmx():
        return render_error(403, "上传图片需要有效的会员资格。")
    # htmx swaps only 2xx and 422 by itself: a refused upload says why under the form.
    retarget = (
        {"HX-Retarget": "#upload-result", "HX-Reswap": "outerHTML"} if error and is_htmx() else {}
    )
    return (
        render_page(
            "board/upload.html", "board/_upload_result.html", error=error, uploaded=uploaded
        ),
        status,
        retarget,
    )
