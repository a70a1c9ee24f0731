"""Daily content: articles, the morning voice, keyword lookup and search (issue 3 fills it)."""

from content.views import bp

__all__ = ["bp"]
