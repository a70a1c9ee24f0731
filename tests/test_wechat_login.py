"""Signing in with WeChat (web OAuth2) against a fake of WeChat's servers on 127.0.0.1, and
linking and unlinking WeChat on /me."""

from __future__ import annotations

import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app import db
from members import accounts
from members.models import User
from tests.conftest import WECHAT_USER_AGENT, html, post_form
from tests.wechat_api_fake import Person, WeChatApiFake

UA = {"User-Agent": WECHAT_USER_AGENT}
SAFARI = {"User-Agent": "Mozilla/5.0 (iPhone; CPU iPhone OS 18_0 like Mac OS X) Safari/604.1"}


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def at_wechat(url: str) -> tuple[int, str, str]:
    """Open a URL at the fake as the phone would: status, Location and body."""
    opener = urllib.request.build_opener(_NoRedirect)
    try:
        with opener.open(url.split("#", 1)[0], timeout=5) as response:
            return response.status, response.headers.get("Location", ""), response.read().decode()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Location", ""), error.read().decode()


def walk(client, path: str, fake: WeChatApiFake, *, limit: int = 8):
    """Follow redirects between the site (test client) and the fake until a page is shown."""
    response = client.get(path, headers=UA)
    for _ in range(limit):
        if response.status_code not in (301, 302, 303):
            return response
        location = response.location
        if location.startswith(fake.url):
            assert location.endswith("#wechat_redirect")
            status, back, _ = at_wechat(location)
            assert status == 302, "the fake showed its consent page"
            parts = urlsplit(back)
            response = client.get(parts.path + "?" + parts.query, headers=UA)
        else:
            parts = urlsplit(location)
            response = client.get(
                parts.path + ("?" + parts.query if parts.query else ""), headers=UA
            )
    raise AssertionError("too many redirects")


@pytest.fixture
def fake(app):
    with WeChatApiFake() as fake:
        app.config.update(fake.app_config())
        fake.auto_consent = True
        yield fake


def users(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(User))


def signed_in_as(client) -> str | None:
    page = client.get("/me", headers=UA)
    if page.status_code != 200:
        return None
    return html(page).select_one(".profile .email").get_text()


def test_login_offers_wechat_only_inside_wechat_when_set_up(app, client, fake):
    assert html(client.get("/login", headers=UA)).select_one("#wechat-login").get_text() == (
        "微信一键登录"
    )
    assert html(client.get("/login", headers=SAFARI)).select_one("#wechat-login") is None


def test_without_wechat_settings_nothing_changes(app, client):
    assert html(client.get("/login", headers=UA)).select_one("#wechat-login") is None
    assert client.get("/login/wechat", headers=UA).status_code == 404
    assert client.get("/login/wechat/return?code=x&state=y", headers=UA).status_code == 404


def test_the_authorize_url_asks_silently_first(app, client, fake):
    response = client.get("/login/wechat", headers=UA)
    assert response.status_code == 302
    url = urlsplit(response.location)
    assert f"{url.scheme}://{url.netloc}" == fake.url
    assert url.path == "/connect/oauth2/authorize" and url.fragment == "wechat_redirect"
    args = {k: v[0] for k, v in parse_qs(url.query).items()}
    assert args["appid"] == fake.appid and args["response_type"] == "code"
    assert args["scope"] == "snsapi_base"
    assert args["redirect_uri"] == "http://localhost/login/wechat/return"
    # 32 characters of a-z and 0-9: WeChat's state takes letters and digits only.
    assert len(args["state"]) == 32 and args["state"].isalnum() and args["state"].isascii()


def test_a_new_follower_gets_an_account_with_the_profile(app, client, fake):
    fake.user = Person("oNEWfollower00000000000001", nickname="读书的猫", unionid="uUNION1")
    response = walk(client, "/login/wechat", fake)
    assert response.status_code == 200 and response.request.path == "/me"
    assert fake.calls["/connect/oauth2/authorize"] == 2  # silent first, then the profile
    assert fake.calls["/sns/userinfo"] == 1
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert user.wechat_openid == "oNEWfollower00000000000001"
        assert user.wechat_unionid == "uUNION1"
        assert user.nickname == "读书的猫"
        assert user.avatar_url == fake.user.headimgurl
        assert not user.has_password
        # Its placeholder address and no password sign nobody in by the login form.
        assert accounts.authenticate(user.email, "") is None
        assert accounts.authenticate(user.email, "!wechat-only") is None
    assert signed_in_as(client) == "微信登录的账号"


def test_a_return_visit_is_silent_and_signs_in_the_same_account(app, client, fake):
    walk(client, "/login/wechat", fake)
    other = app.test_client()  # the same follower, another day: no session left
    fake.calls.clear()
    response = walk(other, "/login/wechat?next=/board/", fake)
    assert response.request.path == "/board/"
    assert fake.calls["/connect/oauth2/authorize"] == 1
    assert fake.calls["/sns/userinfo"] == 0
    assert users(app) == 1


def test_an_account_known_by_unionid_is_signed_in_and_gets_this_openid(
    app, client, fake, make_user
):
    make_user("reader@example.com")
    with app.app_context():
        from app import write_transaction

        with write_transaction() as s:
            s.scalars(select(User)).one().wechat_unionid = "uSHARED"
    fake.user = Person("oTHISappOPENID000000000001", unionid="uSHARED")
    walk(client, "/login/wechat", fake)
    assert signed_in_as(client) == "reader@example.com"
    with app.app_context():
        assert db.session.scalars(select(User)).one().wechat_openid == "oTHISappOPENID000000000001"


@pytest.mark.parametrize(
    "next_path, lands",
    [("/shop/", "/shop/"), ("//evil.example/", "/me"), ("https://evil.example/", "/me")],
)
def test_next_stays_on_this_site(app, client, fake, next_path, lands):
    response = walk(client, f"/login/wechat?next={next_path}", fake)
    assert response.request.path == lands


def _code_and_state(client, fake) -> tuple[str, str]:
    """Start a login and let the fake answer: the code and state it sends back."""
    start = client.get("/login/wechat", headers=UA)
    _, back, _ = at_wechat(start.location)
    args = parse_qs(urlsplit(back).query)
    return args["code"][0], args["state"][0]


def failure(response) -> str:
    return html(response).select_one(".wechat-failed-message").get_text()


def test_a_bad_state_is_refused_and_makes_no_account(app, client, fake):
    fake.user = Person("oKNOWN000000000000000000001")
    code, _ = _code_and_state(client, fake)
    response = client.get(f"/login/wechat/return?code={code}&state=forged", headers=UA)
    assert response.status_code == 400
    assert "不是从本站发起的" in failure(response)
    assert users(app) == 0 and signed_in_as(client) is None
    assert fake.calls["/sns/oauth2/access_token"] == 0  # the code was never spent


def test_a_return_from_another_browser_is_refused(app, client, fake):
    code, state = _code_and_state(client, fake)
    stranger = app.test_client()  # has no state in its session
    response = stranger.get(f"/login/wechat/return?code={code}&state={state}", headers=UA)
    assert response.status_code == 400 and users(app) == 0


def test_a_reused_code_is_refused_with_a_clear_page(app, client, fake):
    walk(client, "/login/wechat", fake)  # makes the account
    other = app.test_client()
    code, state = _code_and_state(other, fake)
    assert (
        other.get(f"/login/wechat/return?code={code}&state={state}", headers=UA).status_code == 302
    )
    third = app.test_client()
    _, state3 = _code_and_state(third, fake)
    response = third.get(f"/login/wechat/return?code={code}&state={state3}", headers=UA)
    assert response.status_code == 400
    assert "已经用过或已过期" in failure(response)
    assert signed_in_as(third) is None and users(app) == 1


def test_the_same_return_url_twice_is_refused_the_second_time(app, client, fake):
    code, state = _code_and_state(client, fake)
    first = client.get(f"/login/wechat/return?code={code}&state={state}", headers=UA)
    assert first.status_code == 302
    again = client.get(f"/login/wechat/return?code={code}&state={state}", headers=UA)
    assert again.status_code == 400


def test_an_expired_code_is_refused(app, client, fake):
    code, state = _code_and_state(client, fake)
    fake.expire_codes()
    response = client.get(f"/login/wechat/return?code={code}&state={state}", headers=UA)
    assert response.status_code == 400 and "已过期" in failure(response)
    assert users(app) == 0


def test_denied_consent_makes_no_account(app, client, fake):
    fake.auto_consent = False
    response = walk(client, "/login/wechat", fake)
    assert response.status_code == 400
    assert "没有同意授权" in failure(response)
    assert users(app) == 0 and signed_in_as(client) is None


def test_wechat_being_down_gets_a_clear_page_and_no_account(app, client, fake):
    fake.down = True
    response = walk(client, "/login/wechat", fake)
    assert response.status_code == 502
    assert "暂时连不上微信" in failure(response)
    assert users(app) == 0


def test_wechat_unreachable_gets_the_same_page(app, client, fake):
    app.config["WECHAT_API_BASE"] = "http://127.0.0.1:9"  # nothing listens on the discard port
    response = walk(client, "/login/wechat", fake)
    assert response.status_code == 502 and users(app) == 0


def test_a_nickname_the_site_refuses_is_left_out(app, client, fake):
    fake.user = Person("oPHONEnick0000000000000001", nickname="13800138000")
    walk(client, "/login/wechat", fake)
    with app.app_context():
        user = db.session.scalars(select(User)).one()
        assert user.nickname is None and user.display_name == f"读者{user.id}"


# --- linking on /me ------------------------------------------------------------------------


def _link(client, fake):
    token_page = client.get("/me", headers=UA)
    token = html(token_page).select_one("#wechat input[name=csrf_token]")["value"]
    response = client.post("/me/wechat/link", data={"csrf_token": token}, headers=UA)
    assert response.status_code == 302
    _, back, _ = at_wechat(response.location)
    parts = urlsplit(back)
    return client.get(parts.path + "?" + parts.query, headers=UA)


def test_an_email_account_links_and_unlinks_wechat(app, client, fake, make_user, login):
    make_user()
    login()
    fake.user = Person("oLINKme0000000000000000001")
    response = _link(client, fake)
    assert response.status_code == 302 and response.location.endswith("/me#wechat")
    with app.app_context():
        assert db.session.scalars(select(User)).one().wechat_openid == fake.user.openid
    me = html(client.get("/me", headers=UA))
    assert "已绑定微信" in me.select_one("#wechat").get_text()
    response = post_form(client, "/me/wechat/unlink", {}, token_from="/me", headers=UA)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(User)).one().wechat_openid is None
    # And now WeChat login makes a new account of its own for that follower.
    assert users(app) == 1


def test_a_wechat_linked_to_another_account_is_a_clash(app, client, fake, make_user, login):
    make_user("first@example.com")
    make_user("second@example.com")
    fake.user = Person("oTAKEN00000000000000000001")
    with app.app_context():
        from app import write_transaction

        with write_transaction() as s:
            first = s.scalars(select(User).where(User.email == "first@example.com")).one()
            first.wechat_openid = "oTAKEN00000000000000000001"
    login("second@example.com")
    response = _link(client, fake)
    assert response.status_code == 409
    assert "已经绑定了另一个晨读账号" in failure(response)
    with app.app_context():
        second = db.session.scalars(select(User).where(User.email == "second@example.com")).one()
        assert second.wechat_openid is None


def test_a_wechat_only_account_cannot_unlink(app, client, fake):
    walk(client, "/login/wechat", fake)
    me = html(client.get("/me", headers=UA))
    assert me.select_one("#wechat form") is None
    response = post_form(client, "/me/wechat/unlink", {}, token_from="/me", headers=UA)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalars(select(User)).one().wechat_openid == fake.user.openid


def test_linking_needs_a_form_token_and_a_signed_in_account(app, client, fake):
    assert client.post("/me/wechat/link", headers=UA).status_code == 400
    response = post_form(client, "/me/wechat/link", {}, token_from="/login", headers=UA)
    assert response.status_code == 302 and response.location.startswith("/login")
    assert fake.calls["/connect/oauth2/authorize"] == 0


def test_a_unionid_held_by_another_account_does_not_stop_the_login(app, client, fake, make_user):
    from app import write_transaction

    make_user("a@example.com")
    make_user("b@example.com")
    with app.app_context(), write_transaction() as s:
        a = s.scalars(select(User).where(User.email == "a@example.com")).one()
        b = s.scalars(select(User).where(User.email == "b@example.com")).one()
        a.wechat_openid = "oTHISappOPENID000000000002"
        b.wechat_unionid = "uTAKEN"
    fake.user = Person("oTHISappOPENID000000000002", unionid="uTAKEN")
    response = walk(client, "/login/wechat", fake)
    # a is signed in by its openid; b keeps its unionid, and nothing breaks.
    assert response.status_code == 200 and signed_in_as(client) == "a@example.com"
    with app.app_context():
        a = db.session.scalars(select(User).where(User.email == "a@example.com")).one()
        b = db.session.scalars(select(User).where(User.email == "b@example.com")).one()
        assert a.wechat_unionid is None and b.wechat_unionid == "uTAKEN"


def test_a_profile_round_that_comes_back_without_a_profile_does_not_loop(app, client, fake):
    code, state = _code_and_state(client, fake)
    userinfo_start = client.get(f"/login/wechat/return?code={code}&state={state}", headers=UA)
    assert "snsapi_userinfo" in userinfo_start.location
    # WeChat answers the profile round with a base-scope code (as a snapshot page can).
    back = parse_qs(urlsplit(userinfo_start.location.split("#")[0]).query)
    base_code = fake.issue_code("snsapi_base")
    response = client.get(
        f"/login/wechat/return?code={base_code}&state={back['state'][0]}", headers=UA
    )
    assert response.status_code == 400 and "没有创建账号" in failure(response)
    assert users(app) == 0


def test_a_link_started_by_one_account_does_not_end_on_another(app, fake, make_user):
    make_user("first@example.com")
    make_user("second@example.com")
    client = app.test_client()
    post_form(client, "/login", {"email": "first@example.com", "password": "correct horse"})
    token = html(client.get("/me", headers=UA)).select_one("#wechat input[name=csrf_token]")
    started = client.post("/me/wechat/link", data={"csrf_token": token["value"]}, headers=UA)
    _, back, _ = at_wechat(started.location)
    # The same browser signs in as someone else before WeChat sends it back.
    post_form(client, "/logout", {}, token_from="/me")
    post_form(client, "/login", {"email": "second@example.com", "password": "correct horse"})
    parts = urlsplit(back)
    response = client.get(parts.path + "?" + parts.query, headers=UA)
    assert response.status_code == 403 and "要绑定的晨读账号" in failure(response)
    with app.app_context():
        assert db.session.scalar(select(func.count()).where(User.wechat_openid.is_not(None))) == 0


def test_signing_up_with_the_placeholder_domain_is_refused(app, client):
    response = post_form(
        client,
        "/signup",
        {"email": "wx-0123456789abcdef01234567@wechat.invalid", "password": "long enough pw"},
    )
    assert response.status_code == 422
    assert users(app) == 0
