"""The WeChat desk (`/editor/wechat`, editors and admins): the lookup keywords in use, which a
follower can reply to the official account, and the last messages it received with what each
was answered."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from sqlalchemy import select

from app import db, utcnow
from content.models import Article, ArticleKeyword
from members import role_required
from wechat import protocol, replies

bp = Blueprint("wechat_desk", __name__, url_prefix="/editor/wechat")


@bp.before_request
@role_required("editor", "admin")
def editors_only() -> None:
    return None


def keywords_in_use() -> list[tuple[str, Article]]:
    """Every keyword of a published article, scheduled ones included, in keyword order."""
    rows = db.session.execute(
        select(ArticleKeyword.keyword, Article)
        .join(Article, Article.id == ArticleKeyword.article_id)
        .where(ArticleKeyword.live)
        .order_by(ArticleKeyword.keyword)
    ).all()
    return [(keyword, article) for keyword, article in rows]


def _reply_summary(reply: str) -> str:
    """What a stored reply said, in a line: the article's title or the text."""
    if not reply:
        return ""
    try:
        fields = protocol.parse(reply.encode())
    except protocol.ProtocolError:
        return ""
    if fields.get("MsgType") == "news":
        return "图文：" + protocol.news_title(reply)
    return fields.get("Content", "")


@bp.get("/")
def index():
    return render_template(
        "editor/wechat.html",
        keywords=keywords_in_use(),
        now=utcnow(),
        messages=replies.recent_messages(100),
        summary=_reply_summary,
        callback_on=bool(current_app.config["WECHAT_TOKEN"]),
    )
