"""The shop desk (`/editor/shop`): products, catalogue CSV, orders, refunds, drop dashboards.
Editors and admins only."""

from __future__ import annotations

from flask import Blueprint

from members import role_required

bp = Blueprint("shop_desk", __name__, url_prefix="/editor/shop")


@bp.before_request
@role_required("editor", "admin")
def only_editors() -> None:
    """Every shop desk page is for editors and admins."""


@bp.get("/")
def index():
    return "placeholder"
