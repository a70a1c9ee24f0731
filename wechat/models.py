"""What the site keeps of WeChat: the messages the official account received (with the reply
each got, so a retry is answered the same), and the credentials WeChat lends for a while."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app import UTCDateTime, db


class WeChatMessage(db.Model):
    """One message or event from a follower, logged once however often WeChat retries it."""

    __tablename__ = "wechat_messages"
    __table_args__ = (Index("ix_wechat_messages_received_at", "received_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    # MsgId for messages; sender, time and event for events (which have no MsgId).
    msg_key: Mapped[str] = mapped_column(String(160), unique=True)
    from_user: Mapped[str] = mapped_column(String(64))
    msg_type: Mapped[str] = mapped_column(String(32))
    event: Mapped[str] = mapped_column(String(32), default="")
    content: Mapped[str] = mapped_column(Text, default="")
    # The plaintext reply XML, sent again as it is to every retry.
    reply: Mapped[str] = mapped_column(Text, default="")
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class WeChatCredential(db.Model):
    """A credential WeChat hands out for a while: the global `access_token` and the JS-SDK
    `jsapi_ticket`. Shared by every worker process; one refreshes it at a time."""

    __tablename__ = "wechat_credentials"

    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    refreshed_at: Mapped[datetime] = mapped_column(UTCDateTime)
    # Set while one worker is asking WeChat for a new value (see wechat/jssdk.py): until when,
    # and that worker's token, so that only it can store the value or give the lease back.
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    lease_token: Mapped[str | None] = mapped_column(String(32))
    # After WeChat failed to answer, nobody asks again before this.
    retry_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
