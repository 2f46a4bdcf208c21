"""The `ctwin` command line. Every command takes --config and --data-dir and speaks JSON with --json."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from collectors import registry
from service import cli_models as models_cli
from service.cli_advise import advise
from service.cli_agent import agent
from service.cli_common import ConfigOpt, DataDirOpt, JsonOpt, err, out, print_table, service_url, stop_on_signals
from service.cli_common import emit_json as _emit_json
from service.cli_common import fail as _fail
from service.cli_common import load as _load
from service.cli_containers import containers_app
from service.cli_dispatcher import dispatcher
from service.cli_sbatch import SBATCH_CONTEXT, sbatch
from service.cli_token import token_app
from service.compose import (
    StoreBusyError,
    build_collectors,
    build_service,
    open_store,
    replay_speeds,
    resolve_salt,
    topology_of,
)
from service.config import ConfigError, LoadedConfig, load_config
from service.datadir import secure_data_dir
from service.timeparse import parse_time_ns
from telemetry.export import (
    ReplayClockUnknownError,
    check_job_states,
    export_advice,
    export_jobs,
    export_samples,
    manifest_path,
    stored_replay_clocks,
)
from telemetry.filemodes import private_umask
from telemetry.pipeline import Pipeline
from telemetry.redact import install_log_redaction, redact
from telemetry.schema import Batch
from telemetry.stores.base import QueryError, Selection, Store, UnknownMetricError, check_metrics
from twin.errors import UnknownSiteError

app = typer.Typer(
    help="Continuum Twin: telemetry, digital twin and placement advice for the compute continuum.",
    no_args_is_help=True,
    add_completion=False,
)
config_app = typer.Typer(help="Check configuration files.", no_args_is_help=True)
export_app = typer.Typer(help="Export datasets for analysis (Parquet or CSV, with a manifest).", no_args_is_help=True)
app.add_typer(config_app, name="config")
app.add_typer(export_app, name="export")
app.add_typer(token_app, name="token")
app.add_typer(containers_app, name="containers")
app.command("train")(models_cli.train)
app.command("evaluate")(models_cli.evaluate)
app.command("advise")(advise)
app.command("sbatch", context_settings=SBATCH_CONTEXT)(sbatch)
app.command("dispatcher")(dispatcher)
app.command("agent")(agent)


# ---------------------------------------------------------------------------- collect
@app.command()
def collect(
    once: Annotated[bool, typer.Option("--once", help="Collect one cycle and print it")] = True,
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Only show these metrics")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run every configured collector once and print what it saw (nothing is stored)."""
    del data_dir  # accepted for uniformity; collect never touches the store
    loaded = _load(config)
    pipeline = Pipeline(build_collectors(loaded), [])
    try:
        batch = Batch.concat(pipeline.collect_once())
    finally:
        for rc in pipeline.collectors:
            rc.close()
    rows = [s for s in batch.samples() if not metric or s.metric in metric]
    failures = {rc.name: rc.stats.last_error for rc in pipeline.collectors if rc.stats.last_error}
    if as_json:
        _emit_json({"samples": [s.as_dict() for s in rows], "errors": failures})
    else:
        table = Table("metric", "labels", "value", title=f"{len(rows)} samples", title_justify="left")
        for s in rows:
            labels = ",".join(f"{k}={v}" for k, v in s.labels.items() if k not in ("host",))
            table.add_row(s.metric, labels, f"{s.value:.6g}")
        print_table(table)
        for name, message in failures.items():
            err.print(f"[yellow]collector {name} failed:[/yellow] {message}", highlight=False)
    if failures and len(failures) == len(pipeline.collectors):
        raise typer.Exit(1)
    del once


# ---------------------------------------------------------------------------- serve
@app.command()
def serve(
    listen: Annotated[str | None, typer.Option(help="Address to bind (default: serve.listen, 127.0.0.1)")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default: serve.port, 8080)")] = None,
    no_ui: Annotated[bool, typer.Option("--no-ui", help="Serve the API only, without the Dash twin")] = False,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Run the whole service: collectors, store, twin, API, /metrics and the Dash twin on one port."""
    import uvicorn

    from service.app import create_app
    from service.auth import AuthError, TokenStore, check_exposure, open_endpoints_for
    from service.serve_log import quiet_websocket_upgrades

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    loaded = _load(config)
    secure_data_dir(loaded, data_dir)
    host = listen or loaded.config.serve.listen
    bind_port = port or loaded.config.serve.port
    if listen:
        serve_cfg = loaded.config.serve.model_copy(update={"listen": listen})
        loaded = LoadedConfig(loaded.config.model_copy(update={"serve": serve_cfg}), loaded.collectors, loaded.source)
    try:
        tokens = TokenStore(loaded.tokens_path(data_dir))
        check_exposure(host, tokens, open_endpoints_for(loaded.config.auth, host))
        first_token = None
        if not tokens.list():  # a brand-new install: one admin token, shown once, so /v1 is usable at once
            # before the app: its token store then reads the token at start, not a second later
            first_token = tokens.create("first-admin", ["admin"])[1]
        application = create_app(loaded, data_dir, ui=not no_ui)
    except AuthError as exc:
        raise _fail(str(exc)) from None
    if as_json and first_token:
        _emit_json({"first_token": first_token, "scopes": ["admin"], "tokens_file": str(tokens.path)})
    if not as_json:
        if first_token:
            err.print(
                f"created the first API token (admin scope; shown only now, stored hashed in {tokens.path}):\n"
                f"  {first_token}\n"
                f"  e.g. curl -H 'Authorization: Bearer {first_token}' http://127.0.0.1:{bind_port}/v1/nodes\n"
                "  more with `ctwin token create NAME --scope read`, revoke with `ctwin token revoke first-admin`",
                highlight=False,
                markup=False,
            )
        shown = f"[{host}]" if ":" in host else host
        err.print(
            f"Continuum Twin on http://{shown}:{bind_port}/ (API docs: /docs) — store {loaded.store_path(data_dir)}",
            highlight=False,
        )
    # uvicorn re-raises the signal it caught once its graceful shutdown (and our final flush) is
    # done; it first restores the handlers it found, so with these no-ops the process exits 0.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    quiet_websocket_upgrades()
    uvicorn.run(
        application,
        host=host,
        port=bind_port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=10,
        ws="none",  # no WebSocket endpoint: upgrades are answered as HTTP (service/serve_log.py)
    )


# ---------------------------------------------------------------------------- run
@app.command()
def run(
    duration: Annotated[float | None, typer.Option("--for", help="Stop after this many seconds")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collect into the store until stopped (SIGTERM / Ctrl-C), then flush and exit cleanly."""
    stop = stop_on_signals()
    loaded = _load(config)
    secure_data_dir(loaded, data_dir)
    runtime = build_service(loaded, data_dir)
    runtime.start()
    retention = loaded.config.store.retention
    if not as_json:
        err.print(
            f"collecting {len(runtime.pipeline.collectors)} collectors into {loaded.store_path(data_dir)}"
            " — Ctrl-C to stop",
            highlight=False,
        )
    deadline = time.monotonic() + duration if duration else None
    next_retention = time.monotonic()
    while not stop.is_set():
        if time.monotonic() >= next_retention:
            runtime.store.apply_retention(time.time_ns() - int(retention * 1e9))
            next_retention = time.monotonic() + 3600
        if deadline and time.monotonic() >= deadline:
            break
        stop.wait(0.5)
    runtime.stop()
    health = runtime.pipeline.health()
    if as_json:
        _emit_json(health)
    else:
        err.print(
            f"stopped; {health['written_samples']} samples written, {health['dropped_samples']} dropped",
            highlight=False,
        )


# ---------------------------------------------------------------------------- export
EXPORT_SUFFIXES: dict[str, Literal["parquet", "csv"]] = {".parquet": "parquet", ".csv": "csv"}


def _export_format(output: Path, fmt: str | None) -> Literal["parquet", "csv"]:
    """--format, else the file's suffix (.parquet or .csv); refused before anything is read: a
    suffix that is neither (jobs.txt) without --format, a --format the suffix contradicts (x.csv
    with --format parquet), a missing directory (never created on a typo's behalf)."""
    suffix = output.suffix.lower()
    if fmt is not None and fmt not in ("parquet", "csv"):
        raise _fail(f"unknown format {fmt!r}: use --format parquet or --format csv")
    if fmt is None and suffix not in EXPORT_SUFFIXES:
        raise _fail(f"cannot tell the format of {output}: name it .parquet or .csv, or pass --format parquet|csv")
    if fmt is not None and suffix in EXPORT_SUFFIXES and EXPORT_SUFFIXES[suffix] != fmt:
        raise _fail(f"{output} names a {EXPORT_SUFFIXES[suffix]} file but --format {fmt} was asked: change one")
    if output.is_dir():
        raise _fail(f"{output} is a directory: give a file name, e.g. {output / ('export.' + (fmt or 'parquet'))}")
    if not output.parent.is_dir():
        raise _fail(f"no directory {output.parent}: create it first (mkdir -p {output.parent}) or write elsewhere")
    return "csv" if (fmt or EXPORT_SUFFIXES[suffix]) == "csv" else "parquet"


def _wall_s(text: str | None) -> float | None:
    """A --start/--end as wall-clock unix seconds (ValueError with the accepted forms)."""
    return None if not text else parse_time_ns(text) / 1e9


def _export_store(loaded: LoadedConfig, data_dir: Path | None, kind: str) -> Store:
    """The store, read-only; while `ctwin serve` holds it, the error names the API route that
    exports `kind` from the running service instead."""
    try:
        return open_store(loaded, data_dir, read_only=True)
    except StoreBusyError as exc:
        raise ValueError(
            f"{exc}; export through its API instead: GET {service_url(loaded.config.serve)}/v1/export/{kind}"
            " with a token of the export scope (`ctwin token create NAME --scope export`), or stop the service"
        ) from None


@export_app.command("samples")
def export_samples_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.parquet or .csv)")],
    metric: Annotated[list[str] | None, typer.Option("--metric", "-m", help="Metric name (repeatable)")] = None,
    label: Annotated[list[str] | None, typer.Option("--label", "-l", help="key=value (repeatable)")] = None,
    start: Annotated[str | None, typer.Option(help="now, -1h, ISO date or unix seconds")] = None,
    end: Annotated[str | None, typer.Option(help="now, -1h, ISO date or unix seconds")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet or csv (default: from suffix)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the samples of a time range / metric / label selection, one column per label."""
    loaded = _load(config)
    fmt_lit = _export_format(output, fmt)
    labels: dict[str, str] = {}
    for item in label or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise _fail(f"label {item!r} is not key=value")
        labels[key] = value
    try:
        selection = Selection(
            metrics=tuple(metric or ()),
            labels=labels,
            start_ns=parse_time_ns(start) if start else None,
            end_ns=parse_time_ns(end) if end else None,
        )
        store = _export_store(loaded, data_dir, "samples")
    except (ValueError, QueryError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    try:
        check_metrics(store, selection.metrics)  # the export API's 404 unknown_metric
        clocks = stored_replay_clocks(store, replay_speeds(loaded))
        if as_json:
            manifest = export_samples(store, selection, output, fmt_lit, clocks=clocks)
        else:
            with Progress(
                TextColumn("exporting"),
                BarColumn(),
                TextColumn("{task.percentage:>3.0f}%"),
                TimeElapsedColumn(),
                console=err,
            ) as bar:
                task = bar.add_task("export", total=1.0)
                manifest = export_samples(
                    store, selection, output, fmt_lit, progress=lambda f: bar.update(task, completed=f), clocks=clocks
                )
    except UnknownMetricError as exc:
        raise _fail(f"{exc} (leave -m out to export every metric)") from None
    except QueryError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if as_json:
        _emit_json(json.loads(manifest.to_json()))
    else:
        err.print(f"wrote {manifest.rows} rows to {output} (manifest: {manifest_path(output)})", highlight=False)


@export_app.command("jobs")
def export_jobs_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.parquet or .csv)")],
    site: Annotated[str | None, typer.Option(help="Only this site")] = None,
    state: Annotated[list[str] | None, typer.Option("--state", help="Only these job states (repeatable)")] = None,
    start: Annotated[
        str | None, typer.Option(help="Submitted at or after (wall clock): now, -30d, ISO date, unix s")
    ] = None,
    end: Annotated[str | None, typer.Option(help="Submitted before (wall clock): now, -1d, ISO date, unix s")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet or csv (default: from suffix)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the job history with users and groups pseudonymised (salted hash), plus a manifest.
    --start/--end are wall clock, mapped to each replayed site's trace clock like the API's."""
    loaded = _load(config)
    fmt_lit = _export_format(output, fmt)
    try:
        if site is not None:
            topology_of(loaded).site(site)  # the API's 404: the same configured sites, the same message
        states = check_job_states(state or [])
        from_s, to_s = _wall_s(start), _wall_s(end)
        salt = resolve_salt(loaded, data_dir)
        store = _export_store(loaded, data_dir, "jobs")
    except UnknownSiteError as exc:
        raise _fail(f"{exc}; pass one of them to --site, or leave --site out for every site") from None
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    try:
        with Progress(
            TextColumn("exporting jobs"), BarColumn(), TimeElapsedColumn(), console=err, disable=as_json
        ) as bar:
            task = bar.add_task("export", total=1.0)
            manifest = export_jobs(
                store,
                output,
                fmt_lit,
                salt,
                site=site,
                states=states,
                wall_from_s=from_s,
                wall_to_s=to_s,
                progress=lambda f: bar.update(task, completed=f),
                clocks=stored_replay_clocks(store, replay_speeds(loaded)),
                replayed=list(replay_speeds(loaded)),
            )
    except ReplayClockUnknownError as exc:
        raise _fail(str(exc)) from None
    finally:
        store.close()
    if as_json:
        _emit_json(json.loads(manifest.to_json()))
    else:
        err.print(
            f"wrote {manifest.rows} jobs to {output}, users and groups pseudonymised"
            f" (manifest: {manifest_path(output)})",
            highlight=False,
        )


@export_app.command("advice")
def export_advice_cmd(
    output: Annotated[Path, typer.Option("--output", "-o", help="File to write (.parquet or .csv)")],
    start: Annotated[str | None, typer.Option(help="Advised at or after: now, -30d, ISO date, unix s")] = None,
    end: Annotated[str | None, typer.Option(help="Advised before: now, -1d, ISO date, unix s")] = None,
    fmt: Annotated[str | None, typer.Option("--format", "-f", help="parquet or csv (default: from suffix)")] = None,
    config: ConfigOpt = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Write the advice log joined with outcomes (predicted vs realised, regret), users pseudonymised."""
    loaded = _load(config)
    fmt_lit = _export_format(output, fmt)
    try:
        from_s, to_s = _wall_s(start), _wall_s(end)
        salt = resolve_salt(loaded, data_dir)
        store = _export_store(loaded, data_dir, "advice")
    except (ValueError, FileNotFoundError) as exc:
        raise _fail(str(exc)) from None
    try:
        with Progress(
            TextColumn("exporting advice"), BarColumn(), TimeElapsedColumn(), console=err, disable=as_json
        ) as bar:
            task = bar.add_task("export", total=1.0)
            manifest = export_advice(
                store,
                output,
                fmt_lit,
                salt,
                created_from_s=from_s,
                created_to_s=to_s,
                progress=lambda f: bar.update(task, completed=f),
                clocks=stored_replay_clocks(store, replay_speeds(loaded)),
            )
    finally:
        store.close()
    if as_json:
        _emit_json(json.loads(manifest.to_json()))
    else:
        err.print(
            f"wrote {manifest.rows} answers to {output}, users pseudonymised (manifest: {manifest_path(output)})",
            highlight=False,
        )


# ---------------------------------------------------------------------------- plugins
@app.command()
def plugins(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """List every built-in collector and whether it can run on this machine (and if not, why)."""
    del data_dir
    loaded = _load(config)
    configured = {spec.entry.type for spec in loaded.collectors}
    rows: list[dict[str, Any]] = []
    for name in registry.names():
        cls = registry.get(name)
        try:
            reason = cls().availability()
        except Exception as exc:  # a collector that needs config (e.g. a URL) cannot be probed bare
            reason = f"needs configuration ({type(exc).__name__}: {redact(str(exc).splitlines()[0])[:120]})"
        doc = (cls.__doc__ or "").strip().splitlines()[0] if cls.__doc__ else ""
        rows.append(
            {
                "name": name,
                "available": reason is None,
                "reason": reason,
                "configured": name in configured,
                "description": doc,
            }
        )
    if as_json:
        _emit_json(rows)
        return
    table = Table("collector", "available here", "configured", "description / reason")
    for r in rows:
        table.add_row(
            r["name"],
            "yes" if r["available"] else "[red]no[/red]",
            "yes" if r["configured"] else "",
            r["description"] if r["available"] else str(r["reason"]),
        )
    print_table(table)


# ---------------------------------------------------------------------------- config
@config_app.command("check")
def config_check(config: ConfigOpt = None, data_dir: DataDirOpt = None, as_json: JsonOpt = False) -> None:
    """Validate a config file: unknown or invalid keys are reported with file, line and key path."""
    del data_dir
    try:
        loaded = load_config(config)
    except ConfigError as exc:
        if as_json:
            _emit_json(
                {
                    "ok": False,
                    "source": exc.source,
                    "problems": [{"location": p.location, "line": p.line, "message": p.message} for p in exc.problems],
                }
            )
        else:
            for problem in exc.problems:
                err.print(problem.render(exc.source), highlight=False, markup=False)
        raise typer.Exit(1) from None
    summary = {
        "ok": True,
        "source": loaded.source,
        "sites": [s.name for s in loaded.config.sites],
        "collectors": [spec.name for spec in loaded.collectors],
    }
    if as_json:
        _emit_json(summary)
    else:
        out.print(
            f"{loaded.source}: OK — {len(loaded.config.sites)} site(s), {len(loaded.collectors)} collector(s)",
            highlight=False,
        )


# ---------------------------------------------------------------------------- probe-endpoint
@app.command("probe-endpoint")
def probe_endpoint(
    listen: Annotated[
        str | None, typer.Option(help="ADDR:PORT for TCP and UDP (default: probe.listen of the config)")
    ] = None,
    max_bytes: Annotated[str | None, typer.Option(help="Largest transfer a probe may ask for, e.g. 256MiB")] = None,
    max_seconds: Annotated[float | None, typer.Option(help="Longest transfer a probe may ask for, seconds")] = None,
    max_clients: Annotated[int | None, typer.Option(help="Transfers at once; one more is refused as busy")] = None,
    config: ConfigOpt = None,
) -> None:
    """Answer the `link_probe` collectors of other sites (RTT echoes and bounded transfers) until stopped."""
    from pydantic import ValidationError

    from service.compose import probe_endpoint_of
    from service.config import ProbeConfig

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    probe = _load(config).config.probe
    update = {"listen": listen, "max_bytes": max_bytes, "max_seconds": max_seconds, "max_clients": max_clients}
    try:
        probe = ProbeConfig.model_validate({**probe.model_dump(), **{k: v for k, v in update.items() if v is not None}})
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'probe'}: {e['msg']}" for e in exc.errors())
        raise _fail(f"probe endpoint options: {reasons}") from None
    if probe.listen is None:
        raise _fail("no address to listen on: pass --listen ADDR:PORT (e.g. 0.0.0.0:7300) or set probe.listen")
    endpoint = probe_endpoint_of(probe)
    assert endpoint is not None
    try:
        endpoint.start()
    except OSError as exc:
        raise _fail(f"{exc.strerror or exc}; is another endpoint on that port? pick another with --listen") from None
    stopped = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopped.set())
    host, port = endpoint.address
    shown = f"[{host}]" if ":" in host else host
    err.print(
        f"probe endpoint on {shown}:{port} (tcp+udp; at most {probe.max_bytes} bytes, {probe.max_seconds:g} s and"
        f" {probe.max_clients} transfers at once)",
        highlight=False,
    )
    try:
        stopped.wait()
    finally:
        endpoint.stop()
        stats = endpoint.stats
        err.print(f"probe endpoint stopped: {stats.transfers} transfers, {stats.echoes} echoes", highlight=False)


def main() -> None:
    """The `ctwin` program. Every file it creates is private to its user (telemetry.filemodes),
    DuckDB's own included; set here, at process start, so a test invoking `app` keeps its umask."""
    private_umask()
    app()


if __name__ == "__main__":
    main()
