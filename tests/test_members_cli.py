"""`flask --app app members tier|window|grant|revoke`: the commands that set up a year's
enrollment, what they print and store, and every bad input refused with its message, leaving
the database as it was."""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select, update

from app import db, write_transaction
from members.models import (
    EnrollmentWindow,
    Membership,
    MembershipEvent,
    Tier,
    User,
    WindowSeat,
)
from tests.conftest import TEST_PASSWORD_HASH

ROOT = Path(__file__).resolve().parent.parent

# As the README documents them, word for word.
ADD_PUTONG = "flask --app app members tier add putong --name 普通会员 --price 200 --days 365"
ADD_TIEGAN = (
    "flask --app app members tier add tiegan --name 铁杆会员 --price 1200 --days 365 "
    '--perks "全部权益\\n线下活动"'
)
ADD_WINDOW = (
    'flask --app app members window add --name "2027 会员招募" --opens "2027-01-10 10:00" '
    '--closes "2027-01-12 22:00" --seats putong=5000 --seats tiegan=500 --renewal-hours 24'
)
WINDOW_SHOWN = (
    "window #1 2027 会员招募\n"
    "  renewal from 2027-01-09 10:00, opens 2027-01-10 10:00, closes 2027-01-12 22:00 "
    "(Asia/Shanghai)\n"
    "  putong 普通会员: cap 5000, sold 0, held 0\n"
    "  tiegan 铁杆会员: cap 500, sold 0, held 0\n"
)
TIEGAN_SHOWN = "tier tiegan: 铁杆会员 ¥1200.00, 365 days\n  - 全部权益\n  - 线下活动\n"


@pytest.fixture
def cli(app):
    return app.test_cli_runner()


@pytest.fixture
def run(cli):
    """Run a command line as typed in a shell ("flask --app app " and all)."""

    def run_line(line: str):
        args = shlex.split(line)
        assert args[:3] == ["flask", "--app", "app"]
        return cli.invoke(args=args[3:])

    return run_line


@pytest.fixture
def enrollment_set_up(run):
    for line in (ADD_PUTONG, ADD_TIEGAN, ADD_WINDOW):
        result = run(line)
        assert result.exit_code == 0, result.output


def snapshot(app) -> dict[str, list[tuple]]:
    """Every row of the tables these commands write."""
    with app.app_context():
        db.session.expire_all()
        return {
            model.__tablename__: [
                tuple(row)
                for row in db.session.execute(
                    select(model.__table__).order_by(*model.__table__.primary_key.columns)
                )
            ]
            for model in (Tier, EnrollmentWindow, WindowSeat, User, Membership, MembershipEvent)
        }


def refused(app, run, line: str, message: str) -> None:
    """`line` fails with `message` and a non-zero exit, and changes nothing."""
    before = snapshot(app)
    result = run(line)
    assert result.exit_code != 0, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    assert snapshot(app) == before


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


# --- the documented commands -----------------------------------------------------------------


def test_the_documented_commands_set_up_a_year(app, run):
    result = run(ADD_PUTONG)
    assert result.exit_code == 0, result.output
    assert result.stdout == "tier putong: 普通会员 ¥200.00, 365 days\n"
    result = run(ADD_TIEGAN)
    assert result.stdout == TIEGAN_SHOWN
    result = run(ADD_WINDOW)
    assert result.exit_code == 0, result.output
    assert result.stdout == WINDOW_SHOWN
    with app.app_context():
        tiers = db.session.scalars(select(Tier).order_by(Tier.position)).all()
        assert [(t.slug, t.name, t.price_fen, t.days, t.perks) for t in tiers] == [
            ("putong", "普通会员", 20000, 365, ""),
            ("tiegan", "铁杆会员", 120000, 365, "全部权益\n线下活动"),
        ]
        window = db.session.scalars(select(EnrollmentWindow)).one()
        assert window.name == "2027 会员招募"
        # Typed in Shanghai time, stored in UTC.
        assert window.renewal_starts_at == utc(2027, 1, 9, 2, 0)
        assert window.opens_at == utc(2027, 1, 10, 2, 0)
        assert window.closes_at == utc(2027, 1, 12, 14, 0)
        seats = {s.tier.slug: (s.cap, s.available, s.held, s.sold) for s in window.seats}
        assert seats == {"putong": (5000, 5000, 0, 0), "tiegan": (500, 500, 0, 0)}


def test_the_documented_commands_run_through_flask(tmp_path):
    """The same lines through the real `flask` command on a migrated database."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "SECRET_KEY")}
    env.update(DATA_DIR=str(tmp_path / "data"), PASSWORD_HASH_METHOD=TEST_PASSWORD_HASH)
    outputs = []
    for line in ("flask --app app db upgrade", ADD_PUTONG, ADD_TIEGAN, ADD_WINDOW):
        args = shlex.split(line)
        result = subprocess.run(
            [str(Path(sys.executable).parent / "flask"), *args[1:]],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, (line, result.stdout, result.stderr)
        outputs.append(result.stdout)
    assert outputs[1:] == ["tier putong: 普通会员 ¥200.00, 365 days\n", TIEGAN_SHOWN, WINDOW_SHOWN]


# --- tiers -----------------------------------------------------------------------------------


def test_tier_add_takes_perks_as_one_text_or_repeated(app, run):
    result = run(
        "flask --app app members tier add zhichi --name 支持会员 --price 99.9 "
        '--perks "每日语音\\n社群发帖" --perk 年终手账 --perk "线下 活动"'
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "tier zhichi: 支持会员 ¥99.90, 365 days\n"
        "  - 每日语音\n  - 社群发帖\n  - 年终手账\n  - 线下 活动\n"
    )
    with app.app_context():
        tier = db.session.scalars(select(Tier)).one()
        assert tier.perks == "每日语音\n社群发帖\n年终手账\n线下 活动"
        assert tier.price_fen == 9990 and tier.days == 365


def test_tier_edit_changes_only_what_is_given(app, run, enrollment_set_up):
    before = snapshot(app)["tiers"]
    result = run("flask --app app members tier edit tiegan --price 1288.5")
    assert result.exit_code == 0, result.output
    assert result.stdout == "tier tiegan: 铁杆会员 ¥1288.50, 365 days\n  - 全部权益\n  - 线下活动\n"
    result = run("flask --app app members tier edit TIEGAN --name 铁杆 --days 400 --perk 签名书")
    assert result.stdout == "tier tiegan: 铁杆 ¥1288.50, 400 days\n  - 签名书\n"
    result = run('flask --app app members tier edit tiegan --perks ""')
    assert result.stdout == "tier tiegan: 铁杆 ¥1288.50, 400 days\n"
    with app.app_context():
        tiegan = db.session.scalar(select(Tier).where(Tier.slug == "tiegan"))
        assert (tiegan.name, tiegan.price_fen, tiegan.days, tiegan.perks) == (
            "铁杆",
            128850,
            400,
            "",
        )
    # The other tier was not touched.
    assert snapshot(app)["tiers"][0] == before[0]


def test_tier_list(run, enrollment_set_up):
    result = run("flask --app app members tier list")
    assert result.exit_code == 0, result.output
    assert result.stdout == "tier putong: 普通会员 ¥200.00, 365 days\n" + TIEGAN_SHOWN


def test_tier_list_when_there_are_none(run):
    result = run("flask --app app members tier list")
    assert result.exit_code == 0
    assert result.stdout == "no tiers yet\n"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tier add 'Bad Slug' --name 新等级 --price 10", "SLUG: 标识只能用小写字母"),
        ("tier add -bad --name 新等级 --price 10", "No such option"),
        ("tier add putong --name 另一个 --price 10", "SLUG: 标识 putong 已被另一个等级使用。"),
        ("tier add xin --name 普通会员 --price 10", "--name: 名称「普通会员」已被另一个等级使用。"),
        ("tier add xin --price 10", "--name: 请填写等级名称"),
        ("tier add xin --name 新等级", "--price: 价格请填写金额（元）"),
        ("tier add xin --name 新等级 --price 0", "--price: 价格必须大于 0。"),
        ("tier add xin --name 新等级 --price -5", "--price: 价格不能是负数。"),
        ("tier add xin --name 新等级 --price abc", "--price: 价格请填写金额（元）"),
        ("tier add xin --name 新等级 --price 1.234", "--price: 价格最多两位小数"),
        ("tier add xin --name 新等级 --price 10 --days 0", "--days: 有效天数请填 1 到 3660"),
        ("tier add xin --name 新等级 --price 10 --days 9999", "--days: 有效天数请填 1 到 3660"),
        ("tier add xin --name 新等级 --price 10 --days 一年", "--days: 有效天数请填 1 到 3660"),
        (f"tier add xin --name 新等级 --price 10 --perks {'长' * 2001}", "--perks: 会员权益最多"),
        ("tier edit nope --price 10", "没有标识为 nope 的会员等级。"),
        ("tier edit putong", "Nothing to change"),
        ("tier edit putong --price 0", "--price: 价格必须大于 0。"),
        ("tier edit putong --days 0", "--days: 有效天数请填 1 到 3660"),
        ("tier edit putong --name 铁杆会员", "--name: 名称「铁杆会员」已被另一个等级使用。"),
    ],
)
def test_bad_tiers_are_refused_and_change_nothing(app, run, enrollment_set_up, line, message):
    refused(app, run, f"flask --app app members {line}", message)


def test_every_fault_of_a_tier_is_told_at_once(app, run):
    before = snapshot(app)
    result = run("flask --app app members tier add 'Bad Slug' --price 0 --days 0")
    assert result.exit_code == 1
    faults = [line.split(":")[0] for line in result.output.splitlines()]
    assert faults == ["Error", "--name", "--price", "--days"]
    assert result.output.startswith("Error: SLUG: 标识只能用小写字母")
    assert snapshot(app) == before


# --- windows ---------------------------------------------------------------------------------


def test_window_add_without_renewal_hours_and_list_latest_first(app, run, enrollment_set_up):
    result = run(
        'flask --app app members window add --name "2028 会员招募" --opens "2028-01-10 10:00" '
        '--closes "2028-01-12 22:00" --seats PUTONG=3000'
    )
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "window #2 2028 会员招募\n"
        "  renewal from 2028-01-10 10:00, opens 2028-01-10 10:00, closes 2028-01-12 22:00 "
        "(Asia/Shanghai)\n"
        "  putong 普通会员: cap 3000, sold 0, held 0\n"
    )
    with app.app_context():
        window = db.session.get(EnrollmentWindow, 2)
        assert window.renewal_starts_at == window.opens_at == utc(2028, 1, 10, 2, 0)
        # Seats are counted as they are when listed: some held, some sold.
        with write_transaction() as session:
            session.execute(
                update(WindowSeat)
                .where(WindowSeat.window_id == 1, WindowSeat.cap == 500)
                .values(available=WindowSeat.available - 5, held=2, sold=3)
            )
    result = run("flask --app app members window list")
    assert result.exit_code == 0, result.output
    assert result.stdout == "".join(
        [
            "window #2 2028 会员招募\n",
            "  renewal from 2028-01-10 10:00, opens 2028-01-10 10:00, closes 2028-01-12 22:00 "
            "(Asia/Shanghai)\n",
            "  putong 普通会员: cap 3000, sold 0, held 0\n",
            WINDOW_SHOWN.replace("cap 500, sold 0, held 0", "cap 500, sold 3, held 2"),
        ]
    )


def test_window_list_when_there_are_none(run):
    result = run("flask --app app members window list")
    assert result.exit_code == 0
    assert result.stdout == "no enrollment windows yet\n"


def window_line(opens="2028-01-10 10:00", closes="2028-01-12 22:00", extra="--seats putong=9"):
    return (
        f'flask --app app members window add --name 补招 --opens "{opens}" --closes "{closes}" '
        + extra
    )


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (window_line(opens="2028/01/10 10:00"), "--opens: 请按 YYYY-MM-DD HH:MM 填写北京时间"),
        (window_line(closes="2028-01-12"), "--closes: 请按 YYYY-MM-DD HH:MM 填写北京时间"),
        (window_line(opens="2028-01-10 25:00"), "--opens: 请按 YYYY-MM-DD HH:MM"),
        (window_line(closes="2028-01-09 10:00"), "--closes: 结束时间必须晚于开始时间。"),
        (window_line(closes="2028-01-10 10:00"), "--closes: 结束时间必须晚于开始时间。"),
        (
            window_line("2027-01-12 12:00", "2027-01-13 10:00"),
            "--opens: 和「2027 会员招募」（2027-01-09 10:00 至 2027-01-12 22:00）时间重叠",
        ),
        (
            # Its renewal period reaches back into the 2027 window.
            window_line(
                "2027-01-13 10:00", "2027-01-14 10:00", "--seats putong=9 --renewal-hours 24"
            ),
            "--opens: 和「2027 会员招募」",
        ),
        (window_line(extra="--seats gold=9"), "--seats gold: 没有标识为 gold 的会员等级。"),
        (window_line(extra="--seats putong"), "'putong' 应写成 等级标识=名额，如 putong=5000。"),
        (window_line(extra="--seats =9"), "'=9' 应写成 等级标识=名额"),
        (window_line(extra="--seats putong="), "'putong=' 应写成 等级标识=名额"),
        (window_line(extra="--seats putong:9"), "'putong:9' 应写成 等级标识=名额"),
        (
            window_line(extra="--seats putong=9 --seats PUTONG=10"),
            "等级 putong 的名额写了两次。",
        ),
        (window_line(extra="--seats putong=many"), "--seats putong: 名额请填 0 到 1000000"),
        (window_line(extra="--seats putong=-1"), "--seats putong: 名额请填 0 到 1000000"),
        (window_line(extra="--seats putong=0"), "--seats: 至少给一个会员等级设置名额。"),
        (window_line(extra=""), "--seats: 至少给一个会员等级设置名额。"),
        (
            window_line(extra="--seats putong=9 --renewal-hours -1"),
            "--renewal-hours: 续费优先期请填 0 到 720 之间的小时数。",
        ),
        (
            window_line(extra="--seats putong=9 --renewal-hours 721"),
            "--renewal-hours: 续费优先期请填 0 到 720",
        ),
        (
            'flask --app app members window add --name "" --opens "2028-01-10 10:00" '
            '--closes "2028-01-12 22:00" --seats putong=9',
            "--name: 请填写招募名称",
        ),
    ],
)
def test_bad_windows_are_refused_and_change_nothing(app, run, enrollment_set_up, line, message):
    refused(app, run, line, message)


def test_back_to_back_windows_are_fine(app, run, enrollment_set_up):
    result = run(
        window_line("2027-01-13 10:00", "2027-01-14 10:00", "--seats putong=9 --renewal-hours 12")
    )
    assert result.exit_code == 0, result.output
    assert "renewal from 2027-01-12 22:00, opens 2027-01-13 10:00" in result.stdout


# --- grants and revocations ------------------------------------------------------------------


def events(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [
            (e.action, e.reason)
            for e in db.session.scalars(select(MembershipEvent).order_by(MembershipEvent.id))
        ]


def test_grant_logs_its_reason(app, run, make_user, enrollment_set_up):
    make_user("m@example.com")
    result = run("flask --app app members grant m@example.com --tier 年度会员 --days 10")
    assert result.exit_code == 0, result.output
    assert result.stdout == "m@example.com is a 年度会员 member until 2026-12-01 08:00\n"
    result = run("flask --app app members grant m@example.com --tier tiegan --reason 作者赠送")
    assert result.stdout == "m@example.com is a 铁杆会员 member until 2027-12-01 08:00\n"
    assert events(app) == [("granted", "命令行授予"), ("granted", "作者赠送")]
    refused(
        app,
        run,
        'flask --app app members grant m@example.com --tier putong --reason " "',
        "请写下原因",
    )


def test_revoke_ends_the_membership_now_and_logs_why(app, run, make_user, clock):
    make_user("m@example.com")
    run("flask --app app members grant m@example.com --tier 年度会员")
    clock.advance(days=3)
    result = run("flask --app app members revoke M@example.com --reason 线下已退款")
    assert result.exit_code == 0, result.output
    assert result.stdout == "m@example.com is no longer a member\n"
    assert events(app) == [("granted", "命令行授予"), ("revoked", "线下已退款")]
    with app.app_context():
        user = db.session.scalar(select(User))
        assert not user.is_member
        assert db.session.scalar(select(Membership.ends_at)) == clock.now()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("revoke ghost@example.com --reason 退款", "没有找到用户 ghost@example.com。"),
        ("revoke plain@example.com --reason 退款", "plain@example.com 现在不是会员"),
        ("revoke m@example.com --reason ' '", "--reason: 请写下原因，它会记入会员日志。"),
        (f"revoke m@example.com --reason {'长' * 301}", "--reason: 原因最多 300 字。"),
        ("revoke m@example.com", "Missing option '--reason'"),
    ],
)
def test_bad_revocations_are_refused_and_change_nothing(app, run, make_user, line, message):
    make_user("m@example.com")
    make_user("plain@example.com")
    assert run("flask --app app members grant m@example.com --tier 年度会员").exit_code == 0
    refused(app, run, f"flask --app app members {line}", message)
