"""Daily content: articles, the morning voice, feeds, keyword lookup and search."""

from content import feeds as _feeds  # noqa: F401  (registers the feed and file routes)
from content.views import bp

__all__ = ["bp"]
