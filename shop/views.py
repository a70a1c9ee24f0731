"""Shop pages."""

from __future__ import annotations

from flask import Blueprint, render_template

bp = Blueprint("shop", __name__, url_prefix="/shop")


@bp.get("/")
def index():
    return render_template("shop/index.html")
