"""Backups taken while writers are busy restore into a consistent site; bad backups and
non-empty targets are refused and change nothing."""

from __future__ import annotations

import io
import json
import secrets
import threading
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import create_engine, func, select, text
from sqlalchemy.engine import make_url

import backup
from app import create_app, db
from content import media
from members.models import User
from shop.checkout import CheckoutError
from shop.models import Order, OrderLine, OrderStatus, Product
from tests.conftest import TEST_DATABASE_URL, make_config
from tests.test_checkout import buy, make_buyers, make_product

STOCK = 300
WRITERS = 4


@pytest.fixture
def empty_site(tmp_path):
    """A second site with an empty data folder and, on PostgreSQL, an empty database."""
    extra: dict[str, object] = {}
    admin = name = None
    if TEST_DATABASE_URL:
        url = make_url(TEST_DATABASE_URL)
        name = f"chendu_restore_{secrets.token_hex(4)}"
        admin = create_engine(url.set(database="postgres"), isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        extra["DATABASE_URL"] = url.set(database=name).render_as_string(hide_password=False)
    site = create_app(make_config(tmp_path / "restored", **extra))
    if TEST_DATABASE_URL:
        site.config["SQLALCHEMY_DATABASE_URI"] = str(extra["DATABASE_URL"]).replace(
            "postgresql://", "postgresql+psycopg://", 1
        )
    yield site
    with site.app_context():
        db.engine.dispose()
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def png() -> io.BytesIO:
    data = io.BytesIO()
    Image.new("RGB", (20, 10), (200, 80, 20)).save(data, "PNG")
    data.seek(0)
    return data


def test_a_backup_taken_while_buyers_buy_restores_consistent(app, tmp_path, empty_site):
    product = make_product(app, stock=STOCK)
    buyers = make_buyers(app, STOCK)
    (Path(app.config["DATA_DIR"]) / "secret_key").write_text("the site's own key")
    with app.app_context():
        media.save_image(png(), original_name="cover.png")
    placed = threading.Semaphore(0)
    errors: list[str] = []

    def write(part: list[int]) -> None:
        for user_id in part:
            try:
                buy(app, user_id, product)
            except CheckoutError:
                pass
            except Exception as error:  # reported below
                errors.append(repr(error))
            placed.release()

    threads = [threading.Thread(target=write, args=(buyers[i::WRITERS],)) for i in range(WRITERS)]
    for t in threads:
        t.start()
    for _ in range(40):
        placed.acquire(timeout=60)  # the backup starts with buyers in full flow
    with app.app_context():
        manifest = backup.make_backup(tmp_path / "backup")
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors[:3]
    with app.app_context():
        total = db.session.scalar(select(func.count()).select_from(Order))
    assert total == STOCK  # the site went on: every buyer got an order

    assert manifest.media_files == 1 and (tmp_path / "backup" / "secret_key").is_file()
    written = json.loads((tmp_path / "backup" / "manifest.json").read_text())
    assert written["database"] == ("postgresql" if TEST_DATABASE_URL else "sqlite")

    with empty_site.app_context():
        backup.restore_backup(tmp_path / "backup")
    with empty_site.app_context():
        p = db.session.get(Product, product)
        assert p.available + p.held + p.sold == p.stock == STOCK
        lines = db.session.scalar(
            select(func.coalesce(func.sum(OrderLine.quantity), 0))
            .join(Order, Order.id == OrderLine.order_id)
            .where(OrderLine.ref_id == product, Order.status == OrderStatus.PENDING)
        )
        orders = db.session.scalar(select(func.count()).select_from(Order))
        assert lines == p.held and orders == p.held  # each order is one held unit
        assert 40 <= orders <= STOCK  # taken mid-flow: it holds what was committed then
        assert db.session.scalar(select(func.count()).select_from(User)) == STOCK
    restored = Path(empty_site.config["MEDIA_DIR"])
    assert len([f for f in restored.rglob("*") if f.is_file()]) == 1
    assert (Path(empty_site.config["DATA_DIR"]) / "secret_key").read_text() == (
        "the site's own key"
    )


def test_a_backup_into_a_folder_that_holds_something_is_refused(app, tmp_path):
    dest = tmp_path / "busy"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with app.app_context(), pytest.raises(backup.BackupError, match="not empty"):
        backup.make_backup(dest)
    assert [p.name for p in dest.iterdir()] == ["keep.txt"]


def test_a_restore_into_a_site_with_data_is_refused_and_changes_nothing(app, tmp_path):
    make_product(app, slug="kept")
    with app.app_context():
        backup.make_backup(tmp_path / "backup")
        with pytest.raises(backup.BackupError, match="already holds tables"):
            backup.restore_backup(tmp_path / "backup")
        assert db.session.scalar(select(func.count()).select_from(Product)) == 1


def test_a_folder_that_is_not_a_backup_is_refused(app, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "manifest.json").write_text("{not json")
    with app.app_context():
        for src in (tmp_path / "junk", tmp_path):
            with pytest.raises(backup.BackupError, match="not a backup"):
                backup.restore_backup(src)


def test_a_backup_of_the_other_database_kind_is_refused(app, tmp_path, empty_site):
    with app.app_context():
        backup.make_backup(tmp_path / "backup")
    manifest = tmp_path / "backup" / "manifest.json"
    data = json.loads(manifest.read_text())
    data["database"] = "sqlite" if TEST_DATABASE_URL else "postgresql"
    manifest.write_text(json.dumps(data))
    with empty_site.app_context(), pytest.raises(backup.BackupError, match="database"):
        backup.restore_backup(tmp_path / "backup")


def test_the_commands_back_up_and_restore(app, tmp_path, empty_site):
    make_product(app, slug="cli")
    result = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    assert "备份完成 (backup made)" in result.output
    again = app.test_cli_runner().invoke(args=["backup", str(tmp_path / "b")])
    assert again.exit_code == 1 and "not empty" in again.output
    result = empty_site.test_cli_runner().invoke(args=["restore", str(tmp_path / "b")])
    assert result.exit_code == 0, result.output
    with empty_site.app_context():
        assert db.session.scalar(select(Product.slug)) == "cli"
