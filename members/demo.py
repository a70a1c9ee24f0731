"""Demo accounts for `flask --app app demo load`."""

from __future__ import annotations

import os
import secrets
from datetime import timedelta

from flask import current_app
from sqlalchemy import select

from app import db, local_time, utcnow
from members import accounts, enrollment
from members.enrollment import EnrollmentError, TierForm, WindowForm
from members.models import EnrollmentWindow, Role

DEMO_ACCOUNTS = [
    ("reader@example.com", Role.READER, None),
    ("member@example.com", Role.READER, "普通会员"),
    ("editor@example.com", Role.EDITOR, None),
]
DEMO_TIERS = [
    TierForm(
        "putong",
        "普通会员",
        "200",
        "365",
        "读完整的会员文章，收听全部 60 秒语音\n以会员价购买限量好物\n在社群提问、回答和发帖",
    ),
    TierForm(
        "tiegan",
        "铁杆会员",
        "1200",
        "365",
        "普通会员的全部权益\n每季度一次线下读书会\n限量好物优先购买\n年度纪念礼盒",
    ),
]
DEMO_SEATS = {"putong": "5000", "tiegan": "500"}
# The demo window opens this long after `make run` loads it, so the countdown can be watched.
OPENS_IN = timedelta(minutes=5)


def _passwords() -> dict[str, str]:
    """Demo passwords, made once per data folder and kept there (mode 0600), never in git."""
    path = current_app.config["DATA_DIR"] / "demo-logins.txt"
    known: dict[str, str] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            email, _, password = line.partition(" ")
            if email and password:
                known[email] = password
    missing = [email for email, _, _ in DEMO_ACCOUNTS if email not in known]
    if missing:
        for email in missing:
            known[email] = f"demo-{secrets.token_hex(4)}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"{email} {password}\n" for email, password in known.items())
    return known


def _tiers_and_window() -> list[str]:
    for form in DEMO_TIERS:
        if enrollment.tier_by_slug(form.slug) is None:
            enrollment.save_tier(form)
    now = utcnow()
    window = db.session.scalar(
        select(EnrollmentWindow)
        .where(EnrollmentWindow.closes_at > now)
        .order_by(EnrollmentWindow.opens_at)
        .limit(1)
    )
    if window is None:
        opens = local_time(now + OPENS_IN + timedelta(seconds=59)).replace(second=0, microsecond=0)
        form = WindowForm(
            f"{opens.year + 1} 会员招募",
            opens.strftime("%Y-%m-%d %H:%M"),
            (opens + timedelta(days=7)).strftime("%Y-%m-%d %H:%M"),
            "0",
            dict(DEMO_SEATS),
        )
        try:
            window = enrollment.save_window(form)
        except EnrollmentError as error:
            return [f"会员招募 (enrollment): not created: {error.message}"]
    opens_text = local_time(window.opens_at).strftime("%Y-%m-%d %H:%M")
    return [f"会员招募 (enrollment): {window.name}, opens {opens_text} (/join)"]


def load() -> list[str]:
    """Create the demo tiers, window and accounts that are missing; return the lines that
    tell how to log in."""
    window_lines = _tiers_and_window()
    passwords = _passwords()
    lines = ["演示账号 (demo logins):"]
    for email, role, tier in DEMO_ACCOUNTS:
        user = accounts.find_user(email)
        if user is None:
            user = accounts.create_user(email, passwords[email], role=role)
        if tier and not user.is_member and user.member_number is None:
            # An earlier member, numbered, whose year ends soon: renews in the demo window.
            accounts.grant_membership(email, tier, 20, reason="演示：上一期会员")
        if accounts.authenticate(email, passwords[email]) is None:
            lines.append(f"  {email:<22} (password changed; not the one in demo-logins.txt)")
        else:
            lines.append(f"  {email:<22} {passwords[email]}")
    return lines + window_lines
