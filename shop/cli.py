"""`flask --app app shop ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from shop import checkout, payments

shop_cli = AppGroup("shop", help="The shop's orders and stock.")


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


def register(app: Flask) -> None:
    app.cli.add_command(shop_cli)
