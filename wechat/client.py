"""Calls to WeChat's public-platform API, at `WECHAT_API_BASE` (tests point it at a fake).

WeChat answers with JSON that carries `errcode` and `errmsg` on failure; that becomes
`WeChatError`. A network failure, a timeout, a 5xx or an answer that is not JSON becomes
`WeChatDown`. Nothing here writes to the database.
"""

from __future__ import annotations

import json
import logging
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import urlencode

from flask import current_app

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 5


class WeChatError(Exception):
    """WeChat said no: `errcode` and `errmsg` as it sent them."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        self.errcode = errcode
        self.errmsg = errmsg
        super().__init__(f"WeChat error {errcode}: {errmsg}")


class WeChatDown(Exception):
    """WeChat could not be reached, or answered with something that is not its API."""


def login_enabled() -> bool:
    config = current_app.config
    return bool(config["WECHAT_APPID"] and config["WECHAT_SECRET"])


def get(path: str, **params: str) -> dict[str, Any]:
    """GET an API path with query parameters; the JSON answer, or an exception."""
    url = current_app.config["WECHAT_API_BASE"].rstrip("/") + path + "?" + urlencode(params)
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT_SECONDS) as response:  # noqa: S310
            raw = response.read(1024 * 1024)
    except urllib.error.HTTPError as error:
        error.close()  # it holds the connection
        log.warning("wechat: %s answered HTTP %s", path, error.code)
        raise WeChatDown(f"HTTP {error.code}") from None
    except (urllib.error.URLError, TimeoutError, OSError) as error:
        log.warning("wechat: %s unreachable: %s", path, error)
        raise WeChatDown(str(error)) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise WeChatDown("the answer is not JSON") from None
    if not isinstance(answer, dict):
        raise WeChatDown("the answer is not a JSON object")
    errcode = answer.get("errcode") or 0
    if errcode:
        log.warning("wechat: %s errcode %s %s", path, errcode, answer.get("errmsg"))
        raise WeChatError(int(errcode), str(answer.get("errmsg", "")))
    return answer
