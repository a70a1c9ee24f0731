"""Account rules: sign up, log in, change password, roles and membership grants.

Each function does one whole job and commits or rolls back as one unit. They raise
`AccountError` with the field at fault and a message a reader can act on.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import unicodedata
from collections.abc import Callable, Iterable
from functools import lru_cache
from typing import Any

from flask import current_app
from sqlalchemy import bindparam, delete, select
from sqlalchemy.exc import IntegrityError
from werkzeug.security import check_password_hash, generate_password_hash

from app import db, utcnow, write_transaction
from members.models import LoginSession, Membership, Role, User, remember_membership

EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
PHONE_RE = re.compile(r"^1[3-9][0-9]{9}$")  # ASCII digits only (\d is any script)
PASSWORD_MIN, PASSWORD_MAX = 8, 128
NICKNAME_MIN, NICKNAME_MAX = 2, 24
# What a nickname must not look like: an address, a phone number (7 digits or more, spaces
# and dashes aside), or the names the site gives to people without one (「读者12」, 「12 号会员」).
NICKNAME_EMAIL_RE = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
NICKNAME_PHONE_RE = re.compile(r"[0-9][0-9 ()+\-.]{5,}[0-9]")
NICKNAME_GIVEN_RE = re.compile(r"读者\s*[0-9]+|[0-9]+\s*号会员")


class AccountError(Exception):
    """Rules were broken: `errors` maps each form field at fault to the message shown next to it."""

    def __init__(self, errors: dict[str, str]) -> None:
        self.errors = errors
        super().__init__(" ".join(errors.values()))


def _checked(**checks: Callable[[], Any]) -> dict[str, Any]:
    """Run every check and report every failure at once, so a form shows all its faults."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, check in checks.items():
        try:
            values[name] = check()
        except AccountError as error:
            errors.update(error.errors)
    if errors:
        raise AccountError(errors)
    return values


def normalize_email(email: str) -> str:
    return email.strip().lower()


def check_email(email: str) -> str:
    email = normalize_email(email)
    # `.invalid` can never receive mail; the site uses it for accounts made by WeChat login.
    if len(email) > 254 or not EMAIL_RE.match(email) or email.endswith(".invalid"):
        raise AccountError({"email": "请输入有效的邮箱地址。"})
    return email


def check_password(password: str) -> str:
    if not PASSWORD_MIN <= len(password) <= PASSWORD_MAX:
        raise AccountError(
            {"password": f"密码长度需在 {PASSWORD_MIN} 到 {PASSWORD_MAX} 个字符之间。"}
        )
    return password


def check_phone(phone: str | None) -> str | None:
    phone = (phone or "").strip().replace(" ", "").replace("-", "")
    if phone.startswith("+86"):
        phone = phone[3:]
    if not phone:
        return None
    if not PHONE_RE.match(phone):
        raise AccountError({"phone": "请输入 11 位中国大陆手机号，或留空。"})
    return phone


def check_nickname(nickname: str) -> str | None:
    """The name the board shows for a user, tidied (ends stripped, inner spaces single), or
    None for a blank one (the site then gives a name of its own)."""
    nickname = unicodedata.normalize("NFC", " ".join(nickname.split()))
    if not nickname:
        return None
    # Control characters, and the invisible ones that make two names look alike or turn text
    # around (zero-width spaces, direction marks); the joiner inside emoji is kept.
    if any(
        unicodedata.category(c) in ("Cc", "Cs", "Co", "Cn")
        or (unicodedata.category(c) == "Cf" and c != "\u200d")
        for c in nickname
    ):
        raise AccountError({"nickname": "昵称里有看不见的控制字符，请删掉后再试。"})
    if not NICKNAME_MIN <= len(nickname) <= NICKNAME_MAX:
        raise AccountError({"nickname": f"昵称需要 {NICKNAME_MIN} 到 {NICKNAME_MAX} 个字。"})
    # Full-width ＠ and digits of any script looked at as their plain forms.
    plain = "".join(
        str(unicodedata.digit(c)) if unicodedata.digit(c, None) is not None else c
        for c in unicodedata.normalize("NFKC", nickname)
    )
    if NICKNAME_EMAIL_RE.search(plain):
        raise AccountError({"nickname": "昵称不能是邮箱地址：别人会看到它。"})
    if NICKNAME_PHONE_RE.search(plain):
        raise AccountError({"nickname": "昵称不能像电话号码：连在一起的数字最多 6 个。"})
    if NICKNAME_GIVEN_RE.fullmatch(plain):
        raise AccountError({"nickname": "这个样子的名字是网站给没有昵称的人用的，请换一个。"})
    return nickname


def set_nickname(user: User, nickname: str) -> User:
    """Give `user` the name the board shows (blank: none). AccountError says what is wrong."""
    checked = check_nickname(nickname)
    with write_transaction() as session:
        found = session.get(User, user.id)
        if found is None:
            raise AccountError({"nickname": "找不到这个账号。"})
        found.nickname = checked
    return found


def check_role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        names = ", ".join(r.value for r in Role)
        raise AccountError({"role": f"未知的角色 {role!r}，可选：{names}。"}) from None


def hash_password(password: str) -> str:
    return generate_password_hash(password, method=current_app.config["PASSWORD_HASH_METHOD"])


def create_user(
    email: str, password: str, *, phone: str | None = None, role: str = Role.READER
) -> User:
    """Create an account. Raises AccountError for bad fields or an email already registered."""
    checked = _checked(
        email=lambda: check_email(email),
        password=lambda: check_password(password),
        phone=lambda: check_phone(phone),
        role=lambda: check_role(role),
    )
    email, phone, role = checked["email"], checked["phone"], checked["role"]
    password_hash = hash_password(password)  # slow on purpose: keep it out of the write lock
    try:
        with write_transaction() as session:
            if session.scalar(select(User.id).where(User.email == email)) is not None:
                raise AccountError({"email": "这个邮箱已经注册过了，可以直接登录。"})
            user = User(
                email=email,
                password_hash=password_hash,
                phone=phone,
                role=role.value,
                created_at=utcnow(),
            )
            session.add(user)
            session.flush()
    except IntegrityError:
        # Another sign-up with the same email committed between our check and our insert.
        raise AccountError({"email": "这个邮箱已经注册过了，可以直接登录。"}) from None
    return user


@lru_cache(maxsize=4)
def _decoy_hash(method: str) -> str:
    """A real hash to check when the email is unknown, so that a wrong email takes as long
    as a wrong password and does not reveal which addresses have accounts."""
    return generate_password_hash(secrets.token_hex(8), method=method)


def authenticate(email: str, password: str) -> User | None:
    """The user with this email and password, or None."""
    user = find_user(email)
    if user is None or len(password) > PASSWORD_MAX:
        check_password_hash(
            _decoy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password[:PASSWORD_MAX]
        )
        return None
    return user if check_password_hash(user.password_hash, password) else None


def change_password(user: User, current: str, new: str, confirm: str, *, keep: str | None) -> User:
    """Set a new password after checking the current one. Every login session but `keep` (the
    key of the one making the change) is closed."""
    errors: dict[str, str] = {}
    if not check_password_hash(user.password_hash, current[:PASSWORD_MAX]):
        errors["current_password"] = "当前密码不正确。"  # noqa: S105 (a message)
    try:
        check_password(new)
    except AccountError as error:
        errors["new_password"] = error.errors["password"]
    if new != confirm:
        errors["confirm_password"] = "两次输入的新密码不一致。"  # noqa: S105 (a message)
    if errors:
        raise AccountError(errors)
    checked_hash = user.password_hash
    password_hash = hash_password(new)  # slow on purpose: keep it out of the write lock
    with write_transaction() as session:
        user = session.scalars(select(User).where(User.id == user.id).with_for_update()).one()
        if user.password_hash != checked_hash:  # changed elsewhere since we checked
            raise AccountError({"current_password": "密码刚刚在别处修改过，请重新输入。"})
        user.password_hash = password_hash
        others = delete(LoginSession).where(LoginSession.user_id == user.id)
        if keep:
            others = others.where(LoginSession.key_hash != _key_hash(keep))
        session.execute(others)
    return user


def _key_hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def open_session(user: User) -> str:
    """Start a login session for `user` and return its key (for the session cookie)."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    with write_transaction() as session:
        # Each login tidies the user's expired sessions away.
        session.execute(
            delete(LoginSession).where(
                LoginSession.user_id == user.id, LoginSession.expires_at <= now
            )
        )
        session.add(
            LoginSession(
                key_hash=_key_hash(key),
                user_id=user.id,
                created_at=now,
                expires_at=now + current_app.config["REMEMBER_COOKIE_DURATION"],
            )
        )
    return key


# The user of a login session with the membership in force (nearly every page asks for it),
# in one query built once: it runs on every signed-in request.
_SESSION_USER = (
    select(User, Membership)
    .join(LoginSession, LoginSession.user_id == User.id)
    .outerjoin(
        Membership,
        (Membership.user_id == User.id)
        & (Membership.starts_at <= bindparam("now"))
        & (Membership.ends_at > bindparam("now")),
    )
    .where(
        LoginSession.key_hash == bindparam("key_hash"), LoginSession.expires_at > bindparam("now")
    )
    .order_by(Membership.ends_at.desc())
    .limit(1)
)


def user_for_session(key: str) -> User | None:
    """The user of a live login session, or None for an unknown, closed or expired key."""
    if not key or len(key) > 128:
        return None
    found = db.session.execute(_SESSION_USER, {"key_hash": _key_hash(key), "now": utcnow()}).first()
    if found is None:
        return None
    user, membership = found
    user.session_key = key
    remember_membership(user, membership)
    return user


def close_session(key: str | None) -> None:
    """End a login session: its cookies, wherever they were copied, stop working."""
    if not key:
        return
    with write_transaction() as session:
        session.execute(delete(LoginSession).where(LoginSession.key_hash == _key_hash(key)))


def find_user(email: str) -> User | None:
    return db.session.scalar(select(User).where(User.email == normalize_email(email)))


def emails_of(ids: Iterable[int | None]) -> dict[int, str]:
    """The email of each user among `ids` (None left out), to name people on desk pages."""
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(db.session.execute(select(User.id, User.email).where(User.id.in_(wanted))).all())


def grant_membership(
    email: str, tier: str, days: int = 365, *, reason: str = "命令行授予"
) -> Membership:
    """Give a membership of `days` days: from now, or from the end of the one in force (the
    same record, extended). Logged with `reason` (members/enrollment.py `grant`)."""
    from members import enrollment

    user = find_user(email)
    if user is None:
        raise AccountError({"email": f"没有找到用户 {normalize_email(email)}。"})
    try:
        return enrollment.grant(user.id, tier, days, actor=None, reason=reason)
    except enrollment.EnrollmentError as error:
        raise AccountError(error.errors) from None
