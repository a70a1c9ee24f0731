"""The community board: sections, questions and answers, moderation (issue 6 fills it)."""

from board.views import bp

__all__ = ["bp"]
