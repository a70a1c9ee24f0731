"""Reader-facing content pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("content", __name__)


@bp.get("/")
def home():
    return render_template("content/home.html")
