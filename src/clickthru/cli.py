"""The ``clickthru`` command."""

from __future__ import annotations

import csv
import os
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import click
import msgspec

from clickthru import tokens
from clickthru.backend import Store, is_postgres, open_store
from clickthru.cells import inert_row
from clickthru.clock import now_ms, parse_moment
from clickthru.config import Settings, load_settings
from clickthru.errors import ConfigError, StoreError
from clickthru.reports import (
    CONVERSION_GROUPINGS,
    COUNT_FIELDS,
    GROUPINGS,
    OUTCOME_COLUMNS,
    ConversionGrouping,
    Grouping,
    Query,
    aligned,
    conversion_table,
    experiment_table,
    outcome_cells,
    report_table,
)


class Context:
    def __init__(self, config: Path | None, store_url: str | None) -> None:
        self.config = config
        self.store_url = store_url

    def settings(self, **overrides: Any) -> Settings:
        try:
            return load_settings(self.config, store=self.store_url, **overrides)
        except ConfigError as error:
            raise click.ClickException(str(error)) from error

    def store(self) -> Store:
        """The store as an operator's command sees it: the shared one, never a spool."""
        settings = self.settings()
        return open_store(settings.store, retention=settings.retention)


class Group(click.Group):
    """Any command's StoreError becomes a clear message and exit status 1."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except StoreError as error:
            raise click.ClickException(str(error)) from error


pass_context = click.make_pass_decorator(Context)
origins_option = click.option(
    "--origin", "origins", multiple=True, required=True, help="Allowed page origin (repeatable)."
)


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (default: ./clickthru.toml if present, or $CLICKTHRU_CONFIG).",
)
@click.option("--store", help="SQLite file or sqlite:/// URL (default: clickthru.db).")
@click.version_option(package_name="clickthru")
@click.pass_context
def cli(ctx: click.Context, config: Path | None, store: str | None) -> None:
    """clickthru: click-through tracking that loses no clicks and delays no visitor."""
    ctx.obj = Context(config, store)


@cli.command()
@click.option("--host", help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", type=int, help="Port (default 8787).")
@click.option("--workers", type=int, help="Worker processes (default 1).")
@pass_context
def serve(ctx: Context, host: str | None, port: int | None, workers: int | None) -> None:
    """Run the collector."""
    import uvicorn

    from clickthru.collector.app import SETTINGS_ENV, create_app
    from clickthru.collector.connections import (
        ConnectionLimits,
        protocol,
        raise_open_files_limit,
    )

    settings = ctx.settings(host=host, port=port, workers=workers)
    # Fail early and clearly, before listening. With a shared store, only the spool must
    # open: a collector starts and acknowledges while PostgreSQL is away.
    check = open_store(settings.spool if is_postgres(settings.store) else settings.store)
    check.admin.sites()
    check.close()
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level,
        "access_log": False,
        "server_header": False,
        "proxy_headers": False,  # forwarded addresses: ours to trust or not (trusted_proxies)
        # httptools, with the bounds uvicorn lacks: slow requests, heads, connections.
        "http": protocol(
            ConnectionLimits(
                request_timeout=settings.request_timeout,
                max_connections=min(settings.max_connections, raise_open_files_limit()),
            )
        ),
        "timeout_keep_alive": 5,  # seconds an idle connection stays open after an answer
        "loop": "uvloop",
        "timeout_graceful_shutdown": 5,
    }
    click.echo(
        f"clickthru collector on http://{settings.host}:{settings.port} (store {settings.store})"
    )
    if settings.workers > 1:
        os.environ[SETTINGS_ENV] = msgspec.json.encode(settings).decode()
        # Workers add up their metrics through files here (prometheus-client's multiprocess mode).
        metrics_dir = None
        if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
            metrics_dir = tempfile.mkdtemp(prefix="clickthru-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
        try:
            uvicorn.run(
                "clickthru.collector.app:app_from_env",
                factory=True,
                workers=settings.workers,
                **options,
            )
        finally:
            if metrics_dir is not None:
                shutil.rmtree(metrics_dir, ignore_errors=True)
    else:
        uvicorn.run(create_app(settings), **options)


@cli.group()
def site() -> None:
    """Register customer sites and manage their keys."""


@site.command("add")
@click.argument("name")
@origins_option
@pass_context
def site_add(ctx: Context, name: str, origins: tuple[str, ...]) -> None:
    """Register a site; prints its signing secret and API key once."""
    created = ctx.store().admin.add_site(name, origins)
    key = created.site.signing_key
    click.echo(f"site {name}: origins {', '.join(created.site.origins)}")
    click.echo(f"signing key id: {key.key_id}")
    click.echo(f"signing secret: {key.secret.hex()}")
    click.echo(f"API key:        {created.api_key}")
    click.echo("Keep the API key: it is stored only as a hash.")


@site.command("origins")
@click.argument("name")
@origins_option
@pass_context
def site_origins(ctx: Context, name: str, origins: tuple[str, ...]) -> None:
    """Replace the origins a site's pages may send events from."""
    updated = ctx.store().admin.set_origins(name, origins)
    click.echo(f"site {name}: origins {', '.join(updated.origins)}")


@site.command("list")
@pass_context
def site_list(ctx: Context) -> None:
    """The registered sites."""
    sites = ctx.store().admin.sites()
    if not sites:
        click.echo("no sites yet: clickthru site add NAME --origin https://shop.example")
    for entry in sites:
        valid = ", ".join(k.key_id for k in entry.keys if k.retired_at is None)
        click.echo(f"{entry.name}\torigins: {', '.join(entry.origins)}\tkeys: {valid}")


@site.command("rotate-key")
@click.argument("name")
@pass_context
def site_rotate_key(ctx: Context, name: str) -> None:
    """A new signing key; tokens signed with the previous one still verify."""
    key = ctx.store().admin.rotate_key(name).signing_key
    click.echo(f"signing key id: {key.key_id}")
    click.echo(f"signing secret: {key.secret.hex()}")


@site.command("erase")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask to type the name again.")
@click.option(
    "--settle", type=click.FloatRange(min=0), default=None,
    help="Seconds before sweeping again, for what collectors took meanwhile (default 10).",
)  # fmt: skip
@pass_context
def site_erase(ctx: Context, name: str, yes: bool, settle: float | None) -> None:
    """Remove a site and every row of it: events, counters, rejects, keys, origins,
    customers' access (and, with a shared store, what the spools still hold of it)."""
    from clickthru.store.erase import SETTLE, SiteEraser

    store = ctx.store()
    if not yes and click.prompt(f"Type the site's name to erase {name}") != name:
        raise click.ClickException("the name typed differs: nothing erased")
    settle = SETTLE if settle is None else settle
    click.echo(f"erasing {name} (and once more after {settle:.0f} s, for what collectors took)")
    removed = SiteEraser(store.admin.db).erase(name, settle)
    for table, count in sorted(removed.items()):
        click.echo(f"{table}\t{count} rows")
    click.echo(f"site {name} erased")


@cli.command()
@click.option("--dry-run", is_flag=True, help="Only say what would go.")
@pass_context
def purge(ctx: Context, dry_run: bool) -> None:
    """Remove what is past its retention now (a collector does this by itself, quietly)."""
    store = ctx.store()
    if dry_run:
        found = store.purger.dry_run()
        for (kind, site_name), count in sorted(found.items()):
            click.echo(f"{kind}\t{site_name}\t{count} rows would go")
        if not found:
            click.echo("nothing is past its retention")
        return
    started = time.perf_counter()
    # Between batches the writer is left free as long as a batch held it: collectors
    # acknowledging meanwhile wait at most one batch, and seldom.
    removed = store.purger.purge(pause=_rest)
    for kind, count in removed.items():
        click.echo(f"{kind}\t{count} rows purged")
    click.echo(f"purged in {time.perf_counter() - started:.1f} s")


def _rest(seconds: float) -> bool:
    time.sleep(seconds)
    return True


@cli.command("backup")
@click.argument("path", type=click.Path(dir_okay=False))
@pass_context
def backup_command(ctx: Context, path: str) -> None:
    """A consistent copy of the SQLite store at PATH, while collectors keep running."""
    from clickthru.store.backup import backup

    copied = backup(sqlite_path(ctx.settings().store), path)
    click.echo(
        f"backed up {copied.events} events ({copied.bytes // 1024} KiB) to {copied.path}"
        f" in {copied.seconds:.1f} s; integrity check ok"
    )


@cli.command("restore")
@click.argument("path", type=click.Path(dir_okay=False, exists=True))
@pass_context
def restore_command(ctx: Context, path: str) -> None:
    """Put the backup at PATH in place of the store; refuses while it is open anywhere."""
    from clickthru.store.backup import restore

    copied = restore(path, sqlite_path(ctx.settings().store))
    click.echo(f"restored {copied.events} events into {copied.path}")
    if copied.replaced:
        click.echo(f"the store it replaced is at {copied.replaced}")


def sqlite_path(url: str) -> str:
    if is_postgres(url):
        raise click.ClickException(
            "the store is PostgreSQL: back it up with pg_dump or point-in-time recovery"
            " (see the README)"
        )
    return url.removeprefix("sqlite://")


@cli.command()
@click.option("--site", "site_name", required=True)
@click.option("--list-id", required=True, help="The id of the recommendation list shown.")
@click.option("--item", required=True, help="The recommended item's id.")
@click.option("--position", type=click.IntRange(min=1), required=True, help="1-based.")
@click.option("--placement", required=True, help='Where it is shown ("product-page-bottom").')
@click.option("--ttl", type=click.IntRange(min=1), default=tokens.DEFAULT_TTL, show_default=True)
@click.option("--variant", default=None, help="The model or experiment arm that served the list.")
@pass_context
def token(
    ctx: Context,
    site_name: str,
    list_id: str,
    item: str,
    position: int,
    placement: str,
    ttl: int,
    variant: str | None,
) -> None:
    """Mint an attribution token with the site's current key."""
    key = ctx.store().admin.site(site_name).signing_key
    try:
        click.echo(
            tokens.mint(
                site=site_name,
                key_id=key.key_id,
                secret=key.secret,
                list_id=list_id,
                item=item,
                position=position,
                placement=placement,
                ttl=ttl,
                variant=variant,
            )
        )
    except ValueError as error:
        raise click.ClickException(str(error)) from error


@cli.command()
@click.option(
    "--since", default="7d", show_default=True, help="ISO date/time, or 30m, 24h, 7d ago."
)
@click.option("--until", default=None, help="ISO date/time (default: now).")
@click.option("--site", "sites", multiple=True, help="Only these sites (default: all).")
@click.option(
    "--by", type=click.Choice(GROUPINGS), default="placement", show_default=True,
    help="What each row is.",
)  # fmt: skip
@click.option("--bots", is_flag=True, help="Count bot-flagged events too.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="Most rows.")
@click.option(
    "--format", "output", type=click.Choice(["table", "json", "csv"]), default="table",
    show_default=True,
)  # fmt: skip
@pass_context
def report(
    ctx: Context,
    since: str,
    until: str | None,
    sites: tuple[str, ...],
    by: Grouping,
    bots: bool,
    limit: int | None,
    output: str,
) -> None:
    """CTR, clicks and views, grouped: the numbers the API and dashboard show."""
    query = _question(ctx, since, until, sites, bots)
    document = ctx.store().reports.document(query, by, limit)
    if output == "json":
        click.echo(msgspec.json.format(msgspec.json.encode(document)).decode())
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow((by, *COUNT_FIELDS))
        for row in document.rows:
            writer.writerow(inert_row((row.key, *(getattr(row, f) for f in COUNT_FIELDS))))
    else:
        click.echo(report_table(document))


def _question(
    ctx: Context, since: str, until: str | None, sites: tuple[str, ...], bots: bool
) -> Query:
    known = [site.name for site in ctx.store().admin.sites()]
    for site in sites:
        if site not in known:
            raise click.BadParameter(f"no site named {site!r}", param_hint="--site")
    try:
        start = parse_moment(since)
        end = parse_moment(until) if until else now_ms()
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--since/--until") from None
    return Query(tuple(sites or known), start, end, bots)


def _asked(command: Callable[..., None]) -> Callable[..., None]:
    """The options every report command takes: range, sites, bots, output format."""
    for option in reversed((
        click.option("--since", default="7d", show_default=True,
                     help="ISO date/time, or 30m, 24h, 7d ago."),
        click.option("--until", default=None, help="ISO date/time (default: now)."),
        click.option("--site", "sites", multiple=True, help="Only these sites (default: all)."),
        click.option("--bots", is_flag=True, help="Count bot-flagged events too."),
        click.option("--format", "output", type=click.Choice(["table", "json", "csv"]),
                     default="table", show_default=True),
    )):  # fmt: skip
        command = option(command)
    return command


def _print(
    document: msgspec.Struct, table: tuple[list[str], Iterator[list[object]]], output: str
) -> None:
    if output == "json":
        click.echo(msgspec.json.format(msgspec.json.encode(document)).decode())
    elif output == "csv":
        writer = csv.writer(sys.stdout)
        header, rows = table
        writer.writerow(header)
        writer.writerows(inert_row(row) for row in rows)
    else:
        click.echo(aligned(*table))


@cli.command()
@_asked
@click.option(
    "--by", type=click.Choice(CONVERSION_GROUPINGS), default="placement", show_default=True,
    help="The clicked placement, item, position or variant, or the day.",
)  # fmt: skip
@click.option("--limit", type=click.IntRange(1, 10_000), default=None, help="Most rows.")
@pass_context
def conversions(
    ctx: Context, since: str, until: str | None, sites: tuple[str, ...], bots: bool,
    output: str, by: ConversionGrouping, limit: int | None,
) -> None:  # fmt: skip
    """Orders attributed to recommended clicks, conversion rate and revenue per currency."""
    query = _question(ctx, since, until, sites, bots)
    document = ctx.store().reports.conversions(query, by, limit)
    _print(document, conversion_table(document), output)
    if output == "table":
        for part in ("attributed", "unattributed"):
            figures = getattr(document, part)
            revenue = ", ".join(f"{v:.2f} {c}" for c, v in figures.revenue.items()) or "-"
            click.echo(f"{part}: {figures.conversions} orders, revenue {revenue}")


@cli.command()
@_asked
@click.option("--control", default=None, help='The control variant (default: "A", else the first).')
@pass_context
def experiment(
    ctx: Context, since: str, until: str | None, sites: tuple[str, ...], bots: bool,
    output: str, control: str | None,
) -> None:  # fmt: skip
    """Each variant's views, clicks, CTR with its 95 % interval, conversions and revenue
    per 1,000 views, with p-values against the control."""
    query = _question(ctx, since, until, sites, bots)
    document = ctx.store().reports.experiment(query, control)
    _print(document, experiment_table(document), output)


@cli.command()
@click.option(
    "--since", default="7d", show_default=True, help="ISO date/time, or 30m, 24h, 7d ago."
)
@click.option("--until", default=None, help="ISO date/time (default: now).")
@click.option("--site", "sites", multiple=True, help="Only these sites (default: all).")
@click.option("--bots", is_flag=True, help="Count bot-flagged events too.")
@click.option(
    "--format", "output", type=click.Choice(["ndjson", "csv"]), default="ndjson",
    show_default=True,
)  # fmt: skip
@pass_context
def outcomes(
    ctx: Context, since: str, until: str | None, sites: tuple[str, ...], bots: bool, output: str
) -> None:
    """What became of each recommended (list, item) served or viewed: for training."""
    rows = ctx.store().reports.outcomes(_question(ctx, since, until, sites, bots))
    if output == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(OUTCOME_COLUMNS)
        writer.writerows(inert_row(outcome_cells(outcome)) for outcome in rows)
        return
    for outcome in rows:
        sys.stdout.write(msgspec.json.encode(outcome).decode() + "\n")


@cli.command()
@click.option("--rebuild", is_flag=True, required=True, help="Recompute from the raw events.")
@pass_context
def rollup(ctx: Context, rebuild: bool) -> None:
    """Recompute the report counters from the raw events (the aggregator keeps them as
    events arrive; this is for a repair or a check)."""
    store = ctx.store()
    started = time.perf_counter()
    counted = store.aggregator.rebuild()
    seconds = time.perf_counter() - started
    click.echo(f"rollups rebuilt from {counted} events in {seconds:.1f} s")


@cli.command()
@click.option("--once", is_flag=True, help="Count what waits, then stop.")
@pass_context
def aggregate(ctx: Context, once: bool) -> None:
    """Count stored events into the report counters.

    A collector does this itself (one process per store counts, the others stand by);
    run this where no collector does, or with `aggregate = false` in the collectors."""
    store = ctx.store()
    if once:
        started = time.perf_counter()
        counted = store.aggregator.catch_up()
        seconds = time.perf_counter() - started
        click.echo(f"counted {counted} events and rejects in {seconds:.1f} s")
        return
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    store.start(aggregate=True)
    click.echo("counting; stop with Ctrl-C")
    try:
        stopping.wait()
    finally:
        store.close()


@cli.group()
def user() -> None:
    """Who may sign in to the dashboard and read reports."""


@user.command("add")
@click.argument("name")
@click.option("--operator", is_flag=True, help="Sees every site.")
@click.option("--site", "sites", multiple=True, help="A customer's site (repeatable).")
@click.password_option(help="At least 10 characters (asked for when not given).")
@pass_context
def user_add(
    ctx: Context, name: str, operator: bool, sites: tuple[str, ...], password: str
) -> None:
    """Add an operator (--operator) or a customer of some sites (--site)."""
    added = ctx.store().access.add_user(name, password, operator, list(sites))
    sees = "every site" if added.operator else ", ".join(added.sites)
    click.echo(f"user {added.name} added; sees {sees}")


@user.command("list")
@pass_context
def user_list(ctx: Context) -> None:
    """Users and the sites they see."""
    for known in ctx.store().access.users():
        click.echo(f"{known.name}\t{'operator' if known.operator else ', '.join(known.sites)}")


@user.command("remove")
@click.argument("name")
@pass_context
def user_remove(ctx: Context, name: str) -> None:
    """Remove a user, their sessions and keys."""
    ctx.store().access.remove_user(name)
    click.echo(f"user {name} removed")


@user.command("key")
@click.argument("name")
@pass_context
def user_key(ctx: Context, name: str) -> None:
    """A new read-only API key for the user (shown once)."""
    click.echo(ctx.store().access.add_read_key(name))


@cli.command()
@click.option("--port", type=int, default=8787, show_default=True, help="Collector port.")
@click.option("--shop-port", type=int, default=8788, show_default=True, help="Demo shop port.")
@pass_context
def demo(ctx: Context, port: int, shop_port: int) -> None:
    """Run the collector and a demo book shop on a second origin."""
    from clickthru.demo.runner import run_demo

    run_demo(ctx.settings(port=port), shop_port)


def main() -> None:
    cli(prog_name="clickthru")
