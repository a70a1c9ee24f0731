"""The editor desk: who may use it, the article form (errors kept with what was typed), uploads,
live preview, autosave, revisions and restore, and two editors saving the same article."""

from __future__ import annotations

from datetime import timedelta
from io import BytesIO
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import func, select

from app import db
from content import articles
from content.articles import Draft
from content.models import Article, ArticleRevision, Column, Media
from tests.conftest import DEFAULT_NOW, csrf_token_from, html, post_form

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def editor(client, make_user, login):
    make_user("editor@example.com", role="editor")
    login("editor@example.com")
    return client


def form_of(client, path: str) -> dict[str, str]:
    """The values a browser would submit from the article form on `path`."""
    page = html(client.get(path))
    form = page.select_one("#article-form")
    values: dict[str, str] = {}
    for field in form.select("input[name], textarea[name], select[name]"):
        name = field["name"]
        if field.name == "textarea":
            values[name] = field.get_text()
        elif field.name == "select":
            chosen = field.select_one("option[selected]") or field.select_one("option")
            values[name] = chosen["value"] if chosen else ""
        elif field.get("type") in ("radio", "checkbox"):
            if field.has_attr("checked"):
                values[name] = field["value"]
        elif field.get("type") != "file":
            values[name] = field.get("value", "")
    return values


def save(client, values: dict[str, str], **kw):
    return client.post("/editor/save", data=values, **kw)


def new_form(client, **fields) -> dict[str, str]:
    values = form_of(client, "/editor/new")
    values.update(fields)
    return values


def count(model) -> int:
    return db.session.scalar(select(func.count()).select_from(model)) or 0


# --- access ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path", ["/editor/", "/editor/new", "/editor/media", "/editor/columns", "/editor/a/1"]
)
def test_readers_get_403_and_strangers_are_sent_to_log_in(client, make_user, login, path):
    assert client.get(path).status_code == 302
    make_user()
    login()
    assert client.get(path).status_code == 403


def test_a_reader_cannot_save_through_the_desk(client, make_user, login):
    make_user()
    login()
    token = csrf_token_from(client, "/me")
    response = client.post("/editor/save", data={"csrf_token": token, "title": "x"})
    assert response.status_code == 403
    with client.application.app_context():
        assert count(Article) == 0


def test_saving_needs_the_form_token(editor):
    response = editor.post("/editor/save", data={"title": "没有令牌"})
    assert response.status_code == 400


# --- the form ----------------------------------------------------------------------------


def test_an_editor_writes_and_publishes_an_article(app, editor, client):
    values = new_form(
        editor,
        title="罗辑思维的早晨",
        summary="一段摘要",
        body_md="第一段。\n\n第二段。",
        keywords="早晨",
        column="daily",
        status="published",
    )
    response = save(editor, values)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/editor/a/")
    with app.app_context():
        article = db.session.scalar(select(Article))
        assert article.title == "罗辑思维的早晨" and article.column.slug == "daily"
        slug = article.slug
    assert client.get("/k/早晨").headers["Location"] == f"/a/{slug}"
    listed = html(editor.get("/editor/?state=published")).select(".desk-items .item-title")
    assert [t.get_text() for t in listed] == ["罗辑思维的早晨"]
    assert html(editor.get("/editor/?state=draft")).select(".desk-items .item") == []


def test_field_errors_are_shown_next_to_the_field_and_the_text_is_kept(app, editor):
    with app.app_context():
        articles.save_article(Draft(title="先来的", keywords="读书", status="published"))
    values = new_form(
        editor,
        title="",
        body_md="我辛苦写的正文，一个字都不能丢。",
        keywords="读书",
        status="scheduled",
        publish_at="明天早上",
    )
    response = save(editor, values)
    assert response.status_code == 422
    page = html(response)
    assert page.select_one("#e-title").get_text() == "请填写标题。"
    assert "发布时间的格式" in page.select_one("#e-publish_at").get_text()
    assert page.select_one("#f-body_md").get_text() == "我辛苦写的正文，一个字都不能丢。"
    assert page.select_one("#f-publish_at")["value"] == "明天早上"
    values["title"] = "后来的"
    values["publish_at"] = "2026-11-22 06:30"
    response = save(editor, values)
    assert response.status_code == 422
    page = html(response)
    assert "已被《先来的》使用" in page.select_one("#e-keywords").get_text()
    assert page.select_one("#f-keywords")["value"] == "读书"
    with app.app_context():
        assert count(Article) == 1


def test_scheduling_from_the_desk(app, editor, client, clock):
    values = new_form(
        editor, title="明早的", status="scheduled", publish_at="2026-11-22 06:30", slug="tomorrow"
    )
    assert save(editor, values).status_code == 302
    assert client.get("/a/tomorrow").status_code == 404
    items = html(editor.get("/editor/?state=scheduled")).select(".desk-items .item-title")
    assert [i.get_text() for i in items] == ["明早的"]
    clock.set(DEFAULT_NOW + timedelta(days=1))
    assert client.get("/a/tomorrow").status_code == 200


def test_the_list_filters_by_column(app, editor):
    with app.app_context():
        articles.save_article(Draft(title="每日的", column="daily"))
        articles.save_article(Draft(title="读书的", column="reading-notes"))
    items = html(editor.get("/editor/?column=daily")).select(".desk-items .item-title")
    assert [i.get_text() for i in items] == ["每日的"]
    assert editor.get("/editor/?column=nope").status_code == 404
    assert editor.get("/editor/?state=nope").status_code == 404


def test_editing_an_unknown_article_is_404(editor):
    assert editor.get("/editor/a/999").status_code == 404
    values = new_form(editor, title="x", article_id="999")
    assert save(editor, values).status_code == 404


# --- uploads with the form ---------------------------------------------------------------


def png(size=(1600, 900)) -> bytes:
    out = BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(out, "PNG")
    return out.getvalue()


def test_cover_and_voice_upload_with_the_form(app, editor, client):
    values = new_form(editor, title="有声有图", status="published", slug="av")
    data = {
        **values,
        "cover_file": (BytesIO(png()), "cover.png"),
        "voice_file": ((FIXTURES / "tone.mp3").open("rb"), "morning.mp3"),
    }
    response = save(editor, data, content_type="multipart/form-data")
    assert response.status_code == 302
    page = html(client.get("/a/av"))
    assert page.select_one("img.cover")["width"] == "1080"
    assert page.select_one(".voice audio") is not None
    edit = form_of(editor, response.headers["Location"])
    assert edit["cover_id"] and edit["voice_id"]


def test_a_bad_upload_is_422_and_nothing_is_stored(app, editor):
    values = new_form(editor, title="坏文件", body_md="正文要留着")
    data = {
        **values,
        "cover_file": (BytesIO(png()), "cover.png"),
        "voice_file": (BytesIO(b"not audio at all" * 100), "voice.mp3"),
    }
    response = save(editor, data, content_type="multipart/form-data")
    assert response.status_code == 422
    page = html(response)
    assert "不是可用的音频" in page.select_one("#e-voice_file").get_text()
    assert page.select_one("#f-body_md").get_text() == "正文要留着"
    with app.app_context():
        assert count(Article) == 0 and count(Media) == 0


def test_an_oversized_upload_is_413_and_nothing_is_stored(app, editor):
    app.config["AUDIO_MAX_BYTES"] = 2000
    values = new_form(editor, title="太大")
    data = {**values, "voice_file": ((FIXTURES / "tone.mp3").open("rb"), "voice.mp3")}
    response = save(editor, data, content_type="multipart/form-data")
    assert response.status_code == 413
    assert "不能超过" in html(response).select_one("#e-voice_file").get_text()
    with app.app_context():
        assert count(Article) == 0 and count(Media) == 0


def test_a_request_above_the_site_limit_is_413(app, editor):
    app.config["MAX_CONTENT_LENGTH"] = 10_000
    values = new_form(editor, title="巨大")
    data = {**values, "voice_file": (BytesIO(b"x" * 20_000), "big.wav")}
    response = save(editor, data, content_type="multipart/form-data")
    assert response.status_code == 413


def test_the_media_library_uploads_and_gives_markdown(app, editor):
    token = csrf_token_from(editor, "/editor/media")
    response = editor.post(
        "/editor/media",
        data={"csrf_token": token, "kind": "image", "file": (BytesIO(png()), "photo.png")},
        content_type="multipart/form-data",
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 200
    snippet = html(response).select_one("input.copy")["value"]
    assert snippet.startswith("![](/media/") and snippet.endswith(".png)")
    response = editor.post(
        "/editor/media",
        data={"csrf_token": token, "kind": "image", "file": (BytesIO(b"<svg/>"), "x.png")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    with app.app_context():
        assert count(Media) == 1


# --- preview -----------------------------------------------------------------------------


def test_live_preview_as_member_and_as_non_member(editor):
    body = "公开段落。\n\n<!--more-->\n\n会员段落。"
    token = csrf_token_from(editor, "/editor/new")
    common = {"body_md": body, "visibility": "members"}
    headers = {"HX-Request": "true", "X-CSRFToken": token}
    member = editor.post(
        "/editor/preview", data={**common, "preview_as": "member"}, headers=headers
    )
    assert "会员段落" in member.get_data(as_text=True)
    guest = editor.post("/editor/preview", data={**common, "preview_as": "guest"}, headers=headers)
    text = guest.get_data(as_text=True)
    assert "公开段落" in text and "会员段落" not in text and "仅会员可读" in text
    assert "<html" not in text


def test_preview_is_sanitised(editor):
    token = csrf_token_from(editor, "/editor/new")
    body = '<script>alert(1)</script>\n\n<img src=x onerror="alert(2)">\n\n<div hx-get="/x">x</div>'
    response = editor.post(
        "/editor/preview",
        data={"body_md": body},
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    page = html(response)
    assert page.select("script") == []
    assert all(not a.startswith(("on", "hx-")) for el in page.find_all(True) for a in el.attrs)


def test_the_desk_previews_an_unpublished_article_as_each_reader(app, editor, client):
    with app.app_context():
        article = articles.save_article(
            Draft(title="未发布", body_md="开头。\n\n<!--more-->\n\n秘密。", visibility="members")
        )
        article_id, slug = article.id, article.slug
    member = editor.get(f"/editor/a/{article_id}/view?as=member").get_data(as_text=True)
    guest = editor.get(f"/editor/a/{article_id}/view?as=guest").get_data(as_text=True)
    assert "秘密" in member and "秘密" not in guest and "开头" in guest
    assert client.get(f"/a/{slug}").status_code == 404


# --- autosave ----------------------------------------------------------------------------


def autosave(client, values: dict[str, str]):
    token = values.get("csrf_token") or csrf_token_from(client, "/editor/new")
    return client.post(
        "/editor/autosave",
        data=values,
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )


def test_autosave_creates_a_draft_then_keeps_saving_it(app, editor):
    values = new_form(editor, title="边写边存", body_md="第一稿")
    response = autosave(editor, values)
    assert response.status_code == 200
    page = html(response)
    article_id = page.select_one("#f-article_id")["value"]
    assert page.select_one("#f-article_id")["hx-swap-oob"] == "true"
    assert response.headers["HX-Replace-Url"] == f"/editor/a/{article_id}"
    values.update(
        article_id=article_id,
        base_version=page.select_one("#f-base_version")["value"],
        body_md="第二稿",
        status="published",  # autosave never publishes
    )
    page = html(autosave(editor, values))
    assert "自动保存" in page.get_text()
    with app.app_context():
        article = db.session.get(Article, int(article_id))
        assert article.body_md == "第二稿" and article.status == "draft"
        assert article.version == 2 and count(ArticleRevision) == 2


def test_autosave_without_a_title_waits(app, editor):
    page = html(autosave(editor, new_form(editor, body_md="只有正文")))
    assert "填写标题后" in page.get_text()
    with app.app_context():
        assert count(Article) == 0


def test_autosave_of_a_published_article_is_kept_as_a_revision_not_published(app, editor, client):
    with app.app_context():
        article = articles.save_article(
            Draft(title="已发布", body_md="原文", status="published", slug="live")
        ).id
    values = form_of(editor, f"/editor/a/{article}")
    values["body_md"] = "还在改的半句"
    page = html(autosave(editor, values))
    assert "点「保存」后才会生效" in page.get_text()
    assert "还在改" not in client.get("/a/live").get_data(as_text=True)
    edit = html(editor.get(f"/editor/a/{article}"))
    restore_link = edit.select_one(".flash a")
    assert restore_link is not None and "查看并恢复" in restore_link.get_text()
    revision_page = html(editor.get(restore_link["href"]))
    assert "还在改的半句" in revision_page.select_one(".source pre").get_text()
    form = revision_page.select_one("form[action$='/restore']")
    response = post_form(
        editor,
        form["action"],
        {"base_version": form.select_one("[name=base_version]")["value"]},
        token_from=restore_link["href"],
    )
    assert response.status_code == 302
    assert "还在改的半句" in client.get("/a/live").get_data(as_text=True)


# --- revisions and conflicts -------------------------------------------------------------


def test_every_save_keeps_a_revision_and_any_can_be_restored(app, editor, client):
    values = new_form(editor, title="第一版标题", body_md="第一版正文", status="published")
    location = save(editor, values).headers["Location"]
    values = form_of(editor, location)
    values.update(title="第二版标题", body_md="第二版正文")
    assert save(editor, values).status_code == 302
    article_id = int(location.rsplit("/", 1)[1])
    listing = html(editor.get(f"/editor/a/{article_id}/revisions"))
    links = listing.select(".revisions .item-link")
    assert len(links) == 2 and "第 1 版" in links[-1].get_text()
    first = links[-1]["href"]
    token_page = html(editor.get(first))
    form = token_page.select_one("form[action$='/restore']")
    response = post_form(
        editor,
        form["action"],
        {"base_version": form.select_one("[name=base_version]")["value"]},
        token_from=first,
    )
    assert response.status_code == 302
    with app.app_context():
        article = db.session.get(Article, article_id)
        assert article.title == "第一版标题" and article.version == 3
        assert count(ArticleRevision) == 3


def test_a_second_editors_stale_save_reports_a_conflict_and_both_texts_survive(
    app, client, make_user, login
):
    with app.app_context():
        article = articles.save_article(
            Draft(title="共同编辑", body_md="原文", status="published")
        ).id
    make_user("a@example.com", role="editor")
    make_user("b@example.com", role="editor")
    first = app.test_client()
    second = app.test_client()
    for who, c in (("a@example.com", first), ("b@example.com", second)):
        response = post_form(c, "/login", {"email": who, "password": "correct horse"})
        assert response.status_code == 302
    path = f"/editor/a/{article}"
    form_a = form_of(first, path)
    form_b = form_of(second, path)  # both opened version 1
    form_a["body_md"] = "甲的修改"
    assert save(first, form_a).status_code == 302
    form_b["body_md"] = "乙的修改"
    response = save(second, form_b)
    assert response.status_code == 409
    page = html(response)
    assert "甲的修改" in page.select_one("#theirs").get_text()
    assert "乙的修改" in page.select_one("#mine").get_text()
    with app.app_context():
        saved = db.session.get(Article, article)
        assert saved.body_md == "甲的修改" and saved.version == 2
        kept = db.session.scalar(select(ArticleRevision).where(ArticleRevision.note == "conflict"))
        assert kept.body_md == "乙的修改"
    # The second editor chooses their own text: it becomes version 3.
    form = page.select_one("#mine form")
    response = second.post(
        form["action"],
        data={
            "csrf_token": form.select_one("[name=csrf_token]")["value"],
            "base_version": form.select_one("[name=base_version]")["value"],
        },
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Article, article).body_md == "乙的修改"


def test_autosave_conflict_keeps_the_text_and_links_to_both_versions(app, editor):
    with app.app_context():
        article = articles.save_article(Draft(title="草稿", body_md="原文")).id
    values = form_of(editor, f"/editor/a/{article}")
    with app.app_context():
        articles.save_article(
            Draft(title="草稿", body_md="别人改的", base_version=1), article_id=article
        )
    values["body_md"] = "我的自动保存"
    page = html(autosave(editor, values))
    link = page.select_one("a")
    assert "对比两个版本" in link.get_text()
    conflict = html(editor.get(link["href"]))
    assert "别人改的" in conflict.select_one("#theirs").get_text()
    assert "我的自动保存" in conflict.select_one("#mine").get_text()


# --- columns -----------------------------------------------------------------------------


def test_editors_add_and_rename_columns(app, editor):
    response = post_form(editor, "/editor/columns", {"name": "历史", "slug": "history"})
    assert response.status_code == 302
    response = post_form(editor, "/editor/columns", {"name": "历史", "slug": "history2"})
    assert response.status_code == 422
    assert "同名" in html(response).select_one("#e-name").get_text()
    response = post_form(editor, "/editor/columns", {"name": "x", "slug": "Bad Slug!"})
    assert response.status_code == 422
    with app.app_context():
        column = db.session.scalar(select(Column).where(Column.slug == "history"))
        column_id = column.id
    response = post_form(
        editor,
        "/editor/columns",
        {"column_id": str(column_id), "name": "中国历史", "slug": "history", "position": "9"},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Column, column_id).name == "中国历史"
    assert "中国历史" in editor.get("/editor/new").get_data(as_text=True)


def test_an_update_without_its_base_version_is_refused_and_keeps_the_text(app, editor):
    with app.app_context():
        article_id = articles.save_article(Draft(title="原来的", body_md="原文")).id
    values = form_of(editor, f"/editor/a/{article_id}")
    values.pop("base_version")
    values["body_md"] = "新写的"
    response = save(editor, values)
    assert response.status_code == 422
    assert html(response).select_one("#f-body_md").get_text() == "新写的"
    with app.app_context():
        assert db.session.get(Article, article_id).body_md == "原文"


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/editor/save", {"article_id": "²"}),
        ("/editor/save", {"article_id": "9" * 30}),
        ("/editor/save", {"base_version": "²"}),
        ("/editor/save", {"cover_id": "²", "title": "x"}),
        ("/editor/save", {"cover_id": "9" * 30, "title": "x"}),
        ("/editor/save", {"title": "x", "status": "scheduled", "publish_at": "0001-01-01 00:00"}),
        ("/editor/save", {"title": "x", "status": "published", "publish_at": "9999-12-31 23:59"}),
        ("/editor/save", {"title": "x", "publish_at": "2026-11-22 06:30Z"}),
        ("/editor/autosave", {"article_id": "²", "title": "x"}),
        ("/editor/autosave", {"title": "x", "publish_at": "0001-01-01 00:00"}),
        ("/editor/columns", {"column_id": "²", "name": "x", "slug": "x"}),
        ("/editor/columns", {"name": "x", "slug": "x", "position": "²"}),
    ],
)
def test_bad_values_get_a_clear_answer_not_a_500(app, editor, path, fields):
    token = csrf_token_from(editor, "/editor/new")
    response = editor.post(path, data={"csrf_token": token, **fields})
    assert response.status_code in (200, 404, 422), response.status_code
    with app.app_context():
        assert count(Article) == 0 and count(Column) == 3


@pytest.mark.parametrize(
    "path", ["/editor/a/" + "9" * 30, "/editor/?page=" + "9" * 5000, "/editor/?page=²"]
)
def test_bad_urls_get_a_clear_answer_not_a_500(editor, path):
    assert editor.get(path).status_code in (200, 404)
