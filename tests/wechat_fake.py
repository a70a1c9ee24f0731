"""A faithful fake of WeChat's side of the official account's callback.

`WeChatSender` posts messages the way WeChat's servers do: the signature, timestamp and nonce
in the query string, XML in the body (or, in safe mode, the message AES-encrypted in an
`<Encrypt>` envelope with `msg_signature`), a 5-second wait for the answer, and up to three
tries of the same message when no answer comes in time. It counts every try it made and how
long each took, as WeChat would before giving up.

The crypto here is written apart from `wechat/protocol.py` (PKCS#7 from `cryptography`, its
own framing), so the tests check the site against a second implementation of the spec.
"""

from __future__ import annotations

import base64
import hashlib
import os
import secrets
import struct
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from xml.etree import ElementTree

from cryptography.hazmat.primitives import padding
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

ACCOUNT = "gh_0123456789ab"  # the official account's original id (ToUserName)
WAIT_SECONDS = 5.0
TRIES = 3


def sign(*parts: str) -> str:
    return hashlib.sha1("".join(sorted(parts)).encode()).hexdigest()


def cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def text_message(openid: str, content: str, msg_id: int, created: int | None = None) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{created or int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{cdata(content)}</Content>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


def event_message(openid: str, event: str, created: int | None = None) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{created or int(time.time())}</CreateTime>"
        "<MsgType><![CDATA[event]]></MsgType>"
        f"<Event><![CDATA[{event}]]></Event></xml>"
    )


def other_message(openid: str, kind: str, msg_id: int) -> str:
    return (
        f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
        f"<FromUserName><![CDATA[{openid}]]></FromUserName>"
        f"<CreateTime>{int(time.time())}</CreateTime>"
        f"<MsgType><![CDATA[{kind}]]></MsgType>"
        "<PicUrl><![CDATA[http://mmbiz.example/pic.jpg]]></PicUrl>"
        "<MediaId><![CDATA[media_id]]></MediaId>"
        f"<MsgId>{msg_id}</MsgId></xml>"
    )


def fields(xml: str) -> dict[str, str]:
    root = ElementTree.fromstring(xml)
    return {child.tag: (child.text or "") for child in root if len(child) == 0}


def news_items(xml: str) -> list[dict[str, str]]:
    root = ElementTree.fromstring(xml)
    return [{c.tag: c.text or "" for c in item} for item in root.iter("item")]


class SafeMode:
    """WeChat's half of safe mode for one account."""

    def __init__(self, encoding_aes_key: str, appid: str, token: str) -> None:
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.appid = appid.encode()
        self.token = token

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, xml: str) -> str:
        body = xml.encode()
        framed = secrets.token_bytes(16) + struct.pack("!I", len(body)) + body + self.appid
        padder = padding.PKCS7(256).padder()
        padded = padder.update(framed) + padder.finalize()
        enc = self._cipher().encryptor()
        return base64.b64encode(enc.update(padded) + enc.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        dec = self._cipher().decryptor()
        padded = dec.update(base64.b64decode(encrypted)) + dec.finalize()
        unpadder = padding.PKCS7(256).unpadder()
        framed = unpadder.update(padded) + unpadder.finalize()
        (length,) = struct.unpack("!I", framed[16:20])
        assert framed[20 + length :] == self.appid, "reply encrypted for another app id"
        return framed[20 : 20 + length].decode()

    def open_reply(self, envelope: str) -> str:
        """The plaintext of an encrypted reply, after checking its signature as WeChat does."""
        got = fields(envelope)
        expected = sign(self.token, got["TimeStamp"], got["Nonce"], got["Encrypt"])
        assert got["MsgSignature"] == expected, "reply signature does not verify"
        return self.decrypt(got["Encrypt"])


@dataclass
class Delivery:
    status: int
    body: str
    tries: int
    seconds: list[float] = field(default_factory=list)


class WeChatSender:
    """Sends messages to a callback URL over real HTTP, as WeChat's servers do."""

    def __init__(self, url: str, token: str, safe: SafeMode | None = None, now=None) -> None:
        self.url = url
        self.token = token
        self.safe = safe
        self.tries = 0
        # WeChat's clock: the site's (injectable) clock in tests, so that signatures are fresh.
        self.now = now or (lambda: int(time.time()))

    def query(self, *, timestamp: int | None = None, extra: dict[str, str] | None = None):
        ts = str(timestamp or self.now())
        nonce = str(secrets.randbelow(10**10))
        args = {"signature": sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce}
        args.update(extra or {})
        return args

    def verify_url(self, echostr: str, **kw) -> tuple[int, str]:
        args = {**self.query(**kw), "echostr": echostr}
        return self._open(self.url + "?" + urllib.parse.urlencode(args), None)[:2]

    def send(self, xml: str, *, openid: str = "") -> Delivery:
        """Deliver one message: wait 5 s for an answer, try again (same message) if none
        comes, at most three tries; the answer is decrypted in safe mode."""
        delivery = Delivery(status=0, body="", tries=0)
        for _ in range(TRIES):
            args = self.query(extra={"openid": openid} if openid else None)
            body = xml.encode()
            if self.safe is not None:
                encrypted = self.safe.encrypt(xml)
                args.update(
                    encrypt_type="aes",
                    msg_signature=sign(self.token, args["timestamp"], args["nonce"], encrypted),
                )
                body = (
                    f"<xml><ToUserName><![CDATA[{ACCOUNT}]]></ToUserName>"
                    f"<Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>"
                ).encode()
            started = time.monotonic()
            status, text, answered = self._open(self.url + "?" + urllib.parse.urlencode(args), body)
            delivery.tries += 1
            delivery.seconds.append(time.monotonic() - started)
            if answered:
                delivery.status = status
                delivery.body = text
                if self.safe is not None and status == 200 and text.startswith("<xml>"):
                    delivery.body = self.safe.open_reply(text)
                return delivery
        return delivery

    def post_raw(self, body: bytes, args: dict[str, str] | None = None) -> tuple[int, str]:
        return self._open(self.url + "?" + urllib.parse.urlencode(args or self.query()), body)[:2]

    def _open(self, url: str, body: bytes | None) -> tuple[int, str, bool]:
        self.tries += 1
        request = urllib.request.Request(url, data=body, method="GET" if body is None else "POST")
        if body is not None:
            request.add_header("Content-Type", "text/xml")
        try:
            with urllib.request.urlopen(request, timeout=WAIT_SECONDS) as response:  # noqa: S310
                return response.status, response.read().decode(), True
        except urllib.error.HTTPError as error:
            with error:
                return error.code, error.read().decode(errors="replace"), True
        except TimeoutError:
            return 0, "", False


def random_aes_key() -> str:
    """A 43-character EncodingAESKey, as the official account's console makes one."""
    return base64.b64encode(os.urandom(32)).decode().rstrip("=")
