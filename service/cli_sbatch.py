"""`ctwin sbatch [sbatch options] script [args]`: submit where the advice says, with real sbatch.

It reads the job from the script's `#SBATCH` lines and the options (service/hooks/sbatch_script),
asks the running service (`POST /v1/advice?hook=sbatch`) over the configured Slurm clusters
(narrowed by the user's own `-M`), runs `sbatch --parsable -M CLUSTER [-p PARTITION] --comment
"ctwin-advice=ID ..."` with the user's other arguments untouched, prints what sbatch prints, and
reports the job id back so the advice log joins its outcome when it ends.

The wrapper must never stop a user from submitting: when there is no advice (no service, no
token, no Slurm site, nothing recommended, a heterogeneous job), it says why and runs plain sbatch
with the user's own arguments, unless `--no-fallback` (or `schedulers.slurm.fallback: false`).
The exit code is sbatch's. `--dry-run` submits nothing: the ranking (a preview: nothing booked,
nothing logged) next to what `sbatch -M <every cluster> --test-only` alone would pick.
`--advise-only [--json]` prints only the choice (for deploy/slurm/cli_filter.lua);
`--report ID:CLUSTER:JOBID` reports a job submitted elsewhere.

ctwin's own options (`--config`, `--url`, `--token`, `--token-file`, `--dry-run`, `--advise-only`,
`--json`, `--no-fallback`, `--report`, `--help`) come before the script; `-c` is sbatch's
--cpus-per-task here, so the config is `--config` only.
"""

from __future__ import annotations

import getpass
import json
import os
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.table import Table

from service.cli_common import api_token, err, out, print_table, service_url
from service.config import ConfigError, LoadedConfig, load_config
from service.config_schedulers import SlurmHookConfig
from service.hooks.sbatch_advice import (
    Placement,
    SbatchSetupError,
    SlurmSite,
    advice_body,
    candidates,
    placement,
    slurm_sites,
)
from service.hooks.sbatch_output import SbatchPick, parse_parsable, parse_test_only
from service.hooks.sbatch_script import (
    JobSpec,
    SbatchCommand,
    SbatchScriptError,
    parse_options,
    read_job,
    split_command,
)

__all__ = ["SBATCH_CONTEXT", "run", "sbatch"]

SBATCH_CONTEXT: dict[str, Any] = {"allow_extra_args": True, "ignore_unknown_options": True, "help_option_names": []}
"""Every argument reaches the wrapper as written: sbatch's options are not ours to parse."""

_REPLACED = frozenset({"clusters", "cluster", "partition", "comment", "parsable"})
"""Options the wrapper sets itself on the submission."""

USAGE = """usage: ctwin sbatch [ctwin options] [sbatch options] script [script args]

Submits with the real sbatch to the Slurm cluster and partition the placement advice picks
(`-M CLUSTER -p PARTITION`, the advice id in --comment), and reports the job for the advice log.
Without advice (no service, no Slurm site configured, nothing recommended) it runs plain sbatch
with your own options and says why.

ctwin options (before the script):
  --config FILE        ctwin's config (schedulers.slurm: clusters, url, sbatch, slurm_conf)
  --url URL            the service (default: CTWIN_URL, schedulers.slurm.url, serve: address)
  --token T            API token with the advise scope (or CTWIN_TOKEN, --token-file, token_file)
  --token-file FILE
  --dry-run            submit nothing: the ranking (not booked, not logged) next to what
                       `sbatch -M <all> --test-only` picks
  --advise-only        print only the choice (cluster, partition, comment); with --json as JSON
  --json               machine-readable output (--dry-run, --advise-only)
  --no-fallback        fail instead of submitting without advice
  --report ID:CLUSTER:JOBID   report a job submitted elsewhere (e.g. by cli_filter.lua)
  --help               this text
"""


class _Unadvised(Exception):
    """No advice for this submission; the message says why and what would fix it."""


@dataclass
class WrapperOptions:
    config: Path | None = None
    url: str | None = None
    token: str | None = None
    token_file: Path | None = None
    dry_run: bool = False
    advise_only: bool = False
    as_json: bool = False
    no_fallback: bool = False
    report: str | None = None
    help: bool = False
    sbatch_args: list[str] = field(default_factory=list)


_VALUED = {"--config": "config", "--url": "url", "--token": "token", "--token-file": "token_file", "--report": "report"}
_FLAGS = {"--dry-run": "dry_run", "--advise-only": "advise_only", "--json": "as_json", "--no-fallback": "no_fallback",
          "--help": "help", "-h": "help"}  # fmt: skip


def split_own(argv: list[str]) -> WrapperOptions:
    """ctwin's options out of the words before the script; the rest, in order, is sbatch's."""
    own = WrapperOptions()
    i = 0
    while i < len(argv):
        word = argv[i]
        name, eq, value = word.partition("=")
        if name in _VALUED:
            if not eq:
                if i + 1 >= len(argv):
                    raise SbatchScriptError(f"command line: {name} needs a value")
                value = argv[i + 1]
                i += 1
            setattr(own, _VALUED[name], Path(value) if name in ("--config", "--token-file") else value)
        elif word in _FLAGS:
            setattr(own, _FLAGS[word], True)
        elif word.startswith("-") and len(word) > 1:
            _, width = parse_options(argv[i : i + 2], "command line", stop_at_positional=True)
            own.sbatch_args.extend(argv[i : i + max(1, width)])
            i += max(1, width) - 1
        else:  # the script (or a heterogeneous job's ':'): the rest is not ours
            own.sbatch_args.extend(argv[i:])
            break
        i += 1
    return own


def sbatch(ctx: typer.Context) -> None:
    """Submit a batch script where the placement advice says (-M CLUSTER -p PARTITION), with real sbatch."""
    raise typer.Exit(run(list(ctx.args)))


# ---------------------------------------------------------------------------- the flow
def run(argv: list[str]) -> int:
    try:
        own = split_own(argv)
        if own.help:
            sys.stdout.write(USAGE)
            return 0
        command = split_command(own.sbatch_args)
        script_text, stdin_script = _script(command, own)
        job = read_job(command, script_text, command.script or "stdin")
    except SbatchScriptError as exc:
        err.print(f"ctwin sbatch: {exc}", highlight=False, markup=False)
        if "--advise-only" in argv:  # the cli_filter reads the reason from the answer
            return _print_choice(WrapperOptions(as_json="--json" in argv), None, None, str(exc))
        return 2
    loaded, problem = _config(own.config)
    hook = loaded.config.schedulers.slurm if loaded else SlurmHookConfig()
    if own.report:
        return _report_only(own, loaded, hook)
    no_fallback = own.no_fallback or not hook.fallback
    advice: dict[str, Any] | None = None
    place: Placement | None = None
    sites: list[SlurmSite] = []
    try:
        if problem:
            raise _Unadvised(problem)
        assert loaded is not None
        sites, advice, place = _advise(own, loaded, hook, job)
    except _Unadvised as why:
        reason = str(why)
        if own.advise_only:
            return _print_choice(own, None, None, reason)
        if own.dry_run:
            err.print(f"ctwin sbatch: no advice: {reason}", highlight=False, markup=False)
            return _dry_run(own, hook, command, job, stdin_script, [], None, None)
        return _fallback(own, hook, no_fallback, reason, stdin_script)
    if own.advise_only:
        return _print_choice(own, advice, place, None)
    if own.dry_run:
        return _dry_run(own, hook, command, job, stdin_script, sites, advice, place)
    assert advice is not None and place is not None
    return _submit(own, loaded, hook, command, job, stdin_script, advice, place)


def _script(command: SbatchCommand, own: WrapperOptions) -> tuple[str | None, str | None]:
    """(the script's text for its directives, the text to feed sbatch on stdin when it came from there)."""
    if command.heterogeneous:
        return None, None
    if command.script is not None:
        try:
            return Path(command.script).read_text(encoding="utf-8", errors="replace"), None
        except OSError as exc:
            raise SbatchScriptError(f"cannot read the script {command.script}: {exc.strerror}") from None
    if any(o.name == "wrap" for o in command.options) or own.advise_only or own.report:
        return None, None
    text = sys.stdin.read()  # sbatch reads the script from stdin when none is named
    return text, text


def _config(path: Path | None) -> tuple[LoadedConfig | None, str | None]:
    try:
        return load_config(path), None
    except ConfigError as exc:
        for p in exc.problems:
            err.print(p.render(exc.source), highlight=False, markup=False)
        return None, f"{len(exc.problems)} problem(s) in the config {exc.source}: fix them (`ctwin config check`)"


def _url(own: WrapperOptions, loaded: LoadedConfig, hook: SlurmHookConfig) -> str:
    url = own.url or os.environ.get("CTWIN_URL") or hook.url
    if url:
        return url.rstrip("/")
    return service_url(loaded.config.serve)


def _token(own: WrapperOptions, hook: SlurmHookConfig) -> str:
    try:
        return api_token(
            own.token, own.token_file or hook.token_file, options="--token-file / schedulers.slurm.token_file"
        )
    except ValueError as exc:
        raise _Unadvised(str(exc)) from None


def _home(hook: SlurmHookConfig, sites: list[SlurmSite]) -> str | None:
    """The site plain sbatch would use: the client slurm.conf's own ClusterName."""
    conf = hook.slurm_conf or os.environ.get("SLURM_CONF")
    if not conf:
        return None
    try:
        for line in Path(conf).read_text(encoding="utf-8", errors="replace").splitlines():
            key, _, value = line.partition("=")
            if key.strip().lower() == "clustername":
                return next((s.site for s in sites if s.cluster == value.strip()), None)
    except OSError:
        return None
    return None


def _post(url: str, path: str, token: str, timeout: float, body: dict[str, Any], **params: str) -> dict[str, Any]:
    try:
        response = httpx.post(
            f"{url}{path}", params=params, json=body, headers={"Authorization": f"Bearer {token}"}, timeout=timeout
        )
    except httpx.HTTPError as exc:
        raise _Unadvised(
            f"cannot reach the service at {url}: {exc} (is `ctwin serve` running? pass --url or set CTWIN_URL)"
        ) from None
    if response.status_code != 200:
        try:
            message = response.json()["error"]["message"]
        except (ValueError, KeyError, TypeError):
            message = response.text[:300]
        raise _Unadvised(f"the service refused ({response.status_code}): {message}")
    answer: dict[str, Any] = response.json()
    return answer


def _advise(
    own: WrapperOptions, loaded: LoadedConfig, hook: SlurmHookConfig, job: JobSpec
) -> tuple[list[SlurmSite], dict[str, Any], Placement]:
    if not hook.enabled:
        raise _Unadvised(f"the Slurm hook is off in {loaded.source} (set schedulers.slurm.enabled: true)")
    if job.heterogeneous:
        raise _Unadvised("a heterogeneous job (hetjob / ':') is not advised")
    try:
        sites = candidates(slurm_sites(loaded.config), job.clusters)
    except SbatchSetupError as exc:
        raise _Unadvised(str(exc)) from None
    body = advice_body(job, sites, user=_user(), default_walltime_s=hook.default_walltime, home=_home(hook, sites))
    extra = {"preview": "true"} if own.dry_run else {}  # a dry run books nothing and logs nothing
    advice = _post(_url(own, loaded, hook), "/v1/advice", _token(own, hook), hook.timeout, body, hook="sbatch", **extra)
    place = placement(advice, sites, job)
    if place is None:
        raise _Unadvised(f"the advice ({advice.get('advice_id')}) recommends no cluster: {advice.get('summary')}")
    return sites, advice, place


def _user() -> str:
    return os.environ.get("USER") or getpass.getuser()


# ---------------------------------------------------------------------------- sbatch
def _sbatch_env(hook: SlurmHookConfig) -> dict[str, str]:
    env = dict(os.environ)
    if hook.slurm_conf:
        env["SLURM_CONF"] = hook.slurm_conf
    env["CTWIN_SBATCH"] = "1"  # deploy/slurm/cli_filter.lua: this submission is already advised
    return env


def _run_sbatch(
    hook: SlurmHookConfig, args: list[str], stdin_script: str | None, *, capture_stderr: bool = False
) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(
            [hook.sbatch, *args],
            input=stdin_script,
            stdin=None if stdin_script is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE if capture_stderr else None,
            text=True,
            env=_sbatch_env(hook),
            check=False,
        )
    except OSError as exc:
        err.print(
            f"ctwin sbatch: cannot run {hook.sbatch}: {exc.strerror} (install slurm-client, or set"
            " schedulers.slurm.sbatch to its path)",
            highlight=False,
            markup=False,
        )
        return subprocess.CompletedProcess([hook.sbatch], 127, "", "")


def _tail(command: SbatchCommand) -> list[str]:
    return [command.script, *command.script_args] if command.script is not None else list(command.script_args)


def _passthrough(command: SbatchCommand, dropped: frozenset[str]) -> list[str]:
    return [w for o in command.options if o.name not in dropped for w in o.words]


def _fallback(
    own: WrapperOptions, hook: SlurmHookConfig, no_fallback: bool, reason: str, stdin_script: str | None
) -> int:
    if no_fallback:
        err.print(f"ctwin sbatch: no advice: {reason}; not submitted (--no-fallback)", highlight=False, markup=False)
        return 1
    err.print(
        f"ctwin sbatch: no advice: {reason}; submitting with your own options: sbatch {shlex.join(own.sbatch_args)}",
        highlight=False,
        markup=False,
    )
    done = _run_sbatch(hook, own.sbatch_args, stdin_script)
    sys.stdout.write(done.stdout)
    return done.returncode


def _submit(
    own: WrapperOptions,
    loaded: LoadedConfig | None,
    hook: SlurmHookConfig,
    command: SbatchCommand,
    job: JobSpec,
    stdin_script: str | None,
    advice: dict[str, Any],
    place: Placement,
) -> int:
    advice_id = advice["advice_id"]
    comment = f"ctwin-advice={advice_id}" + (f" {job.comment}" if job.comment else "")
    args = [] if job.test_only else ["--parsable"]
    args += ["-M", place.cluster, *(["-p", place.partition] if place.partition else []), "--comment", comment]
    args += _passthrough(command, _REPLACED) + _tail(command)
    where = f"{place.cluster}" + (f" (partition {place.partition})" if place.partition else "")
    err.print(f"ctwin sbatch: {advice.get('summary')} → -M {where}, advice {advice_id}", highlight=False, markup=False)
    done = _run_sbatch(hook, args, stdin_script)
    if done.returncode != 0 or job.test_only:
        sys.stdout.write(done.stdout)
        return done.returncode
    try:
        job_id, cluster = parse_parsable(done.stdout)
    except ValueError as exc:
        sys.stdout.write(done.stdout)
        err.print(f"ctwin sbatch: submitted, but {exc}: the advice log cannot follow it", highlight=False)
        return done.returncode
    cluster = cluster or place.cluster
    if job.parsable:
        sys.stdout.write(f"{job_id};{cluster}\n")
    else:
        sys.stdout.write(f"Submitted batch job {job_id} on cluster {cluster}\n")
    sys.stdout.flush()
    if job.array is not None:
        err.print("ctwin sbatch: an array job: its tasks are not followed by the advice log", highlight=False)
        return 0
    assert loaded is not None
    try:
        _post(_url(own, loaded, hook), f"/v1/advice/{advice_id}/outcome", _token(own, hook), hook.timeout,
              {"site": place.site, "job_id": job_id})  # fmt: skip
    except _Unadvised as exc:
        err.print(f"ctwin sbatch: submitted, but reporting it failed: {exc}", highlight=False, markup=False)
    return 0


def _report_only(own: WrapperOptions, loaded: LoadedConfig | None, hook: SlurmHookConfig) -> int:
    assert own.report is not None
    advice_id, _, rest = own.report.partition(":")
    cluster, _, job_id = rest.partition(":")
    if not (advice_id and cluster and job_id) or loaded is None:
        err.print("ctwin sbatch: --report takes ADVICE_ID:CLUSTER:JOBID (and a readable config)", highlight=False)
        return 2
    try:
        site = next((s.site for s in slurm_sites(loaded.config) if s.cluster == cluster), None)
        if site is None:
            raise _Unadvised(f"cluster {cluster!r} is not one ctwin advises on")
        _post(_url(own, loaded, hook), f"/v1/advice/{advice_id}/outcome", _token(own, hook), hook.timeout,
              {"site": site, "job_id": job_id})  # fmt: skip
    except (_Unadvised, SbatchSetupError) as exc:
        err.print(f"ctwin sbatch: reporting failed: {exc}", highlight=False, markup=False)
        return 1
    return 0


# ---------------------------------------------------------------------------- output
def _print_choice(
    own: WrapperOptions, advice: dict[str, Any] | None, place: Placement | None, reason: str | None
) -> int:
    choice = {
        "advice_id": advice["advice_id"] if advice else None,
        "site": place.site if place else None,
        "cluster": place.cluster if place else None,
        "partition": place.partition if place else None,
        "comment": f"ctwin-advice={advice['advice_id']}" if advice else None,
        "summary": advice.get("summary") if advice else None,
        "reason": reason,
    }
    if own.as_json:
        sys.stdout.write(json.dumps(choice) + "\n")
    else:
        sys.stdout.write("".join(f"{k}={'' if v is None else v}\n" for k, v in choice.items()))
    return 0


def _band(band: dict[str, float] | None) -> str:
    from twin.advice.outcome import human_duration

    if not band:
        return "—"
    mid, low, high = human_duration(band["p50"]), human_duration(band["p10"]), human_duration(band["p90"])
    if low == high:  # a band narrower than the rounding: one value
        return mid
    return f"{mid} [{low}–{high}]"


def _dry_run(
    own: WrapperOptions,
    hook: SlurmHookConfig,
    command: SbatchCommand,
    job: JobSpec,
    stdin_script: str | None,
    sites: list[SlurmSite],
    advice: dict[str, Any] | None,
    place: Placement | None,
) -> int:
    clusters = [s.cluster for s in sites] or list(job.clusters)
    args = ["-vv", *(["-M", ",".join(clusters)] if clusters else []), "--test-only"]
    args += _passthrough(command, frozenset({"clusters", "cluster", "parsable", "test-only"})) + _tail(command)
    done = _run_sbatch(hook, args, stdin_script, capture_stderr=True)
    pick = parse_test_only(done.stderr or "", tuple(clusters))
    if own.as_json:
        sys.stdout.write(json.dumps({"advice": advice, "placement": place and place.__dict__,
                                     "sbatch_test_only": _pick_dict(pick, clusters)}, default=str) + "\n")  # fmt: skip
        return done.returncode
    if advice is not None:
        by_site = {s.site: s for s in sites}
        title = f"advice {advice['advice_id']} (nothing submitted, booked or logged)"
        table = Table("#", "site", "cluster", "partition", "wait", "run", "turnaround",
                      title=title, title_justify="left")  # fmt: skip
        rank = 0
        for s in advice["sites"]:
            if s["site"] not in by_site:
                continue
            rank += s["feasible"]
            site = by_site[s["site"]]
            part = _partition_shown(site, job)
            if not s["feasible"]:
                table.add_row("–", s["site"], site.cluster, part, f"excluded: {s['reason']}", "", "")
                continue
            table.add_row(str(rank), s["site"], site.cluster, part,
                          _band(s["wait_s"]), _band(s["run_s"]), _band(s["turnaround_s"]))  # fmt: skip
        print_table(table)
        if place is not None:
            out.print(
                f"ctwin advises:  -M {place.cluster}" + (f" -p {place.partition}" if place.partition else "")
                + f"  ({advice.get('summary')})",
                highlight=False, markup=False, soft_wrap=True,
            )  # fmt: skip
    out.print(_describe_pick(pick, clusters), highlight=False, markup=False, soft_wrap=True)
    return done.returncode


def _partition_shown(site: SlurmSite, job: JobSpec) -> str:
    chosen = placement({"recommended": site.site}, [site], job)
    return (chosen.partition if chosen else None) or "(default)"


def _pick_dict(pick: SbatchPick, clusters: list[str]) -> dict[str, Any]:
    return {
        "asked": clusters,
        "clusters": list(pick.clusters),
        "start_at": pick.chosen.start_text if pick.chosen else None,
        "start_s": pick.chosen.start_s if pick.chosen else None,
        "partition": pick.chosen.partition if pick.chosen else None,
        "nodes": pick.chosen.nodes if pick.chosen else None,
        "per_cluster": [w.__dict__ for w in pick.per_cluster],
        "errors": list(pick.errors),
    }


def _describe_pick(pick: SbatchPick, clusters: list[str]) -> str:
    asked = f"sbatch -M {','.join(clusters)}" if clusters else "sbatch"
    if pick.chosen is None:
        return f"{asked} alone: would not run it: {'; '.join(pick.errors) or 'no answer'}"
    which = " or ".join(pick.clusters) if pick.clusters else "(its cluster not named)"
    others = ", ".join(f"{w.cluster} at {w.start_text}" for w in pick.per_cluster if w.cluster not in pick.clusters)
    return (
        f"{asked} alone: cluster {which}, expected start {pick.chosen.start_text} on {pick.chosen.nodes}"
        f" in partition {pick.chosen.partition}" + (f" (other answers: {others})" if others else "")
    )
