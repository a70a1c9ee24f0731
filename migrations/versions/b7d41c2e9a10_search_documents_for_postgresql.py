"""search documents: the index of the PostgreSQL search backend

Revision ID: b7d41c2e9a10
Revises: f5e5d05996f5
Create Date: 2026-12-01

The table is made on every database (SQLite leaves it empty). On PostgreSQL the existing
articles and posts are queued, so the first drain fills the new index.
"""
from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql


# revision identifiers, used by Alembic.
revision = 'b7d41c2e9a10'
down_revision = 'f5e5d05996f5'
branch_labels = None
depends_on = None


def upgrade():
    postgres = op.get_bind().dialect.name == 'postgresql'
    if postgres:
        op.execute('CREATE EXTENSION IF NOT EXISTS pg_trgm')
    op.create_table('search_documents',
    sa.Column('doc', sa.String(length=40), nullable=False),
    sa.Column('kind', sa.String(length=10), nullable=False),
    sa.Column('slug', sa.String(length=120), nullable=False),
    sa.Column('title', sa.Text(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('visibility', sa.String(length=10), nullable=False),
    sa.Column('section_id', sa.Integer(), nullable=True),
    sa.Column('thread_id', sa.Integer(), nullable=True),
    sa.Column('answer', sa.Boolean(), nullable=False),
    sa.Column('publish_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('words', postgresql.TSVECTOR().with_variant(sa.Text(), 'sqlite'), nullable=False),
    sa.Column('plain', sa.Text(), nullable=False),
    sa.PrimaryKeyConstraint('doc', name=op.f('pk_search_documents'))
    )
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.create_index('ix_search_documents_plain', ['plain'], unique=False, postgresql_using='gin', postgresql_ops={'plain': 'gin_trgm_ops'})
        batch_op.create_index(batch_op.f('ix_search_documents_publish_at'), ['publish_at'], unique=False)
        batch_op.create_index('ix_search_documents_words', ['words'], unique=False, postgresql_using='gin')
    if postgres:
        op.execute(
            "INSERT INTO search_queue (doc, queued_at) "
            "SELECT 'article:' || id, CURRENT_TIMESTAMP FROM articles ORDER BY id"
        )
        op.execute(
            "INSERT INTO search_queue (doc, queued_at) "
            "SELECT 'post:' || id, CURRENT_TIMESTAMP FROM board_posts ORDER BY id"
        )


def downgrade():
    with op.batch_alter_table('search_documents', schema=None) as batch_op:
        batch_op.drop_index('ix_search_documents_words', postgresql_using='gin')
        batch_op.drop_index(batch_op.f('ix_search_documents_publish_at'))
        batch_op.drop_index('ix_search_documents_plain', postgresql_using='gin', postgresql_ops={'plain': 'gin_trgm_ops'})

    op.drop_table('search_documents')
