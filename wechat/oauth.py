"""Signing in with WeChat inside its in-app browser (web OAuth2), and linking an account.

The flow, for the caller (`wechat/views.py`):

1. `begin(purpose, next)` keeps a one-use `state` in the session and gives the authorize
   URL at `WECHAT_OPEN_BASE`. A login starts with `snsapi_base`: a follower who has been
   here before comes back silently, without a consent page.
2. `finish(code, state)` checks `state`, trades the code for an access token (each code
   works once, for five minutes) and returns the `Identity` it names, with the profile
   (nickname, avatar) when the scope was `snsapi_userinfo`.
3. `account_for(identity)` signs in the account linked to the openid (or the unionid);
   an unknown follower is asked for the profile once (`NeedsProfile`), then gets a new
   account made in one transaction. `link(user, identity)` and `unlink(user)` serve `/me`.

Every failure is an `OAuthFailure` with a message for the reader; nothing is written before
WeChat has vouched for the openid, so a failed flow leaves no half-made account.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from urllib.parse import urlencode

from flask import current_app, session, url_for
from flask_login import current_user
from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from members import accounts
from members.accounts import AccountError
from members.models import User
from wechat import client
from wechat.client import WeChatDown, WeChatError

STATE_KEY = "wechat_oauth"
STATE_SECONDS = 600
PURPOSES = ("login", "link")
# A WeChat-made account has no e-mail of its own; `.invalid` can never be delivered to.
PLACEHOLDER_DOMAIN = "wechat.invalid"
# No password can match this (werkzeug finds no method in it), so such an account signs in
# only through WeChat (`User.has_password` is False).
NO_PASSWORD = "!wechat-only"  # noqa: S105 (a marker that no password matches)


class OAuthFailure(Exception):
    """Why signing in with WeChat did not work, for the reader; `status` for the page."""

    def __init__(self, message: str, status: int = 400) -> None:
        self.message = message
        self.status = status
        super().__init__(message)


class NeedsProfile(Exception):
    """An unknown follower: ask WeChat for the profile (snsapi_userinfo) to make an account."""


@dataclass(frozen=True)
class Identity:
    openid: str
    unionid: str | None = None
    nickname: str | None = None
    avatar_url: str | None = None
    scope: str = "snsapi_base"


def begin(purpose: str, next_path: str | None, scope: str = "snsapi_base") -> str:
    """Keep a fresh `state` for this browser and return WeChat's authorize URL."""
    if purpose not in PURPOSES:
        raise ValueError(purpose)
    state = secrets.token_hex(16)  # WeChat allows only letters and digits in `state`
    session[STATE_KEY] = {
        "state": state,
        "purpose": purpose,
        "next": next_path or "",
        "scope": scope,
        "at": int(time.time()),
        # A link ends on the account that started it, whoever is signed in by then.
        "user_id": current_user.id if purpose == "link" else None,
    }
    query = urlencode(
        {
            "appid": current_app.config["WECHAT_APPID"],
            "redirect_uri": url_for("wechat.oauth_return", _external=True),
            "response_type": "code",
            "scope": scope,
            "state": state,
        }
    )
    base = current_app.config["WECHAT_OPEN_BASE"].rstrip("/")
    return f"{base}/connect/oauth2/authorize?{query}#wechat_redirect"


def pending() -> dict | None:
    """What the flow under way is for (purpose, next), without ending it."""
    kept = session.get(STATE_KEY)
    return kept if isinstance(kept, dict) else None


def finish(code: str | None, state: str | None) -> tuple[Identity, dict]:
    """The follower WeChat sent back, and what the flow was for. The state is used up."""
    kept = session.pop(STATE_KEY, None)
    if (
        not isinstance(kept, dict)
        or not state
        or not isinstance(kept.get("state"), str)
        or not hmac.compare_digest(kept["state"], state)
    ):
        raise OAuthFailure("登录链接已失效或不是从本站发起的，请重新点「微信一键登录」。")
    if time.time() - int(kept.get("at", 0)) > STATE_SECONDS:
        raise OAuthFailure("登录等待太久已过期，请重新点「微信一键登录」。")
    if not code:
        raise OAuthFailure("你没有同意授权，所以没有登录。可以重新授权，或者用邮箱登录。")
    config = current_app.config
    try:
        token = client.get(
            "/sns/oauth2/access_token",
            appid=config["WECHAT_APPID"],
            secret=config["WECHAT_SECRET"],
            code=code[:128],
            grant_type="authorization_code",
        )
        openid = str(token.get("openid") or "")
        if not openid or len(openid) > 64:
            raise WeChatDown("no openid in the answer")
        unionid = str(token.get("unionid") or "")[:64] or None
        scope = str(token.get("scope") or kept.get("scope") or "snsapi_base")
        nickname = avatar = None
        if "snsapi_userinfo" in scope:
            info = client.get(
                "/sns/userinfo",
                access_token=str(token.get("access_token", "")),
                openid=openid,
                lang="zh_CN",
            )
            nickname = str(info.get("nickname") or "") or None
            avatar = str(info.get("headimgurl") or "")[:500] or None
            unionid = unionid or (str(info.get("unionid") or "")[:64] or None)
    except WeChatError as error:
        if error.errcode in (40029, 40163, 41008, 42003):
            raise OAuthFailure(
                "这个授权码已经用过或已过期（可能是刷新了页面），请重新点「微信一键登录」。"
            ) from None
        raise OAuthFailure("微信没有确认你的身份，请稍后再试，或者用邮箱登录。", 502) from None
    except WeChatDown:
        raise OAuthFailure("暂时连不上微信，请稍后再试，或者用邮箱登录。", 502) from None
    return Identity(openid, unionid, nickname, avatar, scope), kept


def _linked(identity: Identity) -> User | None:
    match = [User.wechat_openid == identity.openid]
    if identity.unionid:
        match.append(User.wechat_unionid == identity.unionid)
    found = db.session.scalars(select(User).where(or_(*match))).all()
    # The openid wins over the unionid when they name two accounts.
    return next((u for u in found if u.wechat_openid == identity.openid), None) or next(
        iter(found), None
    )


def _nickname(raw: str | None) -> str | None:
    if not raw:
        return None
    try:
        return accounts.check_nickname(raw[: accounts.NICKNAME_MAX])
    except AccountError:
        return None  # the site gives a name of its own (「读者12」)


def placeholder_email(openid: str) -> str:
    digest = hashlib.sha256(openid.encode()).hexdigest()[:24]
    return f"wx-{digest}@{PLACEHOLDER_DOMAIN}"


def account_for(identity: Identity) -> User:
    """The account this follower signs in to; made now (with the profile) if there is none."""
    found = _linked(identity)
    if found is not None:
        if found.wechat_openid == identity.openid:
            if identity.unionid and found.wechat_unionid != identity.unionid:
                _note_unionid(found.id, identity.unionid)
            return found
        # Known by the unionid (linked through another app of the same Open Platform
        # account): this app's openid is the one payments need, so it is stored now.
        try:
            with write_transaction() as s:
                user = s.scalars(select(User).where(User.id == found.id).with_for_update()).one()
                user.wechat_openid = identity.openid
                user.wechat_unionid = user.wechat_unionid or identity.unionid
        except IntegrityError:
            raise OAuthFailure(
                "这个微信和另一个晨读账号有冲突，请用邮箱登录后在「我的」页面绑定微信。", 409
            ) from None
        return user
    if "snsapi_userinfo" not in identity.scope:
        raise NeedsProfile()
    try:
        with write_transaction() as s:
            user = User(
                email=placeholder_email(identity.openid),
                password_hash=NO_PASSWORD,
                role="reader",
                created_at=utcnow(),
                wechat_openid=identity.openid,
                wechat_unionid=identity.unionid,
                nickname=_nickname(identity.nickname),
                avatar_url=identity.avatar_url,
            )
            s.add(user)
    except IntegrityError:
        # The same follower's other tap made the account a moment ago: sign in to that one.
        db.session.rollback()
        found = _linked(identity)
        if found is None:
            raise OAuthFailure("登录没有完成，请重新点「微信一键登录」。") from None
        return found
    return user


def _note_unionid(user_id: int, unionid: str) -> None:
    """Keep the unionid WeChat sent, unless another account holds it (the login goes on)."""
    try:
        with write_transaction() as s:
            user = s.get(User, user_id)
            if user is not None and user.wechat_unionid is None:
                user.wechat_unionid = unionid
    except IntegrityError:
        db.session.rollback()


def link(user: User, identity: Identity) -> User:
    """Link this WeChat to the signed-in account. An openid belongs to one account only."""
    owner = _linked(identity)
    if owner is not None and owner.id != user.id:
        raise OAuthFailure(
            "这个微信已经绑定了另一个晨读账号。请先登录那个账号解绑，再来绑定。", 409
        )
    try:
        with write_transaction() as s:
            found = s.scalars(select(User).where(User.id == user.id).with_for_update()).one()
            if found.wechat_openid and found.wechat_openid != identity.openid:
                raise OAuthFailure("这个账号已经绑定了另一个微信，请先解绑。", 409)
            found.wechat_openid = identity.openid
            found.wechat_unionid = identity.unionid or found.wechat_unionid
    except IntegrityError:
        raise OAuthFailure(
            "这个微信已经绑定了另一个晨读账号。请先登录那个账号解绑，再来绑定。", 409
        ) from None
    return found


def unlink(user: User) -> User:
    """Take WeChat off an account that can still sign in with its e-mail and password."""
    if not user.has_password:
        raise OAuthFailure("这个账号只能用微信登录，解绑后就再也登录不了，所以不能解绑。", 409)
    with write_transaction() as s:
        found = s.scalars(select(User).where(User.id == user.id).with_for_update()).one()
        found.wechat_openid = None
        found.wechat_unionid = None
    return found
