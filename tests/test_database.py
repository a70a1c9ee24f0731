"""The database layer: SQLite settings, write transactions, UTC time, migrations, and races
run by real processes and threads against a real database file (or PostgreSQL)."""

from __future__ import annotations

import multiprocessing
import threading
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import select, text

from app import create_app, db, write_transaction
from members import accounts
from members.accounts import AccountError
from members.models import Membership, MembershipEvent, User
from tests.conftest import TEST_DATABASE_URL, make_config

sqlite_only = pytest.mark.skipif(bool(TEST_DATABASE_URL), reason="SQLite settings")


@sqlite_only
def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(app):
    with app.app_context():
        assert db.session.scalar(text("PRAGMA journal_mode")) == "wal"
        assert (
            db.session.scalar(text("PRAGMA busy_timeout")) == app.config["SQLITE_BUSY_TIMEOUT_MS"]
        )
        assert db.session.scalar(text("PRAGMA foreign_keys")) == 1


@sqlite_only
def test_write_transactions_begin_immediate(app):
    statements: list[str] = []
    with app.app_context():
        from sqlalchemy import event

        def record(conn, cursor, statement, *args):
            statements.append(statement)

        event.listen(db.engine, "before_cursor_execute", record)
        try:
            db.session.scalar(select(User.id))
            db.session.commit()
            with write_transaction() as session:
                session.scalar(select(User.id))
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
    begins = [s for s in statements if s.startswith("BEGIN")]
    assert begins == ["BEGIN", "BEGIN IMMEDIATE"]


@sqlite_only
def test_writes_outside_a_write_transaction_are_refused(app):
    with app.app_context():
        db.session.add(
            User(
                email="x@example.com",
                password_hash="x",
                created_at=datetime.now(UTC),
            )
        )
        with pytest.raises(RuntimeError, match="write_transaction"):
            db.session.commit()
        db.session.rollback()
        assert db.session.scalar(select(User.id)) is None


def test_write_transaction_rolls_back_as_one_unit(app, make_user):
    make_user("a@example.com")
    with app.app_context():
        with pytest.raises(ZeroDivisionError), write_transaction() as session:
            session.scalar(select(User).where(User.email == "a@example.com")).role = "admin"
            session.flush()
            1 / 0  # noqa: B018
        assert db.session.scalar(select(User.role)) == "reader"


def test_nested_write_transaction_joins_the_outer_one(app, make_user):
    make_user("a@example.com")
    with app.app_context():
        with pytest.raises(ZeroDivisionError), write_transaction() as outer:
            outer.scalar(select(User)).role = "editor"
            with write_transaction():
                pass  # must not commit the outer block's work
            1 / 0  # noqa: B018
        assert db.session.scalar(select(User.role)) == "reader"


def test_times_are_stored_in_utc_and_read_back_aware(app, make_user):
    make_user("a@example.com")
    shanghai = timezone(timedelta(hours=8))
    with app.app_context():
        with write_transaction() as session:
            session.add(
                Membership(
                    user_id=1,
                    tier="年度会员",
                    starts_at=datetime(2026, 11, 21, 8, 0, tzinfo=shanghai),
                    ends_at=datetime(2027, 11, 21, 8, 0, tzinfo=shanghai),
                    created_at=datetime(2026, 11, 21, 0, 0, tzinfo=UTC),
                )
            )
        db.session.expunge_all()
        membership = db.session.scalar(select(Membership))
        assert membership.starts_at == datetime(2026, 11, 21, 0, 0, tzinfo=UTC)
        assert membership.starts_at.utcoffset() == timedelta(0)


def test_naive_datetimes_are_refused(app, make_user):
    make_user("a@example.com")
    naive = datetime(2026, 1, 1)  # noqa: DTZ001
    membership = Membership(
        user_id=1, tier="t", starts_at=naive, ends_at=naive + timedelta(1), created_at=naive
    )
    with (
        app.app_context(),
        pytest.raises(Exception, match="naive"),
        write_transaction() as session,
    ):
        session.add(membership)


def test_migrations_build_the_schema_the_models_describe(app):
    """`flask db upgrade` on an empty database gives exactly the models' schema, and
    downgrading to nothing and back works."""
    runner = app.test_cli_runner()
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    for args in (
        ["db", "upgrade"],
        ["db", "check"],
        ["db", "downgrade", "base"],
        ["db", "upgrade"],
    ):
        result = runner.invoke(args=args)
        assert result.exit_code == 0, (args, result.output)
    with app.app_context():
        version = db.session.scalar(text("SELECT version_num FROM alembic_version"))
        assert version


# ------------------------------------------------------------------------------------------
# Races
# ------------------------------------------------------------------------------------------


def _grant_in_process(data_dir: str, barrier, grants: int, results) -> None:
    app = create_app(make_config(Path(data_dir)))
    with app.app_context():
        barrier.wait(timeout=30)
        for _ in range(grants):
            try:
                accounts.grant_membership("racer@example.com", "年度会员", 10)
                results.put("ok")
            except Exception as error:  # reported to the parent, which fails the test
                results.put(repr(error))


def test_concurrent_grants_from_processes_queue_instead_of_overlapping(app, make_user):
    """Six processes each extend one membership three times at the same moment: every grant
    succeeds, and each extends the end the one before it left, none lost."""
    make_user("racer@example.com")
    ctx = multiprocessing.get_context("spawn")
    processes, grants = 6, 3
    barrier = ctx.Barrier(processes)
    results = ctx.Queue()
    workers = [
        ctx.Process(
            target=_grant_in_process,
            args=(str(app.config["DATA_DIR"]), barrier, grants, results),
        )
        for _ in range(processes)
    ]
    for w in workers:
        w.start()
    outcomes = [results.get(timeout=120) for _ in range(processes * grants)]
    for w in workers:
        w.join(timeout=30)
        assert w.exitcode == 0
    assert outcomes == ["ok"] * (processes * grants)
    with app.app_context():
        # One membership, extended eighteen times: each grant started where the last ended.
        membership = db.session.scalars(select(Membership)).one()
        assert membership.ends_at - membership.starts_at == timedelta(days=10 * processes * grants)
        events = db.session.scalars(select(MembershipEvent).order_by(MembershipEvent.id)).all()
        assert len(events) == processes * grants
        assert events[0].ends_before is None
        for before, after in zip(events, events[1:], strict=False):
            assert after.ends_before == before.ends_after


def test_concurrent_signups_with_one_email_make_one_account(app):
    """Eight threads sign up the same email at once: one account, seven clear refusals."""
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def sign_up(i: int) -> None:
        with app.app_context():
            barrier.wait(timeout=30)
            try:
                accounts.create_user("same@example.com", f"password {i}")
                outcome = "created"
            except AccountError as error:
                outcome = error.errors["email"]
            with lock:
                outcomes.append(outcome)

    threads = [threading.Thread(target=sign_up, args=(i,)) for i in range(threads_count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(outcomes) == ["created"] + ["这个邮箱已经注册过了，可以直接登录。"] * 7
    with app.app_context():
        assert len(db.session.scalars(select(User)).all()) == 1


def test_the_suite_runs_on_the_database_it_was_given(app):
    with app.app_context():
        expected = "postgresql" if TEST_DATABASE_URL else "sqlite"
        assert db.engine.dialect.name == expected


BATCH_MIGRATION = '''"""rebuild users, as a batch migration on SQLite does"""
import sqlalchemy as sa
from alembic import op

revision = "test_batch_users"
down_revision = "{head}"
branch_labels = None
depends_on = None


def recreate():
    return "always" if op.get_bind().dialect.name == "sqlite" else "auto"


def upgrade():
    with op.batch_alter_table("users", recreate=recreate()) as batch_op:
        batch_op.add_column(sa.Column("batch_marker", sa.String(40), nullable=True))


def downgrade():
    with op.batch_alter_table("users", recreate=recreate()) as batch_op:
        batch_op.drop_column("batch_marker")
'''


def test_a_batch_migration_of_a_parent_table_keeps_the_children(app, tmp_path):
    """Rebuilding `users` (what SQLite's batch mode does for most changes) must not
    cascade-delete memberships or login sessions."""
    import shutil

    from alembic.script import ScriptDirectory
    from flask_migrate import upgrade

    from members.models import LoginSession

    migrations = tmp_path / "migrations"
    shutil.copytree(Path(__file__).resolve().parent.parent / "migrations", migrations)
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(directory=str(migrations))
        head = ScriptDirectory(str(migrations)).get_current_head()
        (migrations / "versions" / "test_batch_users.py").write_text(
            BATCH_MIGRATION.replace("{head}", head)
        )
        accounts.create_user("keep@example.com", "long enough")
        accounts.grant_membership("keep@example.com", "年度会员", 30)
        accounts.open_session(db.session.scalar(select(User)))
        db.session.remove()
        upgrade(directory=str(migrations))
        db.session.remove()
        assert len(db.session.scalars(select(Membership)).all()) == 1
        assert len(db.session.scalars(select(LoginSession)).all()) == 1
        if db.engine.dialect.name == "sqlite":
            assert db.session.scalar(text("PRAGMA foreign_keys")) == 1
        # Leave the schema as the models describe it for the next test.
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))


def test_migrations_seed_the_default_columns_categories_and_sections(app):
    from board.models import DEFAULT_SECTIONS, Section
    from content.models import DEFAULT_COLUMNS, Column
    from shop.models import DEFAULT_CATEGORIES, Category

    runner = app.test_cli_runner()
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
    assert runner.invoke(args=["db", "upgrade"]).exit_code == 0
    with app.app_context():
        rows = db.session.scalars(select(Column).order_by(Column.id)).all()
        seeded = [{"slug": c.slug, "name": c.name, "position": c.position} for c in rows]
        assert seeded == DEFAULT_COLUMNS
        rows = db.session.scalars(select(Category).order_by(Category.id)).all()
        seeded = [{"slug": c.slug, "name": c.name, "position": c.position} for c in rows]
        assert seeded == DEFAULT_CATEGORIES
        rows = db.session.scalars(select(Section).order_by(Section.id)).all()
        keys = ("slug", "name", "description", "is_qa", "position")
        assert [{k: getattr(s, k) for k in keys} for s in rows] == DEFAULT_SECTIONS


def test_a_database_from_the_first_migration_keeps_its_data_up_to_the_latest(app):
    """Made by the first migration, filled as the site was then, and upgraded through every
    later migration (batch rebuilds of `users` among them): nothing is lost."""
    from flask_migrate import upgrade

    from members.models import LoginSession

    first = "41387cc1043f"
    with app.app_context():
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        upgrade(revision=first)
        aware = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)
        # As each driver took a time then: SQLite naive (UTC by convention), PostgreSQL aware.
        when = aware.replace(tzinfo=None) if db.engine.dialect.name == "sqlite" else aware
        with db.engine.begin() as conn:
            for n in range(1, 21):
                conn.execute(
                    text(
                        "INSERT INTO users (id, email, password_hash, phone, role, created_at) "
                        "VALUES (:id, :email, 'hash', :phone, :role, :at)"
                    ),
                    {
                        "id": n,
                        "email": f"early{n}@example.com",
                        "phone": f"1380013{n:04d}",
                        "role": "editor" if n == 1 else "reader",
                        "at": when,
                    },
                )
                conn.execute(
                    text(
                        "INSERT INTO memberships (user_id, tier, starts_at, ends_at, created_at) "
                        "VALUES (:id, '年度会员', :at, :end, :at)"
                    ),
                    {"id": n, "at": when, "end": when + timedelta(days=365)},
                )
                conn.execute(
                    text(
                        "INSERT INTO login_sessions (key_hash, user_id, created_at, expires_at) "
                        "VALUES (:key, :id, :at, :end)"
                    ),
                    {"key": f"{n:064d}", "id": n, "at": when, "end": when + timedelta(days=30)},
                )
        db.session.remove()
        upgrade()
        db.session.remove()
        users = db.session.scalars(select(User).order_by(User.id)).all()
        assert [u.email for u in users] == [f"early{n}@example.com" for n in range(1, 21)]
        assert users[0].role == "editor" and users[4].phone == "13800130005"
        assert users[0].created_at == aware
        assert all(u.nickname is None and u.wechat_openid is None for u in users)
        memberships = db.session.scalars(select(Membership).order_by(Membership.user_id)).all()
        assert [m.user_id for m in memberships] == list(range(1, 21))
        assert memberships[0].ends_at - memberships[0].starts_at == timedelta(days=365)
        assert len(db.session.scalars(select(LoginSession)).all()) == 20
        # Leave the schema as the models describe it for the next test.
        db.session.remove()
        db.drop_all()
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
