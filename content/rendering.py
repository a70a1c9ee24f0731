"""Markdown to safe HTML, done once when an article is saved.

Python-Markdown (tables, fenced code, footnotes) renders, then nh3 keeps only an allow-list:
an editor's account can be stolen, so an article must never carry script, event handlers,
`javascript:` or `data:` URLs, `hx-*` attributes or images from other hosts. Block shortcodes
such as `[[product:SLUG]]` are swapped in after cleaning by renderers that the features
register (see `register_shortcode`), so trusted markup may carry what authors may not.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from html import escape
from html.parser import HTMLParser
from typing import TYPE_CHECKING

import markdown
import nh3
from flask import current_app
from markdown.extensions import Extension
from markdown.treeprocessors import Treeprocessor
from sqlalchemy import select

from app import db

if TYPE_CHECKING:
    from xml.etree.ElementTree import Element

MORE_MARKER = re.compile(r"^[ \t]*<!--\s*more\s*-->[ \t]*$", re.M)
SHORTCODE = re.compile(r"^[ \t]*\[\[([a-z]+):([A-Za-z0-9][A-Za-z0-9_-]{0,119})\]\][ \t]*$", re.M)
PREVIEW_PARAGRAPHS = 3

ALLOWED_TAGS = {
    "p", "br", "hr", "h1", "h2", "h3", "h4", "h5", "h6", "strong", "em", "b", "i", "del", "s",
    "code", "pre", "blockquote", "ul", "ol", "li", "a", "img", "table", "thead", "tbody", "tr",
    "th", "td", "sup", "sub", "div", "span", "dl", "dt", "dd", "abbr",
}  # fmt: skip
ALLOWED_ATTRIBUTES = {
    "a": {"href", "title", "class"},
    "img": {"src", "alt", "title", "width", "height", "loading"},
    "th": {"align"},
    "td": {"align"},
    "abbr": {"title"},
    "code": {"class"},
    "div": {"class"},
    "span": {"class"},
    "sup": {"id"},
    "li": {"id"},
}
SAFE_ID = re.compile(r"^fn(ref)?:[\w-]{1,40}$")  # footnotes' ids; nothing that clobbers ours
SAFE_CLASS = re.compile(r"^(footnote|footnote-ref|footnote-backref|language-[\w+-]{1,30})$")


def _keep_attribute(tag: str, name: str, value: str) -> str | None:
    if name == "id":
        return value if SAFE_ID.match(value) else None
    if name == "class":
        kept = [c for c in value.split() if SAFE_CLASS.match(c)]
        return " ".join(kept) or None
    if tag == "img" and name in ("width", "height"):
        return value if re.fullmatch(r"[1-9][0-9]{0,3}", value) else None
    if tag == "img" and name == "loading":
        return "lazy"
    if tag == "img" and name == "src":
        # Only our own files: no request to another host, no data: URLs.
        return value if value.startswith("/") and not value.startswith(("//", "/\\")) else None
    return value


def clean_html(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=ALLOWED_ATTRIBUTES,
        attribute_filter=_keep_attribute,
        url_schemes={"http", "https", "mailto"},
        link_rel="noopener noreferrer",
    )


# --- shortcodes --------------------------------------------------------------------------

ShortcodeRenderer = Callable[[str], str]


def link_only_product(slug: str) -> str:
    """The product shortcode until the shop registers its card: a plain link."""
    href = f"/shop/p/{escape(slug)}"
    return f'<p class="product-link"><a href="{href}">查看商品</a></p>'


def shortcode_renderers() -> dict[str, ShortcodeRenderer]:
    return current_app.extensions.setdefault("shortcodes", {"product": link_only_product})


def register_shortcode(name: str, renderer: ShortcodeRenderer) -> None:
    """Let a feature render `[[name:slug]]` blocks (its output is trusted markup)."""
    shortcode_renderers()[name] = renderer


# --- rendering ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Rendered:
    html: str  # the whole article
    preview_html: str  # what everyone may read of a members-only article
    has_more: bool  # whether the preview leaves anything out


MEDIA_SRC = re.compile(r"^/media/([0-9a-f]{40})\.[a-z0-9]{2,5}$")


class _ImageSizes(Treeprocessor):
    """Gives our uploaded images their width and height, so nothing shifts as they load."""

    def run(self, root: Element) -> None:
        from content.models import Media

        images = [(img, MEDIA_SRC.match(img.get("src", ""))) for img in root.iter("img")]
        keys = {m.group(1) for _, m in images if m}
        if not keys:
            return
        sizes = {
            key: (w, h)
            for key, w, h in db.session.execute(
                select(Media.key, Media.width, Media.height).where(Media.key.in_(keys))
            )
        }
        for img, match in images:
            size = sizes.get(match.group(1)) if match else None
            if size and size[0] and size[1]:
                img.set("width", str(size[0]))
                img.set("height", str(size[1]))
            img.set("loading", "lazy")


class _ImageSizeExtension(Extension):
    def extendMarkdown(self, md: markdown.Markdown) -> None:  # noqa: N802 (Markdown's API)
        md.treeprocessors.register(_ImageSizes(md), "image_sizes", 0)


def _to_html(source: str) -> str:
    md = markdown.Markdown(
        extensions=["tables", "fenced_code", "footnotes", _ImageSizeExtension()],
        extension_configs={"tables": {"use_align_attribute": True}},
        output_format="html",
    )
    nonce = secrets.token_hex(8)
    found: list[tuple[str, str]] = []

    def hold(match: re.Match[str]) -> str:
        found.append((match.group(1), match.group(2)))
        return f"\n\nSHORTCODE{nonce}N{len(found) - 1}\n\n"

    html = clean_html(md.convert(SHORTCODE.sub(hold, source)))
    renderers = shortcode_renderers()
    for i, (name, slug) in enumerate(found):
        renderer = renderers.get(name)
        replacement = renderer(slug) if renderer else ""
        html = html.replace(f"<p>SHORTCODE{nonce}N{i}</p>", replacement)
    return html


class _TopLevelBlocks(HTMLParser):
    """Where each top-level element of an HTML fragment ends (as offsets into it)."""

    VOID = {"br", "hr", "img", "input", "meta", "link", "source", "wbr"}

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=False)
        # HTMLParser counts lines by "\n" alone (not by every break splitlines() knows).
        self.line_starts = [0]
        for line in html.split("\n")[:-1]:
            self.line_starts.append(self.line_starts[-1] + len(line) + 1)
        self.depth = 0
        self.ends: list[int] = []
        self.paragraph_ends: list[int] = []  # of top-level <p> elements
        self.feed(html)
        self.close()

    def _offset(self) -> int:
        line, column = self.getpos()
        return self.line_starts[line - 1] + column

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in self.VOID:
            if self.depth == 0:
                self.ends.append(self._offset() + len(self.get_starttag_text() or ""))
            return
        self.depth += 1

    def handle_startendtag(self, tag: str, attrs: object) -> None:
        if self.depth == 0:
            self.ends.append(self._offset() + len(self.get_starttag_text() or ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        self.depth -= 1
        if self.depth == 0:
            self.ends.append(self._offset() + len(f"</{tag}>"))
            if tag == "p":
                self.paragraph_ends.append(self.ends[-1])


def render_markdown(source: str) -> Rendered:
    """Render an article body: the whole of it, and the preview a non-member may read: what
    stands above `<!--more-->`, or else everything up to the third top-level paragraph. The
    preview never holds every block: a short members-only piece without a marker shows fewer
    (at most all but its last block), so it always keeps something back."""
    source = source.replace("\r\n", "\n")
    marker = MORE_MARKER.search(source)
    if marker:
        before, after = source[: marker.start()], source[marker.end() :]
        preview = _to_html(before)
        return Rendered(_to_html(before + "\n\n" + after), preview, bool(after.strip()))
    html = _to_html(source)
    blocks = _TopLevelBlocks(html)
    ends = blocks.ends
    if not ends:
        return Rendered(html, "", bool(html.strip()))
    paragraphs = blocks.paragraph_ends
    if len(paragraphs) >= PREVIEW_PARAGRAPHS and paragraphs[PREVIEW_PARAGRAPHS - 1] < ends[-1]:
        cut = paragraphs[PREVIEW_PARAGRAPHS - 1]
    else:
        keep = min(PREVIEW_PARAGRAPHS, len(ends) - 1)
        cut = ends[keep - 1] if keep else 0
    return Rendered(html, html[:cut], True)
