"""`flask --app app search ...` and `flask --app app content ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from content import search

search_cli = AppGroup("search", help="The search index (a cache the database can rebuild).")


@search_cli.command("reindex")
def reindex() -> None:
    """Rebuild the search index from the database, with a progress bar."""
    total = search.published_count()
    with click.progressbar(length=total, label="重建索引 (reindexing)", show_pos=True) as bar:
        count = search.reindex(progress=bar.update)
    click.echo(f"已索引 {count} 篇文章 (indexed {count} articles)")


@search_cli.command("drain")
def drain() -> None:
    """Apply the queued index changes now (normally done on the next save or search)."""
    applied = search.drain()
    click.echo(f"已更新 {applied} 项 (applied {applied} queued changes)")


def register(app: Flask) -> None:
    app.cli.add_command(search_cli)
