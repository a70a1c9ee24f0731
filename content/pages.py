"""Whole pages kept rendered in this process, with their live parts made fresh for each answer.

A signed-in member's article page is the same for everyone of the same audience except for a
few small parts: the form token, the flashed messages, WeChat's share signature. `keep` renders
such a page once with a marker where each live part goes and remembers the pieces between the
markers; `Kept.answer` joins them with the parts made for this request. A template names a
live part with `live(name, *args)` (or `csrf_token()`, which is one); outside `keep` it is
simply the part itself.

The cache key must hold everything else the page depends on (content/views.py `article`).
"""

from __future__ import annotations

import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, g, get_flashed_messages, render_template, session
from flask_wtf.csrf import generate_csrf
from markupsafe import Markup, escape


def _notice() -> str:
    return "".join(f'<p class="flash">{escape(m)}</p>' for m in get_flashed_messages())


def _share(title: str, description: str, link: str, image: str) -> str:
    from wechat.views import wechat_share

    wx = wechat_share(title, description, link, image)  # None outside WeChat's browser
    return render_template("wechat/_share_tags.html", wx=wx) if wx else ""


# What a live part is made of: a function of the arguments the template gave it, called in
# the request being answered. Each returns HTML.
LIVE_PARTS: dict[str, Callable[..., str]] = {
    "csrf": generate_csrf,
    "notice": _notice,
    "share": _share,
}


class _Recorder:
    def __init__(self) -> None:
        # A fresh marker per rendering: text in an article cannot pose as one.
        self.marker = "live" + secrets.token_hex(8)
        self.parts: list[tuple[str, tuple]] = []

    def mark(self, name: str, args: tuple) -> str:
        self.parts.append((name, args))
        return f"{self.marker}x{len(self.parts) - 1}x"


def live(name: str, *args: object) -> Markup:
    """The live part `name` (a key of LIVE_PARTS): made now, or marked while a page is kept."""
    recorder: _Recorder | None = g.get("_live_recorder")
    if recorder is not None:
        # Markers are letters and digits only: HTML and JSON escaping leave them alone.
        return Markup(recorder.mark(name, args))  # noqa: S704
    return Markup(LIVE_PARTS[name](*args))  # noqa: S704 (each part escapes what it shows)


def form_token() -> Markup:
    """`csrf_token()` in templates: this session's form token, a live part of a kept page."""
    return live("csrf")


@dataclass(frozen=True)
class Kept:
    """A rendered page in pieces: text, and (name, args) where a live part goes."""

    pieces: tuple[str | tuple[str, tuple], ...]

    def answer(self) -> str:
        return "".join(
            piece if isinstance(piece, str) else LIVE_PARTS[piece[0]](*piece[1])
            for piece in self.pieces
        )


def keep(render: Callable[[], str]) -> Kept:
    """Render a page with `render` (render_template and the like), live parts marked."""
    recorder = _Recorder()
    outer = g.get("_live_recorder")
    g._live_recorder = recorder
    try:
        html = render()
    finally:
        g._live_recorder = outer
    # Split on the marker as plain text: a pattern made of it would be compiled anew for
    # every rendering (and fill re's cache with patterns used once).
    first, *marked = html.split(recorder.marker)
    pieces: list[str | tuple[str, tuple]] = [first] if first else []
    for text in marked:  # each is "x<number>x" (see _Recorder.mark), then the page goes on
        number, _, rest = text.removeprefix("x").partition("x")
        pieces.append(recorder.parts[int(number)])
        if rest:
            pieces.append(rest)
    return Kept(tuple(pieces))


class PageCache:
    """Kept pages by key, each for `seconds` (the micro-cache's time) in this process: a key
    holds everything the page depends on that can change sooner (the article's version)."""

    def __init__(self, size: int = 256) -> None:
        self.size = size
        self.pages: OrderedDict[tuple, tuple[float, object]] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: tuple) -> object | None:
        with self.lock:
            found = self.pages.get(key)
            if found is None or found[0] < time.monotonic():
                return None
            self.pages.move_to_end(key)
            return found[1]

    def put(self, key: tuple, page: object, seconds: float) -> None:
        if seconds <= 0:
            return
        with self.lock:
            self.pages[key] = (time.monotonic() + seconds, page)
            self.pages.move_to_end(key)
            while len(self.pages) > self.size:
                self.pages.popitem(last=False)


# A kept refusal ("sold out", "full"): it holds nothing that changes sooner.
REFUSAL_SECONDS = 60


def kept_answer(name: str, key: tuple, render: Callable[[], str], seconds: float) -> str:
    """The page `render` makes, kept under `key` in cache `name` for `seconds`, with this
    request's live parts. The key must hold all the page depends on besides the layout's
    signed-in state, which is added here from the session alone (`signed_in_layout`)."""
    key = (*key, signed_in_layout())
    found = cache(name).get(key)
    if not isinstance(found, Kept):
        found = keep(render)
        cache(name).put(key, found, seconds)
    return found.answer()


def signed_in_layout() -> bool:
    """Whether the session names a signed-in reader, without loading them: a kept page that
    is the same for everyone but for the layout's signed-in parts (the form token in htmx's
    headers, the unread count) uses this in its key. A session whose login has ended since
    gets the signed-in layout, whose parts then do nothing for it."""
    return "_user_id" in session


def cache(name: str) -> PageCache:
    """This site's cache `name` (one per app: a test's site starts empty)."""
    return current_app.extensions.setdefault(f"pages.{name}", PageCache())
