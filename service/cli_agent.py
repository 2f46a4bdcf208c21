"""`ctwin agent --config agent.yaml`: run a remote site's collectors and push their batches to a
central `ctwin serve` (service/agent.py), until SIGTERM / Ctrl-C; then flush, replay what is
spooled for a bounded time, and print the final status."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli_common import DataDirOpt, JsonOpt, emit_json, err, fail, stop_on_signals
from service.config import ConfigError
from service.config_agent import load_agent_config
from telemetry.filemodes import make_private_dir

__all__ = ["agent"]


def agent(
    config: Annotated[Path, typer.Option("--config", "-c", help="Agent config (YAML): site, target, collectors")],
    duration: Annotated[float | None, typer.Option("--for", help="Stop after this many seconds")] = None,
    data_dir: DataDirOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Collect for one remote site and push to a central ctwin serve, spooling while it is away."""
    from service.agent import build_agent

    stop = stop_on_signals()
    try:
        loaded = load_agent_config(config)
    except ConfigError as exc:
        for problem in exc.problems:
            err.print(problem.render(exc.source), highlight=False, markup=False)
        raise fail(f"{len(exc.problems)} problem(s) in the agent config; fix them and start again") from None
    try:
        make_private_dir(loaded.data_dir(data_dir))
        runtime = build_agent(loaded, data_dir)
    except (ValueError, OSError) as exc:  # no token, a spool dir that cannot be used
        raise fail(str(exc)) from None
    try:
        runtime.start()
    except OSError as exc:
        runtime.stop()
        raise fail(f"cannot serve status.listen {loaded.config.status.listen}: {exc.strerror or exc}") from None
    target = loaded.config.target
    address = runtime.metrics_address
    err.print(
        f"agent for site {loaded.config.site}: {len(runtime.pipeline.collectors)} collectors -> {target.url}"
        f" (spool {runtime.forwarder.spool.directory})"
        + (f"; /metrics on {address[0]}:{address[1]}" if address else "")
        + " — Ctrl-C to stop",
        highlight=False,
    )
    stop.wait(duration)
    err.print("stopping: flushing and replaying the spool", highlight=False)
    final = runtime.stop()
    if as_json:
        emit_json(final)
    else:
        err.print(f"stopped; {runtime.status_line()}", highlight=False)
