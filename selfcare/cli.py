"""`selfcare`: the operator's shell onto the platform. Every command goes through the same
services as the channels, so what it prints is what a subscriber would get."""
from __future__ import annotations

import json
import logging
import sys
import uuid
from datetime import date

import click

import texts
from billing import services
from billing.clock import FixedClock, parse_now
from billing.core import Core
from billing.errors import BillingError
from billing.readiness import DatabaseNotReady, check_reachable, check_schema
from billing.money import fmt_azn, fmt_exact, parse_amount
from selfcare import logs
from selfcare.config import ConfigError


def _now(value: str | None):
    if value is None:
        return None
    try:
        return parse_now(value)
    except ValueError:
        raise click.BadParameter(f"not a date and time: {value!r} (use e.g. 2026-11-22T23:00)") from None


class Context:
    def __init__(self, db_url: str | None, now):
        self.db_url = db_url
        self.clock = FixedClock(now) if now else None
        self._core: Core | None = None
        self.needs_schema = True  # `db upgrade` is the one command that runs before the schema exists

    @property
    def core(self) -> Core:
        if self._core is None:
            # Every data file is loaded and checked here, before any command runs: a bad tariff,
            # offer or text stops the command (and `serve`) with the entry named; so does a
            # database that is unreachable or has no (or an older) schema.
            core = _open_core(self.db_url, self.clock)
            texts.check_startup(core)
            (check_schema if self.needs_schema else check_reachable)(core.engine)
            self._core = core
        return self._core


def _open_core(db_url: str | None, clock) -> Core:
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    not_a_url = ConfigError(f"--db / SELFCARE_DB {db_url!r} is not a database URL "
                            "(use sqlite:///var/selfcare.db or postgresql://USER:PASSWORD@HOST/DB)")
    try:
        if db_url:
            make_url(db_url).port  # noqa: B018 -- a port that is not a number fails here, not in a request
    except (ArgumentError, ValueError):
        raise not_a_url from None
    try:
        return Core(db_url, clock=clock)
    except NoSuchModuleError:
        raise not_a_url from None
    except OSError as error:  # a SQLite file's folder that cannot be made
        raise ConfigError(f"--db / SELFCARE_DB {db_url!r}: {error.strerror or error}: {error.filename}") from None


pass_ctx = click.make_pass_decorator(Context)


class SelfcareGroup(click.Group):
    """Turns domain errors and bad data files into one clear line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (BillingError, texts.InvalidTexts, DatabaseNotReady, ConfigError) as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=SelfcareGroup)
@click.option("--db", "db_url", envvar="SELFCARE_DB", help="SQLAlchemy URL (default: sqlite:///var/selfcare.db)")
@click.option("--now", callback=lambda _ctx, _param, value: _now(value),
              help="a fixed clock, ISO-8601 (operator local time), for drills and tests")
@click.option("-v", "--verbose", is_flag=True, help="log every decision to stderr")
@click.pass_context
def cli(ctx, db_url, now, verbose):
    try:
        logs.configure(logging.INFO if verbose else logging.WARNING)
    except ValueError as bad:  # SELFCARE_LOG_FORMAT
        raise click.UsageError(str(bad)) from None
    ctx.obj = Context(db_url, now)


@cli.group()
def db():
    """Database schema."""


@db.command("upgrade")
@pass_ctx
def db_upgrade(c: Context):
    """Create or migrate the schema to the newest revision."""
    c.needs_schema = False
    c.core.upgrade_schema()
    click.echo(f"schema up to date at {c.core.engine.url.render_as_string(hide_password=True)}")


@cli.command()
@pass_ctx
def demo(c: Context):
    """Load demo subscribers, tariffs and cards (idempotent)."""
    from billing.demo import load_demo

    added = load_demo(c.core)
    click.echo(f"demo data ready ({len(added)} added)")


@cli.group()
def subscriber():
    """Subscriber lines."""


def _date(value: str | None) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"not a date: {value!r} (use YYYY-MM-DD)") from None


def _amount(value: str | None):
    return None if value is None else parse_amount(value)


@subscriber.command("add")
@click.argument("msisdn")
@click.option("--plan", type=click.Choice(["prepaid", "postpaid"]), required=True)
@click.option("--balance", default="0")
@click.option("--lang", "language", type=click.Choice(["az", "en", "ru"]), default="az")
@click.option("--tariff")
@click.option("--activated", help="YYYY-MM-DD")
@click.option("--billed")
@click.option("--current")
@click.option("--advance")
@click.option("--bill-day", type=int)
@click.option("--status", type=click.Choice(["active", "suspended-one-way", "suspended-two-way"]), default="active")
@click.option("--roaming/--no-roaming", default=False)
@pass_ctx
def subscriber_add(c: Context, msisdn, plan, balance, language, tariff, activated, billed, current, advance,
                   bill_day, status, roaming):
    """Open a line."""
    from decimal import Decimal

    with c.core.uow() as uow:
        line = services.add_subscriber(
            uow, msisdn, plan, tariff=tariff, balance=parse_amount(balance), language=language,
            activated=_date(activated), billed=_amount(billed) or Decimal(0),
            current=_amount(current) or Decimal(0), advance=_amount(advance) or Decimal(0),
            bill_day=bill_day, status=status, roaming=roaming,
        )
    click.echo(f"added {line.msisdn} ({plan}, {line.tariff})")


def report_json(report) -> dict:
    out = {
        "msisdn": report.msisdn, "plan": report.plan, "status": report.status,
        "language": report.language, "tariff": report.tariff.name, "roaming": report.roaming,
        "notify_balance": report.notify_balance, "activated": report.activated_on.isoformat(),
    }
    if report.plan == "prepaid":
        out.update(balance=fmt_exact(report.balance),
                   balance_expires=report.balance_expires.isoformat() if report.balance_expires else None,
                   subscription_ends=report.subscription_ends.isoformat() if report.subscription_ends else None,
                   nar_debt=fmt_exact(report.nar_debt), sos_debt=fmt_exact(report.sos_debt),
                   balance_expired=report.balance_expired)
    else:
        out.update(billed=fmt_exact(report.billed), current=fmt_exact(report.current),
                   advance=fmt_exact(report.advance), bill_day=report.bill_day)
    return out


@subscriber.command("show")
@click.argument("msisdn")
@click.option("--json", "as_json", is_flag=True)
@pass_ctx
def subscriber_show(c: Context, msisdn, as_json):
    """A line's figures, exactly as the channels compute them."""
    with c.core.uow() as uow:
        data = report_json(services.balance_report(uow, msisdn))
    if as_json:
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        for key, value in data.items():
            click.echo(f"{key:18} {value}")


@cli.group()
def card():
    """Scratch cards."""


@card.command("add")
@click.argument("serial")
@click.option("--pin", required=True)
@click.option("--value", required=True, help="face value in AZN")
@pass_ctx
def card_add(c: Context, serial, pin, value):
    """Import a scratch card (10-digit serial)."""
    with c.core.uow() as uow:
        services.add_card(uow, serial, pin, value)
    click.echo(f"card {serial} added")


@card.command("redeem")
@click.argument("msisdn")
@click.argument("pin")
@click.option("--serial", help="the card's 10-digit serial (needed for cards imported before migration 0004)")
@click.option("--key", help="idempotency key (default: a new one per invocation)")
@pass_ctx
def card_redeem(c: Context, msisdn, pin, serial, key):
    """Top a line up with a scratch card's PIN, as *104*PIN# and 2112 option 5 do."""
    with c.core.uow() as uow:
        result = services.redeem_card(uow, msisdn, pin, key or f"cli:card:{uuid.uuid4()}", serial=serial)
    note = " (already applied)" if result.duplicate else ""
    r = result.report
    if r.plan == "prepaid":
        figures = f"balance {fmt_exact(r.balance)}"
    else:
        figures = f"billed {fmt_exact(r.billed)}, advance {fmt_exact(r.advance)}"
    click.echo(f"card {result.serial}: {result.amount:.2f} AZN applied{note}; {figures}")


@cli.command()
@click.argument("msisdn")
@click.argument("amount")
@click.option("--key", help="idempotency key (default: a new one per invocation)")
@pass_ctx
def topup(c: Context, msisdn, amount, key):
    """Top up a prepaid balance (a payment on a postpaid line)."""
    with c.core.uow() as uow:
        result = services.topup(uow, msisdn, amount, key or f"cli:topup:{uuid.uuid4()}")
    with c.core.uow() as uow:
        data = report_json(services.balance_report(uow, msisdn))
    note = " (already applied)" if result.duplicate else ""
    figure = data.get("balance") or data.get("advance")
    click.echo(f"topped up {result.amount:.2f} AZN{note}; {'balance' if 'balance' in data else 'advance'} {figure}")


@cli.command()
@pass_ctx
def audit(c: Context):
    """Check every line's balances against its ledger; exit 1 when any differs."""
    with c.core.uow() as uow:
        problems = services.audit(uow)
        lines = services.count_lines(uow)
    for p in problems:
        click.echo(f"MISMATCH {p.msisdn} {p.account}: stored {p.stored} ledger {p.ledger}")
    if problems:
        sys.exit(1)
    click.echo(f"ok: {lines} lines, every balance equals its ledger")


@cli.command("bill-run")
@pass_ctx
def bill_run(c: Context):
    """Close every postpaid bill cycle whose cut-off (bill day, 23:00) has passed."""
    with c.core.uow() as uow:
        closed = services.run_due_bill_cycles(uow)
    click.echo(f"{closed} bill cycles closed")


# The text is what a subscriber types, `-0502223344` (revoke) included: nothing after TO is an option.
@cli.command(context_settings={"ignore_unknown_options": True, "allow_interspersed_args": False})
@click.argument("from_")
@click.argument("to")
@click.argument("text", nargs=-1, type=click.UNPROCESSED)
@pass_ctx
def sms(c: Context, from_, to, text):
    """Print the reply to an SMS exactly as the subscriber gets it, charging as the webhook does.

    TEXT as typed, e.g. `650 +0502223344` (grant), `650 -0502223344` (revoke), `650 -` (revoke all)."""
    from sms.cli import sms_command

    click.echo(sms_command(c.core, from_, to, " ".join(text)))


@cli.command()
@click.argument("from_")
@click.argument("code")
@click.option("--text", default="", help="menu inputs joined by '*', as a gateway sends them")
@click.option("--session", help="session id (default: a new session)")
@pass_ctx
def ussd(c: Context, from_, code, text, session):
    """Print the USSD answer (CON …/END …) for a code, by the gateway's code path."""
    from ussd.cli import ussd_command

    click.echo(ussd_command(c.core, from_, code, text, session))


@cli.command()
@click.argument("msisdn")
@click.argument("mb")
@click.option("--key", help="idempotency key of the usage record (default: a new one)")
@pass_ctx
def usage(c: Context, msisdn, mb, key):
    """Feed data usage (MB) for a line: drawn from its packs first, then charged by the tariff."""
    from billing.usage import usage_command

    click.echo(usage_command(c.core, msisdn, mb, key))


@cli.command("plan")
@click.argument("msisdn")
@click.argument("plan", type=click.Choice(["prepaid", "postpaid"]))
@click.option("--tariff")
@pass_ctx
def change_plan(c: Context, msisdn, plan, tariff):
    """Move a line between prepaid and postpaid (its internet packs are annulled)."""
    with c.core.uow() as uow:
        annulled = services.change_plan(uow, msisdn, plan, f"cli:plan:{uuid.uuid4()}", tariff=tariff)
    click.echo(f"{msisdn} is now {plan}; {annulled} pack(s) annulled")


@cli.command()
@click.argument("msisdn")
@click.argument("status", type=click.Choice(["active", "suspended-one-way", "suspended-two-way", "suspended-at-will"]))
@pass_ctx
def status(c: Context, msisdn, status):
    """Activate or suspend a line (suspended-at-will: the subscriber's own request)."""
    with c.core.uow() as uow:
        if status == "suspended-at-will":
            services.suspend_at_will(uow, msisdn)
        else:
            services.set_status(uow, msisdn, status)
    click.echo(f"{msisdn}: {status}")


@cli.command()
@click.option("--once", is_flag=True, help="run every job once (at --now, for drills) and print what each did")
@pass_ctx
def worker(c: Context, once):
    """Run what time triggers (bill runs, prepaid expiry and reminders, pack renewals and expiries,
    friend-request lapses, the outbox) in a loop; `selfcare serve` runs it too."""
    import threading

    from selfcare.worker import run_forever, run_once

    if once:
        done = run_once(c.core)
        for name, count in done.items():
            click.echo(f"{name:22} {'failed' if count is None else count}")
        sys.exit(1 if None in done.values() else 0)
    run_forever(c.core, threading.Event())


@cli.command()
@click.argument("from_")
@click.argument("to")
@click.option("--press", default="", help="digits keyed at each menu in turn; a space lets a menu time out")
@click.option("--seconds", type=click.IntRange(min=0), default=None,
              help="a call to any other number: how long it lasts once answered (charged at hangup)")
@click.option("--call-id", help="the call's id (Asterisk's uniqueid); a call charged once per id")
@pass_ctx
def call(c: Context, from_, to, press, seconds, call_id):
    """Run the real call flow on a simulated channel; print each prompt played: id, then its text.

    TO 2112 or 650: the balance line. Any other number: the outgoing-call control, then (when it
    lets the call through) the call lasts --seconds (cut at the balance's limit) and is charged."""
    from ivr.simulate import simulate_call, simulate_outgoing_call

    try:
        if to.strip().lstrip("+") in ("2112", "650") and seconds is None:
            for prompt_id, text in simulate_call(c.core, from_, to, press=press):
                click.echo(f"{prompt_id}\t{text}")
            return
        heard, outcome, billsec, charged = simulate_outgoing_call(
            c.core, from_, to, seconds or 0, press=press, call_id=call_id or f"cli-{uuid.uuid4().hex}")
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    for prompt_id, text in heard:
        click.echo(f"{prompt_id}\t{text}")
    if outcome == "dial":
        click.echo(f"call answered {billsec} s, charged {fmt_exact(charged)} AZN")
    else:
        click.echo(f"call not connected ({outcome})")


@cli.group("signin")
def signin_group():
    """Sign-in: the subscriber pages' sessions and the app's tokens."""


@signin_group.command("revoke")
@click.argument("msisdn")
@pass_ctx
def signin_revoke(c: Context, msisdn):
    """End every page session and app token of MSISDN at once (a lost phone, a subscriber's call to
    care); the line signs in again with a new code."""
    from billing import lines, signin

    with c.core.uow() as uow:
        number = lines.find(uow, msisdn).msisdn  # a mistyped number is an error, not "0 revoked"
        revoked = signin.sign_out_everywhere(uow, number)
    click.echo(f"{number}: {revoked} session(s) revoked")


@cli.group()
def cdr():
    """Call detail records (Asterisk cdr_csv)."""


@cdr.command("import")
@click.argument("file", type=click.File("r", encoding="utf-8", errors="replace"))
@pass_ctx
def cdr_import(c: Context, file):
    """Charge every answered outgoing call of a Master.csv (FILE, or - for stdin) not yet charged;
    print the reconciliation. Exit 1 when a line was malformed."""
    from ivr.cdr import import_cdr

    result = import_cdr(c.core, file)
    for line in result.lines():
        click.echo(line)
    sys.exit(1 if result.malformed else 0)


@cli.group(invoke_without_command=True)
@click.option("--days", type=click.IntRange(min=1), default=7, show_default=True,
              help="flagged lines of the last DAYS days")
@click.pass_context
def fraud(ctx, days):
    """The fraud guard (seed 001): numbers suspected of wangiri now, and lines flagged for unusual
    deductions. Full numbers: this is the operator's own shell (log lines stay masked)."""
    if ctx.invoked_subcommand is not None:
        return
    from datetime import timedelta

    from billing import fraud as rules

    c: Context = ctx.obj
    with c.core.reader() as uow:
        suspects = rules.suspect_numbers(uow)
        flagged = rules.flagged_lines(uow, uow.clock.now().date() - timedelta(days=days - 1))
    click.echo(f"suspect numbers {len(suspects)}")
    for s in suspects:
        click.echo(f"  {s.number}\trang {s.lines_rung} lines\tlast burst {s.last_burst:%Y-%m-%d %H:%M}")
    click.echo(f"flagged lines {len(flagged)} (last {days} days)")
    for f in flagged:
        click.echo(f"  {f.msisdn}\t{f.day}\t{f.rule}\t{fmt_azn(f.amount)} AZN (usual day {fmt_azn(f.usual)} AZN)")


@fraud.command("ring")
@click.argument("caller")
@click.argument("subscriber_")
@click.option("--seconds", type=click.IntRange(min=0), required=True, help="how long it rang before it dropped")
@click.option("--key", help="the ring's id (a CDR uniqueid); a ring is recorded once per id")
@pass_ctx
def fraud_ring(c: Context, caller, subscriber_, seconds, key):
    """Record an unanswered inbound call from CALLER to SUBSCRIBER (a drill; the CDR import does it
    from Master.csv)."""
    from billing import fraud as rules

    with c.core.uow() as uow:
        recorded = rules.record_inbound_ring(uow, caller, subscriber_, seconds, key=key)
    click.echo("ring recorded" if recorded else "ring not recorded (not from abroad, too long, or seen before)")


@cli.command()
@click.argument("kind", type=click.Choice(["amount", "date"]))
@click.argument("value")
@click.option("--lang", type=click.Choice(["az", "en", "ru"]), default="az")
def say(kind, value, lang):
    """The words the IVR speaks for an amount (AZN) or a date (YYYY-MM-DD)."""
    from ivr.say import say_words

    try:
        click.echo(say_words(kind, value, lang))
    except ValueError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)


@cli.command()
@click.option("--processes", type=click.IntRange(min=1), envvar="SELFCARE_PROCESSES", default=None,
              help="serving processes sharing the two ports [default: one per core on SQLite, two on PostgreSQL]")
@pass_ctx
def serve(c: Context, processes):
    """FastAGI on $SELFCARE_AGI and HTTP on $SELFCARE_HTTP, plus the background worker."""
    from selfcare.serve import serve_forever

    serve_forever(c.core, processes=processes)


def main():
    cli(prog_name="selfcare")


if __name__ == "__main__":
    main()
