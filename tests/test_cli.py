"""The documented commands: users create, members grant, demo load."""

from __future__ import annotations

import os
import stat
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from app import create_app, db
from members.models import Membership, User
from tests.conftest import DEFAULT_NOW, html, make_config, post_form


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


def test_users_create_then_log_in_through_the_form(cli, client):
    result = cli.invoke(
        args=["users", "create", "ed@example.com", "--password", "s3cret-pass", "--role", "editor"]
    )
    assert result.exit_code == 0, result.output
    assert "created ed@example.com (editor)" in result.output
    response = post_form(client, "/login", {"email": "ed@example.com", "password": "s3cret-pass"})
    assert response.status_code == 302
    page = html(client.get("/me"))
    assert page.select_one(".profile .email").get_text() == "ed@example.com"
    assert "编辑" in page.select_one(".facts").get_text()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "create", "dup@example.com", "--password", "long enough"], "已经注册"),
        (
            ["users", "create", "new@example.com", "--password", "long enough", "--role", "king"],
            "未知的角色",
        ),
        (["users", "create", "not-an-email", "--password", "long enough"], "有效的邮箱"),
        (["users", "create", "new@example.com", "--password", "short"], "密码长度"),
        (["members", "grant", "ghost@example.com", "--tier", "年度会员"], "没有找到用户"),
        (["members", "grant", "dup@example.com", "--tier", ""], "等级名称"),
        (["members", "grant", "dup@example.com", "--tier", "年度会员", "--days", "0"], "天数"),
        (
            ["members", "grant", "dup@example.com", "--tier", "年度会员", "--days", "many"],
            "not a valid integer",
        ),
    ],
)
def test_cli_errors_are_clear_and_change_nothing(app, cli, make_user, args, message):
    make_user("dup@example.com")
    result = cli.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1
        assert db.session.scalar(select(func.count()).select_from(Membership)) == 0


def test_members_grant_makes_a_member_now_and_extends(app, cli, clock, make_user):
    make_user("m@example.com")
    result = cli.invoke(args=["members", "grant", "M@example.com", "--tier", "年度会员"])
    assert result.exit_code == 0, result.output
    # 2026-11-21 08:00 Shanghai + 365 days
    assert "m@example.com is a 年度会员 member until 2027-11-21 08:00" in result.output
    result = cli.invoke(
        args=["members", "grant", "m@example.com", "--tier", "年度会员", "--days", "30"]
    )
    assert "until 2027-12-21 08:00" in result.output
    with app.app_context():
        user = db.session.scalar(select(User))
        assert user.is_member
        clock.advance(days=394)
        assert user.is_member
        clock.advance(days=2)
        assert not user.is_member


def test_membership_shows_on_me(app, cli, client, make_user, login):
    make_user()
    cli.invoke(
        args=["members", "grant", "reader@example.com", "--tier", "年度会员", "--days", "10"]
    )
    login()
    facts = html(client.get("/me")).select_one(".facts").get_text()
    assert "年度会员，有效期至 2026-12-01" in facts


def test_membership_in_the_future_or_past_is_not_now(app, make_user, clock):
    from app import write_transaction

    make_user()
    with app.app_context():
        with write_transaction() as session:
            session.add(
                Membership(
                    user_id=1,
                    tier="t",
                    starts_at=DEFAULT_NOW + timedelta(days=1),
                    ends_at=DEFAULT_NOW + timedelta(days=2),
                    created_at=DEFAULT_NOW,
                )
            )
        user = db.session.get(User, 1)
        assert not user.is_member
        clock.advance(days=1)
        assert user.is_member
        clock.advance(days=1)
        assert not user.is_member


def test_users_create_prompts_for_a_password_when_not_given(cli):
    result = cli.invoke(
        args=["users", "create", "p@example.com"], input="long enough\nlong enough\n"
    )
    assert result.exit_code == 0, result.output


def test_demo_load_is_idempotent_and_prints_working_logins(app, cli, client):
    first = cli.invoke(args=["demo", "load"])
    assert first.exit_code == 0, first.output
    second = cli.invoke(args=["demo", "load"])
    assert second.output == first.output
    logins = dict(line.split() for line in first.output.splitlines() if line.startswith("  "))
    assert set(logins) == {"reader@example.com", "member@example.com", "editor@example.com"}
    path = app.config["DATA_DIR"] / "demo-logins.txt"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 4
        assert db.session.scalar(select(func.count()).select_from(Membership)) == 2
        member = db.session.scalar(select(User).where(User.email == "member@example.com"))
        assert member.is_member
    assert "演示文章 (demo articles): 14" in first.output
    home = html(client.get("/"))
    assert home.select_one(".today h1").get_text() == "晨读的第一天"
    recent = home.select(".items .item a[href^='/a/']")
    assert len(recent) == 13
    assert len(home.select("#active-threads .item")) == 5  # the board's demo threads
    anonymous = client.get("/a/" + recent[0]["href"].rsplit("/", 1)[1])
    assert anonymous.status_code == 200
    post_form(
        client, "/login", {"email": "member@example.com", "password": logins["member@example.com"]}
    )
    card = " ".join(html(client.get("/me")).select_one("#member-card").get_text().split())
    assert "普通会员" in card and "第 1 号会员" in card
    # The enrollment window opens a few minutes after the demo is loaded, with both tiers.
    assert "会员招募 (enrollment): 2027 会员招募, opens 2026-11-21 08:05 (/join)" in first.output
    live = " ".join(html(client.get("/join")).select_one("#join-live").get_text().split())
    assert "普通会员 ¥200.00" in live and "名额 5000 个" in live
    assert "铁杆会员 ¥1200.00" in live and "名额 500 个" in live
    assert live.count("立即加入") == 0 and live.count("续费") >= 1


def test_secret_key_is_generated_once_and_private(tmp_path, monkeypatch):
    monkeypatch.delenv("SECRET_KEY", raising=False)
    config = make_config(tmp_path)
    del config["SECRET_KEY"]
    first = create_app(dict(config))
    second = create_app(dict(config))
    key = tmp_path / "secret_key"
    assert stat.S_IMODE(os.stat(key).st_mode) == 0o600
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"] == key.read_text()
    assert len(first.config["SECRET_KEY"]) == 64


def test_config_comes_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DATA_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("SITE_NAME", "晨读测试")
    monkeypatch.setenv("SECRET_KEY", "from-env")
    monkeypatch.delenv("DATABASE_URL", raising=False)
    app = create_app({"TESTING": True})
    assert app.config["DATA_DIR"] == tmp_path / "elsewhere"
    assert app.config["SECRET_KEY"] == "from-env"
    assert app.config["SITE_NAME"] == "晨读测试"
    assert app.config["TIMEZONE"] == "Asia/Shanghai"
    assert (
        app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path / 'elsewhere' / 'chendu.db'}"
    )
    monkeypatch.setenv("DATABASE_URL", "postgres://u:p@127.0.0.1:5432/chendu")
    app = create_app({"TESTING": True})
    assert app.config["SQLALCHEMY_DATABASE_URI"] == "postgresql+psycopg://u:p@127.0.0.1:5432/chendu"
    with app.app_context():
        db.engine.dispose()
