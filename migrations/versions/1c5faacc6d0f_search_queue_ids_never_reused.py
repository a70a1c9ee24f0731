"""search queue ids never reused

Revision ID: 1c5faacc6d0f
Revises: 932c04d17c9e
Create Date: 2026-11-22 00:10:08.014926

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '1c5faacc6d0f'
down_revision = '932c04d17c9e'
branch_labels = None
depends_on = None


def _rebuild(autoincrement: bool) -> None:
    # PostgreSQL's sequence never hands an id out twice; SQLite reuses the highest deleted id
    # unless the table says AUTOINCREMENT, which only a rebuild can add. Queued rows are kept.
    if op.get_bind().dialect.name != "sqlite":
        return
    key = "PRIMARY KEY (id AUTOINCREMENT)" if autoincrement else "PRIMARY KEY (id)"
    op.execute(
        "CREATE TABLE _search_queue_new ("
        "id INTEGER NOT NULL, doc VARCHAR(40) NOT NULL, queued_at DATETIME NOT NULL, "
        f"CONSTRAINT pk_search_queue {key})"
    )
    op.execute(
        "INSERT INTO _search_queue_new (id, doc, queued_at) "
        "SELECT id, doc, queued_at FROM search_queue"
    )
    op.execute("DROP TABLE search_queue")
    op.execute("ALTER TABLE _search_queue_new RENAME TO search_queue")


def upgrade():
    _rebuild(autoincrement=True)


def downgrade():
    _rebuild(autoincrement=False)
