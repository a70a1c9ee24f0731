"""Backups of a running site and restores into an empty data folder.

    flask --app app backup DEST      # a consistent snapshot while the site keeps serving
    flask --app app restore SRC      # into a DATA_DIR (and database) that holds nothing yet

A backup folder holds `manifest.json`, the database (`chendu.db`, made with SQLite's online
backup API, which copies one consistent snapshot page by page while writers go on; or
`chendu.dump`, `pg_dump`'s custom format, one transaction's snapshot), `media/` (uploads,
named by the hash of their bytes and never changed, copied after the database so that every
file the snapshot names is there) and `secret_key`, so that sessions, form tokens and private
podcast links keep working. The search index is a cache: a restore rebuilds it.

This module is the site's, not a feature's: it copies what every feature stored.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
from dataclasses import dataclass
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import inspect, text
from sqlalchemy.engine import make_url

from app import db, utcnow

FORMAT = 1
MANIFEST = "manifest.json"


class BackupError(Exception):
    """Why a backup or restore cannot be made: said to the operator, nothing changed."""


@dataclass(frozen=True)
class Manifest:
    format: int
    made_at: str
    database: str  # "sqlite" or "postgresql"
    revision: str
    media_files: int


def _libpq_url(url) -> str:
    """SQLAlchemy's URL as pg_dump and pg_restore take it (no `+psycopg`)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _pg_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupError(f"{name} is not installed: apt-get install postgresql-client")
    return found


def _revision() -> str:
    """The migration the database is at ("" for one made without migrations)."""
    if not inspect(db.engine).has_table("alembic_version"):
        return ""
    return db.session.scalar(text("SELECT version_num FROM alembic_version")) or ""


def _copy_media(source: Path, target: Path) -> int:
    count = 0
    if not source.is_dir():
        return 0
    for path in sorted(source.rglob("*")):
        if path.is_file() and not path.name.startswith("."):
            to = target / path.relative_to(source)
            to.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, to)
            count += 1
    return count


def make_backup(dest: Path) -> Manifest:
    """Snapshot the database, the uploads and the secret key into `dest` (new or empty)."""
    dest = dest.resolve()
    if dest.exists() and any(dest.iterdir()):
        raise BackupError(f"{dest} is not empty: back up into a new folder")
    config = current_app.config
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    dest.mkdir(parents=True, exist_ok=True)
    try:
        revision = _revision()
        db.session.rollback()
        if url.get_backend_name() == "sqlite":
            source = sqlite3.connect(f"file:{url.database}?mode=ro", uri=True)
            target = sqlite3.connect(dest / "chendu.db")
            try:
                with target:
                    source.backup(target, pages=256)
            finally:
                target.close()
                source.close()
        else:
            done = subprocess.run(  # noqa: S603 (our own arguments)
                [
                    _pg_tool("pg_dump"),
                    "--format=custom",
                    "--no-owner",
                    "--file",
                    str(dest / "chendu.dump"),
                    "--dbname",
                    _libpq_url(url),
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if done.returncode != 0:
                raise BackupError(f"pg_dump failed: {done.stderr.strip()[:500]}")
        media = _copy_media(Path(config["MEDIA_DIR"]), dest / "media")
        key = Path(config["DATA_DIR"]) / "secret_key"
        if key.is_file():
            shutil.copy2(key, dest / "secret_key")
            os.chmod(dest / "secret_key", 0o600)
        manifest = Manifest(
            format=FORMAT,
            made_at=utcnow().isoformat(),
            database=url.get_backend_name(),
            revision=revision,
            media_files=media,
        )
        (dest / MANIFEST).write_text(json.dumps(manifest.__dict__, indent=2) + "\n")
    except BaseException:
        shutil.rmtree(dest, ignore_errors=True)
        raise
    return manifest


def _read_manifest(src: Path) -> Manifest:
    try:
        data = json.loads((src / MANIFEST).read_text())
        manifest = Manifest(**data)
    except (OSError, ValueError, TypeError) as error:
        raise BackupError(f"{src} is not a backup of this site ({error})") from None
    if manifest.format != FORMAT:
        raise BackupError(f"backup format {manifest.format} is not {FORMAT}")
    return manifest


def restore_backup(src: Path) -> Manifest:
    """Restore a backup into this site's DATA_DIR and database, which must hold nothing yet.
    The search index is rebuilt afterwards."""
    src = src.resolve()
    manifest = _read_manifest(src)
    config = current_app.config
    url = make_url(config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != manifest.database:
        raise BackupError(
            f"the backup is of a {manifest.database} database; this site uses "
            f"{url.get_backend_name()} (DATABASE_URL)"
        )
    tables = [t for t in inspect(db.engine).get_table_names() if t != "alembic_version"]
    db.session.remove()
    if tables:
        raise BackupError(
            f"the database already holds tables ({', '.join(sorted(tables)[:5])}…): "
            "restore into an empty one"
        )
    media_dir = Path(config["MEDIA_DIR"])
    if media_dir.is_dir() and any(media_dir.iterdir()):
        raise BackupError(f"{media_dir} already holds uploads: restore into an empty data folder")
    if manifest.database == "sqlite":
        db.engine.dispose()
        target = Path(url.database)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{target}{suffix}").unlink(missing_ok=True)
        source = sqlite3.connect(f"file:{src / 'chendu.db'}?mode=ro", uri=True)
        copy = sqlite3.connect(target)
        try:
            with copy:
                source.backup(copy)
        finally:
            copy.close()
            source.close()
    else:
        with db.engine.begin() as conn:
            conn.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.engine.dispose()
        done = subprocess.run(  # noqa: S603 (our own arguments)
            [
                _pg_tool("pg_restore"),
                "--no-owner",
                "--exit-on-error",
                "--single-transaction",
                "--dbname",
                _libpq_url(url),
                str(src / "chendu.dump"),
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            raise BackupError(f"pg_restore failed: {done.stderr.strip()[:500]}")
    _copy_media(src / "media", media_dir)
    key = src / "secret_key"
    data_key = Path(config["DATA_DIR"]) / "secret_key"
    if key.is_file() and not data_key.exists():
        shutil.copy2(key, data_key)
        os.chmod(data_key, 0o600)
    from content import search

    shutil.rmtree(config["SEARCH_INDEX_DIR"], ignore_errors=True)
    search.reindex()
    return manifest


@click.command("backup")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@with_appcontext
def backup_command(dest: Path) -> None:
    """Take a consistent online snapshot of the database, uploads and secret key into DEST."""
    try:
        manifest = make_backup(dest)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"备份完成 (backup made): {dest} · {manifest.database} at {manifest.revision} · "
        f"{manifest.media_files} media files"
    )


@click.command("restore")
@click.argument("src", type=click.Path(path_type=Path, file_okay=False, exists=True))
@with_appcontext
def restore_command(src: Path) -> None:
    """Restore a backup from SRC into this (empty) data folder and database."""
    try:
        manifest = restore_backup(src)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    click.echo(
        f"恢复完成 (restored): {src} · {manifest.database} at {manifest.revision} · "
        f"{manifest.media_files} media files · run `db upgrade` if the code is newer"
    )
