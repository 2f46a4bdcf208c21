"""`ctwin dispatcher`: MultiKueue's external dispatcher, next to Kueue's manager cluster.

It is a client twice over: of the manager cluster's Kubernetes API (schedulers.multikueue.api) and
of the running ctwin service (schedulers.multikueue.service_url, default this config's serve
address, with a token of the advise scope from schedulers.multikueue.token_file or CTWIN_TOKEN),
because the advice needs the live twin that only `ctwin serve` holds.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Annotated

import typer

from collectors.kube_api import KubeClient
from service.cli_common import ConfigOpt, JsonOpt, emit_json, err, fail, load, service_url
from service.hooks.dispatcher import AdviceClient, Dispatcher, DispatcherError, token_from
from telemetry.redact import install_log_redaction, redact

__all__ = ["dispatcher"]


def dispatcher(
    once: Annotated[bool, typer.Option("--once", help="One pass (list and nominate), then exit")] = False,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Nominate worker clusters for Kueue Workloads (MultiKueue), best first by ctwin's advice."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    install_log_redaction()
    loaded = load(config)
    mk = loaded.config.schedulers.multikueue
    if not mk.enabled:
        raise fail("the MultiKueue dispatcher is off: set schedulers.multikueue.enabled: true (and its api:)")
    url = mk.service_url or service_url(loaded.config.serve)
    try:
        kube = KubeClient.from_config(mk.api)
        advice = AdviceClient(url, token_from(mk))
        controller = Dispatcher(mk, kube, advice)
        controller.check()
    except (ValueError, OSError, DispatcherError) as exc:
        raise fail(redact(str(exc))) from None
    if once:
        try:
            made = controller.run_once()
        except DispatcherError as exc:
            raise fail(redact(str(exc)), 1) from None
        if as_json:
            emit_json([m.__dict__ for m in made])
        else:
            err.print(f"{len(made)} Workload(s) nominated", highlight=False)
        return
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    err.print(f"dispatcher {mk.dispatcher_name}: watching Workloads, advice from {url}; Ctrl-C stops", highlight=False)
    controller.run(stop)
    kube.close()
    advice.close()
