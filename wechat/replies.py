"""What the official account answers a follower, and the log that makes every retry of a
message get the answer the first one got.

WeChat waits 5 seconds for an answer, then sends the same message again (three tries in all,
same MsgId). A reply is built from one or two indexed reads (the keyword, today's piece), so it
is quick; it is stored with the message under its key, and a retry, even one that arrives while
the first is still being answered, gets the stored reply back instead of a second log line.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app, url_for
from markupsafe import Markup
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from content import articles
from content.models import Article
from wechat import protocol
from wechat.models import WeChatMessage

log = logging.getLogger(__name__)

KEEP_DAYS = 30
CONTENT_MAX = 2000
KEYWORD_MAX = 30
OTHER_TYPES = ["image", "voice", "video", "shortvideo", "location", "link", "file"]


def message_key(fields: dict[str, str]) -> str:
    """What makes a message the same message when WeChat sends it again."""
    if fields.get("MsgId"):
        return "msg:" + fields["MsgId"][:64]
    # An event has no MsgId: WeChat's own advice is its sender and CreateTime; the event and
    # its key tell two menu clicks in the same second apart.
    parts = (
        fields.get("FromUserName", ""),
        fields.get("CreateTime", ""),
        fields.get("Event", ""),
        fields.get("EventKey", ""),
    )
    return "event:" + ":".join(p[:36] for p in parts)


def _description(article: Article) -> str:
    if article.summary:
        return article.summary
    text = Markup(article.preview_html).striptags()  # noqa: S704 (our own sanitised HTML)
    return text[:120]


def _picture(article: Article) -> str:
    if article.cover is not None:
        return url_for(
            "content.image", key=article.cover.key, ext=article.cover.ext, _external=True
        )
    return url_for("static", filename="share.png", _external=True)


def _article_reply(fields: dict[str, str], created: int, article: Article) -> str:
    # A members-only piece links to the same page: a reader who is not a member sees its
    # public preview there, a member the whole piece.
    return protocol.news_reply(
        fields["FromUserName"],
        fields["ToUserName"],
        created,
        title=article.title,
        description=_description(article),
        picture_url=_picture(article),
        url=url_for("content.article", slug=article.slug, _external=True),
    )


def _text(fields: dict[str, str], created: int, content: str) -> str:
    return protocol.text_reply(fields["FromUserName"], fields["ToUserName"], created, content)


def _welcome(fields: dict[str, str], created: int) -> str:
    site = current_app.config["SITE_NAME"]
    piece = articles.daily_piece(articles.today()) or next(iter(articles.latest(1)), None)
    lines = [f"欢迎关注{site}！每天早上一段 60 秒语音，一篇值得读的文章。"]
    if piece is not None:
        lines.append(
            f"今天的内容：《{piece.title}》\n"
            + url_for("content.article", slug=piece.slug, _external=True)
        )
    lines.append("回复语音里说的关键词，就能找到对应的文章。")
    return _text(fields, created, "\n\n".join(lines))


def build_reply(fields: dict[str, str]) -> str:
    """The reply XML to a follower's message (plaintext), or "" for one that needs no
    answer. `receive` has checked that it names a sender and the account."""
    created = int(utcnow().timestamp())
    kind = fields.get("MsgType", "")
    if kind == "text":
        words = " ".join(fields.get("Content", "").split())[:KEYWORD_MAX]
        if not words:
            return _text(fields, created, "回复语音里说的关键词，就能找到对应的文章。")
        article = articles.article_for_keyword(words)
        if article is not None:
            return _article_reply(fields, created, article)
        link = url_for("content.search", q=words, _external=True)
        return _text(
            fields,
            created,
            f"没有找到关键词「{words}」对应的文章。点这里搜索相关内容：\n{link}",
        )
    if kind == "event":
        event = fields.get("Event", "").lower()
        if event == "subscribe":
            return _welcome(fields, created)
        return ""  # unsubscribe, menu clicks and the like need no answer
    if kind in OTHER_TYPES:
        return _text(
            fields,
            created,
            "收到啦！目前我们只能读懂文字：回复语音里说的关键词，就能找到对应的文章。",
        )
    return ""


def receive(fields: dict[str, str]) -> str:
    """Answer a message once: log it with its reply, or give back the reply it already got."""
    if not fields.get("FromUserName") or not fields.get("ToUserName"):
        return ""  # not from a follower: nothing to answer or to log
    key = message_key(fields)
    known = db.session.scalar(select(WeChatMessage.reply).where(WeChatMessage.msg_key == key))
    if known is not None:
        return known
    reply = build_reply(fields)
    now = utcnow()
    try:
        with write_transaction() as session:
            session.add(
                WeChatMessage(
                    msg_key=key,
                    from_user=fields.get("FromUserName", "")[:64],
                    msg_type=fields.get("MsgType", "")[:32],
                    event=fields.get("Event", "")[:32],
                    content=fields.get("Content", "")[:CONTENT_MAX],
                    reply=reply,
                    received_at=now,
                )
            )
            # The log keeps a month: enough for the desk and for any retry.
            session.execute(
                delete(WeChatMessage).where(
                    WeChatMessage.received_at < now - timedelta(days=KEEP_DAYS)
                )
            )
    except IntegrityError:
        # A retry that raced the first delivery: answer what the first one stored.
        db.session.rollback()
        stored = db.session.scalar(select(WeChatMessage.reply).where(WeChatMessage.msg_key == key))
        return stored if stored is not None else reply
    return reply


def recent_messages(limit: int = 100) -> list[WeChatMessage]:
    return list(
        db.session.scalars(select(WeChatMessage).order_by(WeChatMessage.id.desc()).limit(limit))
    )
