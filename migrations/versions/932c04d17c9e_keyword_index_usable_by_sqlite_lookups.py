"""keyword index usable by SQLite lookups

Revision ID: 932c04d17c9e
Revises: e1b9e9b1bf10
Create Date: 2026-11-21 23:52:10.938361

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '932c04d17c9e'
down_revision = 'e1b9e9b1bf10'
branch_labels = None
depends_on = None


def _recreate(where: str) -> None:
    # PostgreSQL plans `live = true` against `WHERE live` already; only SQLite needs the
    # index condition spelled the way its queries spell it.
    if op.get_bind().dialect.name != "sqlite":
        return
    op.drop_index("uq_article_keywords_live_keyword", table_name="article_keywords")
    op.create_index(
        "uq_article_keywords_live_keyword",
        "article_keywords",
        ["keyword"],
        unique=True,
        sqlite_where=sa.text(where),
    )


def upgrade():
    _recreate("live = 1")


def downgrade():
    _recreate("live")
