"""Sign up, log in, log out, change password: driven through the pages a reader uses."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from app import db
from members.models import User
from tests.conftest import csrf_token_from, html, post_form


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def test_signup_logs_in_and_shows_me_page(app, client):
    response = post_form(
        client,
        "/signup",
        {"email": " New@Example.com ", "password": "a good password", "phone": ""},
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/me"
    page = html(client.get("/me"))
    assert page.select_one(".profile .email").get_text() == "new@example.com"
    assert "还不是会员" in page.select_one(".facts").get_text()
    assert user_count(app) == 1


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"email": "not-an-email", "password": "a good password"}, "email", "有效的邮箱"),
        ({"email": "a@example.com", "password": "short"}, "password", "密码长度"),
        ({"email": "a@example.com", "password": "x" * 129}, "password", "密码长度"),
        (
            {"email": "a@example.com", "password": "a good password", "phone": "12345"},
            "phone",
            "手机号",
        ),
        (
            {"email": "x" * 250 + "@example.com", "password": "a good password"},
            "email",
            "有效的邮箱",
        ),
        ({"password": "a good password"}, "email", "有效的邮箱"),
    ],
)
def test_signup_rejects_bad_input_next_to_the_field(app, client, data, field, message):
    response = post_form(client, "/signup", data)
    assert response.status_code == 422
    page = html(response)
    error = page.select_one(f"#e-{field}")
    assert error is not None and message in error.get_text()
    assert page.select_one(f"#f-{field}")["aria-invalid"] == "true"
    # What was typed is kept (never the password).
    if field != "email" and "email" in data:
        assert page.select_one("#f-email")["value"] == data["email"]
    assert page.select_one("#f-password").get("value") is None
    assert user_count(app) == 0


def test_signup_with_a_registered_email_is_refused(app, client, make_user):
    make_user("taken@example.com")
    response = post_form(
        client, "/signup", {"email": "TAKEN@example.com", "password": "another one"}
    )
    assert response.status_code == 422
    assert "已经注册" in html(response).select_one("#e-email").get_text()
    assert user_count(app) == 1


def test_signup_with_phone_is_normalised(app, client):
    post_form(
        client,
        "/signup",
        {"email": "p@example.com", "password": "a good password", "phone": "+86 138-0013-8000"},
    )
    assert "13800138000" in html(client.get("/me")).select_one(".facts").get_text()


def test_login_with_the_form_lands_on_a_page_showing_the_user(client, make_user):
    make_user("reader@example.com", "correct horse")
    response = post_form(
        client, "/login", {"email": "reader@example.com", "password": "correct horse"}
    )
    assert response.status_code == 302
    page = html(client.get(response.headers["Location"]))
    assert page.select_one(".profile .email").get_text() == "reader@example.com"


def test_login_with_wrong_password_keeps_email_and_says_why(client, make_user):
    make_user("reader@example.com", "correct horse")
    response = post_form(
        client, "/login", {"email": "reader@example.com", "password": "wrong horse"}
    )
    assert response.status_code == 422
    page = html(response)
    assert "邮箱或密码不正确" in page.select_one("#e-password").get_text()
    assert page.select_one("#f-email")["value"] == "reader@example.com"
    assert client.get("/me").status_code == 302


def test_login_unknown_email_says_the_same(client):
    response = post_form(client, "/login", {"email": "nobody@example.com", "password": "whatever1"})
    assert response.status_code == 422
    assert "邮箱或密码不正确" in html(response).select_one("#e-password").get_text()


def test_login_without_csrf_token_is_rejected_and_logs_no_one_in(client, make_user):
    make_user("reader@example.com", "correct horse")
    response = client.post(
        "/login", data={"email": "reader@example.com", "password": "correct horse"}
    )
    assert response.status_code == 400
    assert "页面已过期" in html(response).select_one("main").get_text()
    assert client.get("/me").status_code == 302


def test_login_with_forged_csrf_token_is_rejected(client, make_user):
    make_user("reader@example.com", "correct horse")
    csrf_token_from(client, "/login")
    response = client.post(
        "/login",
        data={
            "email": "reader@example.com",
            "password": "correct horse",
            "csrf_token": "forged.token.value",
        },
    )
    assert response.status_code == 400
    assert client.get("/me").status_code == 302


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/x", "/\\evil.example"])
def test_login_never_redirects_off_site(client, make_user, target):
    make_user("reader@example.com", "correct horse")
    response = post_form(
        client,
        f"/login?next={target}",
        {"email": "reader@example.com", "password": "correct horse"},
        token_from="/login",
    )
    assert response.headers["Location"] == "/me"


def test_login_follows_a_local_next(client, make_user):
    make_user("reader@example.com", "correct horse")
    assert client.get("/me").headers["Location"].startswith("/login?next=")
    response = post_form(
        client,
        "/login?next=/me/password",
        {"email": "reader@example.com", "password": "correct horse"},
        token_from="/login",
    )
    assert response.headers["Location"] == "/me/password"


def test_eleventh_login_attempt_in_a_minute_gets_429(client, make_user):
    make_user("reader@example.com", "correct horse")
    token = csrf_token_from(client, "/login")
    statuses = [
        client.post(
            "/login",
            data={"csrf_token": token, "email": "reader@example.com", "password": f"wrong {i}"},
        ).status_code
        for i in range(11)
    ]
    assert statuses[:10] == [422] * 10
    assert statuses[10] == 429
    response = client.post(
        "/login",
        data={"csrf_token": token, "email": "reader@example.com", "password": "correct horse"},
    )
    assert response.status_code == 429
    assert "操作太频繁" in html(response).select_one("main").get_text()
    # The form itself can still be opened.
    assert client.get("/login").status_code == 200


def test_signup_is_rate_limited_too(client):
    token = csrf_token_from(client, "/signup")
    statuses = [
        client.post(
            "/signup", data={"csrf_token": token, "email": "bad", "password": "x"}
        ).status_code
        for _ in range(11)
    ]
    assert statuses[-1] == 429


def test_logout_is_post_only_and_needs_the_token(client, make_user, login):
    make_user()
    login()
    assert client.get("/logout").status_code == 405
    assert client.post("/logout").status_code == 400
    assert client.get("/me").status_code == 200
    response = post_form(client, "/logout", {}, token_from="/me")
    assert response.status_code == 302
    assert client.get("/me").status_code == 302


def test_logging_out_ends_the_session_everywhere_its_cookies_were_copied(app, make_user):
    make_user()
    browser = app.test_client()
    post_form(
        browser,
        "/login",
        {"email": "reader@example.com", "password": "correct horse", "remember": "1"},
    )
    thief = app.test_client()
    for name in ("session", "remember_token"):
        cookie = browser.get_cookie(name)
        assert cookie is not None
        thief.set_cookie(name, cookie.value)
    assert thief.get("/me").status_code == 200
    post_form(browser, "/logout", {}, token_from="/me")
    assert thief.get("/me").status_code == 302
    thief.delete_cookie("session")  # the remember cookie alone does not bring it back
    assert thief.get("/me").status_code == 302


def test_an_htmx_request_without_a_session_moves_the_page_to_login(client):
    response = client.post(
        "/me/password",
        headers={
            "HX-Request": "true",
            "HX-Current-URL": "http://localhost/me/password",
            "X-CSRFToken": csrf_token_from(client, "/login"),
        },
    )
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "/login?next=/me/password"


def test_a_next_with_control_characters_is_ignored(client, make_user):
    make_user()
    response = post_form(
        client,
        "/login?next=/me%0D%0AX-Evil:%201",
        {"email": "reader@example.com", "password": "correct horse"},
        token_from="/login",
    )
    assert response.status_code == 302
    assert response.headers["Location"] == "/me"


def test_remember_me_cookie_is_httponly_and_lax(client, make_user):
    make_user()
    response = post_form(
        client,
        "/login",
        {"email": "reader@example.com", "password": "correct horse", "remember": "1"},
    )
    cookies = response.headers.getlist("Set-Cookie")
    remember = next(c for c in cookies if c.startswith("remember_token="))
    assert "HttpOnly" in remember and "SameSite=Lax" in remember
    assert "Secure" not in remember


def test_cookies_are_secure_over_https(client, make_user):
    make_user()
    token = csrf_token_from(client, "/login")
    response = client.post(
        "/login",
        data={
            "csrf_token": token,
            "email": "reader@example.com",
            "password": "correct horse",
            "remember": "1",
        },
        base_url="https://localhost",
        headers={"Referer": "https://localhost/login"},
    )
    assert response.status_code == 302
    cookies = response.headers.getlist("Set-Cookie")
    assert cookies and all("; Secure" in c for c in cookies)


def test_remember_me_survives_the_end_of_the_session(app, make_user):
    make_user()
    browser = app.test_client()
    post_form(
        browser,
        "/login",
        {"email": "reader@example.com", "password": "correct horse", "remember": "1"},
    )
    browser.delete_cookie("session")
    assert browser.get("/me").status_code == 200


def test_change_password_signs_out_other_sessions(app, make_user):
    make_user()
    phone, laptop = app.test_client(), app.test_client()
    for c in (phone, laptop):
        post_form(
            c,
            "/login",
            {"email": "reader@example.com", "password": "correct horse", "remember": "1"},
        )
    response = post_form(
        phone,
        "/me/password",
        {
            "current_password": "correct horse",
            "new_password": "battery staple",
            "confirm_password": "battery staple",
        },
    )
    assert response.status_code == 302
    assert phone.get("/me").status_code == 200
    assert laptop.get("/me").status_code == 302  # the old session id no longer matches
    fresh = app.test_client()
    assert (
        post_form(
            fresh, "/login", {"email": "reader@example.com", "password": "correct horse"}
        ).status_code
        == 422
    )
    assert (
        post_form(
            fresh, "/login", {"email": "reader@example.com", "password": "battery staple"}
        ).status_code
        == 302
    )


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {
                "current_password": "wrong one!",
                "new_password": "battery staple",
                "confirm_password": "battery staple",
            },
            "current_password",
        ),
        (
            {
                "current_password": "correct horse",
                "new_password": "short",
                "confirm_password": "short",
            },
            "new_password",
        ),
        (
            {
                "current_password": "correct horse",
                "new_password": "battery staple",
                "confirm_password": "battery stapler",
            },
            "confirm_password",
        ),
    ],
)
def test_change_password_errors_change_nothing(client, make_user, login, data, field):
    make_user()
    login()
    response = post_form(client, "/me/password", data)
    assert response.status_code == 422
    assert html(response).select_one(f"#e-{field}") is not None
    post_form(client, "/logout", {}, token_from="/me")
    login()  # the old password still works


def test_change_password_over_htmx_returns_the_form_fragment(client, make_user, login):
    make_user()
    login()
    token = csrf_token_from(client, "/me/password")
    response = client.post(
        "/me/password",
        data={
            "current_password": "nope nope",
            "new_password": "battery staple",
            "confirm_password": "battery staple",
        },
        headers={"HX-Request": "true", "X-CSRFToken": token},
    )
    assert response.status_code == 422
    body = response.get_data(as_text=True)
    assert body.lstrip().startswith("<form") and "<html" not in body
    assert "HX-Request" in response.headers["Vary"]


def test_me_requires_login(client):
    response = client.get("/me")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login")
