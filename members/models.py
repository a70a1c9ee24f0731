"""Accounts and the membership records that say who is a member when."""

from __future__ import annotations

import enum
from datetime import datetime

from flask import g, has_request_context
from flask_login import UserMixin
from sqlalchemy import (
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    select,
)
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
    # Filled by WeChat login (wechat/oauth.py); without it WeChat Pay is not offered.
    wechat_openid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # Across the apps of one WeChat Open Platform account (when WeChat sends it).
    wechat_unionid: Mapped[str | None] = mapped_column(String(64), unique=True)
    # The WeChat profile picture's address, as WeChat login gave it (not shown: pages load
    # nothing from other hosts).
    avatar_url: Mapped[str | None] = mapped_column(String(500))
    # 「第 1024 号会员」: given with the first membership, in payment order, kept for life
    # (a renewal, a lapse and a return keep it; a number is never given twice).
    member_number: Mapped[int | None] = mapped_column(Integer, unique=True)
    # What the board shows as the author (set on /me; WeChat login fills it from the profile).
    nickname: Mapped[str | None] = mapped_column(String(24))

    memberships: Mapped[list[Membership]] = relationship(
        back_populates="user", order_by="Membership.starts_at"
    )

    # The key of the login session this object was loaded through (see LoginSession); it is
    # what Flask-Login keeps in the session and "remember me" cookies.
    session_key = None

    def get_id(self) -> str | None:
        return self.session_key

    @property
    def display_name(self) -> str:
        """The name others see: never the e-mail address or the phone number."""
        if self.nickname:
            return self.nickname
        if self.member_number:
            return f"{self.member_number} 号会员"
        return f"读者{self.id}"

    @property
    def has_password(self) -> bool:
        """False for an account made by WeChat login, which signs in only through WeChat."""
        return not self.password_hash.startswith("!")

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
    """One unbroken membership of a user. A renewal extends `ends_at` of the one in force (or
    still to come) instead of adding another; a user who lapses and returns gets a new one."""

    __tablename__ = "memberships"
    __table_args__ = (CheckConstraint("ends_at > starts_at", name="period"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tier: Mapped[str] = mapped_column(String(40))  # the tier's name when it was last paid for
    tier_id: Mapped[int | None] = mapped_column(ForeignKey("tiers.id", ondelete="SET NULL"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    user: Mapped[User] = relationship(back_populates="memberships")


class Tier(db.Model):
    """A kind of membership sold in enrollment windows: 普通会员, 铁杆会员."""

    __tablename__ = "tiers"
    __table_args__ = (
        CheckConstraint("price_fen > 0", name="price"),
        CheckConstraint("days > 0", name="days"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(40), unique=True)
    name: Mapped[str] = mapped_column(String(40), unique=True)
    price_fen: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer, default=365)
    perks: Mapped[str] = mapped_column(Text, default="")  # one perk per line
    position: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    @property
    def perk_lines(self) -> list[str]:
        return [line.strip() for line in self.perks.splitlines() if line.strip()]


class EnrollmentWindow(db.Model):
    """Once a year membership is sold, from `opens_at` to `closes_at`, with a fixed number of
    seats per tier. From `renewal_starts_at` (before `opens_at`) only current members may
    join: they renew first. The spans [renewal_starts_at, closes_at) of two windows never
    overlap (members/enrollment.py refuses it)."""

    __tablename__ = "enrollment_windows"
    __table_args__ = (
        CheckConstraint("closes_at > opens_at", name="period"),
        CheckConstraint("renewal_starts_at <= opens_at", name="renewal"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(60))
    renewal_starts_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    opens_at: Mapped[datetime] = mapped_column(UTCDateTime)
    closes_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)

    seats: Mapped[list[WindowSeat]] = relationship(
        back_populates="window", cascade="all, delete-orphan", order_by="WindowSeat.id"
    )

    @property
    def renewal_hours(self) -> int:
        return int((self.opens_at - self.renewal_starts_at).total_seconds() // 3600)


class WindowSeat(db.Model):
    """The seats of one tier in one window: `available + held + sold == cap`, changed only by
    conditional UPDATEs (members/enrollment.py, shop/checkout.py), so never over the cap."""

    __tablename__ = "window_seats"
    __table_args__ = (
        UniqueConstraint("window_id", "tier_id", name="uq_window_seats_window_tier"),
        CheckConstraint(
            "cap >= 0 AND available >= 0 AND held >= 0 AND sold >= 0 "
            "AND available + held + sold = cap",
            name="seats_add_up",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    window_id: Mapped[int] = mapped_column(ForeignKey("enrollment_windows.id", ondelete="CASCADE"))
    tier_id: Mapped[int] = mapped_column(ForeignKey("tiers.id", ondelete="RESTRICT"), index=True)
    cap: Mapped[int] = mapped_column(Integer)
    available: Mapped[int] = mapped_column(Integer)
    held: Mapped[int] = mapped_column(Integer, default=0)
    sold: Mapped[int] = mapped_column(Integer, default=0)

    window: Mapped[EnrollmentWindow] = relationship(back_populates="seats")
    tier: Mapped[Tier] = relationship(lazy="joined")


class MembershipEvent(db.Model):
    """The audit log of memberships: every join, renewal, grant, revocation and refund, with
    who did it (None: the site itself, on a payment), when, why and what it changed."""

    __tablename__ = "membership_events"
    __table_args__ = (
        CheckConstraint(
            "action IN ('joined', 'renewed', 'granted', 'revoked', 'refunded')", name="action"
        ),
        Index("ix_membership_events_user_id_at", "user_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    membership_id: Mapped[int | None] = mapped_column(
        ForeignKey("memberships.id", ondelete="SET NULL")
    )
    action: Mapped[str] = mapped_column(String(10))
    tier: Mapped[str] = mapped_column(String(40), default="")
    days: Mapped[int] = mapped_column(Integer, default=0)
    ends_before: Mapped[datetime | None] = mapped_column(UTCDateTime)
    ends_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    order_id: Mapped[int | None] = mapped_column(
        ForeignKey("orders.id", ondelete="SET NULL"), index=True
    )
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(300), default="")
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class EnrollmentReminder(db.Model):
    """A reader who asked to be told when a window opens (「开放时提醒我」)."""

    __tablename__ = "enrollment_reminders"

    window_id: Mapped[int] = mapped_column(
        ForeignKey("enrollment_windows.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class MemberNumberCounter(db.Model):
    """The last member number given (one row). Taking the next one is an UPDATE of this row
    inside the paying transaction: numbers come in payment order, and a transaction that
    rolls back gives its number back, so they have no gaps."""

    __tablename__ = "member_number_counter"
    __table_args__ = (CheckConstraint("id = 1", name="one_row"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    last: Mapped[int] = mapped_column(Integer, default=0)


def remember_membership(user: User, membership: Membership | None) -> None:
    """Tell `User.membership` the membership in force now, read along with the user."""
    if has_request_context():
        g.setdefault("memberships", {})[user.id] = membership


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
