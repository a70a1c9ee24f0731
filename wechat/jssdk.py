"""The JS-SDK share cards: the global access token and the `jsapi_ticket`, cached in the
database, and the signature `wx.config` needs for the page's exact URL.

Getting a new access token makes WeChat drop the one before, so two workers refreshing at once
would break each other. A refresh is therefore claimed first: one conditional UPDATE sets
`lease_until` on the credential's row when no other lease is running and the value is still
due. The one worker that wins asks WeChat, outside any transaction (no lock is held while
WeChat answers), and stores the new value; the others wait for it, reading the row. A lease
that outlives its holder (a killed worker) runs out after LEASE_SECONDS.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import or_, update
from sqlalchemy.exc import IntegrityError

from app import db, utcnow, write_transaction
from wechat import client
from wechat.client import WeChatDown, WeChatError
from wechat.models import WeChatCredential

log = logging.getLogger(__name__)

# Refresh this long before WeChat's expiry, so that a value handed out is good for a while.
MARGIN = timedelta(minutes=5)
# Longer than the slowest refresh: a ticket's fetch waits for the token (WAIT_SECONDS) and may
# make four calls of client.TIMEOUT_SECONDS each.
LEASE_SECONDS = 60
# How long a page waits for another worker's refresh before it goes without a share card.
WAIT_SECONDS = 3
# After WeChat failed, how long every worker leaves it alone (pages meanwhile share as links).
BACKOFF_SECONDS = 60
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
JSSDK_HOST = "res.wx.qq.com"
JSSDK_URL = "https://res.wx.qq.com/open/js/jweixin-1.6.0.js"


def _row(name: str, *, look_again: bool) -> WeChatCredential | None:
    if look_again:
        db.session.rollback()  # a new snapshot: another process may have stored it just now
    return db.session.get(WeChatCredential, name, populate_existing=True)


def _claim(name: str, now: datetime) -> str | None:
    """Take the lease to refresh `name` if nobody holds it, WeChat is not being left alone
    after a failure, and the value is still due. Returns the lease's token, or None."""
    token = secrets.token_hex(16)
    try:
        with write_transaction() as s:
            if s.get(WeChatCredential, name) is None:
                s.add(WeChatCredential(name=name, value="", expires_at=EPOCH, refreshed_at=EPOCH))
                s.flush()
            won = s.execute(
                update(WeChatCredential)
                .where(
                    WeChatCredential.name == name,
                    WeChatCredential.expires_at < now + MARGIN,
                    or_(
                        WeChatCredential.lease_until.is_(None),
                        WeChatCredential.lease_until < now,
                    ),
                    or_(
                        WeChatCredential.retry_after.is_(None),
                        WeChatCredential.retry_after <= now,
                    ),
                )
                .values(lease_until=now + timedelta(seconds=LEASE_SECONDS), lease_token=token)
            ).rowcount
    except IntegrityError:
        return None  # another process made the row at the same moment: it refreshes
    return token if won == 1 else None


def _release(name: str, token: str, *, value: str | None = None, expires_in: int = 0) -> None:
    """End our lease: store the new value, or (none) leave WeChat alone for a while. A lease
    that ran out and was taken by another worker is theirs: nothing of ours is stored."""
    now = utcnow()
    values: dict = {"lease_until": None, "lease_token": None}
    if value is None:
        values["retry_after"] = now + timedelta(seconds=BACKOFF_SECONDS)
    else:
        values.update(
            value=value,
            expires_at=now + timedelta(seconds=max(0, expires_in)),
            refreshed_at=now,
            retry_after=None,
        )
    with write_transaction() as s:
        s.execute(
            update(WeChatCredential)
            .where(WeChatCredential.name == name, WeChatCredential.lease_token == token)
            .values(**values)
        )


def _credential(name: str, fetch: Callable[[], tuple[str, int]]) -> str:
    """The cached value of `name`, refreshed by exactly one process when it is due."""
    deadline = time.monotonic() + WAIT_SECONDS
    look_again = False
    while True:
        now = utcnow()
        row = _row(name, look_again=look_again)
        look_again = True
        if row is not None and row.value and row.expires_at - MARGIN > now:
            return row.value
        still_good = row.value if row is not None and row.value and row.expires_at > now else None
        if row is not None and row.retry_after is not None and row.retry_after > now:
            if still_good:
                return still_good
            raise WeChatDown(f"WeChat failed lately; not asking for {name} again yet")
        token = _claim(name, now)
        if token is not None:
            try:
                value, expires_in = fetch()
            except BaseException:
                _release(name, token)
                raise
            _release(name, token, value=value, expires_in=expires_in)
            log.info("wechat: refreshed %s", name)
            return value
        if still_good:
            return still_good  # another worker is refreshing; this one is good a while yet
        if time.monotonic() > deadline:
            raise WeChatDown(f"waited {WAIT_SECONDS} s for another worker to refresh {name}")
        time.sleep(0.05)


def expire(name: str, value: str) -> None:
    """Mark a value WeChat refused as due, unless it has been replaced already."""
    with write_transaction() as s:
        s.execute(
            update(WeChatCredential)
            .where(WeChatCredential.name == name, WeChatCredential.value == value)
            .values(expires_at=EPOCH)
        )


def access_token() -> str:
    config = current_app.config

    def fetch() -> tuple[str, int]:
        answer = client.get(
            "/cgi-bin/token",
            grant_type="client_credential",
            appid=config["WECHAT_APPID"],
            secret=config["WECHAT_SECRET"],
        )
        return str(answer["access_token"]), int(answer.get("expires_in", 7200))

    return _credential("access_token", fetch)


def jsapi_ticket() -> str:
    def fetch() -> tuple[str, int]:
        token = access_token()
        try:
            answer = client.get("/cgi-bin/ticket/getticket", access_token=token, type="jsapi")
        except WeChatError as error:
            if error.errcode not in (40001, 40014, 42001):
                raise
            # The token was replaced elsewhere (the console, another tool): get a new one once.
            expire("access_token", token)
            answer = client.get(
                "/cgi-bin/ticket/getticket", access_token=access_token(), type="jsapi"
            )
        return str(answer["ticket"]), int(answer.get("expires_in", 7200))

    return _credential("jsapi_ticket", fetch)


def signature(ticket: str, noncestr: str, timestamp: int | str, url: str) -> str:
    """WeChat's JS-SDK signature: sha1 of the four fields, in this order, as a query string."""
    text = f"jsapi_ticket={ticket}&noncestr={noncestr}&timestamp={timestamp}&url={url}"
    return hashlib.sha1(text.encode()).hexdigest()  # noqa: S324 (WeChat's choice)


def page_url(url: str) -> str:
    """The URL to sign: the page's own, without the `#` part."""
    return url.split("#", 1)[0]


def share_config(url: str) -> dict[str, object] | None:
    """What `wx.config` needs for this page, or None when the JS-SDK is not set up or WeChat
    cannot be reached now (the page then shares as a plain link)."""
    if not client.login_enabled():
        return None
    try:
        ticket = jsapi_ticket()
    except (WeChatDown, WeChatError, KeyError, ValueError) as error:
        log.warning("wechat: no share card this time: %s", error)
        return None
    nonce = secrets.token_urlsafe(12)
    timestamp = int(utcnow().timestamp())
    return {
        "appId": current_app.config["WECHAT_APPID"],
        "timestamp": timestamp,
        "nonceStr": nonce,
        "signature": signature(ticket, nonce, timestamp, page_url(url)),
    }
