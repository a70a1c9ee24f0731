"""Accounts and the membership records that say who is a member when."""

from __future__ import annotations

import enum
from datetime import datetime

from flask import g, has_request_context
from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, String, select
from sqlalchemy.orm import Mapped, mapped_column, relationship

from app import UTCDateTime, db, utcnow


class Role(enum.StrEnum):
    READER = "reader"
    EDITOR = "editor"
    ADMIN = "admin"


class User(UserMixin, db.Model):
    __tablename__ = "users"
    __table_args__ = (CheckConstraint("role IN ('reader', 'editor', 'admin')", name="role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    phone: Mapped[str | None] = mapped_column(String(20))
    role: Mapped[str] = mapped_column(String(16), default=Role.READER.value)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # The buyer's openid under the site's WeChat app id: JSAPI payments are made for it.
    # Filled by WeChat login (a later issue); without it WeChat Pay is not offered.
    wechat_openid: Mapped[str | None] = mapped_column(String(64), unique=True)

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", order_by="Membership.starts_at"
    )

    # The key of the login session this object was loaded through (see LoginSession); it is
    # what Flask-Login keeps in the session and "remember me" cookies.
    session_key = None

    def get_id(self) -> str | None:
        return self.session_key

    @property
    def is_editor(self) -> bool:
        return self.role in (Role.EDITOR, Role.ADMIN)

    @property
    def membership(self) -> Membership | None:
        """The membership in force now, if any (asked once per request)."""
        if not has_request_context():
            return membership_at(self, utcnow())
        known = g.setdefault("memberships", {})
        if self.id not in known:
            known[self.id] = membership_at(self, utcnow())
        return known[self.id]

    @property
    def is_member(self) -> bool:
        return self.membership is not None


class LoginSession(db.Model):
    """One signed-in browser. Logging out deletes it, so a copied cookie stops working; a
    password change deletes all the others."""

    __tablename__ = "login_sessions"

    # sha256 of the key in the cookie: a leaked database does not give away live sessions.
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Membership(db.Model):
    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="memberships")


def membership_at(user: User, at: datetime) -> Membership | None:
    """The membership of `user` in force at the instant `at`, if any."""
    return db.session.scalars(
        select(Membership)
        .where(
            Membership.user_id == user.id,
            Membership.starts_at <= at,
            Membership.ends_at > at,
        )
        .order_by(Membership.ends_at.desc())
        .limit(1)
    ).first()
