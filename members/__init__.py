"""Accounts and membership: who a reader is, what they may do, and whether they are a member."""

from members.views import bp, role_required

__all__ = ["bp", "role_required"]
