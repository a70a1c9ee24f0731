"""The official account's callback, `/wechat`, registered with WeChat as the server URL.

`GET` is WeChat checking the URL: a good signature gets `echostr` back. `POST` is a message
from a follower (plaintext, or encrypted in safe mode when `encrypt_type=aes`): it gets the
reply from `wechat.replies`. Anything that cannot be read gets `success`, which tells WeChat
to stop retrying and show the follower nothing; it never gets a 500. Off (404) unless
`WECHAT_TOKEN` is set.
"""

from __future__ import annotations

import logging
import re
import time
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_login import current_user, login_required

from app import csrf, utcnow
from members.views import safe_next, sign_in
from wechat import client, jssdk, oauth, protocol, replies

log = logging.getLogger(__name__)

bp = Blueprint("wechat", __name__)


@bp.record_once
def _check_settings(state) -> None:
    """A wrong EncodingAESKey is a deployment mistake: say so at start, not per message."""
    key = state.app.config.get("WECHAT_AES_KEY", "")
    if key:
        protocol.MessageCrypto(key, state.app.config.get("WECHAT_APPID", ""))


# WeChat signs with its own clock; a signature more than this far off is a replay.
MAX_SKEW_SECONDS = 300


def _xml(body: str) -> Response:
    return Response(body, content_type="application/xml; charset=utf-8")


def _success() -> Response:
    return Response("success", content_type="text/plain; charset=utf-8")


def _signed() -> bool:
    args = request.args
    timestamp, nonce = args.get("timestamp", ""), args.get("nonce", "")
    token = current_app.config["WECHAT_TOKEN"]
    if not protocol.signature_ok(token, args.get("signature", ""), timestamp, nonce):
        return False
    try:
        skew = abs(utcnow().timestamp() - int(timestamp))
    except ValueError:
        return False
    return skew <= MAX_SKEW_SECONDS


@bp.route("/wechat", methods=["GET", "POST"])
@csrf.exempt  # WeChat's servers sign their calls; they have no form token
def callback():
    if not current_app.config["WECHAT_TOKEN"]:
        abort(404)
    started = time.monotonic()
    if not _signed():
        log.warning("wechat: refused a callback with a bad or stale signature")
        abort(403)
    if request.method == "GET":
        echo = request.args.get("echostr", "")
        return Response(echo, content_type="text/plain; charset=utf-8")
    # Read no more than a message can be: a bigger body is refused without being read whole.
    body = request.stream.read(protocol.MAX_BODY + 1)
    try:
        fields = protocol.parse(body)
        crypto = None
        if request.args.get("encrypt_type") == "aes":
            crypto = _crypto()
            fields = _decrypted(crypto, fields)
        reply = replies.receive(fields)
    except protocol.ProtocolError as error:
        log.warning("wechat: unreadable message (%s bytes): %s", len(body), error)
        return _success()
    except Exception:
        # Never a 500 to WeChat (it would retry, then tell the follower the account is
        # broken): the follower gets no reply this time, and the log has the trace.
        log.exception("wechat: a message could not be answered")
        return _success()
    log.info(
        "wechat: %s %s answered in %.0f ms",
        fields.get("MsgType", "?"),
        replies.message_key(fields),
        (time.monotonic() - started) * 1000,
    )
    if not reply:
        return _success()
    if crypto is not None:
        args = request.args
        return _xml(
            crypto.envelope(
                reply,
                current_app.config["WECHAT_TOKEN"],
                args.get("timestamp", ""),
                args.get("nonce", ""),
            )
        )
    return _xml(reply)


def _crypto() -> protocol.MessageCrypto:
    key = current_app.config["WECHAT_AES_KEY"]
    if not key:
        raise protocol.ProtocolError("an encrypted message, but WECHAT_AES_KEY is not set")
    try:
        return protocol.MessageCrypto(key, current_app.config["WECHAT_APPID"])
    except ValueError as error:
        raise protocol.ProtocolError(f"WECHAT_AES_KEY is unusable: {error}") from None


def _decrypted(crypto: protocol.MessageCrypto, envelope: dict[str, str]) -> dict[str, str]:
    encrypted = envelope.get("Encrypt", "")
    args = request.args
    if not protocol.signature_ok(
        current_app.config["WECHAT_TOKEN"],
        args.get("msg_signature", ""),
        args.get("timestamp", ""),
        args.get("nonce", ""),
        encrypted,
    ):
        raise protocol.ProtocolError("bad msg_signature")
    return protocol.parse(crypto.decrypt(encrypted).encode())


# --- signing in with WeChat ----------------------------------------------------------------


def _in_wechat() -> bool:
    """WeChat's in-app browser: the only place its web login and JS-SDK work."""
    return "MicroMessenger/" in request.headers.get("User-Agent", "")


@bp.app_template_global()
def wechat_login_offered() -> bool:
    """Whether /login shows 「微信一键登录」: WeChat login is set up and this is WeChat's
    in-app browser (the only place its web OAuth2 works)."""
    return client.login_enabled() and _in_wechat()


@bp.app_template_global()
def wechat_login_enabled() -> bool:
    return client.login_enabled()


def _failed(message: str, status: int):
    return render_template("wechat/login_failed.html", message=message), status


@bp.get("/login/wechat")
def oauth_start():
    if not client.login_enabled():
        abort(404)
    return redirect(oauth.begin("login", safe_next(request.args.get("next"))))


@bp.get("/login/wechat/return")
def oauth_return():
    """Where WeChat sends the phone back, with `code` and `state` (no code: consent denied)."""
    if not client.login_enabled():
        abort(404)
    try:
        identity, flow = oauth.finish(request.args.get("code"), request.args.get("state"))
        if flow["purpose"] == "link":
            if not current_user.is_authenticated or current_user.id != flow.get("user_id"):
                raise oauth.OAuthFailure("请先登录要绑定的晨读账号，再绑定微信。", 403)
            oauth.link(current_user, identity)
            flash("已绑定微信，以后在微信里可以一键登录，也可以用微信支付。")
            return redirect(safe_next(flow["next"]) or url_for("members.me", _anchor="wechat"))
        try:
            user = oauth.account_for(identity)
        except oauth.NeedsProfile:
            if flow.get("scope") == "snsapi_userinfo":  # asked already: never loop
                raise oauth.OAuthFailure("微信没有给出你的昵称和头像，所以没有创建账号。") from None
            # First visit: ask once for the nickname and avatar to make the account.
            return redirect(oauth.begin("login", flow["next"] or None, "snsapi_userinfo"))
    except oauth.OAuthFailure as failure:
        return _failed(failure.message, failure.status)
    sign_in(user, remember=True)
    return redirect(safe_next(flow["next"]) or url_for("members.me"))


@bp.post("/me/wechat/link")
@login_required
def link():
    if not client.login_enabled():
        abort(404)
    back = safe_next(request.form.get("next")) or url_for("members.me", _anchor="wechat")
    return redirect(oauth.begin("link", back))


@bp.post("/me/wechat/unlink")
@login_required
def unlink():
    if not client.login_enabled():
        abort(404)
    try:
        oauth.unlink(current_user)
    except oauth.OAuthFailure as failure:
        flash(failure.message)
    else:
        flash("已解绑微信。")
    return redirect(url_for("members.me", _anchor="wechat"))


# --- share cards -------------------------------------------------------------------------


def _address_bar() -> str:
    """The page's URL as the phone's address bar holds it (and WeChat signs it): percent-
    encoded as sent. `request.url` would give the path and query decoded (中 for %E4%B8%AD)."""
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    if raw.startswith("/"):
        sent = raw.encode("latin-1", "replace")  # WSGI keeps the request line's bytes so
    else:
        sent = (request.script_root + request.path).encode()
        if request.query_string:
            sent += b"?" + request.query_string
    # A browser sends the address already encoded, and this leaves it as it is; raw bytes
    # (a client that did not encode) are encoded as a browser would have.
    return request.host_url.rstrip("/") + quote(sent, safe="/!$&'()*+,;=:@-._~%?[]")


def wechat_share(title: str, description: str, link: str, image: str) -> dict | None:
    """The JS-SDK share card for this page, in WeChat's browser when WeChat is set up; None
    elsewhere (the og: tags serve other apps). Asking for it lets this one response load
    WeChat's script: the Content-Security-Policy names its host on this page alone."""
    if not _in_wechat():
        return None
    config = jssdk.share_config(_address_bar())
    if config is None:
        return None
    g.script_hosts = {*g.get("script_hosts", set()), "https://" + jssdk.JSSDK_HOST}
    return {
        "script": jssdk.JSSDK_URL,
        "config": config,
        "share": {
            "title": title[:64],
            "desc": " ".join(description.split())[:120],
            "link": link,
            "imgUrl": image,
        },
    }


# --- domain verification -------------------------------------------------------------------

VERIFY_CODE = re.compile(r"^[A-Za-z0-9]{1,64}$")


@bp.get("/MP_verify_<code>.txt")
def domain_verification(code: str):
    """The file the official account's console asks for at the site's root before it accepts
    a domain for web login (网页授权域名) or the JS-SDK (JS接口安全域名). Put the file it
    gives (`MP_verify_<code>.txt`) in DATA_DIR; this serves it as it is."""
    if not VERIFY_CODE.match(code):
        abort(404)
    path = current_app.config["DATA_DIR"] / f"MP_verify_{code}.txt"
    if not path.is_file():
        abort(404)
    text = path.read_text(errors="replace").strip()[:128]
    return Response(text, content_type="text/plain; charset=utf-8")
