"""Reader-facing content pages: today, an article, a day, a column, the archive, keywords."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime

from flask import Blueprint, abort, current_app, redirect, render_template, request, url_for
from flask_login import current_user
from jinja2.filters import do_truncate
from markupsafe import Markup
from sqlalchemy import select

from app import db, is_htmx, local_time, render_page
from content import articles, pages, search
from content.models import Article, Column, Visibility

bp = Blueprint("content", __name__)

ARCHIVE_PAGE = 20


def can_read_whole(article: Article) -> bool:
    """Whether the reader may see past the preview of `article`."""
    return not article.members_only or _member_or_editor()


@bp.get("/")
def home():
    from board import posts as board
    from members import enrollment

    today = articles.today()
    piece = articles.daily_piece(today)
    recent = [a for a in articles.latest(14) if piece is None or a.id != piece.id]
    return render_template(
        "content/home.html",
        piece=piece,
        recent=recent,
        today=today,
        active_threads=board.active_threads(5) if board.may_read(current_user) else [],
        can_hear=piece is not None and can_read_whole(piece),
        **enrollment.renewal_banner(current_user),
    )


@dataclass(frozen=True)
class ArticlePage:
    """What content/article.html shows of an article: its head and its rendered card."""

    article_id: int
    title: str
    description: str
    share_image: str
    share_link: str
    main: Markup


def article_page(article: Article, whole: bool, **context: object) -> ArticlePage:
    if article.cover:
        cover = {"key": article.cover.key, "ext": article.cover.ext}
        share_image = url_for("content.image", **cover, _external=True)
    else:
        share_image = url_for("static", filename="share.png", _external=True)
    # The stored preview is the site's own sanitised HTML; the card is an escaped template.
    preview = Markup(article.preview_html).striptags()  # noqa: S704
    environment = current_app.jinja_env
    return ArticlePage(
        article_id=article.id,
        title=article.title,
        description=article.summary or do_truncate(environment, preview, 120, killwords=True),
        share_image=share_image,
        share_link=url_for("content.article", slug=article.slug, _external=True),
        main=Markup(  # noqa: S704
            render_template("content/_article_main.html", article=article, whole=whole, **context)
        ),
    )


@bp.get("/a/<slug>")
def article(slug: str):
    from board import posts as board

    # Which article, at which version, the reader may see, and the discussions under it as
    # they are now: two narrow queries. The whole page is rendered again only when one of
    # these (or the host asked for) changes, or after ARTICLE_CACHE_SECONDS (a renamed
    # column); the form token, the flashed messages and WeChat's share signature are made
    # for each answer (content/pages.py).
    stamp = articles.reader_stamp(slug)
    if stamp is None:
        abort(404)
    article_id, version, visibility = stamp
    whole = visibility != Visibility.MEMBERS or _member_or_editor()
    may_read_board = board.may_read(current_user)
    discussed = board.discussion_lines(article_id) if may_read_board else ()
    signed_in = current_user.is_authenticated
    key = (slug, article_id, version, whole, signed_in, may_read_board, discussed, request.host_url)
    kept = pages.cache("article").get(key)
    if kept is None:
        found = articles.article_for_reader(slug)
        if found is None:
            abort(404)
        # Decided again from the rows the page is made of: on PostgreSQL an editor's save
        # (made members-only, say) or a new answer may fall between the reads.
        whole = can_read_whole(found)
        discussions = board.threads_of_article(found.id) if may_read_board else []
        discussed = tuple(board.discussion_line(t) for t in discussions)
        key = (slug, found.id, found.version, whole, signed_in, may_read_board, discussed,
               request.host_url)  # fmt: skip
        kept = pages.keep(
            lambda: render_template(
                "content/article.html",
                page=article_page(found, whole),
                may_read_board=may_read_board,
                discussions=discussions,
            )
        )
        pages.cache("article").put(key, kept, current_app.config["ARTICLE_CACHE_SECONDS"])
    return kept.answer()


def _member_or_editor() -> bool:
    return bool(
        current_user.is_authenticated and (current_user.is_member or current_user.is_editor)
    )


@bp.get("/daily/<day>")
def daily(day: str):
    try:
        when = date.fromisoformat(day)
    except ValueError:
        abort(404)
    piece = articles.daily_piece(when)
    if piece is None:
        abort(404)
    return redirect(url_for("content.article", slug=piece.slug))


@bp.get("/columns/<slug>")
def column(slug: str):
    found = db.session.scalar(select(Column).where(Column.slug == slug))
    if found is None:
        abort(404)
    return _archive(column=found)


@bp.get("/archive")
def archive():
    return _archive(column=None)


def _archive(column: Column | None):
    before = None
    if request.args.get("before"):
        try:
            before = datetime.fromisoformat(request.args["before"])
        except ValueError:
            abort(400)
        if before.tzinfo is None:
            abort(400)
    # One more than a page tells whether there is a next page.
    found = articles.latest(ARCHIVE_PAGE + 1, before=before, column=column)
    items = found[:ARCHIVE_PAGE]
    next_url = None
    if len(found) > ARCHIVE_PAGE:
        where = {"slug": column.slug} if column else {}
        endpoint = "content.column" if column else "content.archive"
        last = items[-1].publish_at
        month = local_time(last).strftime("%Y-%m")
        next_url = url_for(endpoint, before=last.isoformat(), month=month, **where)
    return render_page(
        "content/archive.html",
        "content/_archive_items.html",
        items=items,
        column=column,
        next_url=next_url,
        # A "load more" page continues a month whose heading is already on screen.
        month_shown=request.args.get("month", "") if is_htmx() else "",
    )


@bp.get("/k")
@bp.get("/k/<keyword>")
def keyword(keyword: str | None = None):
    """A keyword from the morning voice: its article, or a page that says what to try."""
    words = (keyword if keyword is not None else request.args.get("q", "")).strip()[:40]
    found = articles.article_for_keyword(words) if words else None
    if found is not None:
        return redirect(url_for("content.article", slug=found.slug))
    results = search_for_reader(words) if words else search.Results("", [], 0)
    status = 404 if words and not results.hits else 200
    return render_template("content/keyword.html", words=words, results=results), status


@bp.get("/search", endpoint="search")
def search_page():
    """Full-text search; htmx asks for the results alone as the reader types."""
    text = request.args.get("q", "").strip()[:100]
    results = search_for_reader(text) if text else search.Results("", [], 0)
    return render_page("content/search.html", "content/_search_results.html", results=results)


def search_for_reader(text: str) -> search.Results:
    """Search with the board's posts, unless the board is for members and the reader isn't."""
    from board.posts import may_read  # board.posts imports content.search: not at load time

    return search.search(text, board=may_read(current_user))
