"""The site's shell: headers, error pages, static files, htmx behaviour, /healthz."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pytest
from flask import Blueprint, abort

from members import role_required
from tests.conftest import csrf_token_from, html

PAGES = ["/", "/login", "/signup", "/shop/", "/board/", "/me", "/me/password"]


def test_healthz(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "ok"


@pytest.mark.parametrize("path", PAGES)
def test_every_page_carries_the_security_headers(client, make_user, login, path):
    make_user()
    login()
    response = client.get(path)
    assert response.status_code == 200
    csp = response.headers["Content-Security-Policy"]
    directives = dict(d.strip().split(" ", 1) for d in csp.split(";"))
    assert directives["script-src"] == "'self'"
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert directives["object-src"] == "'none'"
    assert directives["base-uri"] == "'none'"
    assert directives["frame-ancestors"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"]
    assert "HX-Request" in response.headers["Vary"]


@pytest.mark.parametrize("path", PAGES)
def test_no_page_references_another_host_or_inline_script(client, make_user, login, path):
    make_user()
    login()
    page = html(client.get(path))
    for tag in page.find_all(["script", "link", "img", "audio", "source", "iframe", "a", "form"]):
        for attr in ("src", "href", "action"):
            url = tag.get(attr)
            if url:
                assert not urlsplit(url).netloc, f"{tag.name} {attr}={url} leaves the site"
        if tag.name == "script":
            assert tag.get("src"), "inline script"
            assert not tag.get_text().strip()
    assert not page.find(attrs={"style": True})
    for tag in page.find_all(True):
        assert not any(a.startswith("on") for a in tag.attrs), f"event handler on {tag.name}"


def test_pages_are_mobile_first_with_the_tab_bar(client):
    page = html(client.get("/"))
    assert "width=device-width" in page.select_one("meta[name=viewport]")["content"]
    tabs = [a.get_text(strip=True) for a in page.select("nav.tabbar a")]
    assert tabs == ["今日", "商店", "社群", "我的"]
    assert page.select_one("nav.tabbar a[aria-current=page]").get_text(strip=True) == "今日"
    assert page.select_one("html")["lang"] == "zh-CN"


def test_htmx_is_vendored_and_configured_without_eval(client):
    page = html(client.get("/"))
    scripts = [s["src"] for s in page.select("script[src]")]
    assert any(
        re.match(r"/static/vendor/htmx-2\.0\.\d+\.min\.js\?v=[0-9a-f]{12}$", s) for s in scripts
    )
    config = page.select_one("meta[name=htmx-config]")["content"]
    assert '"allowEval": false' in config
    assert '"includeIndicatorStyles": false' in config
    assert '"historyRestoreAsHxRequest": false' in config
    # An anonymous page carries no token (it can be cached and shared)...
    assert page.select_one("body").get("hx-headers") is None


def test_signed_in_pages_give_htmx_the_form_token(client, make_user, login):
    make_user()
    login()
    page = html(client.get("/"))
    # The same session token in the form and in htmx's headers. The signed form carries the
    # second it was signed, so two pages a second apart differ there: compare the payload.
    token = csrf_token_from(client, "/me")
    payload = token.split(".")[0]
    assert f'"X-CSRFToken": "{payload}.' in page.select_one("body")["hx-headers"]


def test_anonymous_home_and_articles_may_be_cached_and_nothing_else(client, make_user, login):
    home = client.get("/")
    assert home.headers["Cache-Control"] == "public, max-age=30"
    assert "Set-Cookie" not in home.headers
    assert client.get("/login").headers["Cache-Control"] == "private, no-cache"
    assert client.get("/shop/").headers["Cache-Control"] == "private, no-cache"
    make_user()
    login()
    assert client.get("/").headers["Cache-Control"] == "private, no-cache"


def test_static_urls_carry_a_content_hash_and_are_cached_long(client):
    page = html(client.get("/"))
    css = page.select_one("link[rel=stylesheet]")["href"]
    assert re.fullmatch(r"/static/site\.css\?v=[0-9a-f]{12}", css)
    response = client.get(css)
    assert response.status_code == 200
    assert "max-age=31536000" in response.headers["Cache-Control"]
    assert "immutable" in response.headers["Cache-Control"]
    response.close()


def test_a_stale_or_missing_static_version_is_not_cached_for_long(client):
    response = client.get("/static/site.css?v=000000000000")
    assert response.status_code == 200
    assert "immutable" not in response.headers.get("Cache-Control", "")
    response.close()
    response = client.get("/static/nothing-here.css?v=000000000000")
    assert response.status_code == 404
    assert "immutable" not in response.headers.get("Cache-Control", "")


def test_static_hash_follows_the_file(app, tmp_path):
    from app import _static_hash

    target = tmp_path / "static"
    target.mkdir()
    (target / "a.css").write_text("a{}")
    app.static_folder = str(target)
    app.config["STATIC_RECHECK_SECONDS"] = 0  # look at the file every time
    first = _static_hash(app, "a.css")
    (target / "a.css").write_text("b{}")
    import os

    os.utime(target / "a.css", ns=(1, 1))
    assert _static_hash(app, "a.css") != first
    assert _static_hash(app, "missing.css") is None


def test_static_hash_looks_at_the_file_once_a_second_at_most(app, tmp_path):
    import os

    from app import _static_hash

    target = tmp_path / "static"
    target.mkdir()
    (target / "a.css").write_text("a{}")
    app.static_folder = str(target)
    app.config["STATIC_RECHECK_SECONDS"] = 3600
    first = _static_hash(app, "a.css")
    (target / "a.css").write_text("b{}")
    os.utime(target / "a.css", ns=(1, 1))
    assert _static_hash(app, "a.css") == first  # not looked at again yet
    app.config["STATIC_RECHECK_SECONDS"] = 0
    assert _static_hash(app, "a.css") != first


@pytest.fixture
def guarded(app):
    bp = Blueprint("guarded", __name__)

    @bp.get("/test/editors-only")
    @role_required("editor", "admin")
    def editors_only():
        return "secret"

    @bp.get("/test/boom")
    def boom():
        raise RuntimeError("a bug with a secret in it")

    @bp.get("/test/forbidden")
    def forbidden():
        abort(403)

    app.register_blueprint(bp)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return app


def test_role_required(guarded, client, make_user, login):
    make_user("reader@example.com")
    make_user("editor@example.com", role="editor")
    assert client.get("/test/editors-only").status_code == 302
    login("reader@example.com")
    response = client.get("/test/editors-only")
    assert response.status_code == 403
    assert "没有权限" in html(response).select_one("h1").get_text()
    post_logout(client)
    login("editor@example.com")
    assert client.get("/test/editors-only").get_data(as_text=True) == "secret"


def post_logout(client):
    token = csrf_token_from(client, "/me")
    client.post("/logout", data={"csrf_token": token})


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [
        ("/no-such-page", 404, "页面不存在"),
        ("/test/forbidden", 403, "没有权限"),
        ("/test/boom", 500, "服务器出错了"),
    ],
)
def test_error_pages_are_friendly_chinese_pages(guarded, client, path, status, title):
    response = client.get(path)
    assert response.status_code == status
    page = html(response)
    assert page.select_one("h1").get_text() == title
    assert page.select_one("nav.tabbar") is not None
    text = response.get_data(as_text=True)
    assert "Traceback" not in text and "secret in it" not in text


@pytest.mark.parametrize(("path", "status"), [("/no-such-page", 404), ("/test/boom", 500)])
def test_error_pages_are_fragments_for_htmx(guarded, client, path, status):
    response = client.get(path, headers={"HX-Request": "true"})
    assert response.status_code == status
    assert response.headers["HX-Retarget"] == "#notice"
    body = response.get_data(as_text=True)
    assert "<html" not in body and 'class="error-box"' in body


def test_method_not_allowed_page(client):
    response = client.delete("/login")
    assert response.status_code == 405
    assert set(response.headers["Allow"].replace(" ", "").split(",")) >= {"GET", "POST"}
    assert "请求方式不对" in html(response).select_one("h1").get_text()


def test_too_large_request_gets_413(app, client):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = client.post("/login", data={"email": "x" * 5000, "password": "y"})
    assert response.status_code == 413
    assert "内容太大" in html(response).select_one("h1").get_text()


def test_csrf_failure_on_htmx_asks_the_page_to_reload(client):
    response = client.post(
        "/me/password", headers={"HX-Request": "true", "X-CSRFToken": "expired.or.forged"}
    )
    assert response.status_code == 400
    assert response.headers["HX-Refresh"] == "true"


def test_expired_csrf_token_is_a_clear_400(app, client, make_user, login):
    make_user()
    login()
    token = csrf_token_from(client, "/me/password")
    app.config["WTF_CSRF_TIME_LIMIT"] = -1  # every token is already expired
    response = client.post("/me/password", data={"csrf_token": token})
    assert response.status_code == 400
    assert "页面已过期" in html(response).select_one("main").get_text()


def test_healthz_touches_neither_database_nor_templates(app, client, monkeypatch):
    from app import db

    def refuse(*a, **k):
        raise AssertionError("healthz touched something it should not")

    with app.app_context():
        monkeypatch.setattr(db.engine, "connect", refuse)
    monkeypatch.setattr(app.jinja_env, "get_template", refuse)
    assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize(
    "path", ["/board/t/2147483648", "/board/t/99999999999999999999", "/editor/a/2147483648/view"]
)
def test_an_id_past_a_database_integer_is_no_page(client, path):
    """Found by Hypothesis on PostgreSQL, whose integers are 32-bit: such a number is a
    404 (or the login page), never a 500."""
    response = client.get(path)
    assert response.status_code in (302, 404), response.status_code


def test_a_form_id_past_a_database_integer_is_refused_calmly():
    from app import MAX_ID, parse_id

    assert parse_id(str(MAX_ID)) == MAX_ID
    assert parse_id(str(MAX_ID + 1)) is None
    assert parse_id(MAX_ID + 1) is None
