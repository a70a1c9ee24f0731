"""Uploaded images and morning voices: checked by content, stored once, served with Range; and
the feeds (RSS, the public podcast and a member's private podcast)."""

from __future__ import annotations

import os
import struct
import xml.etree.ElementTree as ET
import zlib
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from app import db
from content import articles, feeds, media
from content.articles import Draft
from content.media import MediaError
from content.models import Media
from tests.conftest import html, post_form

FIXTURES = Path(__file__).parent / "fixtures"
ITUNES = "{http://www.itunes.com/dtds/podcast-1.0.dtd}"


def image_bytes(fmt: str = "PNG", size: tuple[int, int] = (2000, 1000), **save) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (200, 120, 40)).save(out, fmt, **save)
    return out.getvalue()


def media_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Media)) or 0


@pytest.fixture
def voiced(app):
    """Publish an article with the fixture voice; returns (slug, voice URL)."""

    def make(visibility="public", name="tone.mp3", **fields):
        with app.app_context(), open(FIXTURES / name, "rb") as f:
            voice = media.save_audio(f)
            article = articles.save_article(
                Draft(
                    title=fields.pop("title", "罗辑思维的晨读"),
                    body_md="第一段。\n\n<!--more-->\n\n会员段落。",
                    status="published",
                    visibility=visibility,
                    voice_id=voice.id,
                    **fields,
                )
            )
            return article.slug, f"/voice/{voice.key}.{voice.ext}"

    return make


# --- images ------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_images_are_stored_at_most_1080_wide_with_their_size(app, fmt):
    with app.app_context():
        kept = media.save_image(BytesIO(image_bytes(fmt)))
        assert (kept.width, kept.height) == (1080, 540)
        with Image.open(media.path_of(kept)) as stored:
            assert stored.format == fmt and stored.size == (1080, 540)


def test_a_small_image_keeps_its_size_and_loses_its_metadata(app):
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"  # Make
    data = image_bytes("JPEG", (640, 480), exif=exif)
    with app.app_context():
        kept = media.save_image(BytesIO(data))
        assert (kept.width, kept.height) == (640, 480)
        with Image.open(media.path_of(kept)) as stored:
            assert not stored.getexif()


def test_the_same_image_twice_is_stored_once(app):
    data = image_bytes()
    with app.app_context():
        first = media.save_image(BytesIO(data))
        second = media.save_image(BytesIO(data))
        assert first.id == second.id and media_count() == 1


@pytest.mark.parametrize(
    "data",
    [
        b"GIF89a" + b"\x00" * 100,  # a GIF is not on the list
        b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>",
        b"hello, not an image",
        b"",
    ],
    ids=["gif", "svg", "text", "empty"],
)
def test_files_that_are_not_allowed_images_are_refused_and_not_stored(app, data):
    with app.app_context():
        with pytest.raises(MediaError) as refused:
            media.save_image(BytesIO(data))
        assert refused.value.status == 422 and media_count() == 0


def test_a_truncated_image_is_refused(app):
    data = image_bytes("PNG", (400, 400))
    with app.app_context(), pytest.raises(MediaError) as refused:
        media.save_image(BytesIO(data[: len(data) // 2]))
    assert "损坏" in refused.value.message


def test_an_image_named_png_but_holding_a_script_is_refused(app):
    with app.app_context(), pytest.raises(MediaError):
        media.save_image(BytesIO(b"<script>alert(1)</script>" * 10))


def test_an_oversized_image_is_413_and_not_stored(app):
    app.config["IMAGE_MAX_BYTES"] = 1000
    with app.app_context():
        with pytest.raises(MediaError) as refused:
            media.save_image(BytesIO(image_bytes("PNG", (200, 200)) + os.urandom(2000)))
        assert refused.value.status == 413 and media_count() == 0


def test_a_decompression_bomb_is_refused(app):
    # A tiny PNG whose header claims 30000 x 30000 pixels (the CRC made to match).
    data = bytearray(image_bytes("PNG", (10, 10)))
    data[16:24] = struct.pack(">II", 30000, 30000)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    with app.app_context(), pytest.raises(MediaError):
        media.save_image(BytesIO(bytes(data)))


def test_uploaded_images_in_markdown_get_width_and_height(app, client):
    with app.app_context():
        kept = media.save_image(BytesIO(image_bytes()))
        article = articles.save_article(
            Draft(title="有图", body_md=f"![图](/media/{kept.key}.{kept.ext})", status="published")
        )
        slug = article.slug
    img = html(client.get(f"/a/{slug}")).select_one(".prose img")
    assert img["width"] == "1080" and img["height"] == "540" and img["loading"] == "lazy"
    response = client.get(img["src"])
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert "immutable" in response.headers["Cache-Control"]


def test_a_cover_image_is_shown_and_used_for_the_share_card(app, client):
    with app.app_context():
        cover = media.save_image(BytesIO(image_bytes("JPEG")))
        slug = articles.save_article(
            Draft(title="封面", body_md="正文", status="published", cover_id=str(cover.id))
        ).slug
        url = f"/media/{cover.key}.jpg"
    page = html(client.get(f"/a/{slug}"))
    assert page.select_one("img.cover")["src"] == url
    assert page.select_one("meta[property='og:image']")["content"].endswith(url)


def test_a_voice_as_cover_is_refused(app):
    with app.app_context(), open(FIXTURES / "tone.mp3", "rb") as f:
        voice = media.save_audio(f)
        with pytest.raises(articles.ArticleError) as refused:
            articles.save_article(Draft(title="错", cover_id=voice.id))
        assert "cover_id" in refused.value.errors


# --- voices ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "ext", "content_type"),
    [
        ("tone.mp3", "mp3", "audio/mpeg"),
        ("tone.m4a", "m4a", "audio/mp4"),
        ("tone.ogg", "ogg", "audio/ogg"),
        ("tone.wav", "wav", "audio/wav"),
    ],
)
def test_voices_are_recognised_by_content_with_their_duration(app, name, ext, content_type):
    with app.app_context(), open(FIXTURES / name, "rb") as f:
        kept = media.save_audio(f)
        assert (kept.ext, kept.content_type) == (ext, content_type)
        assert 1900 <= kept.duration_ms <= 2200
        assert media.path_of(kept).read_bytes() == (FIXTURES / name).read_bytes()


@pytest.mark.parametrize(
    "data",
    [
        os.urandom(4096),
        b"\xff\xfb" + os.urandom(4096),  # an MP3 frame sync followed by noise
        (FIXTURES / "silent-video.mp4").read_bytes(),  # MP4 with no sound
        b"ID3" + b"\x00" * 50,
    ],
    ids=["noise", "fake-sync", "video", "bare-id3"],
)
def test_files_that_are_not_audio_are_refused(app, data):
    with app.app_context():
        with pytest.raises(MediaError) as refused:
            media.save_audio(BytesIO(data))
        assert refused.value.status == 422 and media_count() == 0


def test_an_oversized_voice_is_413_and_not_stored(app):
    app.config["AUDIO_MAX_BYTES"] = 4000
    with app.app_context(), open(FIXTURES / "tone.mp3", "rb") as f:
        with pytest.raises(MediaError) as refused:
            media.save_audio(f)
        assert refused.value.status == 413 and "不能超过 3 KB" in refused.value.message
        assert media_count() == 0


def test_range_request_on_a_public_voice_gives_206(client, voiced):
    slug, url = voiced()
    size = (FIXTURES / "tone.mp3").stat().st_size
    response = client.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206
    assert response.headers["Content-Range"] == f"bytes 0-99/{size}"
    assert len(response.data) == 100
    assert response.data == (FIXTURES / "tone.mp3").read_bytes()[:100]
    assert response.headers["Accept-Ranges"] == "bytes"
    assert response.headers["Cache-Control"] == "public, max-age=86400"
    tail = client.get(url, headers={"Range": "bytes=-10"})
    assert tail.status_code == 206 and len(tail.data) == 10


def test_a_range_past_the_end_is_416(client, voiced):
    _, url = voiced()
    size = (FIXTURES / "tone.mp3").stat().st_size
    response = client.get(url, headers={"Range": f"bytes={size + 10}-{size + 20}"})
    assert response.status_code == 416
    assert response.headers["Content-Range"] == f"bytes */{size}"


def test_a_members_only_voice_is_403_for_anonymous_and_non_members(
    app, client, voiced, make_user, login
):
    from members import accounts

    slug, url = voiced(visibility="members")
    assert client.get(url, headers={"Range": "bytes=0-99"}).status_code == 403
    make_user("reader@example.com")
    login("reader@example.com")
    assert client.get(url).status_code == 403
    page = html(client.get(f"/a/{slug}"))
    assert page.select_one(".voice audio") is None  # not even linked
    assert "会员可听" in page.select_one(".voice").get_text()
    with app.app_context():
        accounts.grant_membership("reader@example.com", "年度会员", 365)
    response = client.get(url, headers={"Range": "bytes=0-99"})
    assert response.status_code == 206 and response.headers["Cache-Control"].startswith("private")


def test_an_unpublished_voice_is_404_for_readers(app, client):
    with app.app_context(), open(FIXTURES / "tone.mp3", "rb") as f:
        voice = media.save_audio(f)
        url = f"/voice/{voice.key}.mp3"
    assert client.get(url).status_code == 404
    assert client.get(url.replace(".mp3", ".wav")).status_code == 404


def test_the_player_shows_duration_and_speed_buttons(client, voiced):
    slug, url = voiced()
    box = html(client.get(f"/a/{slug}")).select_one(".voice")
    audio = box.select_one("audio")
    assert audio["src"] == url and audio["preload"] == "none" and audio.has_attr("controls")
    assert "0:02" in box.get_text()
    assert [b.get_text() for b in box.select("button[data-speed]")] == ["1×", "1.5×", "2×"]
    home = html(client.get("/")).select_one(".today .voice audio")
    assert home is not None and home["src"] == url


# --- feeds -------------------------------------------------------------------------------


def parse_rss(response) -> ET.Element:
    assert response.status_code == 200
    assert response.mimetype == "application/rss+xml"
    root = ET.fromstring(response.data)  # noqa: S314 (our own feed)
    assert root.tag == "rss" and root.get("version") == "2.0"
    assert root.find("channel/title") is not None
    return root


def test_feed_xml_lists_public_articles_only(client, voiced):
    voiced(title="公开的一篇")
    voiced(title="会员的一篇", visibility="members", name="tone.wav")
    root = parse_rss(client.get("/feed.xml"))
    titles = [t.text for t in root.iterfind("channel/item/title")]
    assert titles == ["公开的一篇"]
    item = root.find("channel/item")
    assert item.find("link").text.startswith("http://localhost/a/")
    assert item.find("pubDate").text.endswith("GMT")


def test_podcast_xml_has_enclosures_and_itunes_tags(client, voiced):
    _, url = voiced()
    voiced(title="会员语音", visibility="members", name="tone.wav")
    root = parse_rss(client.get("/podcast.xml"))
    items = root.findall("channel/item")
    assert len(items) == 1
    enclosure = items[0].find("enclosure")
    assert enclosure.get("url") == "http://localhost" + url
    assert enclosure.get("type") == "audio/mpeg"
    assert int(enclosure.get("length")) == (FIXTURES / "tone.mp3").stat().st_size
    assert items[0].find(f"{ITUNES}duration").text == "2"
    assert root.find(f"channel/{ITUNES}image").get("href").startswith("http://localhost/")


def test_a_members_private_feed_works_with_its_token_and_stops_when_revoked(
    app, client, voiced, make_user, login
):
    from members import accounts

    voiced(title="公开语音")
    _, members_url = voiced(title="会员语音", visibility="members", name="tone.wav")
    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 365)
    login("member@example.com")
    assert post_form(client, "/me/podcast", {}, token_from="/me").status_code == 302
    field = html(client.get("/me")).select_one("#podcast-url")
    feed_url = field["value"].removeprefix("http://localhost")
    assert feed_url.startswith("/podcast/")

    listener = app.test_client()  # a podcast app: no cookies
    root = parse_rss(listener.get(feed_url))
    enclosures = {i.find("title").text: i.find("enclosure").get("url") for i in root.iter("item")}
    assert set(enclosures) == {"公开语音", "会员语音"}
    private_voice = enclosures["会员语音"].removeprefix("http://localhost")
    assert private_voice.startswith(members_url + "?t=")
    assert listener.get(private_voice).status_code == 200
    assert listener.get(members_url).status_code == 403

    assert post_form(client, "/me/podcast/revoke", {}, token_from="/me").status_code == 302
    assert listener.get(feed_url).status_code == 404
    assert listener.get(private_voice).status_code == 403
    assert html(client.get("/me")).select_one("#podcast-url") is None


def test_regenerating_the_private_feed_stops_the_old_url(app, client, make_user, login):
    make_user("editor@example.com", role="editor")
    login("editor@example.com")
    post_form(client, "/me/podcast", {}, token_from="/me")
    first = html(client.get("/me")).select_one("#podcast-url")["value"]
    post_form(client, "/me/podcast", {}, token_from="/me")
    second = html(client.get("/me")).select_one("#podcast-url")["value"]
    assert first != second
    assert client.get(first.removeprefix("http://localhost")).status_code == 404
    assert client.get(second.removeprefix("http://localhost")).status_code == 200


@pytest.mark.parametrize(
    "token", ["1.forged", "999.0123456789abcdef0123456789abcdef", "x" * 200, "abc", "1."]
)
def test_forged_private_feed_tokens_are_404(client, token):
    assert client.get(f"/podcast/{token}.xml").status_code == 404


def test_a_private_feed_stops_when_the_membership_ends(app, client, clock, make_user):
    from members import accounts
    from members.models import User

    make_user("member@example.com")
    with app.app_context():
        accounts.grant_membership("member@example.com", "年度会员", 30)
        user = db.session.scalar(select(User).where(User.email == "member@example.com"))
        token = feeds.issue_token(user)
    assert client.get(f"/podcast/{token}.xml").status_code == 200
    clock.advance(days=31)
    assert client.get(f"/podcast/{token}.xml").status_code == 404


def test_a_non_member_cannot_create_a_private_feed(client, make_user, login):
    make_user()
    login()
    assert html(client.get("/me")).select_one("#podcast") is None
    assert post_form(client, "/me/podcast", {}, token_from="/me").status_code == 403


@pytest.mark.parametrize("token", ["².x", "9" * 30 + ".x", "-1.x", "1e3.x"])
def test_odd_token_ids_are_404_not_500(client, voiced, token):
    _, url = voiced(visibility="members")
    assert client.get(f"/podcast/{token}.xml").status_code == 404
    assert client.get(f"{url}?t={token}").status_code == 403


def test_control_characters_never_break_the_feeds(app, client):
    with app.app_context():
        articles.save_article(
            Draft(
                title="退格\x08标题",
                summary="摘\x0b要",
                body_md="正文\x08里有控制字符。",
                status="published",
            )
        )
    root = parse_rss(client.get("/feed.xml"))
    assert root.find("channel/item/title").text == "退格标题"


def test_og_description_falls_back_to_the_preview(app, client):
    with app.app_context():
        slug = articles.save_article(
            Draft(
                title="无摘要",
                body_md="开头的话。\n\n<!--more-->\n\n秘密。",
                status="published",
                visibility="members",
            )
        ).slug
    meta = html(client.get(f"/a/{slug}")).select_one("meta[property='og:description']")
    assert meta["content"] == "开头的话。"
