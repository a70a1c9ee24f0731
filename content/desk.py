"""The editor desk (`/editor`): lists, the article form with live preview and autosave,
revisions, conflicts, uploads and columns. Editors and admins only; others get 403.

No editor ever loses text: every save keeps a revision, drafts autosave every 30 seconds
(autosaves of a published piece are kept as revisions and go live only on "save"), and a save
based on an old version is refused with both texts shown, the losing one kept as a revision.
"""

from __future__ import annotations

import re
from typing import Any

from flask import (
    Blueprint,
    abort,
    flash,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from app import db, page_number, parse_id, render_page, utcnow, write_transaction
from content import articles, media
from content.articles import ArticleConflict, ArticleError, Draft
from content.media import MediaError
from content.models import Article, ArticleRevision, Column, Media, Status
from content.rendering import render_markdown
from content.views import article_page
from members import role_required
from members.accounts import emails_of

bp = Blueprint("editor", __name__, url_prefix="/editor")

STATES = {"draft": "草稿", "scheduled": "定时发布", "published": "已发布"}
LIST_PAGE = 50
COLUMN_SLUG = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,58}[a-z0-9])?$")


@bp.before_request
@role_required("editor", "admin")
def only_editors() -> None:
    """Every desk page is for editors and admins."""


# --- lists -------------------------------------------------------------------------------


@bp.get("/")
def index():
    now = utcnow()
    state = request.args.get("state", "")
    column_slug = request.args.get("column", "")
    query = select(Article)
    if state == "draft":
        query = query.where(Article.status == Status.DRAFT)
    elif state == "scheduled":
        query = query.where(Article.status == Status.PUBLISHED, Article.publish_at > now)
    elif state == "published":
        query = query.where(Article.status == Status.PUBLISHED, Article.publish_at <= now)
    elif state:
        abort(404)
    columns = db.session.scalars(select(Column).order_by(Column.position, Column.id)).all()
    column = None
    if column_slug:
        column = next((c for c in columns if c.slug == column_slug), None)
        if column is None:
            abort(404)
        query = query.where(Article.column_id == column.id)
    page = page_number()
    found = db.session.scalars(
        query.order_by(Article.updated_at.desc(), Article.id.desc())
        .offset((page - 1) * LIST_PAGE)
        .limit(LIST_PAGE + 1)
    ).all()
    return render_template(
        "editor/index.html",
        items=found[:LIST_PAGE],
        more=len(found) > LIST_PAGE,
        page=page,
        state=state,
        column=column,
        columns=columns,
        states=STATES,
        state_of=lambda a: articles.state_of(a, now),
    )


# --- the article form --------------------------------------------------------------------


def _form_context(draft: Draft, article: Article | None, **extra: Any) -> dict[str, Any]:
    columns = db.session.scalars(select(Column).order_by(Column.position, Column.id)).all()
    recent = {
        kind: db.session.scalars(
            select(Media).where(Media.kind == kind).order_by(Media.id.desc()).limit(30)
        ).all()
        for kind in ("image", "audio")
    }
    # The media the form points at stay choosable even when they are old.
    for kind, chosen in (("image", draft.cover_id), ("audio", draft.voice_id)):
        chosen_id = parse_id(chosen)
        if chosen_id and all(m.id != chosen_id for m in recent[kind]):
            found = db.session.get(Media, chosen_id)
            if found is not None and found.kind == kind:
                recent[kind] = [found, *recent[kind]]
    autosave = None
    if article is not None:
        # An autosave not followed by any save yet: its text has not gone live.
        latest = db.session.scalar(
            select(ArticleRevision)
            .where(ArticleRevision.article_id == article.id)
            .order_by(ArticleRevision.id.desc())
            .limit(1)
        )
        if latest is not None and latest.note == "autosave":
            autosave = latest
    return {
        "draft": draft,
        "article": article,
        "columns": columns,
        "images": recent["image"],
        "voices": recent["audio"],
        "states": STATES,
        "errors": {},
        "autosave": autosave,
        **extra,
    }


def _draft_from_form() -> Draft:
    form = request.form
    base = form.get("base_version", "")
    return Draft(
        title=form.get("title", ""),
        body_md=form.get("body_md", ""),
        summary=form.get("summary", ""),
        slug=form.get("slug", ""),
        column=form.get("column", ""),
        keywords=form.get("keywords", ""),
        visibility=form.get("visibility", "public"),
        status=form.get("status", "draft"),
        publish_at=form.get("publish_at", ""),
        base_version=parse_id(base),
        cover_id=form.get("cover_id", ""),
        voice_id=form.get("voice_id", ""),
    )


def _article_or_404(article_id: int | None) -> Article:
    article_id = parse_id(article_id)
    article = db.session.get(Article, article_id) if article_id else None
    if article is None:
        abort(404)
    return article


@bp.get("/new")
def new():
    draft = Draft(status="draft")
    return render_template("editor/edit.html", **_form_context(draft, None))


@bp.get("/a/<int:article_id>")
def edit(article_id: int):
    article = _article_or_404(article_id)
    draft = articles.draft_from(article, utcnow())
    return render_template("editor/edit.html", **_form_context(draft, article))


def _uploads(draft: Draft) -> tuple[dict[str, str], int]:
    """Check the files sent with the form, then keep them; a bad one stops everything."""
    checked = {}
    errors: dict[str, str] = {}
    status = 422
    for field, check in (("cover_file", media.check_image), ("voice_file", media.check_audio)):
        upload = request.files.get(field)
        if upload is None or not upload.filename:
            continue
        try:
            checked[field] = (check(upload.stream), upload.filename)
        except MediaError as error:
            errors[field] = error.message
            if error.status == 413:
                status = 413
    if errors:
        return errors, status
    for field, (result, filename) in checked.items():
        kept = media.store(result, original_name=filename, uploaded_by=current_user.id)
        setattr(draft, "cover_id" if field == "cover_file" else "voice_id", kept.id)
    return {}, 200


@bp.post("/save")
def save():
    """Create or update an article (the hidden `article_id` says which)."""
    draft = _draft_from_form()
    raw_id = request.form.get("article_id", "")
    article = _article_or_404(parse_id(raw_id)) if raw_id else None
    if article is not None and draft.base_version is None:
        # Without it a stale save could not be told from a fresh one.
        errors = {"title": "表单不完整，请刷新页面后重新编辑（你输入的文字还在下面）。"}
        return render_template(
            "editor/edit.html", **_form_context(draft, article, errors=errors)
        ), 422
    errors, status = _uploads(draft)
    if errors:
        context = _form_context(draft, article, errors=errors)
        return render_template("editor/edit.html", **context), status
    try:
        saved = articles.save_article(
            draft, article_id=article.id if article else None, author_id=current_user.id
        )
    except ArticleError as error:
        context = _form_context(draft, article, errors=error.errors)
        return render_template("editor/edit.html", **context), 422
    except ArticleConflict as conflict:
        return _conflict_page(conflict.current, conflict.kept), 409
    flash(
        {"draft": "草稿已保存。", "scheduled": "已保存，将在设定时间发布。"}.get(
            articles.state_of(saved, utcnow()), "已保存并发布。"
        )
    )
    return redirect(url_for("editor.edit", article_id=saved.id))


@bp.post("/autosave")
def autosave():
    """What htmx sends every 30 seconds while an editor types (files are left out)."""
    draft = _draft_from_form()
    raw_id = request.form.get("article_id", "")
    article = _article_or_404(parse_id(raw_id)) if raw_id else None
    now = utcnow()
    context: dict[str, Any] = {"at": now, "article": article}
    if article is not None and draft.base_version is None:
        context.update(state="invalid", errors={"base_version": "表单不完整，请刷新页面。"})
        return render_template("editor/_autosave.html", **context)
    if article is not None and article.status != Status.DRAFT:
        kept = articles.keep_revision(article.id, draft, author_id=current_user.id, note="autosave")
        context.update(state="kept", revision=kept)
        return render_template("editor/_autosave.html", **context)
    if not draft.title.strip():
        return render_template("editor/_autosave.html", state="untitled", **context)
    draft.status = "draft"
    try:
        saved = articles.save_article(
            draft, article_id=article.id if article else None, author_id=current_user.id
        )
    except ArticleConflict as conflict:
        context.update(state="conflict", revision=conflict.kept, article=conflict.current)
        return render_template("editor/_autosave.html", **context)
    except ArticleError as error:
        if article is None:
            context.update(state="invalid", errors=error.errors)
            return render_template("editor/_autosave.html", **context)
        kept = articles.keep_revision(article.id, draft, author_id=current_user.id, note="autosave")
        context.update(state="kept", revision=kept, errors=error.errors)
        return render_template("editor/_autosave.html", **context)
    context.update(state="saved", article=saved)
    headers = {}
    if article is None:
        headers["HX-Replace-Url"] = url_for("editor.edit", article_id=saved.id)
    return render_template("editor/_autosave.html", **context), 200, headers


@bp.post("/preview")
def preview():
    """The live preview beside the textarea; as a member sees it or as everyone else does."""
    body = request.form.get("body_md", "")
    if len(body) > articles.BODY_MAX:
        return render_page(
            "editor/preview.html", "editor/_preview.html", error="正文太长了。", rendered=None
        )
    viewer = request.form.get("preview_as", "member")
    rendered = render_markdown(body)
    return render_page(
        "editor/preview.html",
        "editor/_preview.html",
        rendered=rendered,
        viewer="guest" if viewer == "guest" else "member",
        members_only=request.form.get("visibility") == "members",
        error=None,
    )


@bp.get("/a/<int:article_id>/view")
def view_as(article_id: int):
    """The article page exactly as a member or a non-member would get it, even unpublished."""
    article = _article_or_404(article_id)
    viewer = request.args.get("as", "member")
    whole = viewer != "guest" or not article.members_only
    page = article_page(article, whole, desk_preview=viewer)
    return render_template("content/article.html", page=page, desk_preview=viewer)


# --- revisions and conflicts -------------------------------------------------------------


def _revision_or_404(article: Article, revision_id: int) -> ArticleRevision:
    revision_id = parse_id(revision_id)
    revision = db.session.get(ArticleRevision, revision_id) if revision_id else None
    if revision is None or revision.article_id != article.id:
        abort(404)
    return revision


@bp.get("/a/<int:article_id>/revisions")
def revisions(article_id: int):
    article = _article_or_404(article_id)
    found = db.session.scalars(
        select(ArticleRevision)
        .where(ArticleRevision.article_id == article.id)
        .order_by(ArticleRevision.id.desc())
        .limit(200)
    ).all()
    return render_template(
        "editor/revisions.html",
        article=article,
        revisions=found,
        authors=emails_of({r.author_id for r in found}),
    )


@bp.get("/a/<int:article_id>/revisions/<int:revision_id>")
def revision(article_id: int, revision_id: int):
    article = _article_or_404(article_id)
    found = _revision_or_404(article, revision_id)
    return render_template(
        "editor/revision.html",
        article=article,
        revision=found,
        authors=emails_of({found.author_id}),
        rendered=render_markdown(found.body_md),
    )


@bp.post("/a/<int:article_id>/revisions/<int:revision_id>/restore")
def restore(article_id: int, revision_id: int):
    """Save the text of a revision as the article's new version (a revision of its own)."""
    article = _article_or_404(article_id)
    found = _revision_or_404(article, revision_id)
    base = request.form.get("base_version", "")
    if parse_id(base) is None:
        flash("表单不完整，请刷新页面后重试。")
        return redirect(url_for("editor.revision", article_id=article.id, revision_id=found.id))
    draft = articles.draft_from_revision(article, found, utcnow())
    draft.base_version = parse_id(base)
    try:
        articles.save_article(draft, article_id=article.id, author_id=current_user.id)
    except ArticleConflict as conflict:
        return _conflict_page(conflict.current, conflict.kept), 409
    except ArticleError as error:
        flash("没能恢复：" + " ".join(error.errors.values()))
        return redirect(url_for("editor.revision", article_id=article.id, revision_id=found.id))
    flash(f"已恢复到第 {found.version} 版的文字，并保存为新版本。")
    return redirect(url_for("editor.edit", article_id=article.id))


def _conflict_page(current: Article, kept: ArticleRevision):
    return render_template(
        "editor/conflict.html",
        article=current,
        kept=kept,
        authors=emails_of({current.author_id, kept.author_id}),
    )


@bp.get("/a/<int:article_id>/conflict/<int:revision_id>")
def conflict(article_id: int, revision_id: int):
    article = _article_or_404(article_id)
    return _conflict_page(article, _revision_or_404(article, revision_id))


# --- uploads -----------------------------------------------------------------------------


@bp.route("/media", methods=["GET", "POST"])
def media_library():
    """Upload images for article bodies (and voices), and copy their markdown."""
    error = None
    status = 200
    uploaded = None
    if request.method == "POST":
        upload = request.files.get("file")
        kind = request.form.get("kind", "image")
        check = media.check_audio if kind == "audio" else media.check_image
        try:
            if upload is None or not upload.filename:
                raise MediaError("请选择要上传的文件。")
            checked = check(upload.stream)
        except MediaError as refused:
            error, status = refused.message, refused.status
        else:
            uploaded = media.store(
                checked, original_name=upload.filename, uploaded_by=current_user.id
            )
    recent = db.session.scalars(select(Media).order_by(Media.id.desc()).limit(60)).all()
    return (
        render_page(
            "editor/media.html",
            "editor/_upload_result.html",
            error=error,
            uploaded=uploaded,
            recent=recent,
        ),
        status,
    )


# --- columns -----------------------------------------------------------------------------


@bp.route("/columns", methods=["GET", "POST"])
def columns():
    errors: dict[str, str] = {}
    values = {"slug": "", "name": "", "position": ""}
    status = 200
    if request.method == "POST":
        values = {k: request.form.get(k, "").strip() for k in values}
        raw_id = request.form.get("column_id", "")
        target = db.session.get(Column, parse_id(raw_id)) if parse_id(raw_id) else None
        if raw_id and target is None:
            abort(404)
        if not COLUMN_SLUG.match(values["slug"]):
            errors["slug"] = "链接名只能用小写字母、数字和连字符。"
        if not values["name"] or len(values["name"]) > 40:
            errors["name"] = "栏目名需要 1 到 40 个字。"
        position = values["position"]
        if position and not (position.isascii() and position.isdigit() and int(position) < 1000):
            errors["position"] = "顺序请填 0 到 999 的数字。"
        if not errors:
            try:
                with write_transaction() as session:
                    column = target or Column()
                    column.slug, column.name = values["slug"], values["name"]
                    if position:
                        column.position = int(position)
                    elif target is None:
                        column.position = (
                            session.scalar(select(func.max(Column.position))) or 0
                        ) + 1
                    session.add(column)
            except IntegrityError:
                errors["name"] = "已有同名或同链接名的栏目。"
            else:
                flash("栏目已保存。")
                return redirect(url_for("editor.columns"))
        status = 422
    found = db.session.scalars(select(Column).order_by(Column.position, Column.id)).all()
    counts = dict(
        db.session.execute(
            select(Article.column_id, func.count()).group_by(Article.column_id)
        ).all()
    )
    context = {"columns": found, "counts": counts, "errors": errors, "values": values}
    return render_template("editor/columns.html", **context), status
