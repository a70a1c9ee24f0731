"""`flask --app app shop ...`."""

from __future__ import annotations

from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from shop import catalogue_csv, checkout, payments
from shop.catalogue_csv import CatalogueFileError

shop_cli = AppGroup("shop", help="The shop's catalogue, orders and stock.")


@shop_cli.command("release-holds")
def release_holds() -> None:
    """Cancel unpaid orders whose hold has expired and give their stock back (for cron;
    the site also does it whenever stock is taken)."""
    released = 0
    while True:
        batch = checkout.release_expired_holds()
        released += batch
        if batch < checkout.RELEASE_BATCH:
            break
    click.echo(f"已释放 {released} 个过期订单 (released {released} expired holds)")


@shop_cli.command("reconcile")
def reconcile() -> None:
    """Ask the payment provider about unpaid orders whose notice never came, and follow up
    refunds still processing (for cron, every few minutes)."""
    counts = payments.reconcile()
    click.echo(
        "查询 {checked} 个订单，补记支付 {paid} 个，自动退款 {refunding} 个，"
        "退款完成 {refunds_settled} 笔 (checked {checked}, paid {paid}, "
        "refunding {refunding}, refunds settled {refunds_settled})".format(**counts)
    )


@shop_cli.command("import")
@click.argument("path", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def import_catalogue(path: Path) -> None:
    """Create or update products (by slug) from a catalogue CSV (see `shop export`).

    All or nothing: with any bad line, every bad line is printed with its number (line 1 is
    the header), nothing changes, and the exit code is 1.
    """
    data = path.read_bytes()
    try:
        report = catalogue_csv.import_catalogue(data, actor=None)
    except CatalogueFileError as error:
        click.echo(f"✗ {path}: {error.message}", err=True)
        raise SystemExit(1) from None
    if not report.ok:
        for line_no, message in report.errors:
            click.echo(f"✗ 第 {line_no} 行 (line {line_no}): {message}", err=True)
        click.echo(
            f"有 {len(report.errors)} 行出错，没有导入任何商品 "
            f"({len(report.errors)} bad lines, nothing changed)",
            err=True,
        )
        raise SystemExit(1)
    click.echo(
        f"{report.summary()} ({report.created} created, {report.updated} updated, "
        f"{report.unchanged} unchanged)"
    )


@shop_cli.command("export")
@click.argument("path", type=click.Path(dir_okay=False, writable=True, path_type=Path))
def export_catalogue(path: Path) -> None:
    """Write the whole catalogue as CSV (UTF-8 with a BOM, for Excel) to PATH."""
    data = catalogue_csv.export_catalogue()
    path.write_bytes(data)
    lines = data.count(b"\n") - 1
    click.echo(f"已导出 {lines} 件商品到 {path} (exported {lines} products)")


def register(app: Flask) -> None:
    app.cli.add_command(shop_cli)
