"""RSS for readers and podcasts for listeners, and the files behind them.

- `/feed.xml`: RSS 2.0 of the public articles.
- `/podcast.xml`: the public morning voices, with enclosures and iTunes tags.
- `/podcast/<token>.xml`: a member's private feed, members-only voices included. The token is
  `id.HMAC(SECRET_KEY, id:nonce)`; revoking it (or the membership ending) stops the feed and
  the voice URLs it handed out.
- `/voice/<key>.<ext>` and `/media/<key>.<ext>`: uploaded voices and images, with HTTP Range and
  year-long caching, since a file's name is the hash of its bytes.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from email.utils import format_datetime

from flask import (
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    send_file,
    url_for,
)
from flask_login import current_user, login_required
from sqlalchemy import select, update

from app import db, parse_id, render_error, utcnow, write_transaction
from content.articles import visible
from content.media import path_of
from content.models import Article, Media, PodcastToken, Visibility
from content.views import bp
from members.models import User

FEED_ITEMS = 50
PUBLIC_CACHE = "public, max-age=31536000, immutable"
RSS_TYPE = "application/rss+xml; charset=utf-8"


# --- private feed tokens -----------------------------------------------------------------


def _signature(row: PodcastToken) -> str:
    key = current_app.config["SECRET_KEY"].encode()
    message = f"podcast:{row.id}:{row.nonce}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()[:32]


def _active_token_row(user_id: int) -> PodcastToken | None:
    return db.session.scalar(
        select(PodcastToken)
        .where(PodcastToken.user_id == user_id, PodcastToken.revoked_at.is_(None))
        .order_by(PodcastToken.id.desc())
        .limit(1)
    )


def token_for(user: User) -> str | None:
    """The user's current private feed token, if they have one."""
    row = _active_token_row(user.id)
    return f"{row.id}.{_signature(row)}" if row else None


def may_have_private_feed(user: User) -> bool:
    return user.is_member or user.is_editor


def issue_token(user: User) -> str:
    """A new private feed token; any earlier one stops working."""
    now = utcnow()
    with write_transaction() as session:
        session.execute(
            update(PodcastToken)
            .where(PodcastToken.user_id == user.id, PodcastToken.revoked_at.is_(None))
            .values(revoked_at=now)
        )
        row = PodcastToken(user_id=user.id, nonce=secrets.token_hex(16), created_at=now)
        session.add(row)
        session.flush()
        token = f"{row.id}.{_signature(row)}"
    return token


def revoke_tokens(user: User) -> None:
    with write_transaction() as session:
        session.execute(
            update(PodcastToken)
            .where(PodcastToken.user_id == user.id, PodcastToken.revoked_at.is_(None))
            .values(revoked_at=utcnow())
        )


def user_for_token(token: str | None) -> User | None:
    """The member a live token belongs to; None for a forged, revoked or lapsed one."""
    if not token or len(token) > 80 or "." not in token:
        return None
    raw_id, signature = token.split(".", 1)
    token_id = parse_id(raw_id)
    if token_id is None:
        return None
    row = db.session.get(PodcastToken, token_id)
    if row is None or row.revoked_at is not None:
        return None
    if not hmac.compare_digest(_signature(row), signature):
        return None
    user = db.session.get(User, row.user_id)
    return user if user is not None and may_have_private_feed(user) else None


# --- feeds -------------------------------------------------------------------------------


def _recent(*, voiced: bool, members_too: bool) -> list[Article]:
    query = select(Article).where(visible(utcnow()))
    if voiced:
        query = query.where(Article.voice_id.is_not(None))
    if not members_too:
        query = query.where(Article.visibility == Visibility.PUBLIC)
    query = query.order_by(Article.publish_at.desc(), Article.id.desc()).limit(FEED_ITEMS)
    return list(db.session.scalars(query))


def _rss(template: str, items: list[Article], cache: str, **context: object):
    body = render_template(
        template,
        items=items,
        updated=items[0].publish_at if items else utcnow(),
        rfc822=lambda value: format_datetime(value, usegmt=True),
        **context,
    )
    return body, 200, {"Content-Type": RSS_TYPE, "Cache-Control": cache}


@bp.get("/feed.xml")
def feed():
    items = _recent(voiced=False, members_too=False)
    return _rss("content/feed.xml", items, "public, max-age=300")


@bp.get("/podcast.xml")
def podcast():
    items = _recent(voiced=True, members_too=False)
    return _rss("content/podcast.xml", items, "public, max-age=300", token=None, private=False)


@bp.get("/podcast/<token>.xml")
def private_podcast(token: str):
    if user_for_token(token) is None:
        abort(404)
    items = _recent(voiced=True, members_too=True)
    return _rss("content/podcast.xml", items, "private, no-store", token=token, private=True)


# --- files -------------------------------------------------------------------------------


def _may_hear_members_voice() -> bool:
    if current_user.is_authenticated and (current_user.is_member or current_user.is_editor):
        return True
    return user_for_token(request.args.get("t")) is not None


def _send(media: Media, cache: str):
    path = path_of(media)
    if not path.is_file():
        abort(404)
    prefix = current_app.config["MEDIA_ACCEL_PREFIX"]
    if prefix:
        # nginx sends the file (with Range and sendfile) once the app has said who may have
        # it: an internal location maps the prefix onto MEDIA_DIR (deploy/nginx.conf.in).
        inside = path.relative_to(current_app.config["MEDIA_DIR"]).as_posix()
        response = Response(b"", mimetype=media.content_type)
        response.headers["X-Accel-Redirect"] = prefix.rstrip("/") + "/" + inside
        response.headers["Cache-Control"] = cache
        return response
    response = send_file(
        path, mimetype=media.content_type, conditional=True, etag=media.key, max_age=None
    )
    response.headers["Cache-Control"] = cache
    response.headers["Accept-Ranges"] = "bytes"
    return response


@bp.get("/voice/<key>.<ext>")
def voice(key: str, ext: str):
    """A morning voice. Public with a public piece; members-only pieces need a member (by
    session, or by the private feed's token for podcast apps)."""
    media = db.session.scalar(select(Media).where(Media.key == key, Media.kind == "audio"))
    if media is None or media.ext != ext:
        abort(404)
    pieces = db.session.scalars(
        select(Article).where(Article.voice_id == media.id, visible(utcnow()))
    ).all()
    if not pieces:
        # Not published yet: only the desk may listen.
        if current_user.is_authenticated and current_user.is_editor:
            return _send(media, "private, no-store")
        abort(404)
    if any(not p.members_only for p in pieces):
        # A day, not a year: a piece may yet become members-only.
        return _send(media, "public, max-age=86400")
    if not _may_hear_members_voice():
        return render_error(403, "这段语音仅会员可听。加入会员后即可收听。")
    return _send(media, "private, max-age=86400")


@bp.get("/media/<key>.<ext>")
def image(key: str, ext: str):
    media = db.session.scalar(select(Media).where(Media.key == key, Media.kind == "image"))
    if media is None or media.ext != ext:
        abort(404)
    return _send(media, PUBLIC_CACHE)


# --- the member's own page ---------------------------------------------------------------


@bp.app_context_processor
def podcast_context() -> dict[str, object]:
    def private_podcast_url(user: User) -> str | None:
        """The absolute URL of `user`'s private feed, or None."""
        if not user.is_authenticated or not may_have_private_feed(user):
            return None
        token = token_for(user)
        return url_for("content.private_podcast", token=token, _external=True) if token else None

    return {"private_podcast_url": private_podcast_url}


@bp.post("/me/podcast")
@login_required
def podcast_token():
    """Create the private feed, or replace it (the old URL stops working)."""
    if not may_have_private_feed(current_user):
        return render_error(403, "私人播客订阅仅对会员开放。")
    issue_token(current_user)
    flash("新的私人订阅地址已生成，旧地址已失效。")
    return redirect(url_for("members.me") + "#podcast")


@bp.post("/me/podcast/revoke")
@login_required
def podcast_revoke():
    revoke_tokens(current_user)
    flash("私人订阅地址已停用。")
    return redirect(url_for("members.me") + "#podcast")
