"""`ctwin advise`: ask the running service where a job should run, as a ranked table or JSON.

The advice needs the live twin (every site's queue and state as last collected), which only the
running service holds, so the command is a client of `POST /v1/advice`: `--url` (default: the
config's serve address) and a token with the advise scope (`--token`, `CTWIN_TOKEN`, or
`--token-file`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
import typer
from rich.table import Table

from service.cli_common import ConfigOpt, JsonOpt, api_token, emit_json, fail, load, out, print_table, service_url

__all__ = ["advise", "parse_data", "refusal"]


def parse_data(text: str | None, what: str) -> dict[str, Any]:
    """`20GB@local` → {"size": "20GB", "site": "local"}; `20GB` → size only (the job's home site)."""
    if not text:
        return {}
    size, sep, site = text.partition("@")
    if not size or (sep and not site):
        raise fail(f"--{what} {text!r}: use SIZE or SIZE@SITE, e.g. 20GB@local")
    return {"size": size, **({"site": site} if site else {})}


def refusal(response: httpx.Response) -> str:
    """The reason of an error body (service/api/errors.py), then each per-field problem it does not
    already say: the service's message is its first detail, which would otherwise print twice."""
    try:
        error = response.json()["error"]
        lines = [str(error["message"])]
        for detail in error.get("details") or []:
            line = f"{detail.get('location')}: {detail.get('message')}"
            if line not in lines:
                lines.append(line)
    except (ValueError, KeyError, TypeError):
        return response.text[:500]
    return "\n  ".join(lines)


def _band(band: dict[str, float] | None, fmt: Any) -> str:
    if not band:
        return "—"
    mid, low, high = fmt(band["p50"]), fmt(band["p10"]), fmt(band["p90"])
    if low == high:  # a band narrower than the rounding: "[4 h 11 min–4 h 11 min]" says nothing
        return mid
    return f"{mid} [{low}–{high}]"


def _duration(seconds: float) -> str:
    from twin.advice.outcome import human_duration

    return human_duration(seconds)


def advise(
    cores: Annotated[int, typer.Option(help="CPU cores the job needs")],
    walltime: Annotated[str, typer.Option(help="Requested time (the kill limit): 2h, 30m, seconds")],
    input: Annotated[str | None, typer.Option("--input", help="Input data: SIZE@SITE, e.g. 20GB@local")] = None,
    output: Annotated[
        str | None, typer.Option("--output", help="Output data: SIZE[@SITE] (default: back home)")
    ] = None,
    nodes: Annotated[int | None, typer.Option(help="Nodes")] = None,
    gpus: Annotated[int, typer.Option(help="GPUs")] = 0,
    memory: Annotated[str | None, typer.Option(help="Memory per node, e.g. 64GB")] = None,
    user: Annotated[str | None, typer.Option(help="Whose history predicts the run time")] = None,
    partition: Annotated[str | None, typer.Option(help="Partition")] = None,
    home: Annotated[str | None, typer.Option(help="Where it would run without advice")] = None,
    objective: Annotated[
        Literal["turnaround", "cost", "energy", "co2", "weighted"], typer.Option(help="What to minimise")
    ] = "turnaround",
    p90: Annotated[bool, typer.Option("--p90", help="Rank by the p90 outcome (risk-averse), not the median")] = False,
    site: Annotated[list[str] | None, typer.Option("--site", help="Only these sites (repeatable)")] = None,
    deadline: Annotated[str | None, typer.Option(help="Finish by: +4h, ISO-8601 (UTC) or unix s")] = None,
    max_cost: Annotated[float | None, typer.Option(help="At most this cost")] = None,
    preview: Annotated[
        bool, typer.Option("--preview", help="A dry run: the same ranking, nothing booked against herding or logged")
    ] = False,
    url: Annotated[str | None, typer.Option(help="The service (default: its configured address)")] = None,
    token: Annotated[str | None, typer.Option(help="API token with the advise scope (or CTWIN_TOKEN)")] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding the token")] = None,
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Rank every site for a job: predicted stage-in, wait, run, cost and CO2, with bands and reasons."""
    try:
        secret = api_token(token, token_file)
    except ValueError as exc:
        raise fail(str(exc)) from None
    if url is None:
        url = service_url(load(config).config.serve)
    body: dict[str, Any] = {"cores": cores, "walltime": walltime, "gpus": gpus, "objective": objective}
    body["risk"] = "p90" if p90 else "p50"
    for key, value in (("nodes", nodes), ("memory", memory), ("user", user), ("partition", partition), ("home", home)):
        if value is not None:
            body[key] = value
    if input:
        body["input"] = parse_data(input, "input")
    if output:
        body["output"] = parse_data(output, "output")
    constraints: dict[str, Any] = {}
    if site:
        constraints["allowed_sites"] = site
    if deadline:
        constraints["deadline"] = deadline
    if max_cost is not None:
        constraints["max_cost"] = max_cost
    if constraints:
        body["constraints"] = constraints
    try:
        response = httpx.post(
            f"{url.rstrip('/')}/v1/advice",
            params={"hook": "cli", **({"preview": "true"} if preview else {})},
            json=body,
            headers={"Authorization": f"Bearer {secret}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        raise fail(f"cannot reach the service at {url}: {exc} (is `ctwin serve` running? pass --url)") from None
    if response.status_code != 200:
        raise fail(f"the service refused ({response.status_code}): {refusal(response)}", 1)
    advice = response.json()
    if as_json:
        emit_json(advice)
        return
    _print(advice)


def _print(advice: dict[str, Any]) -> None:
    currency = advice["currency"]
    table = Table(
        "#", "site", "kind", "turnaround", "wait", "run", "stage-in", f"cost ({currency})", "CO2 (g)", "starts (UTC)",
        "why",
        title=f"advice {advice['advice_id']} — {advice['objective']} at {advice['risk']}",
        title_justify="left",
    )  # fmt: skip
    rank = 0
    for s in advice["sites"]:
        if s["feasible"]:
            rank += 1
        mark = str(rank) if s["feasible"] else "–"
        name = f"[bold]{s['site']}[/bold]" if s["site"] == advice["recommended"] else s["site"]
        start = (s["start_at"] or "").replace("T", " ").removesuffix("Z")
        table.add_row(
            mark,
            name,
            s["kind"],
            _band(s["turnaround_s"], _duration),
            _band(s["wait_s"], _duration),
            _band(s["run_s"], _duration),
            _band(s["stage_in_s"], _duration),
            _band(s["cost"], lambda v: f"{v:.2f}"),
            _band(s["co2_g"], lambda v: f"{v:.0f}"),
            start or "—",
            s["reason"],
        )
    print_table(table)
    # the answer itself, so on stdout with the table (`> file` keeps it); never folded at 80 columns
    out.print(f"→ {advice['summary']}", highlight=False, markup=False, soft_wrap=True)
