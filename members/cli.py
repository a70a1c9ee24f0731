"""`flask --app app users ...` and `flask --app app members ...`: accounts, grants and
revocations, membership tiers and enrollment windows.

Every rule is checked by members/accounts.py and members/enrollment.py; these commands only
read the options, call one domain function and print what it did (or its messages, with the
option at fault, and exit 1 having changed nothing)."""

from __future__ import annotations

from datetime import datetime

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from app import local_time
from members import accounts, enrollment
from members.accounts import AccountError
from members.enrollment import EnrollmentError, TierForm, WindowForm
from members.models import EnrollmentWindow, Role, Tier
from shop.products import yuan_text

users_cli = AppGroup("users", help="Manage accounts.")
members_cli = AppGroup("members", help="Manage memberships, tiers and enrollment windows.")

# The option a person typed for each field EnrollmentError names.
OPTION_OF_FIELD = {
    "slug": "SLUG",
    "name": "--name",
    "price": "--price",
    "days": "--days",
    "perks": "--perks",
    "opens": "--opens",
    "closes": "--closes",
    "renewal_hours": "--renewal-hours",
    "seats": "--seats",
    "reason": "--reason",
}


def _refused(error: EnrollmentError) -> click.ClickException:
    """Every message of `error`, one a line, after the option it is about."""
    lines = []
    for field, message in error.errors.items():
        if field.startswith("seats-"):
            option = f"--seats {field.removeprefix('seats-')}"
        else:
            option = OPTION_OF_FIELD.get(field, field)
        lines.append(f"{option}: {message}")
    return click.ClickException("\n".join(lines))


def _when(value: datetime) -> str:
    return local_time(value).strftime("%Y-%m-%d %H:%M")


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


# --- grants and revocations ------------------------------------------------------------------


@members_cli.command("grant")
@click.argument("email")
@click.option("--tier", required=True, help="A tier's slug or name, or a free name: 年度会员.")
@click.option("--days", default=365, show_default=True, type=int)
@click.option(
    "--reason", default="命令行授予", show_default=True, help="Written to the membership log."
)
def grant(email: str, tier: str, days: int, reason: str) -> None:
    """Make an existing user a member for DAYS days (extending a membership in force)."""
    try:
        membership = accounts.grant_membership(email, tier, days, reason=reason)
    except AccountError as error:
        raise click.ClickException(str(error)) from None
    ends = _when(membership.ends_at)
    click.echo(f"{accounts.normalize_email(email)} is a {membership.tier} member until {ends}")


@members_cli.command("revoke")
@click.argument("email")
@click.option("--reason", required=True, help="Why, for the membership log.")
def revoke(email: str, reason: str) -> None:
    """End the user's membership now (a refund made elsewhere, a broken rule)."""
    email = accounts.normalize_email(email)
    user = accounts.find_user(email)
    if user is None:
        raise click.ClickException(f"没有找到用户 {email}。")
    try:
        revoked = enrollment.revoke(user.id, actor=None, reason=reason)
    except EnrollmentError as error:
        raise _refused(error) from None
    if not revoked:
        raise click.ClickException(f"{email} 现在不是会员，没有可以取消的会员资格。")
    click.echo(f"{email} is no longer a member")


# --- tiers -----------------------------------------------------------------------------------


@members_cli.group("tier")
def tier_cli() -> None:
    """Membership tiers sold in enrollment windows (普通会员, 铁杆会员)."""


def _tier_lines(tier: Tier) -> list[str]:
    return [
        f"tier {tier.slug}: {tier.name} ¥{yuan_text(tier.price_fen)}, {tier.days} days",
        *(f"  - {perk}" for perk in tier.perk_lines),
    ]


def _typed_perks(perks: str | None, perk: tuple[str, ...]) -> str | None:
    """The perks as one text, a perk a line (None when neither option was given). A typed
    "\\n" starts a new line, as a shell's double quotes keep it."""
    if perks is None and not perk:
        return None
    return "\n".join([*([perks.replace("\\n", "\n")] if perks is not None else []), *perk])


PERKS_HELP = 'One perk a line; "\\n" starts a new line. In edit, "" clears them.'
PERK_HELP = "One perk; repeat for more (after those of --perks)."
WHEN = '"YYYY-MM-DD HH:MM"'


@tier_cli.command("add")
@click.argument("slug")
@click.option("--name", default="", help="Shown to readers: 普通会员.")
@click.option("--price", default="", metavar="YUAN", help="200 or 199.90.")
@click.option("--days", default="365", show_default=True, metavar="DAYS", help="How long it lasts.")
@click.option("--perks", default=None, help=PERKS_HELP)
@click.option("--perk", multiple=True, help=PERK_HELP)
def add_tier(
    slug: str, name: str, price: str, days: str, perks: str | None, perk: tuple[str, ...]
) -> None:
    """Add the tier SLUG (lowercase letters, digits and hyphens: putong)."""
    form = TierForm(slug, name, price, days, _typed_perks(perks, perk) or "")
    try:
        tier = enrollment.save_tier(form)
    except EnrollmentError as error:
        raise _refused(error) from None
    click.echo("\n".join(_tier_lines(tier)))


@tier_cli.command("edit")
@click.argument("slug")
@click.option("--name", default=None, help="Shown to readers: 普通会员.")
@click.option("--price", default=None, metavar="YUAN", help="200 or 199.90.")
@click.option("--days", default=None, metavar="DAYS", help="How long it lasts.")
@click.option("--perks", default=None, help=PERKS_HELP)
@click.option("--perk", multiple=True, help=PERK_HELP)
def edit_tier(
    slug: str,
    name: str | None,
    price: str | None,
    days: str | None,
    perks: str | None,
    perk: tuple[str, ...],
) -> None:
    """Change the tier SLUG: only what is given. Seats already held or sold keep the price
    of their orders."""
    tier = enrollment.tier_by_slug(slug)
    if tier is None:
        raise click.ClickException(f"没有标识为 {slug} 的会员等级。")
    perks = _typed_perks(perks, perk)
    if (name, price, days, perks) == (None, None, None, None):
        raise click.UsageError("Nothing to change: give --name, --price, --days or --perks.")
    form = enrollment.tier_form(tier)
    form.name = form.name if name is None else name
    form.price = form.price if price is None else price
    form.days = form.days if days is None else days
    form.perks = form.perks if perks is None else perks
    try:
        tier = enrollment.save_tier(form, tier.id)
    except EnrollmentError as error:
        raise _refused(error) from None
    click.echo("\n".join(_tier_lines(tier)))


@tier_cli.command("list")
def list_tiers() -> None:
    """Every tier, in the order the join page shows them."""
    tiers = enrollment.tiers()
    if not tiers:
        click.echo("no tiers yet")
    for tier in tiers:
        click.echo("\n".join(_tier_lines(tier)))


# --- enrollment windows ----------------------------------------------------------------------


@members_cli.group("window")
def window_cli() -> None:
    """Enrollment windows: when membership is sold, and how many seats of each tier."""


def _seat_caps(
    _ctx: click.Context, _param: click.Parameter, values: tuple[str, ...]
) -> dict[str, str]:
    """{slug: typed cap} from SLUG=N values; the numbers are checked by save_window."""
    caps: dict[str, str] = {}
    for value in values:
        slug, equals, cap = (part.strip() for part in value.partition("="))
        if not equals or not slug or not cap:
            raise click.BadParameter(f"{value!r} 应写成 等级标识=名额，如 putong=5000。")
        slug = slug.lower()
        if slug in caps:
            raise click.BadParameter(f"等级 {slug} 的名额写了两次。")
        caps[slug] = cap
    return caps


def _window_lines(window: EnrollmentWindow) -> list[str]:
    zone = current_app.config["TIMEZONE"]
    return [
        f"window #{window.id} {window.name}",
        f"  renewal from {_when(window.renewal_starts_at)}, opens {_when(window.opens_at)}, "
        f"closes {_when(window.closes_at)} ({zone})",
        *(
            f"  {seat.tier.slug} {seat.tier.name}: "
            f"cap {seat.cap}, sold {seat.sold}, held {seat.held}"
            for seat in enrollment.seats_of(window.id)
        ),
    ]


@window_cli.command("add")
@click.option("--name", default="", help="2027 会员招募.")
@click.option("--opens", default="", metavar=WHEN, help="In Beijing time.")
@click.option("--closes", default="", metavar=WHEN, help="In Beijing time.")
@click.option(
    "--seats",
    multiple=True,
    callback=_seat_caps,
    metavar="SLUG=N",
    help="Seats of one tier: putong=5000. Repeat for each tier sold.",
)
@click.option(
    "--renewal-hours",
    default="0",
    show_default=True,
    metavar="HOURS",
    help="Hours before it opens when only current members may join (renew).",
)
def add_window(
    name: str, opens: str, closes: str, seats: dict[str, str], renewal_hours: str
) -> None:
    """Add an enrollment window; it may not overlap another one (renewal hours included)."""
    form = WindowForm(name, opens, closes, renewal_hours, seats)
    try:
        window = enrollment.save_window(form)
    except EnrollmentError as error:
        raise _refused(error) from None
    click.echo("\n".join(_window_lines(window)))


@window_cli.command("list")
def list_windows() -> None:
    """Every window, latest first, with the seats of each tier counted now."""
    windows = enrollment.windows()
    if not windows:
        click.echo("no enrollment windows yet")
    for window in windows:
        click.echo("\n".join(_window_lines(window)))


def register(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(members_cli)
