"""The official account's message protocol, as WeChat speaks it.

- Signatures: `sha1` of the token, timestamp and nonce (and, in safe mode, the encrypted
  message) sorted and joined.
- Messages are small XML documents (`<xml><MsgType>...</MsgType>...</xml>`) with text in
  CDATA. Nothing here expands entities or reads a DOCTYPE: a body that has one is refused.
- Safe mode (`encrypt_type=aes`): AES-256-CBC with the key from the 43-character
  EncodingAESKey, the IV its first 16 bytes, PKCS#7 padding to 32 bytes, and a plaintext of
  16 random bytes, the message length (4 bytes, network order), the message and the app id.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import struct
from xml.etree import ElementTree
from xml.parsers import expat

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

MAX_BODY = 64 * 1024
BLOCK = 32


class ProtocolError(Exception):
    """A message that cannot be read: malformed, oversized, badly signed or for another app."""


def signature(token: str, *parts: str) -> str:
    """The signature WeChat puts on a callback: sha1 of the sorted parts with the token."""
    return hashlib.sha1("".join(sorted([token, *parts])).encode()).hexdigest()  # noqa: S324


def signature_ok(token: str, given: str, *parts: str) -> bool:
    return bool(given) and hmac.compare_digest(signature(token, *parts), given.lower())


class _Refused(Exception):
    pass


def _refuse(*_: object) -> None:
    raise _Refused()


def parse(body: bytes) -> dict[str, str]:
    """The fields of a message: the text of each element directly under `<xml>`.

    Read with expat, whose DOCTYPE and entity handlers refuse the document whatever its
    encoding says, so no entity is ever declared, let alone expanded or fetched."""
    if len(body) > MAX_BODY:
        raise ProtocolError(f"body of {len(body)} bytes is over {MAX_BODY}")
    fields: dict[str, str] = {}
    path: list[str] = []
    text: list[str] = []

    def start(name: str, _attributes: dict) -> None:
        if not path and name != "xml":
            raise ProtocolError(f"root element is <{name[:20]}>, not <xml>")
        path.append(name)
        text.clear()

    def end(name: str) -> None:
        if len(path) == 2:
            fields[name] = "".join(text).strip()
        path.pop()
        text.clear()

    parser = expat.ParserCreate()
    parser.SetParamEntityParsing(expat.XML_PARAM_ENTITY_PARSING_NEVER)
    parser.StartDoctypeDeclHandler = _refuse
    parser.EntityDeclHandler = _refuse
    parser.UnparsedEntityDeclHandler = _refuse
    parser.ExternalEntityRefHandler = _refuse
    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.CharacterDataHandler = text.append
    try:
        parser.Parse(body, True)
    except _Refused:
        raise ProtocolError("a DOCTYPE or an entity declaration is not accepted") from None
    except (expat.ExpatError, ValueError, LookupError) as error:
        raise ProtocolError(f"malformed XML: {error}") from None
    if not body.strip():
        raise ProtocolError("empty body")
    return fields


def news_title(reply: str) -> str:
    """The title of the first article of a news reply this site wrote."""
    root = ElementTree.fromstring(reply)  # noqa: S314 (our own XML)
    return root.findtext("Articles/item/Title") or ""


def _cdata(value: str) -> str:
    # "]]>" cannot stand inside CDATA: split it across two sections.
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def _clean(value: str) -> str:
    """Text without the control characters XML 1.0 cannot carry."""
    return "".join(c for c in value if c in "\t\n\r" or ord(c) >= 0x20)


def text_reply(to_user: str, from_user: str, created: int, content: str) -> str:
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[text]]></MsgType>"
        f"<Content>{_cdata(_clean(content))}</Content>"
        "</xml>"
    )


def news_reply(
    to_user: str,
    from_user: str,
    created: int,
    *,
    title: str,
    description: str,
    picture_url: str,
    url: str,
) -> str:
    """A 图文 reply with one article."""
    return (
        "<xml>"
        f"<ToUserName>{_cdata(to_user)}</ToUserName>"
        f"<FromUserName>{_cdata(from_user)}</FromUserName>"
        f"<CreateTime>{created}</CreateTime>"
        "<MsgType><![CDATA[news]]></MsgType>"
        "<ArticleCount>1</ArticleCount>"
        "<Articles><item>"
        f"<Title>{_cdata(_clean(title))}</Title>"
        f"<Description>{_cdata(_clean(description))}</Description>"
        f"<PicUrl>{_cdata(picture_url)}</PicUrl>"
        f"<Url>{_cdata(url)}</Url>"
        "</item></Articles>"
        "</xml>"
    )


class MessageCrypto:
    """Safe-mode encryption for one official account."""

    def __init__(self, encoding_aes_key: str, appid: str) -> None:
        if len(encoding_aes_key) != 43:
            raise ValueError("WECHAT_AES_KEY must be the 43-character EncodingAESKey")
        self.key = base64.b64decode(encoding_aes_key + "=")
        self.appid = appid

    def _cipher(self) -> Cipher:
        return Cipher(algorithms.AES(self.key), modes.CBC(self.key[:16]))

    def encrypt(self, message: str, *, random: bytes | None = None) -> str:
        data = message.encode()
        plain = (random or os.urandom(16)) + struct.pack(">I", len(data)) + data
        plain += self.appid.encode()
        pad = BLOCK - len(plain) % BLOCK
        plain += bytes([pad]) * pad
        encryptor = self._cipher().encryptor()
        return base64.b64encode(encryptor.update(plain) + encryptor.finalize()).decode()

    def decrypt(self, encrypted: str) -> str:
        try:
            data = base64.b64decode(encrypted, validate=True)
        except ValueError:
            raise ProtocolError("the encrypted message is not base64") from None
        if not data or len(data) % 16:
            raise ProtocolError("the encrypted message has a bad length")
        decryptor = self._cipher().decryptor()
        plain = decryptor.update(data) + decryptor.finalize()
        pad = plain[-1]
        if not 1 <= pad <= BLOCK or plain[-pad:] != bytes([pad]) * pad:
            raise ProtocolError("bad padding: the message was not encrypted with our key")
        plain = plain[:-pad]
        if len(plain) < 20:
            raise ProtocolError("the decrypted message is too short")
        (length,) = struct.unpack(">I", plain[16:20])
        message, appid = plain[20 : 20 + length], plain[20 + length :]
        if len(message) != length or appid.decode(errors="replace") != self.appid:
            raise ProtocolError("the message is for another app id")
        try:
            return message.decode()
        except UnicodeDecodeError:
            raise ProtocolError("the decrypted message is not UTF-8") from None

    def envelope(self, reply: str, token: str, timestamp: str, nonce: str) -> str:
        """A reply in safe mode: encrypted and signed."""
        encrypted = self.encrypt(reply)
        signed = signature(token, timestamp, nonce, encrypted)
        return (
            "<xml>"
            f"<Encrypt>{_cdata(encrypted)}</Encrypt>"
            f"<MsgSignature>{_cdata(signed)}</MsgSignature>"
            f"<TimeStamp>{timestamp}</TimeStamp>"
            f"<Nonce>{_cdata(nonce)}</Nonce>"
            "</xml>"
        )
