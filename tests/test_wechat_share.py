"""Share cards through WeChat's JS-SDK: the signature, the cached token and ticket (one refresh
at a time across processes), and the pages that load WeChat's script."""

from __future__ import annotations

import hashlib
import json
import multiprocessing
import threading
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import select

from app import create_app, db
from content import articles
from content.articles import Draft
from tests.conftest import WECHAT_USER_AGENT, html, make_config
from tests.wechat_api_fake import WeChatApiFake
from wechat import jssdk
from wechat.models import WeChatCredential

UA = {"User-Agent": WECHAT_USER_AGENT}
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"


def test_the_signature_matches_the_example_in_wechats_documentation():
    """附录1 of WeChat's JS-SDK documentation."""
    ticket = (
        "sM4AOVdWfPE4DxkXGEs8VMCPGGVi4C3VM0P37wVUCFvkVAy_90u5h9nbSlYy3-Sl-HhTdfl2fzFy1AOcHKP7qg"
    )
    assert (
        jssdk.signature(
            ticket, "Wm3WZYTPz0wzccnW", 1414587457, "http://mp.weixin.qq.com?params=value"
        )
        == "0f9de62fce790f9a083d5c99e95740ceb90c27ed"
    )


def test_the_signed_url_leaves_out_the_fragment():
    assert jssdk.page_url("https://chendu.example/a/x?from=timeline#p3") == (
        "https://chendu.example/a/x?from=timeline"
    )


@pytest.fixture
def fake(app):
    with WeChatApiFake() as fake:
        app.config.update(fake.app_config())
        yield fake


@pytest.fixture
def slug(app):
    with app.app_context():
        draft = Draft(
            title="读书的方法", body_md="第一段。", summary="一分钟读懂", status="published"
        )
        return articles.save_article(draft).slug


def card(page) -> dict | None:
    meta = page.select_one('meta[name="wechat-share"]')
    return json.loads(meta["content"]) if meta else None


def test_an_article_in_wechat_carries_a_card_signed_for_its_url(app, client, fake, slug):
    response = client.get(f"/a/{slug}?from=singlemessage", headers=UA)
    page = html(response)
    shared = card(page)
    assert shared is not None
    assert shared["share"] == {
        "title": "读书的方法",
        "desc": "一分钟读懂",
        "link": f"http://localhost/a/{slug}",
        "imgUrl": shared["share"]["imgUrl"],
    }
    assert shared["share"]["imgUrl"].startswith("http://localhost/static/share.png")
    config = shared["config"]
    assert config["appId"] == fake.appid
    [ticket] = fake.tickets
    expected = hashlib.sha1(
        f"jsapi_ticket={ticket}&noncestr={config['nonceStr']}&timestamp={config['timestamp']}"
        f"&url=http://localhost/a/{slug}?from=singlemessage".encode()
    ).hexdigest()
    assert config["signature"] == expected
    assert [s["src"] for s in page.select("script[src^='https://']")] == [jssdk.JSSDK_URL]
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self' https://res.wx.qq.com;" in policy


def test_other_pages_and_other_browsers_load_no_script_from_wechat(app, client, fake, slug):
    for path, headers in [("/", UA), ("/board/", UA), (f"/a/{slug}", {"User-Agent": "Safari"})]:
        response = client.get(path, headers=headers)
        assert "res.wx.qq.com" not in response.headers["Content-Security-Policy"], path
        assert card(html(response)) is None, path
    assert sum(fake.calls.values()) == 0  # nothing asked WeChat for a ticket


def test_without_wechat_settings_pages_are_as_before(app, client, slug):
    response = client.get(f"/a/{slug}", headers=UA)
    assert card(html(response)) is None
    assert "res.wx.qq.com" not in response.headers["Content-Security-Policy"]


def test_product_join_and_thread_pages_carry_cards(app, client, fake):
    from board import posts
    from members import accounts
    from members.models import User
    from tests.test_checkout import make_product

    make_product(app, slug="pen", title="匠心之笔")
    with app.app_context():
        accounts.create_user("member@example.com", "correct horse")
        accounts.grant_membership("member@example.com", "年度会员", 365, reason="测试")
        member = db.session.scalars(select(User)).one()
        draft = posts.check_thread(
            {"section": "1", "title": "怎样读完一本书", "tags": "", "body": "求方法。"}
        )
        thread_id = posts.start_thread(member, draft).id
    titles = {}
    for path in ["/shop/p/pen", "/join", f"/board/t/{thread_id}"]:
        shared = card(html(client.get(path, headers=UA)))
        assert shared is not None, path
        assert shared["share"]["link"] == "http://localhost" + path
        titles[path] = shared["share"]["title"]
    assert titles["/shop/p/pen"] == "匠心之笔"
    assert titles[f"/board/t/{thread_id}"] == "怎样读完一本书"


def test_the_token_and_ticket_are_cached_until_they_are_due(app, client, fake, slug, clock):
    for _ in range(5):
        client.get(f"/a/{slug}", headers=UA)
    assert fake.calls["/cgi-bin/token"] == 1
    assert fake.calls["/cgi-bin/ticket/getticket"] == 1
    clock.advance(seconds=7200 - 299)  # within five minutes of expiry: refreshed
    client.get(f"/a/{slug}", headers=UA)
    assert fake.calls["/cgi-bin/token"] == 2
    assert fake.calls["/cgi-bin/ticket/getticket"] == 2


def test_a_token_replaced_elsewhere_is_fetched_again_once(app, client, fake, slug, clock):
    client.get(f"/a/{slug}", headers=UA)
    # Someone asks WeChat for a token with the same secret (the console, another tool):
    # ours stops working.
    url = (
        f"{fake.url}/cgi-bin/token?grant_type=client_credential"
        f"&appid={fake.appid}&secret={fake.secret}"
    )
    with urllib.request.urlopen(url, timeout=5) as answer:  # noqa: S310
        answer.read()
    with app.app_context():
        [ticket] = fake.tickets
        jssdk.expire("jsapi_ticket", ticket)  # the ticket is due; its refresh meets the dead token
    shared = card(html(client.get(f"/a/{slug}", headers=UA)))
    assert shared is not None
    assert fake.calls["/cgi-bin/ticket/getticket"] == 3  # refused once, then with the new token
    assert fake.calls["/cgi-bin/token"] == 3  # ours, the stranger's, ours again


def test_wechat_down_leaves_pages_without_a_card_and_is_left_alone_a_minute(
    app, client, fake, slug, clock
):
    fake.down = True
    response = client.get(f"/a/{slug}", headers=UA)
    assert response.status_code == 200 and card(html(response)) is None
    asked = sum(fake.calls.values())
    fake.down = False
    for _ in range(3):  # within the back-off: no card, and WeChat is not asked again
        assert card(html(client.get(f"/a/{slug}", headers=UA))) is None
    assert sum(fake.calls.values()) == asked
    clock.advance(seconds=jssdk.BACKOFF_SECONDS)
    assert card(html(client.get(f"/a/{slug}", headers=UA))) is not None


def test_a_card_is_signed_for_the_percent_encoded_address(app, client, fake, slug):
    page = html(client.get(f"/a/{slug}?from=朋友圈&x=a%20b", headers=UA))
    config = card(page)["config"]
    [ticket] = fake.tickets
    address = f"http://localhost/a/{slug}?from=%E6%9C%8B%E5%8F%8B%E5%9C%88&x=a%20b"
    assert config["signature"] == jssdk.signature(
        ticket, config["nonceStr"], config["timestamp"], address
    )


def test_a_lease_that_ran_out_belongs_to_the_next_worker(app, fake, clock):
    """A worker whose refresh outlived its lease cannot store over the one who took it."""
    with app.app_context():
        first = jssdk._claim("jsapi_ticket", clock.now())
        assert first is not None
        assert jssdk._claim("jsapi_ticket", clock.now()) is None  # held
        clock.advance(seconds=jssdk.LEASE_SECONDS + 1)
        second = jssdk._claim("jsapi_ticket", clock.now())
        assert second is not None and second != first
        jssdk._release("jsapi_ticket", first, value="TICKET-OF-THE-LATE-ONE", expires_in=7200)
        jssdk._release("jsapi_ticket", second, value="TICKET-OF-THE-HOLDER", expires_in=7200)
        db.session.rollback()
        row = db.session.get(WeChatCredential, "jsapi_ticket", populate_existing=True)
        assert row.value == "TICKET-OF-THE-HOLDER" and row.lease_token is None


def _tickets_in_process(data_dir: str, config: dict, barrier, threads: int, results) -> None:
    app = create_app(make_config(Path(data_dir), **config))

    def one() -> None:
        with app.app_context():
            barrier.wait(timeout=60)
            try:
                results.put(jssdk.jsapi_ticket())
            except Exception as error:  # reported to the parent, which fails the test
                results.put(f"error: {error!r}")
            finally:
                db.session.remove()

    workers = [threading.Thread(target=one) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=60)
    with app.app_context():
        db.engine.dispose()


def test_one_refresh_under_twenty_requests_from_four_processes(app, fake):
    """Twenty callers in four processes find no ticket at the same moment: WeChat is asked
    once for the token and once for the ticket, and all twenty get that ticket."""
    fake.delay = 0.3  # a slow WeChat widens the window for a second refresh
    processes, threads = 4, 5
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes * threads)
    results = ctx.Queue()
    config = fake.app_config()
    workers = [
        ctx.Process(
            target=_tickets_in_process,
            args=(str(app.config["DATA_DIR"]), config, barrier, threads, results),
        )
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    tickets = [results.get(timeout=120) for _ in range(processes * threads)]
    for w in workers:
        w.join(timeout=60)
        assert w.exitcode == 0
    assert fake.calls["/cgi-bin/token"] == 1
    assert fake.calls["/cgi-bin/ticket/getticket"] == 1
    assert len(set(tickets)) == 1 and tickets[0] in fake.tickets
    with app.app_context():
        row = db.session.get(WeChatCredential, "jsapi_ticket")
        assert row.value == tickets[0] and row.lease_until is None


def test_no_page_is_reached_through_htmx_history_pushes_or_boosted_links():
    """iOS WeChat signs against the landing URL after pushState: no template pushes URLs
    into history or boosts links, so a share or payment page is always a real page load, and
    those pages never rewrite their own URL either."""
    for path in TEMPLATES.rglob("*.html"):
        text = path.read_text()
        name = str(path.relative_to(TEMPLATES))
        for attribute in ("hx-boost", "hx-push-url"):
            assert attribute not in text, f"{attribute} in {name}"
        if "wechat/_share.html" in text or name.startswith("shop/pay"):
            assert "hx-replace-url" not in text, name


def test_a_kept_article_page_is_signed_for_each_address(app, client, fake, slug):
    """The article page is kept whole (content/pages.py), its share card made per answer."""
    for query in ("from=timeline", "from=singlemessage", "from=timeline"):
        response = client.get(f"/a/{slug}?{query}", headers=UA)
        config = card(html(response))["config"]
        [ticket] = fake.tickets
        address = f"http://localhost/a/{slug}?{query}"
        assert config["signature"] == jssdk.signature(
            ticket, config["nonceStr"], config["timestamp"], address
        )
        assert "https://res.wx.qq.com" in response.headers["Content-Security-Policy"]
    plain = client.get(f"/a/{slug}?from=timeline")  # another browser: no card, no script
    assert card(html(plain)) is None
    assert "res.wx.qq.com" not in plain.headers["Content-Security-Policy"]
