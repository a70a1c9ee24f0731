"""A fake WeChat Pay API v3 server for tests: real HTTP on 127.0.0.1, real signatures both ways.

    with WechatPayFake(tmp_path / "wechatpay") as fake:
        config = fake.app_config()          # WECHATPAY_* settings pointing at the fake
        ...                                 # the app opens a payment
        fake.pay(out_trade_no)              # the reader pays
        headers, body = fake.notification(out_trade_no)   # WeChat's notice of it

The fake owns all the key material: the platform key pair and its public key id, the APIv3
key, and (unless given one) the merchant's key pair, whose public half it checks every
request's Authorization header against. `app_config()` writes the merchant private key and the
platform public key as PEM files and names them, as a deployment would.

Two clocks: request and response signatures use the real time, as the library does;
notifications, `success_time` and `create_time` use `clock` (pass the app's clock, e.g.
`clock=app.extensions["clock"].now`, so that a notice is fresh for a FixedClock).
"""

from __future__ import annotations

import base64
import json
import re
import secrets
import string
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256

SIGNATURE_TYPE = "WECHATPAY2-SHA256-RSA2048"
DEFAULT_NOTIFY_URL = "https://chendu.example.com/shop/wechatpay/notify"
SHANGHAI = timezone(timedelta(hours=8))
MAX_REQUEST_SKEW = 300  # seconds; WeChat refuses requests signed further from its clock

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")
AUTHORIZATION = re.compile(r"^WECHATPAY2-SHA256-RSA2048 (.+)$")
AUTH_PARAM = re.compile(r'(\w+)="([^"]*)"')
TRADE_STATE_DESC = {
    "NOTPAY": "订单未支付",
    "SUCCESS": "支付成功",
    "REFUND": "转入退款",
    "CLOSED": "已关闭",
}


# ------------------------------------------------------------------------------------------
# Keys
# ------------------------------------------------------------------------------------------


def make_merchant_key() -> rsa.RSAPrivateKey:
    """A fresh RSA-2048 key pair, such as a merchant's API certificate holds."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def public_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def sign(key: rsa.RSAPrivateKey, message: str | bytes) -> str:
    """SHA256-with-RSA (PKCS#1 v1.5), base64: every signature of API v3."""
    data = message.encode() if isinstance(message, str) else message
    return base64.b64encode(key.sign(data, padding.PKCS1v15(), SHA256())).decode()


def verify(key: rsa.RSAPublicKey, message: str | bytes, signature: str) -> bool:
    data = message.encode() if isinstance(message, str) else message
    try:
        key.verify(base64.b64decode(signature), data, padding.PKCS1v15(), SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


def rfc3339(value: datetime) -> str:
    """WeChat's way of writing a time: 2026-11-21T08:00:00+08:00."""
    return value.astimezone(SHANGHAI).replace(microsecond=0).isoformat()


def _random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _digits(length: int) -> str:
    return _random_text(length, string.digits)


# ------------------------------------------------------------------------------------------
# The fake
# ------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    method: str
    path: str  # with the query string, as signed
    headers: dict[str, str]
    body: bytes
    status: int = 0  # what the fake answered

    @property
    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


@dataclass
class _Reply:
    status: int
    payload: dict[str, Any] | None = None


def _error(status: int, code: str, message: str) -> _Reply:
    return _Reply(status, {"code": code, "message": message})


@dataclass
class _Trade:
    params: dict[str, Any]
    prepay_id: str
    state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: datetime | None = None
    payer_total: int | None = None
    refunds: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.params["amount"]["total"]


class WechatPayFake:
    """WeChat Pay's API v3 for one merchant (mchid, appid), on 127.0.0.1.

    Switches tests may flip at any time:
    - `refund_status`: what a new refund starts as, "SUCCESS" (default) or "PROCESSING";
      `settle_refund()` moves a refund on.
    - `corrupt_signatures`: sign responses over the wrong message.
    - `response_serial`: put another serial than the public key id in responses.
    - `fail_next(...)`: answer the next authenticated request with an error.
    """

    def __init__(
        self,
        key_dir: Path,
        *,
        merchant_key: rsa.RSAPrivateKey | None = None,
        clock: Callable[[], datetime] | None = None,
        mchid: str = "1900009191",
        appid: str = "wxd678efh567hg6787",
    ) -> None:
        self.key_dir = Path(key_dir)
        self.clock = clock or (lambda: datetime.now(UTC))
        self.mchid = mchid
        self.appid = appid
        self.merchant_key = merchant_key or make_merchant_key()
        self.merchant_serial_no = secrets.token_hex(20).upper()
        self.platform_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.public_key_id = "PUB_KEY_ID_" + secrets.token_hex(16).upper()
        self.apiv3_key = _random_text(32)

        self.refund_status = "SUCCESS"
        self.corrupt_signatures = False
        self.response_serial: str | None = None
        self.requests: list[RecordedRequest] = []
        self.errors: list[BaseException] = []  # exceptions inside the fake: should stay empty
        self.trades: dict[str, _Trade] = {}
        self.refunds: dict[str, dict[str, Any]] = {}
        self._failures: list[_Reply] = []
        self._certificate: tuple[rsa.RSAPrivateKey, str] | None = None
        self._lock = threading.RLock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- running ------------------------------------------------------------------------------

    def start(self) -> WechatPayFake:
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fake = self
        # A short poll interval: stop() waits for the next poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), name="wechatpay-fake", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is None:
            return
        self._server.shutdown()
        self._server.server_close()
        assert self._thread is not None
        self._thread.join(timeout=10)
        self._server = self._thread = None

    def __enter__(self) -> WechatPayFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("the fake is not running: call start() or use it in a with")
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def app_config(self, notify_url: str = DEFAULT_NOTIFY_URL) -> dict[str, str]:
        """The app's WECHATPAY_* settings for this fake; writes the two PEM files they name."""
        self.key_dir.mkdir(parents=True, exist_ok=True)
        private_file = self.key_dir / "apiclient_key.pem"
        public_file = self.key_dir / "pub_key.pem"
        private_file.write_text(private_pem(self.merchant_key))
        public_file.write_text(public_pem(self.platform_key))
        return {
            "WECHATPAY_BASE_URL": self.url,
            "WECHATPAY_MCHID": self.mchid,
            "WECHATPAY_APPID": self.appid,
            "WECHATPAY_APIV3_KEY": self.apiv3_key,
            "WECHATPAY_CERT_SERIAL_NO": self.merchant_serial_no,
            "WECHATPAY_PRIVATE_KEY_FILE": str(private_file),
            "WECHATPAY_PUBLIC_KEY_FILE": str(public_file),
            "WECHATPAY_PUBLIC_KEY_ID": self.public_key_id,
            "WECHATPAY_NOTIFY_URL": notify_url,
        }

    # -- what tests do ------------------------------------------------------------------------

    def fail_next(
        self, status: int = 500, code: str = "SYSTEM_ERROR", message: str = "系统错误"
    ) -> None:
        """Answer the next authenticated request with this error (WeChat having a bad day)."""
        with self._lock:
            self._failures.append(_error(status, code, message))

    def calls(self, method: str, path_prefix: str = "") -> list[RecordedRequest]:
        """The requests received so far with this method and a path starting so."""
        with self._lock:
            return [
                r for r in self.requests if r.method == method and r.path.startswith(path_prefix)
            ]

    def pay(
        self,
        out_trade_no: str,
        payer_total: int | None = None,
        transaction_id: str | None = None,
    ) -> dict[str, Any]:
        """The reader pays the open trade `out_trade_no`; returns the transaction as WeChat
        would report it."""
        with self._lock:
            trade = self.trades[out_trade_no]
            if trade.state != "NOTPAY":
                raise ValueError(f"trade {out_trade_no} is {trade.state}, cannot be paid")
            trade.state = "SUCCESS"
            trade.transaction_id = transaction_id or "42000" + _digits(23)
            trade.success_time = self.clock()
            trade.payer_total = trade.total if payer_total is None else payer_total
            return self._transaction(out_trade_no)

    def settle_refund(self, out_refund_no: str, status: str = "SUCCESS") -> dict[str, Any]:
        """Move a PROCESSING refund on to `status` ("SUCCESS", "ABNORMAL" or "CLOSED")."""
        with self._lock:
            refund = self.refunds[out_refund_no]
            refund["status"] = status
            if status == "SUCCESS":
                refund["success_time"] = rfc3339(self.clock())
            return dict(refund)

    def notification(
        self,
        out_trade_no: str,
        *,
        timestamp: datetime | int | None = None,
        amount_total: int | None = None,
        key: rsa.RSAPrivateKey | None = None,
        serial: str | None = None,
        tamper: bool = False,
        event_type: str = "TRANSACTION.SUCCESS",
        apiv3_key: str | None = None,
        mchid: str | None = None,
        appid: str | None = None,
    ) -> tuple[dict[str, str], bytes]:
        """WeChat's payment notice for the paid trade `out_trade_no`: (headers, body).

        The options spoil it one way each: `timestamp` (default: the clock's now), another
        `amount_total`, signed with another `key` or under another `serial`, the body changed
        after signing (`tamper`), another `event_type`, encrypted with another `apiv3_key`,
        a resource for another `mchid` or `appid`."""
        with self._lock:
            resource = self._transaction(out_trade_no)
        if resource["trade_state"] not in ("SUCCESS", "REFUND"):
            raise ValueError(f"trade {out_trade_no} is not paid: call pay() first")
        if amount_total is not None:
            resource["amount"]["total"] = amount_total
            resource["amount"]["payer_total"] = amount_total
        if mchid is not None:
            resource["mchid"] = mchid
        if appid is not None:
            resource["appid"] = appid
        resource["trade_state"] = "SUCCESS"
        resource["trade_state_desc"] = TRADE_STATE_DESC["SUCCESS"]

        nonce = _random_text(12)
        ciphertext = AESGCM((apiv3_key or self.apiv3_key).encode()).encrypt(
            nonce.encode(), _dump(resource), b"transaction"
        )
        now = self.clock()
        notice = {
            "id": secrets.token_hex(18),
            "create_time": rfc3339(now),
            "resource_type": "encrypt-resource",
            "event_type": event_type,
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
        body = _dump(notice)
        if timestamp is None:
            timestamp = now
        if isinstance(timestamp, datetime):
            timestamp = int(timestamp.timestamp())
        headers = self._signature_headers(
            body, timestamp=timestamp, key=key, serial=serial, request_id=False
        )
        headers["Content-Type"] = "application/json"
        if tamper:
            notice["summary"] = "支付成功。"
            body = _dump(notice)
        return headers, body

    def send_notification(
        self, out_trade_no: str, url: str | None = None, **options: Any
    ) -> tuple[int, str]:
        """POST the notice for `out_trade_no` to `url` (default: the trade's notify_url), as
        WeChat does; returns the status and body of the answer. `options` as `notification`."""
        headers, body = self.notification(out_trade_no, **options)
        with self._lock:
            target = url or self.trades[out_trade_no].params["notify_url"]
        headers["User-Agent"] = "Mozilla/4.0"
        request = urllib.request.Request(target, data=body, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
                return response.status, response.read().decode("utf-8", "replace")
        except urllib.error.HTTPError as exc:
            with exc:
                return exc.code, exc.read().decode("utf-8", "replace")

    # -- the API ------------------------------------------------------------------------------

    def _handle(self, method: str, path: str, headers: dict[str, str], body: bytes) -> _Reply:
        record = RecordedRequest(method, path, headers, body)
        with self._lock:
            self.requests.append(record)
            reply = self._authenticate(method, path, headers, body)
            if reply is None and self._failures:
                reply = self._failures.pop(0)
            if reply is None:
                reply = self._route(method, path, body)
            record.status = reply.status
            return reply

    def _authenticate(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> _Reply | None:
        match = AUTHORIZATION.match(headers.get("authorization", ""))
        if not match:
            return _error(
                401,
                "SIGN_ERROR",
                "Http头Authorization值格式错误，请参考《微信支付商户REST API签名规则》",
            )
        params = dict(AUTH_PARAM.findall(match.group(1)))
        missing = {"mchid", "nonce_str", "signature", "timestamp", "serial_no"} - params.keys()
        if missing:
            return _error(401, "SIGN_ERROR", f"Http头Authorization缺少{','.join(sorted(missing))}")
        if params["mchid"] != self.mchid:
            return _error(401, "SIGN_ERROR", "商户号错误")
        if params["serial_no"] != self.merchant_serial_no:
            return _error(401, "SIGN_ERROR", "商户证书序列号有误。请使用签名私钥匹配的证书序列号")
        if not params["timestamp"].isdigit() or (
            abs(time.time() - int(params["timestamp"])) > MAX_REQUEST_SKEW
        ):
            return _error(401, "SIGN_ERROR", "时间戳与当前时间相差过大")
        message = f"{method}\n{path}\n{params['timestamp']}\n{params['nonce_str']}\n".encode()
        if not verify(self.merchant_key.public_key(), message + body + b"\n", params["signature"]):
            return _error(401, "SIGN_ERROR", "签名错误，请检查后再试")
        return None

    def _route(self, method: str, path: str, body: bytes) -> _Reply:
        parts = urlsplit(path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        route = parts.path
        if method == "POST" and route == "/v3/pay/transactions/jsapi":
            return self._jsapi(body)
        if method == "GET" and (
            m := re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)", route)
        ):
            return self._query(m.group(1), query)
        if method == "GET" and (m := re.fullmatch(r"/v3/pay/transactions/id/([^/]+)", route)):
            found = [no for no, t in self.trades.items() if t.transaction_id == m.group(1)]
            return self._query(found[0] if found else "", query)
        if method == "POST" and (
            m := re.fullmatch(r"/v3/pay/transactions/out-trade-no/([^/]+)/close", route)
        ):
            return self._close(m.group(1), body)
        if method == "POST" and route == "/v3/refund/domestic/refunds":
            return self._refund(body)
        if method == "GET" and (m := re.fullmatch(r"/v3/refund/domestic/refunds/([^/]+)", route)):
            refund = self.refunds.get(m.group(1))
            if refund is None:
                return _error(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
            return _Reply(200, dict(refund))
        return _error(404, "NOT_FOUND", "请求的资源不存在")

    def _jsapi(self, body: bytes) -> _Reply:
        data = _load_object(body)
        if data is None:
            return _error(400, "PARAM_ERROR", "请求体不是合法的JSON")
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url"):
            if not isinstance(data.get(name), str) or not data[name]:
                return _error(
                    400,
                    "PARAM_ERROR",
                    f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败，此字段为必填项",
                )
        amount = data.get("amount")
        total = amount.get("total") if isinstance(amount, dict) else None
        if not isinstance(total, int) or isinstance(total, bool) or total <= 0:
            return _error(400, "PARAM_ERROR", "订单金额必须为大于0的整数（单位：分）")
        if amount.get("currency", "CNY") != "CNY":
            return _error(400, "PARAM_ERROR", "币种只能为CNY")
        payer = data.get("payer")
        if not isinstance(payer, dict) or not payer.get("openid"):
            return _error(400, "PARAM_ERROR", "JSAPI下单缺少payer.openid")
        if data["mchid"] != self.mchid:
            return _error(400, "PARAM_ERROR", "请求参数mchid与Authorization中的商户号不一致")
        if data["appid"] != self.appid:
            return _error(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        if not OUT_TRADE_NO.match(data["out_trade_no"]):
            return _error(400, "PARAM_ERROR", "商户订单号只能是6-32位数字、大小写字母_-|*")
        if len(data["description"]) > 127:
            return _error(400, "PARAM_ERROR", "商品描述过长")
        notify_url = data["notify_url"]
        if not notify_url.startswith("https://") or "?" in notify_url:
            return _error(400, "PARAM_ERROR", "notify_url必须为https地址，且不能携带参数")
        if "time_expire" in data:
            try:
                expire = datetime.fromisoformat(data["time_expire"])
            except (TypeError, ValueError):
                expire = None
            if expire is None or expire.tzinfo is None:
                return _error(400, "PARAM_ERROR", "time_expire格式错误，应为RFC3339格式")

        no = data["out_trade_no"]
        trade = self.trades.get(no)
        if trade is not None:
            if trade.state in ("SUCCESS", "REFUND"):
                return _error(400, "ORDERPAID", "该订单已支付")
            if trade.state == "CLOSED":
                return _error(400, "ORDER_CLOSED", "订单已关闭")
            if _trade_key(trade.params) != _trade_key(data):
                return _error(400, "INVALID_REQUEST", "201 商户订单号重复")
            return _Reply(200, {"prepay_id": trade.prepay_id})
        prepay_id = (
            "wx" + self.clock().astimezone(SHANGHAI).strftime("%d%H%M%S") + secrets.token_hex(13)
        )
        self.trades[no] = _Trade(params=data, prepay_id=prepay_id)
        return _Reply(200, {"prepay_id": prepay_id})

    def _query(self, out_trade_no: str, query: dict[str, str]) -> _Reply:
        if query.get("mchid") != self.mchid:
            return _error(400, "PARAM_ERROR", "mchid参数错误")
        if out_trade_no not in self.trades:
            return _error(404, "ORDER_NOT_EXIST", "订单不存在")
        return _Reply(200, self._transaction(out_trade_no))

    def _close(self, out_trade_no: str, body: bytes) -> _Reply:
        data = _load_object(body)
        if data is None or data.get("mchid") != self.mchid:
            return _error(400, "PARAM_ERROR", "mchid参数错误")
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return _error(404, "ORDER_NOT_EXIST", "订单不存在")
        if trade.state in ("SUCCESS", "REFUND"):
            return _error(400, "ORDERPAID", "订单已支付")
        trade.state = "CLOSED"
        return _Reply(204)

    def _refund(self, body: bytes) -> _Reply:
        data = _load_object(body)
        if data is None:
            return _error(400, "PARAM_ERROR", "请求体不是合法的JSON")
        out_refund_no = data.get("out_refund_no")
        if not isinstance(out_refund_no, str) or not OUT_REFUND_NO.match(out_refund_no):
            return _error(400, "PARAM_ERROR", "商户退款单号格式错误")
        amount = data.get("amount")
        if not isinstance(amount, dict):
            return _error(400, "PARAM_ERROR", "缺少amount")
        refund_fen, total = amount.get("refund"), amount.get("total")
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (refund_fen, total)):
            return _error(400, "PARAM_ERROR", "退款金额和原订单金额必须为整数（单位：分）")
        if amount.get("currency") != "CNY":
            return _error(400, "PARAM_ERROR", "退款币种只能为CNY")
        if len(data.get("reason") or "") > 80:
            return _error(400, "PARAM_ERROR", "退款原因过长")
        if data.get("transaction_id"):
            found = [
                n for n, t in self.trades.items() if t.transaction_id == data["transaction_id"]
            ]
            out_trade_no = found[0] if found else ""
        else:
            out_trade_no = data.get("out_trade_no") or ""
        trade = self.trades.get(out_trade_no)
        if trade is None:
            return _error(404, "RESOURCE_NOT_EXISTS", "订单不存在")

        earlier = self.refunds.get(out_refund_no)
        if earlier is not None:
            if earlier["out_trade_no"] != out_trade_no or earlier["amount"]["refund"] != refund_fen:
                return _error(400, "INVALID_REQUEST", "退款单号已存在，且请求参数与原请求不一致")
            return _Reply(200, dict(earlier))

        if trade.state not in ("SUCCESS", "REFUND"):
            return _error(400, "INVALID_REQUEST", "订单未支付，不能退款")
        if total != trade.total:
            return _error(400, "INVALID_REQUEST", "订单金额与原订单金额不一致")
        refunded = sum(
            self.refunds[r]["amount"]["refund"]
            for r in trade.refunds
            if self.refunds[r]["status"] != "CLOSED"
        )
        if refund_fen <= 0 or refund_fen > total - refunded:
            return _error(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")

        now = self.clock()
        payer_refund = min(refund_fen, trade.payer_total or 0)
        refund = {
            "refund_id": "50" + _digits(27),
            "out_refund_no": out_refund_no,
            "transaction_id": trade.transaction_id,
            "out_trade_no": out_trade_no,
            "channel": "ORIGINAL",
            "user_received_account": "支付用户零钱",
            "create_time": rfc3339(now),
            "status": self.refund_status,
            "funds_account": "AVAILABLE",
            "amount": {
                "total": total,
                "refund": refund_fen,
                "payer_total": trade.payer_total,
                "payer_refund": payer_refund,
                "settlement_refund": refund_fen,
                "settlement_total": total,
                "discount_refund": refund_fen - payer_refund,
                "currency": "CNY",
                "refund_fee": 0,
            },
            "promotion_detail": [],
        }
        if self.refund_status == "SUCCESS":
            refund["success_time"] = rfc3339(now)
        self.refunds[out_refund_no] = refund
        trade.refunds.append(out_refund_no)
        trade.state = "REFUND"
        return _Reply(200, dict(refund))

    def _transaction(self, out_trade_no: str) -> dict[str, Any]:
        """The trade as the query API reports it (and, decrypted, a notification)."""
        trade = self.trades[out_trade_no]
        data: dict[str, Any] = {
            "appid": trade.params["appid"],
            "mchid": trade.params["mchid"],
            "out_trade_no": out_trade_no,
            "trade_state": trade.state,
            "trade_state_desc": TRADE_STATE_DESC[trade.state],
        }
        if trade.transaction_id:
            data.update(
                transaction_id=trade.transaction_id,
                trade_type="JSAPI",
                bank_type="OTHERS",
                attach="",
                success_time=rfc3339(trade.success_time) if trade.success_time else None,
                payer={"openid": trade.params["payer"]["openid"]},
                amount={
                    "total": trade.total,
                    "payer_total": trade.payer_total,
                    "currency": "CNY",
                    "payer_currency": "CNY",
                },
            )
        else:
            # An unpaid trade: WeChat leaves out the payer, transaction_id and the currency.
            data["amount"] = {"total": trade.total, "payer_currency": "CNY"}
        return data

    # -- signing answers ----------------------------------------------------------------------

    def _platform_certificate(self) -> tuple[rsa.RSAPrivateKey, str]:
        """The key and serial of the older platform certificate (made when first needed)."""
        with self._lock:
            if self._certificate is None:
                self._certificate = (make_merchant_key(), secrets.token_hex(20).upper())
            return self._certificate

    def _signature_headers(
        self,
        body: bytes,
        *,
        timestamp: int | None = None,
        key: rsa.RSAPrivateKey | None = None,
        serial: str | None = None,
        request_id: bool = True,
    ) -> dict[str, str]:
        timestamp = int(time.time()) if timestamp is None else timestamp
        nonce = secrets.token_hex(16).upper()
        message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
        headers = {
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Signature": sign(key or self.platform_key, message),
            "Wechatpay-Timestamp": str(timestamp),
            "Wechatpay-Serial": serial or self.public_key_id,
            "Wechatpay-Signature-Type": SIGNATURE_TYPE,
        }
        if request_id:
            headers["Request-ID"] = "08" + secrets.token_hex(20).upper()
        return headers

    def _response_headers(self, body: bytes, request_serial: str) -> dict[str, str]:
        """Signature headers for an answer. WeChat signs with the platform public key's
        private half only when the request names its id in Wechatpay-Serial; otherwise with
        the platform certificate's key, under the certificate's serial (see WxJava #3548)."""
        if request_serial == self.public_key_id:
            headers = self._signature_headers(body, serial=self.response_serial)
        else:
            key, serial = self._platform_certificate()
            headers = self._signature_headers(body, key=key, serial=serial)
        if self.corrupt_signatures:
            message = f"{headers['Wechatpay-Timestamp']}\n{headers['Wechatpay-Nonce']}\n"
            headers["Wechatpay-Signature"] = sign(self.platform_key, message + "{}\n")
        return headers


def _dump(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


def _load_object(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    return data if isinstance(data, dict) else None


def _trade_key(params: dict[str, Any]) -> tuple[Any, ...]:
    return (params["description"], params["amount"]["total"], params["payer"]["openid"])


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: WechatPayFake


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    server_version = "nginx"
    sys_version = ""

    def do_GET(self) -> None:  # noqa: N802
        self._answer("GET")

    def do_POST(self) -> None:  # noqa: N802
        self._answer("POST")

    def _answer(self, method: str) -> None:
        fake = self.server.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {name.lower(): value for name, value in self.headers.items()}
        try:
            reply = fake._handle(method, self.path, headers, body)
        except Exception as exc:  # a bug in the fake: answer, and keep it for the test
            fake.errors.append(exc)
            reply = _error(500, "SYSTEM_ERROR", f"fake: {exc!r}")
        payload = b"" if reply.payload is None else _dump(reply.payload)
        self.send_response(reply.status)
        if payload:
            self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        serial = headers.get("wechatpay-serial", "")
        for name, value in fake._response_headers(payload, serial).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
        pass  # the record is `fake.requests`
