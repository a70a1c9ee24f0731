"""Demo accounts for `flask --app app demo load`."""

from __future__ import annotations

import os
import secrets

from flask import current_app

from members import accounts
from members.models import Role

DEMO_ACCOUNTS = [
    ("reader@example.com", Role.READER, None),
    ("member@example.com", Role.READER, "年度会员"),
    ("editor@example.com", Role.EDITOR, None),
]


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


def load() -> list[str]:
    """Create the demo accounts that are missing; return the lines that tell how to log in."""
    passwords = _passwords()
    lines = ["演示账号 (demo logins):"]
    for email, role, tier in DEMO_ACCOUNTS:
        user = accounts.find_user(email)
        if user is None:
            user = accounts.create_user(email, passwords[email], role=role)
        if tier and not user.is_member:
            accounts.grant_membership(email, tier, 365)
        if accounts.authenticate(email, passwords[email]) is None:
            lines.append(f"  {email:<22} (password changed; not the one in demo-logins.txt)")
        else:
            lines.append(f"  {email:<22} {passwords[email]}")
    return lines
