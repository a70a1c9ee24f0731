"""WeChat: the official account's callback (keyword replies), its desk, and (to come) login and
share cards. Every call to WeChat goes to a configurable base URL; with no WeChat settings
the site runs without any of it."""

from wechat import models as _models  # noqa: F401  (the tables, for migrations)
from wechat.views import bp

__all__ = ["bp"]
