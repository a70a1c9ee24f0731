"""The official account's callback `/wechat`, driven over real HTTP by a fake that signs,
encrypts and retries like WeChat's servers."""

from __future__ import annotations

import threading
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import func, select

from app import db
from content import articles
from content.articles import Draft
from content.models import Article
from tests.conftest import html
from tests.wechat_fake import (
    ACCOUNT,
    SafeMode,
    WeChatSender,
    event_message,
    fields,
    news_items,
    other_message,
    random_aes_key,
    text_message,
)
from wechat.models import WeChatMessage

TOKEN = "chendu-callback-token"
APPID = "wx0123456789abcdef"
OPENID = "oABCD1234follower5678"


@pytest.fixture
def wechat(app):
    app.config.update(WECHAT_TOKEN=TOKEN, WECHAT_APPID=APPID)
    return app


@pytest.fixture
def sender(wechat, live_server, clock):
    return WeChatSender(
        live_server.url + "/wechat", TOKEN, now=lambda: int(clock.now().timestamp())
    )


@pytest.fixture
def publish(app):
    def save(title="读书的方法", keywords="读书", **fields) -> str:
        fields.setdefault("status", "published")
        with app.app_context():
            draft = Draft(title=title, body_md="第一段。\n\n第二段。", keywords=keywords, **fields)
            return articles.save_article(draft).slug

    return save


def logged(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(WeChatMessage))


# --- the URL check ---------------------------------------------------------------------------


def test_a_signed_get_echoes_echostr(sender):
    assert sender.verify_url("7360402185452183851") == (200, "7360402185452183851")


@pytest.mark.parametrize(
    "spoil",
    [
        {"signature": "0" * 40},
        {"signature": ""},
        {"nonce": "changed"},
        {"timestamp": "not-a-number"},
    ],
    ids=["wrong", "missing", "nonce-changed", "timestamp-not-a-number"],
)
def test_a_badly_signed_get_is_403(wechat, client, clock, spoil):
    sender = WeChatSender("/wechat", TOKEN, now=lambda: int(clock.now().timestamp()))
    args = {**sender.query(), "echostr": "123", **spoil}
    response = client.get("/wechat", query_string=args)
    assert response.status_code == 403
    assert "123" not in response.get_data(as_text=True)


def test_a_replayed_signature_from_ten_minutes_ago_is_403(wechat, client, clock):
    sender = WeChatSender("/wechat", TOKEN, now=lambda: int(clock.now().timestamp()) - 600)
    response = client.get("/wechat", query_string={**sender.query(), "echostr": "123"})
    assert response.status_code == 403


def test_without_a_token_the_callback_is_not_there(app, client, clock):
    sender = WeChatSender("/wechat", TOKEN, now=lambda: int(clock.now().timestamp()))
    assert client.get("/wechat", query_string={**sender.query(), "echostr": "1"}).status_code == 404
    body = text_message(OPENID, "读书", 1)
    assert client.post("/wechat", query_string=sender.query(), data=body).status_code == 404


# --- replies ------------------------------------------------------------------------------------


def test_a_keyword_gets_a_news_reply_that_links_to_its_article(sender, publish, live_server):
    slug = publish(title="读书的方法", summary="一分钟讲清楚怎样读一本书。")
    delivery = sender.send(text_message(OPENID, "读书", 10001), openid=OPENID)
    assert delivery.status == 200 and delivery.tries == 1
    reply = fields(delivery.body)
    assert reply["MsgType"] == "news"
    assert reply["ToUserName"] == OPENID and reply["FromUserName"] == ACCOUNT
    assert reply["ArticleCount"] == "1"
    [item] = news_items(delivery.body)
    assert item["Title"] == "读书的方法"
    assert item["Description"] == "一分钟讲清楚怎样读一本书。"
    assert item["Url"] == f"{live_server.url}/a/{slug}"
    assert item["PicUrl"].startswith(live_server.url + "/static/share.png")


def test_keywords_match_whatever_the_case_and_spaces(sender, publish):
    publish(title="Python 入门", keywords="Python")
    delivery = sender.send(text_message(OPENID, "  python ", 10002))
    assert news_items(delivery.body)[0]["Title"] == "Python 入门"


def test_a_members_only_article_replies_with_its_public_preview(sender, publish, live_server):
    slug = publish(title="会员专享：读书会", keywords="读书会", visibility="members")
    [item] = news_items(sender.send(text_message(OPENID, "读书会", 10003)).body)
    assert item["Url"] == f"{live_server.url}/a/{slug}"
    # That link, opened by a follower who is not signed in, shows the preview and the invite.
    import urllib.request

    with urllib.request.urlopen(item["Url"], timeout=5) as response:  # noqa: S310
        page = response.read().decode()
    assert "以下内容仅会员可读" in page and "第二段" not in page


def test_a_scheduled_article_is_not_found_before_its_time(sender, publish, clock):
    publish(title="明天的文章", keywords="明天", publish_at=clock.now().replace(year=2027))
    reply = fields(sender.send(text_message(OPENID, "明天", 10004)).body)
    assert reply["MsgType"] == "text"


def test_an_unknown_keyword_gets_a_text_with_a_search_link(sender, live_server):
    delivery = sender.send(text_message(OPENID, "没有这个词", 10005))
    reply = fields(delivery.body)
    assert reply["MsgType"] == "text"
    assert "没有找到关键词「没有这个词」" in reply["Content"]
    link = reply["Content"].split()[-1]
    parts = urlsplit(link)
    assert f"{parts.scheme}://{parts.netloc}" == live_server.url and parts.path == "/search"
    assert parse_qs(parts.query) == {"q": ["没有这个词"]}


def test_text_that_would_break_the_xml_comes_back_whole(sender):
    reply = fields(sender.send(text_message(OPENID, "a]]>b<c>&amp;", 10006)).body)
    assert "「a]]>b<c>&amp;」" in reply["Content"]


def test_subscribing_gets_a_welcome_with_todays_piece(sender, publish, live_server):
    slug = publish(title="今天的早读", keywords="早读")
    reply = fields(sender.send(event_message(OPENID, "subscribe")).body)
    assert reply["MsgType"] == "text"
    assert "欢迎关注晨读" in reply["Content"]
    assert "《今天的早读》" in reply["Content"]
    assert f"{live_server.url}/a/{slug}" in reply["Content"]


def test_unsubscribing_needs_no_answer(sender):
    delivery = sender.send(event_message(OPENID, "unsubscribe"))
    assert (delivery.status, delivery.body) == (200, "success")


@pytest.mark.parametrize("kind", ["image", "voice", "location", "link"])
def test_other_messages_get_a_polite_text(sender, kind):
    reply = fields(sender.send(other_message(OPENID, kind, 10100)).body)
    assert reply["MsgType"] == "text" and "只能读懂文字" in reply["Content"]


# --- retries ------------------------------------------------------------------------------------


def test_three_tries_of_one_message_get_three_identical_replies_and_one_log_line(
    app, sender, publish, clock
):
    publish()
    message = text_message(OPENID, "读书", 20001)
    first = sender.send(message)
    clock.advance(seconds=5)  # WeChat tries again after five seconds without an answer
    second = sender.send(message)
    clock.advance(seconds=5)
    third = sender.send(message)
    assert first.body == second.body == third.body
    assert fields(first.body)["MsgType"] == "news"
    assert logged(app) == 1


def test_retries_racing_the_first_delivery_get_the_same_reply(app, sender, publish):
    publish()
    message = text_message(OPENID, "读书", 20002)
    barrier = threading.Barrier(6)
    bodies: list[str] = []
    lock = threading.Lock()

    def deliver() -> None:
        barrier.wait(timeout=10)
        body = sender.send(message).body
        with lock:
            bodies.append(body)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(bodies) == 6 and len(set(bodies)) == 1
    assert fields(bodies[0])["MsgType"] == "news"
    assert logged(app) == 1


def test_every_reply_came_within_the_five_seconds_wechat_waits(sender, publish):
    """WeChat gives up after 5 s and tries again: the fake counts its tries, and one try per
    message means every answer came in time."""
    publish()
    for i, content in enumerate(["读书", "不存在的词", "读书"] * 10):
        delivery = sender.send(text_message(OPENID, content, 30000 + i))
        assert delivery.status == 200 and delivery.tries == 1, delivery
    assert sender.tries == 30


def test_events_without_msgid_are_told_apart_by_sender_and_time(app, sender, clock):
    created = int(clock.now().timestamp())
    sender.send(event_message(OPENID, "subscribe", created))
    sender.send(event_message(OPENID, "subscribe", created))  # a retry
    sender.send(event_message("oANOTHERfollower", "subscribe", created))
    assert logged(app) == 2


# --- what cannot be read -------------------------------------------------------------------------

BILLION_LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>'
    b"<xml><Content>&lol2;</Content></xml>"
)
EXTERNAL_ENTITY = (
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]>'
    b"<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName>"
    b"<MsgType>text</MsgType><Content>&e;</Content><MsgId>1</MsgId></xml>"
)


UTF16_ENTITIES = (
    '<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa">]>'
    "<xml><ToUserName>a</ToUserName><FromUserName>b</FromUserName><MsgType>text</MsgType>"
    "<Content>&a;</Content><MsgId>2</MsgId></xml>"
).encode("utf-16")


@pytest.mark.parametrize(
    "body",
    [
        UTF16_ENTITIES,
        '<?xml version="1.0" encoding="gb2312"?><xml><Content>读书</Content></xml>'.encode(
            "gb2312"
        ),
        b'<?xml version="1.0" encoding="x-no-such-encoding"?><xml></xml>',
        b"",
        b"not xml at all",
        b"<xml><ToUserName>unclosed",
        b"<html><body>hello</body></html>",
        BILLION_LAUGHS,
        EXTERNAL_ENTITY,
        b"\xff\xfe\x00garbage",
        b"<xml>" + b"<Content>" + b"a" * (70 * 1024) + b"</Content></xml>",
    ],
    ids=[
        "utf16-entities",
        "gb2312",
        "unknown-encoding",
        "empty",
        "text",
        "unclosed",
        "other-root",
        "billion-laughs",
        "external-entity",
        "binary",
        "oversized",
    ],
)
def test_unreadable_bodies_get_success_and_change_nothing(app, sender, body):
    status, text = sender.post_raw(body)
    assert (status, text) == (200, "success")
    assert logged(app) == 0


def test_an_unknown_message_type_gets_success_and_a_log_line(app, sender):
    xml = other_message(OPENID, "miniprogrampage", 40001)
    delivery = sender.send(xml)
    assert (delivery.status, delivery.body) == (200, "success")
    assert logged(app) == 1


def test_a_message_missing_its_sender_is_not_answered_nor_logged(app, sender):
    for _ in range(2):
        delivery = sender.send("<xml><MsgType>text</MsgType><Content>读书</Content></xml>")
        assert (delivery.status, delivery.body) == (200, "success")
    assert logged(app) == 0


def test_two_menu_clicks_in_the_same_second_are_two_messages(app, sender, clock):
    created = int(clock.now().timestamp())
    for key in ("MENU_TODAY", "MENU_SHOP", "MENU_SHOP"):
        xml = event_message(OPENID, "CLICK", created).replace(
            "</xml>", f"<EventKey><![CDATA[{key}]]></EventKey></xml>"
        )
        assert sender.send(xml).body == "success"
    assert logged(app) == 2


def test_an_unusable_aes_key_stops_the_site_at_start(tmp_path):
    from app import create_app
    from tests.conftest import make_config

    with pytest.raises(ValueError, match="EncodingAESKey"):
        create_app(make_config(tmp_path / "data", WECHAT_AES_KEY="too-short"))


def test_a_post_with_a_forged_signature_is_403_and_logs_nothing(app, sender):
    args = {**sender.query(), "signature": "f" * 40}
    status, _ = sender.post_raw(text_message(OPENID, "读书", 50001).encode(), args)
    assert status == 403
    assert logged(app) == 0


# --- safe mode (AES) -------------------------------------------------------------------------


@pytest.fixture
def safe(wechat, live_server, clock):
    key = random_aes_key()
    wechat.config["WECHAT_AES_KEY"] = key
    mode = SafeMode(key, APPID, TOKEN)
    return WeChatSender(
        live_server.url + "/wechat", TOKEN, safe=mode, now=lambda: int(clock.now().timestamp())
    )


def test_safe_mode_decrypts_the_message_and_encrypts_the_reply(app, safe, publish, live_server):
    slug = publish()
    delivery = safe.send(text_message(OPENID, "读书", 60001))
    assert delivery.status == 200
    [item] = news_items(delivery.body)  # decrypted and signature-checked by the fake
    assert item["Url"] == f"{live_server.url}/a/{slug}"
    assert logged(app) == 1


def test_safe_mode_refuses_a_message_encrypted_with_another_key(app, wechat, live_server, clock):
    wechat.config["WECHAT_AES_KEY"] = random_aes_key()
    stranger = SafeMode(random_aes_key(), APPID, TOKEN)
    sender = WeChatSender(
        live_server.url + "/wechat", TOKEN, safe=stranger, now=lambda: int(clock.now().timestamp())
    )
    delivery = sender.send(text_message(OPENID, "读书", 60002))
    assert (delivery.status, delivery.body) == (200, "success")
    assert logged(app) == 0


def test_safe_mode_refuses_a_message_for_another_app_id(app, wechat, live_server, clock):
    key = random_aes_key()
    wechat.config["WECHAT_AES_KEY"] = key
    sender = WeChatSender(
        live_server.url + "/wechat",
        TOKEN,
        safe=SafeMode(key, "wxanotherapp000000", TOKEN),
        now=lambda: int(clock.now().timestamp()),
    )
    assert sender.send(text_message(OPENID, "读书", 60003)).body == "success"
    assert logged(app) == 0


def test_safe_mode_refuses_a_bad_msg_signature(app, safe):
    encrypted = safe.safe.encrypt(text_message(OPENID, "读书", 60004))
    args = {**safe.query(), "encrypt_type": "aes", "msg_signature": "0" * 40}
    body = f"<xml><Encrypt><![CDATA[{encrypted}]]></Encrypt></xml>".encode()
    assert safe.post_raw(body, args) == (200, "success")
    assert logged(app) == 0


# --- the desk ----------------------------------------------------------------------------------


def test_the_desk_lists_keywords_and_the_last_messages(
    app, wechat, client, make_user, login, publish, clock
):
    publish(title="读书的方法", keywords="读书 阅读")
    publish(title="会员专享", keywords="会员", visibility="members")
    with app.test_request_context():
        from wechat import replies

        for i, content in enumerate(["读书", "随便问问"]):
            replies.receive(
                {
                    "ToUserName": ACCOUNT,
                    "FromUserName": OPENID,
                    "MsgType": "text",
                    "Content": content,
                    "MsgId": str(70000 + i),
                    "CreateTime": "1",
                }
            )
    make_user("editor@example.com", role="editor")
    login("editor@example.com")
    page = html(client.get("/editor/wechat/"))
    keywords = [td.get_text() for td in page.select("#keywords .keyword")]
    assert sorted(keywords) == sorted(["会员", "阅读", "读书"])
    shown = [li.select_one(".wechat-content").get_text() for li in page.select(".wechat-message")]
    assert shown == ["随便问问", "读书"]
    replies_shown = [p.get_text() for p in page.select(".wechat-message .wechat-reply")]
    assert replies_shown[1] == "回复：图文：读书的方法"
    assert "没有找到关键词「随便问问」" in replies_shown[0]


def test_the_desk_is_for_editors_only(app, client, make_user, login):
    response = client.get("/editor/wechat/")
    assert response.status_code == 302 and response.location.startswith("/login")
    make_user()
    login()
    assert client.get("/editor/wechat/").status_code == 403


# --- the console's domain check --------------------------------------------------------------


def test_the_domain_verification_file_is_served_from_the_data_folder(app, client):
    (app.config["DATA_DIR"] / "MP_verify_Ab12Cd34Ef56.txt").write_text("Ab12Cd34Ef56\n")
    response = client.get("/MP_verify_Ab12Cd34Ef56.txt")
    assert response.status_code == 200
    assert response.get_data(as_text=True) == "Ab12Cd34Ef56"
    assert response.mimetype == "text/plain"
    assert client.get("/MP_verify_Other0000.txt").status_code == 404
    assert client.get("/MP_verify_..%2Fsecret_key.txt").status_code == 404


def test_a_demo_keyword_gets_the_demo_article(app, sender, live_server):
    runner = app.test_cli_runner()
    assert runner.invoke(args=["demo", "load"]).exit_code == 0
    with app.app_context():
        from content.models import ArticleKeyword

        keyword, slug = db.session.execute(
            select(ArticleKeyword.keyword, Article.slug)
            .join(Article, Article.id == ArticleKeyword.article_id)
            .where(ArticleKeyword.live, Article.slug.startswith("demo-"))
            .limit(1)
        ).one()
    [item] = news_items(sender.send(text_message(OPENID, keyword, 80001)).body)
    assert item["Url"] == f"{live_server.url}/a/{slug}"
