"""The shop: limited editions, product cards, checkout and after-sales (issue 4 fills it)."""

from shop import models as _models  # noqa: F401  (the tables, for migrations)
from shop.views import bp

__all__ = ["bp"]
