"""The community board: sections, questions and answers, votes, moderation, notifications."""

from board import models as _models  # noqa: F401  (the tables, for migrations)
from board.views import bp

__all__ = ["bp"]
