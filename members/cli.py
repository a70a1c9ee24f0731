"""`flask --app app users ...` and `flask --app app members ...`."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import AppGroup

from app import local_time
from members import accounts
from members.accounts import AccountError
from members.models import Role

users_cli = AppGroup("users", help="Manage accounts.")
members_cli = AppGroup("members", help="Manage memberships.")


@users_cli.command("create")
@click.argument("email")
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option(
    "--role",
    default=Role.READER.value,
    show_default=True,
    help="reader, editor or admin.",
)
@click.option("--phone", default=None, help="Optional mainland mobile number.")
def create_user(email: str, password: str, role: str, phone: str | None) -> None:
    """Create an account that can log in at /login."""
    try:
        user = accounts.create_user(email, password, phone=phone, role=role)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"created {user.email} ({user.role})")


@members_cli.command("grant")
@click.argument("email")
@click.option("--tier", required=True, help="Tier name, e.g. 年度会员.")
@click.option("--days", default=365, show_default=True, type=int)
def grant(email: str, tier: str, days: int) -> None:
    """Make an existing user a member for DAYS days (extending a membership in force)."""
    try:
        membership = accounts.grant_membership(email, tier, days)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    ends = local_time(membership.ends_at).strftime("%Y-%m-%d %H:%M")
    click.echo(f"{accounts.normalize_email(email)} is a {membership.tier} member until {ends}")


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(members_cli)
