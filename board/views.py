"""Board pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("board", __name__, url_prefix="/board")


@bp.get("/")
def index():
    return render_template("board/index.html")
