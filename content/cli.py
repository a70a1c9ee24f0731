"""`flask --app app search ...` and `flask --app app content ...`."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from content import importer, search

search_cli = AppGroup("search", help="The search index (a cache the database can rebuild).")
content_cli = AppGroup("content", help="Articles from files (see docs/CONTENT.md).")


@search_cli.command("reindex")
def reindex() -> None:
    """Rebuild the search index from the database, with a progress bar."""
    total = search.published_count()
    with click.progressbar(length=total, label="重建索引 (reindexing)", show_pos=True) as bar:
        count = search.reindex(progress=bar.update)
    click.echo(f"已索引 {count} 篇文章 (indexed {count} articles)")


@search_cli.command("drain")
def drain() -> None:
    """Apply the queued index changes now (normally done on the next save or search), and
    merge the index's segments (a save or a search merges only small ones)."""
    applied = search.drain()
    search.merge_segments()
    click.echo(f"已更新 {applied} 项 (applied {applied} queued changes)")


@content_cli.command("import")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
def import_articles(paths: tuple[Path, ...]) -> None:
    """Create or update (by slug) articles from markdown files with YAML front matter.

    Each PATH is a file, or a folder whose *.md files are imported in name order. A file with
    an error changes nothing; the others are still imported, and the exit code is 1.
    """
    counts: Counter[str] = Counter()
    for result in importer.import_paths(paths):
        if result.ok:
            click.echo(f"✓ {result.action} {result.slug}  {result.path}")
        else:
            faults = " ".join(
                message if name == "file" else f"{message} ({name})"
                for name, message in result.errors.items()
            )
            click.echo(f"✗ {result.path}: {faults}")
        counts[result.action or "failed"] += 1
    created, updated, failed = counts["created"], counts["updated"], counts["failed"]
    click.echo(
        f"新建 {created} 篇，更新 {updated} 篇，失败 {failed} 个"
        f" ({created} created, {updated} updated, {failed} failed)"
    )
    if failed:
        raise SystemExit(1)


def register(app: Flask) -> None:
    app.cli.add_command(search_cli)
    app.cli.add_command(content_cli)
