"""The enrollment desk (`/editor/members`, admins): tiers, windows, the live window
dashboard, members, grants and revocations, CSV exports."""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("members_desk", __name__, url_prefix="/editor/members")
