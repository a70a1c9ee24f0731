"""WeChat Pay API v3 (JSAPI), in public-key mode: prepay, the cashier's parameters, payment
notifications, queries, closing, refunds.

No Flask and no database here: callers pass the settings in (`WechatPayConfig`) and get plain
values back (`Transaction`, `RefundResult`), or `WechatPayError` / `NotifyError`.

Requests are signed and 2xx responses verified by `wechatpayv3`, always constructed with the
platform public key and its id: its certificate mode fetches certificates from WeChat in the
constructor. Notifications are verified here with `cryptography`, because the library does not
check the timestamp's freshness, nor that the notice is signed under our public key id.
"""

from __future__ import annotations

import base64
import binascii
import json
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives.asymmetric import padding
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from wechatpayv3 import WeChatPay as _WeChatPayClient
from wechatpayv3 import WeChatPayType

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
# WeChat's own advice: refuse a notification signed more than five minutes from now.
NOTIFY_MAX_SKEW = timedelta(minutes=5)
SHANGHAI = timezone(timedelta(hours=8), "Asia/Shanghai")  # no daylight saving since 1991

_SETTINGS = {
    "base_url": "WECHATPAY_BASE_URL",
    "mchid": "WECHATPAY_MCHID",
    "appid": "WECHATPAY_APPID",
    "apiv3_key": "WECHATPAY_APIV3_KEY",
    "cert_serial_no": "WECHATPAY_CERT_SERIAL_NO",
    "private_key": "WECHATPAY_PRIVATE_KEY_FILE",
    "public_key": "WECHATPAY_PUBLIC_KEY_FILE",
    "public_key_id": "WECHATPAY_PUBLIC_KEY_ID",
    "notify_url": "WECHATPAY_NOTIFY_URL",
}
_KEY_FILES = {"private_key", "public_key"}


class WechatPayError(Exception):
    """A call to WeChat Pay failed, or the settings are unusable.

    `status` is the HTTP status WeChat answered (None for a network error, a bad response or a
    bad setting), `code` WeChat's error code ("" when there is none), `message` the detail.
    """

    def __init__(self, message: str, *, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message

    def __str__(self) -> str:
        head = " ".join(str(part) for part in (self.status, self.code) if part)
        return f"WeChat Pay {head}: {self.message}" if head else f"WeChat Pay: {self.message}"


class NotifyError(Exception):
    """A notification must be refused with `status` (400 or 401); `message` says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class WechatPayConfig:
    base_url: str
    mchid: str
    appid: str
    # The two secrets stay out of repr(), so out of logs and tracebacks.
    apiv3_key: str = field(repr=False)
    cert_serial_no: str
    private_key: str = field(repr=False)  # the merchant's private key, PEM text
    public_key: str  # WeChat Pay's platform public key, PEM text
    public_key_id: str  # "PUB_KEY_ID_..."
    notify_url: str

    @classmethod
    def from_app_config(cls, config: Mapping) -> WechatPayConfig:
        """The settings from an app's config, with the two PEM files read.

        Raises `WechatPayError` naming the first setting that is empty or unusable."""
        values: dict[str, str] = {}
        for name, setting in _SETTINGS.items():
            value = str(config.get(setting) or "").strip()
            if not value:
                raise WechatPayError(f"{setting} is not set")
            if name in _KEY_FILES:
                try:
                    value = Path(value).read_text(encoding="utf-8")
                except (OSError, UnicodeDecodeError) as exc:
                    raise WechatPayError(f"{setting}: cannot read {value}: {exc}") from exc
            values[name] = value
        if len(values["apiv3_key"].encode()) != 32:
            raise WechatPayError("WECHATPAY_APIV3_KEY must be 32 bytes long")
        return cls(**values)


@dataclass(frozen=True)
class Transaction:
    """A payment as WeChat reports it, in a notification or from the query API."""

    out_trade_no: str
    transaction_id: str  # "" until paid
    trade_state: str  # "SUCCESS", "NOTPAY", "CLOSED", "REFUND", "USERPAYING", "PAYERROR", ...
    amount_fen: int  # amount.total: what the order asked for
    payer_total_fen: int | None  # what the payer paid (less than amount_fen after a coupon)
    currency: str
    success_time: datetime | None  # aware, UTC
    openid: str | None
    appid: str
    mchid: str

    @classmethod
    def from_wechat(cls, data: Mapping[str, Any]) -> Transaction:
        """Read a transaction object of API v3; KeyError, TypeError or ValueError if malformed."""
        amount = data["amount"]
        total = amount["total"]
        payer_total = amount.get("payer_total")
        if not isinstance(total, int) or not isinstance(payer_total, int | None):
            raise TypeError("amounts must be integers of fen")
        success_time = data.get("success_time")
        payer = data.get("payer") or {}
        return cls(
            out_trade_no=str(data["out_trade_no"]),
            transaction_id=str(data.get("transaction_id") or ""),
            trade_state=str(data["trade_state"]),
            amount_fen=total,
            payer_total_fen=payer_total,
            currency=str(amount.get("currency") or "CNY"),
            success_time=_parse_time(success_time) if success_time else None,
            openid=payer.get("openid") or None,
            appid=str(data.get("appid") or ""),
            mchid=str(data.get("mchid") or ""),
        )


@dataclass(frozen=True)
class RefundResult:
    out_refund_no: str
    refund_id: str
    status: str  # "SUCCESS", "PROCESSING", "ABNORMAL", "CLOSED"


class WechatPay:
    """One merchant's WeChat Pay API v3, JSAPI payments (inside WeChat's browser)."""

    def __init__(self, config: WechatPayConfig, *, timeout: float = 5.0) -> None:
        self.config = config
        try:
            self._platform_key = load_pem_public_key(config.public_key.encode())
            # notify_url stays out of the client: it would add it to refunds as well, and this
            # endpoint only takes payment notices. Refunds are followed with query_refund.
            self._client = _WeChatPayClient(
                wechatpay_type=WeChatPayType.JSAPI,
                mchid=config.mchid,
                private_key=config.private_key,
                cert_serial_no=config.cert_serial_no,
                appid=config.appid,
                apiv3_key=config.apiv3_key,
                timeout=timeout,
                public_key=config.public_key,
                public_key_id=config.public_key_id,
            )
        except Exception as exc:  # the library raises bare Exception for unreadable keys
            raise WechatPayError(f"unusable key: {exc}") from exc
        if not isinstance(self._platform_key, RSAPublicKey):
            raise WechatPayError("the platform public key is not an RSA key")
        core = self._client._core
        core._gate_way = config.base_url.rstrip("/")
        # A response signed under another serial sends the library to download platform
        # certificates (/v3/certificates), which public-key mode has no use for: refuse instead.
        core._update_certificates = _refuse_certificate_download

    # -- paying -------------------------------------------------------------------------------

    def jsapi_prepay(
        self,
        *,
        out_trade_no: str,
        description: str,
        amount_fen: int,
        openid: str,
        time_expire: datetime,
    ) -> str:
        """Open a JSAPI payment for `openid`; returns WeChat's prepay_id (valid two hours)."""
        if amount_fen <= 0:
            raise ValueError("amount_fen must be positive")
        data = self._call(
            "pay",
            description=description,
            out_trade_no=out_trade_no,
            amount={"total": amount_fen, "currency": "CNY"},
            payer={"openid": openid},
            time_expire=_rfc3339(time_expire),
            notify_url=self.config.notify_url,
            pay_type=WeChatPayType.JSAPI,
        )
        prepay_id = data.get("prepay_id")
        if not isinstance(prepay_id, str) or not prepay_id:
            raise WechatPayError("the answer carries no prepay_id")
        return prepay_id

    def jsapi_params(self, prepay_id: str) -> dict[str, str]:
        """What `WeixinJSBridge.invoke('getBrandWCPayRequest', ...)` takes for `prepay_id`."""
        params = {
            "appId": self.config.appid,
            "timeStamp": str(int(time.time())),
            "nonceStr": secrets.token_hex(16),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        message = [params["appId"], params["timeStamp"], params["nonceStr"], params["package"]]
        params["paySign"] = self._client.sign(message)
        return params

    def parse_notification(
        self, headers: Mapping[str, str], body: bytes, *, now: datetime
    ) -> Transaction:
        """The transaction a payment notification reports, once it is proven to come from
        WeChat Pay, recently, for this merchant and app.

        Raises `NotifyError` (401: not signed by WeChat under our key, or not within five
        minutes of `now`; 400: signed, but not a payment notice for us)."""
        if now.tzinfo is None:
            raise ValueError("now must be an aware datetime")
        lowered = {name.lower(): value for name, value in headers.items()}
        timestamp = lowered.get("wechatpay-timestamp", "")
        nonce = lowered.get("wechatpay-nonce", "")
        signature = lowered.get("wechatpay-signature", "")
        serial = lowered.get("wechatpay-serial", "")
        if not (timestamp and nonce and signature and serial):
            raise NotifyError(401, "missing Wechatpay-* signature headers")
        signature_type = lowered.get("wechatpay-signature-type", SIGNATURE_TYPE)
        if signature_type != SIGNATURE_TYPE:
            raise NotifyError(401, f"unsupported signature type {signature_type}")
        if serial != self.config.public_key_id:
            raise NotifyError(401, "signed under an unknown serial")
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        try:
            self._platform_key.verify(
                base64.b64decode(signature, validate=True),
                message,
                padding.PKCS1v15(),
                SHA256(),
            )
        except (InvalidSignature, binascii.Error, ValueError) as exc:
            raise NotifyError(401, "bad signature") from exc
        try:
            signed_at = datetime.fromtimestamp(int(timestamp), UTC)
        except (ValueError, OverflowError, OSError) as exc:
            raise NotifyError(401, "bad timestamp") from exc
        if abs(now - signed_at) > NOTIFY_MAX_SKEW:
            raise NotifyError(401, "timestamp too far from now")

        try:
            notice = json.loads(body)
            event_type = notice["event_type"]
            resource_type = notice["resource_type"]
            resource = notice["resource"]
        except (ValueError, KeyError, TypeError) as exc:
            raise NotifyError(400, "not a notification") from exc
        if event_type != "TRANSACTION.SUCCESS":
            raise NotifyError(400, f"unexpected event_type {event_type}")
        if resource_type != "encrypt-resource":
            raise NotifyError(400, f"unexpected resource_type {resource_type}")
        try:
            if resource["algorithm"] != "AEAD_AES_256_GCM":
                raise NotifyError(400, f"unsupported algorithm {resource['algorithm']}")
            plaintext = AESGCM(self.config.apiv3_key.encode()).decrypt(
                resource["nonce"].encode(),
                base64.b64decode(resource["ciphertext"], validate=True),
                (resource.get("associated_data") or "").encode(),
            )
            transaction = Transaction.from_wechat(json.loads(plaintext))
        except NotifyError:
            raise
        except (InvalidTag, binascii.Error, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise NotifyError(400, "cannot decrypt or read the resource") from exc
        if transaction.mchid != self.config.mchid or transaction.appid != self.config.appid:
            raise NotifyError(400, "notification for another merchant or app")
        return transaction

    # -- asking and undoing ---------------------------------------------------------------------

    def query(self, out_trade_no: str) -> Transaction | None:
        """The payment `out_trade_no` as WeChat sees it; None when WeChat does not know it."""
        try:
            data = self._call("query", out_trade_no=out_trade_no)
        except WechatPayError as exc:
            if exc.status == 404 and exc.code == "ORDER_NOT_EXIST":
                return None
            raise
        try:
            return Transaction.from_wechat(data)
        except (KeyError, TypeError, ValueError) as exc:
            raise WechatPayError(f"unreadable transaction: {exc!r}") from exc

    def close(self, out_trade_no: str) -> None:
        """Close the unpaid payment `out_trade_no`, so that it can no longer be paid."""
        self._call("close", out_trade_no=out_trade_no)

    def refund(
        self,
        *,
        out_trade_no: str,
        out_refund_no: str,
        amount_fen: int,
        total_fen: int,
        reason: str,
    ) -> RefundResult:
        """Ask for `amount_fen` of the paid `total_fen` back to the payer. Asking again with the
        same `out_refund_no` does not refund twice: WeChat answers with the same refund."""
        data = self._call(
            "refund",
            out_refund_no=out_refund_no,
            amount={"refund": amount_fen, "total": total_fen, "currency": "CNY"},
            out_trade_no=out_trade_no,
            reason=reason or None,
        )
        return _refund_result(data)

    def query_refund(self, out_refund_no: str) -> RefundResult:
        """Where the refund `out_refund_no` stands."""
        return _refund_result(self._call("query_refund", out_refund_no=out_refund_no))

    def _call(self, method: str, **kwargs: Any) -> dict[str, Any]:
        """Call the library's `method`; its JSON answer, or WechatPayError for anything else
        than a 2xx answer whose signature verifies."""
        try:
            status, text = getattr(self._client, method)(**kwargs)
        except WechatPayError:
            raise
        except requests.RequestException as exc:
            raise WechatPayError(f"network error: {exc}") from exc
        except Exception as exc:  # the library raises bare Exception, e.g. for a bad signature
            raise WechatPayError(f"bad response: {exc}") from exc
        if isinstance(text, bytes):
            text = text.decode("utf-8", "replace")
        if not 200 <= status < 300:
            code, message = "", text[:200]
            try:
                error = json.loads(text)
                code, message = str(error.get("code", "")), str(error.get("message", message))
            except (ValueError, AttributeError):
                pass
            raise WechatPayError(message, status=status, code=code)
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise WechatPayError("the answer is not JSON", status=status) from exc
        if not isinstance(data, dict):
            raise WechatPayError("the answer is not a JSON object", status=status)
        return data


def _refuse_certificate_download() -> None:
    raise WechatPayError("response signed under an unknown serial")


def _refund_result(data: Mapping[str, Any]) -> RefundResult:
    try:
        return RefundResult(
            out_refund_no=str(data["out_refund_no"]),
            refund_id=str(data["refund_id"]),
            status=str(data["status"]),
        )
    except KeyError as exc:
        raise WechatPayError(f"unreadable refund: missing {exc}") from exc


def _rfc3339(value: datetime) -> str:
    """`value` as WeChat writes times: RFC 3339 in Beijing time, e.g. 2026-11-21T08:15:00+08:00."""
    if value.tzinfo is None:
        raise ValueError("time_expire must be an aware datetime")
    return value.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError(f"time without offset: {value}")
    return parsed.astimezone(UTC)
