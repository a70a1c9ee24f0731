"""Members' markdown to safe HTML.

Two walls. Python-Markdown is told to treat raw HTML as text (its HTML block and inline
patterns are removed), so `<script>` typed into a post is shown, never parsed. Then nh3 keeps
only a short allow-list: no event handlers, no `style`, no `hx-*`, only http(s) and mailto
links (with rel="nofollow ugc noopener"), and images only from this site's uploads
(`/media/<hash>.<ext>`), so a post can make no reader's browser ask another host for anything.
Templates also wrap every post in `hx-disable`, so htmx never acts on what is inside.
"""

from __future__ import annotations

import re

import markdown
import nh3

TAGS = {
    "p", "br", "hr", "h3", "h4", "strong", "em", "del", "code", "pre", "blockquote", "ul", "ol",
    "li", "a", "img", "table", "thead", "tbody", "tr", "th", "td",
}  # fmt: skip
ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title", "loading"},
    "th": {"align"},
    "td": {"align"},
}
MEDIA_SRC = re.compile(r"/media/[0-9a-f]{40}\.(?:jpg|png|webp)")
ALIGN = {"left", "right", "center"}


def _keep(tag: str, name: str, value: str) -> str | None:
    if tag == "img" and name == "src":
        return value if MEDIA_SRC.fullmatch(value) else None
    if tag == "img" and name == "loading":
        return "lazy"
    if name == "align":
        return value if value in ALIGN else None
    return value


def _markdown() -> markdown.Markdown:
    md = markdown.Markdown(
        extensions=["tables", "fenced_code", "sane_lists"],
        extension_configs={"tables": {"use_align_attribute": True}},
        output_format="html",
    )
    # Raw HTML is text in a member's post: neither blocks nor inline tags are passed through.
    md.preprocessors.deregister("html_block")
    md.inlinePatterns.deregister("html")
    return md


def render(source: str) -> str:
    """The HTML of a post written in markdown: safe to put in any page."""
    html = _markdown().convert(source.replace("\r\n", "\n"))
    return nh3.clean(
        html,
        tags=TAGS,
        clean_content_tags={"script", "style"},
        attributes=ATTRIBUTES,
        attribute_filter=_keep,
        url_schemes={"http", "https", "mailto"},
        link_rel="nofollow ugc noopener",
        strip_comments=True,
    )
