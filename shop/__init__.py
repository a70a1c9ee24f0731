"""The shop: limited editions, product cards, checkout and after-sales (issue 4 fills it)."""

from shop.views import bp

__all__ = ["bp"]
