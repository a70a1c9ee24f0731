"""A fake of WeChat's public-platform servers, on 127.0.0.1, real HTTP:

- `open` side: `/connect/oauth2/authorize` (the consent step of web OAuth2). For
  `snsapi_base` it sends the phone straight back with a code, as WeChat does silently; for
  `snsapi_userinfo` it shows a consent page with 允许 and 拒绝 (or decides by itself when
  `auto_consent` is set). A refusal comes back with `state` and no code.
- `api` side: `/sns/oauth2/access_token` (codes are single-use and live five minutes, as
  WeChat's do: a second use is errcode 40163, an unknown code 40029), `/sns/userinfo`
  (only for tokens of `snsapi_userinfo`), `/cgi-bin/token` (a new access token invalidates
  the one before it, which is why the site must refresh it once at a time) and
  `/cgi-bin/ticket/getticket` (the JS-SDK `jsapi_ticket`).

`calls` counts every endpoint hit; `down = True` makes every API call a 503.

    with WeChatApiFake(appid, secret) as fake:
        app.config.update(fake.app_config())
        fake.user = fake.person("oOPENID", nickname="读书人")
"""

from __future__ import annotations

import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

CODE_SECONDS = 300
TOKEN_SECONDS = 7200


@dataclass
class Person:
    openid: str
    nickname: str = "微信读者"
    headimgurl: str = "https://thirdwx.qlogo.cn/mmopen/fake/132"
    unionid: str | None = None


class WeChatApiFake:
    def __init__(self, appid: str = "wx0123456789abcdef", secret: str = "s" * 32) -> None:
        self.appid = appid
        self.secret = secret
        self.user = Person("oFAKEopenid000000000000001")
        self.auto_consent: bool | None = None  # None: show the page; True/False: decide
        self.down = False
        self.delay = 0.0  # seconds each token or ticket call takes
        self.calls: Counter[str] = Counter()
        self.codes: dict[str, dict[str, Any]] = {}
        self.sns_tokens: dict[str, dict[str, Any]] = {}
        self.access_token: str | None = None
        self.tickets: dict[str, str] = {}
        self.lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                fake._handle(self)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WeChatApiFake:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=10)
        self.server.server_close()

    def app_config(self) -> dict[str, str]:
        return {
            "WECHAT_APPID": self.appid,
            "WECHAT_SECRET": self.secret,
            "WECHAT_API_BASE": self.url,
            "WECHAT_OPEN_BASE": self.url,
        }

    @staticmethod
    def person(openid: str, **kw: Any) -> Person:
        return Person(openid, **kw)

    # --- the phone's side: consent -----------------------------------------------------------

    def issue_code(self, scope: str) -> str:
        code = secrets.token_hex(16)
        with self.lock:
            self.codes[code] = {
                "scope": scope,
                "user": self.user,
                "expires": time.time() + CODE_SECONDS,
                "used": False,
            }
        return code

    def expire_codes(self) -> None:
        with self.lock:
            for code in self.codes.values():
                code["expires"] = 0

    def _authorize(self, handler: BaseHTTPRequestHandler, args: dict[str, str]) -> None:
        if args.get("appid") != self.appid or args.get("response_type") != "code":
            return self._html(handler, 400, "<p>参数错误</p>")
        scope, state, back = args.get("scope", ""), args.get("state", ""), args["redirect_uri"]
        if scope not in ("snsapi_base", "snsapi_userinfo"):
            return self._html(handler, 400, "<p>scope 参数错误</p>")
        decision = args.get("decision")
        if scope == "snsapi_userinfo" and decision is None:
            if self.auto_consent is None:
                allow = "?" + urlencode({**args, "decision": "allow"})
                deny = "?" + urlencode({**args, "decision": "deny"})
                return self._html(
                    handler,
                    200,
                    f"<h1>授权登录</h1><p>晨读申请获得你的昵称和头像</p>"
                    f'<a id="allow" href="/connect/oauth2/authorize{allow}">允许</a> '
                    f'<a id="deny" href="/connect/oauth2/authorize{deny}">拒绝</a>',
                )
            decision = "allow" if self.auto_consent else "deny"
        sep = "&" if "?" in back else "?"
        if decision == "deny":
            target = back + sep + urlencode({"state": state})
        else:
            target = back + sep + urlencode({"code": self.issue_code(scope), "state": state})
        handler.send_response(302)
        handler.send_header("Location", target)
        handler.send_header("Content-Length", "0")
        handler.end_headers()

    # --- the site's side: the API ------------------------------------------------------------

    def _sns_token(self, args: dict[str, str]) -> dict[str, Any]:
        if args.get("appid") != self.appid or args.get("secret") != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        if args.get("grant_type") != "authorization_code":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        with self.lock:
            code = self.codes.get(args.get("code", ""))
            if code is None or code["expires"] < time.time():
                return {"errcode": 40029, "errmsg": "invalid code"}
            if code["used"]:
                return {"errcode": 40163, "errmsg": "code been used"}
            code["used"] = True
            token = secrets.token_hex(20)
            person: Person = code["user"]
            self.sns_tokens[token] = {"scope": code["scope"], "user": person}
        answer: dict[str, Any] = {
            "access_token": token,
            "expires_in": TOKEN_SECONDS,
            "refresh_token": secrets.token_hex(20),
            "openid": person.openid,
            "scope": code["scope"],
            "is_snapshotuser": 0,
        }
        if person.unionid:
            answer["unionid"] = person.unionid
        return answer

    def _userinfo(self, args: dict[str, str]) -> dict[str, Any]:
        token = self.sns_tokens.get(args.get("access_token", ""))
        if token is None:
            return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
        if token["scope"] != "snsapi_userinfo":
            return {"errcode": 48001, "errmsg": "api unauthorized"}
        person: Person = token["user"]
        if args.get("openid") != person.openid:
            return {"errcode": 40003, "errmsg": "invalid openid"}
        info: dict[str, Any] = {
            "openid": person.openid,
            "nickname": person.nickname,
            "sex": 0,
            "province": "",
            "city": "",
            "country": "",
            "headimgurl": person.headimgurl,
            "privilege": [],
        }
        if person.unionid:
            info["unionid"] = person.unionid
        return info

    def _token(self, args: dict[str, str]) -> dict[str, Any]:
        if args.get("grant_type") != "client_credential":
            return {"errcode": 40002, "errmsg": "invalid grant_type"}
        if args.get("appid") != self.appid or args.get("secret") != self.secret:
            return {"errcode": 40125, "errmsg": "invalid appsecret"}
        time.sleep(self.delay)
        with self.lock:
            self.access_token = "AT" + secrets.token_hex(24)  # the old one stops working
            return {"access_token": self.access_token, "expires_in": TOKEN_SECONDS}

    def _ticket(self, args: dict[str, str]) -> dict[str, Any]:
        time.sleep(self.delay)
        with self.lock:
            if not self.access_token or args.get("access_token") != self.access_token:
                return {"errcode": 40001, "errmsg": "invalid credential, access_token is invalid"}
            if args.get("type") != "jsapi":
                return {"errcode": 40097, "errmsg": "invalid args"}
            ticket = "TK" + secrets.token_urlsafe(48)
            self.tickets[ticket] = self.access_token
        return {"errcode": 0, "errmsg": "ok", "ticket": ticket, "expires_in": TOKEN_SECONDS}

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        args = {k: v[0] for k, v in parse_qs(parts.query).items()}
        self.calls[parts.path] += 1
        if parts.path == "/connect/oauth2/authorize":
            return self._authorize(handler, args)
        if self.down:
            return self._html(handler, 503, "<p>Service Unavailable</p>")
        routes = {
            "/sns/oauth2/access_token": self._sns_token,
            "/sns/userinfo": self._userinfo,
            "/cgi-bin/token": self._token,
            "/cgi-bin/ticket/getticket": self._ticket,
        }
        route = routes.get(parts.path)
        if route is None:
            return self._html(handler, 404, "<p>not found</p>")
        body = json.dumps(route(args), ensure_ascii=False).encode()
        handler.send_response(200)
        # WeChat answers JSON as text/plain.
        handler.send_header("Content-Type", "text/plain")
        handler.send_header("Content-Length", str(len(body)))
        handler.end_headers()
        handler.wfile.write(body)

    @staticmethod
    def _html(handler: BaseHTTPRequestHandler, status: int, body: str) -> None:
        data = f"<!doctype html><meta charset=utf-8>{body}".encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/html; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)
