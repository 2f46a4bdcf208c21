"""`ctwin dispatcher`'s controller loop: MultiKueue's external dispatcher, driven by ctwin's advice.

One thread, no informer library: list every Workload (kueue.x-k8s.io/v1beta1) on the manager
cluster, nominate the ones that need it, then watch from the list's resourceVersion and handle each
change; every `resync` it re-reads Kueue's Configuration (whose dispatcherName says whether the
nominations are ours to make), the MultiKueue AdmissionChecks and their MultiKueueConfigs, and
relists. A watch that ends is resumed from the last resourceVersion seen; 410 Gone (the version is
compacted away) relists; any other error backs off (0.5 s doubling to 30 s) and retries.

Advice comes from the running service (`POST /v1/advice/batch?hook=multikueue`), never from a model
in this process: the service holds the live twin, and a batch books each answer before the next,
so Workloads nominated together do not all herd to the same site. The nomination is a server-side
apply of the status subresource as field manager `kueue-admission` (multikueue.FIELD_MANAGER).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from collectors.kube_api import KubeClient, KubeError
from service.config_schedulers import MultiKueueHookConfig
from service.hooks.multikueue import (
    FIELD_MANAGER,
    AdmissionCheckRef,
    advice_job,
    dispatcher_kind,
    dispatcher_name_from_kueue_config,
    multikueue_check,
    needs_nomination,
    nomination,
    status_apply,
)

__all__ = ["AdviceClient", "Dispatcher", "DispatcherError", "Nomination"]

log = logging.getLogger("ctwin.dispatcher")

GROUP = "/apis/kueue.x-k8s.io/v1beta1"
WORKLOADS = f"{GROUP}/workloads"
WORKLOAD_CRD = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions/workloads.kueue.x-k8s.io"
MAX_BACKOFF_S = 30.0


class DispatcherError(Exception):
    """A problem the operator must fix (the message says how); the loop stops on it at start."""


@dataclass(frozen=True)
class Nomination:
    namespace: str
    name: str
    uid: str
    clusters: tuple[str, ...]
    advice_id: str
    why: str
    at_s: float


class AdviceClient:
    """The service's batch advice, as `ctwin advise` reaches it (URL, bearer token with advise scope)."""

    def __init__(self, url: str, token: str, *, timeout_s: float = 30.0) -> None:
        self.url = url.rstrip("/")
        self._http = httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, timeout=timeout_s)

    def advise_batch(self, jobs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
        try:
            response = self._http.post("/v1/advice/batch", params={"hook": "multikueue"}, json={"jobs": list(jobs)})
        except httpx.HTTPError as exc:
            raise DispatcherError(f"cannot reach ctwin at {self.url}: {exc} (is `ctwin serve` running? set"
                                  " schedulers.multikueue.service_url)") from None  # fmt: skip
        if response.status_code != 200:
            try:
                message = response.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = response.text[:300]
            hint = {
                401: " (the token is unknown, revoked or expired: `ctwin token create NAME --scope advise`)",
                403: " (the token needs the advise scope: `ctwin token create NAME --scope advise`)",
                404: " (map each MultiKueueCluster to a ctwin site in schedulers.multikueue.clusters)",
            }.get(response.status_code, "")
            raise DispatcherError(f"ctwin refused the advice ({response.status_code}): {message}{hint}")
        return list(response.json()["items"])

    def close(self) -> None:
        self._http.close()


def token_from(config: MultiKueueHookConfig) -> str:
    if config.token_file is not None:
        try:
            return config.token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            message = f"cannot read schedulers.multikueue.token_file {config.token_file}: {exc.strerror}"
            raise DispatcherError(message) from None
    token = os.environ.get("CTWIN_TOKEN", "").strip()
    if not token:
        raise DispatcherError(
            "no ctwin API token: set schedulers.multikueue.token_file or CTWIN_TOKEN"
            " (create one with `ctwin token create dispatcher --scope advise`)"
        )
    return token


class Dispatcher:
    def __init__(
        self,
        config: MultiKueueHookConfig,
        kube: KubeClient,
        advice: AdviceClient,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.kube = kube
        self.advice = advice
        self.clock = clock
        self.kueue_dispatcher: str | None = None
        self.checks: dict[str, AdmissionCheckRef] = {}
        self.cap = config.max_nominated
        self.recent: deque[Nomination] = deque(maxlen=1000)
        self._nominated_at: dict[str, tuple[float, tuple[str, ...]]] = {}
        self._refreshed_s = -float("inf")

    # ------------------------------------------------------------------ start-up checks
    def check(self) -> None:
        """Reach the API, find Kueue's Workload CRD, and take its cap on nominatedClusterNames."""
        try:
            crd = self.kube.get(WORKLOAD_CRD)
        except KubeError as exc:
            if exc.status == 404:
                raise DispatcherError(
                    "the manager cluster has no workloads.kueue.x-k8s.io CRD: install Kueue's CRDs"
                    " (Kueue >= 0.13 for nominatedClusterNames) on it"
                ) from None
            if exc.status in (401, 403):
                raise DispatcherError(
                    f"the Kubernetes API refused ctwin ({exc}): give schedulers.multikueue.api a token"
                    " allowed to get CRDs and to list, watch and patch workloads/status"
                ) from None
            raise DispatcherError(f"the Kubernetes API failed: {exc}") from None
        except httpx.HTTPError as exc:
            raise DispatcherError(
                f"cannot reach the Kubernetes API: {exc} (set schedulers.multikueue.api.url or .kubeconfig)"
            ) from None
        for version in crd.get("spec", {}).get("versions", []):
            if version.get("name") != "v1beta1":
                continue
            field = (
                version.get("schema", {}).get("openAPIV3Schema", {}).get("properties", {}).get("status", {})
                .get("properties", {}).get("nominatedClusterNames")
            )  # fmt: skip
            if field is None:
                raise DispatcherError(
                    "Kueue's Workload CRD has no status.nominatedClusterNames: install Kueue's CRDs of 0.13 or later"
                )
            if field.get("maxItems") and field["maxItems"] < self.cap:
                log.info("the Workload CRD allows %d nominated clusters; nominating at most that", field["maxItems"])
                self.cap = int(field["maxItems"])
            return
        raise DispatcherError("Kueue's Workload CRD serves no v1beta1: install Kueue's CRDs (0.13 or later)")

    # ------------------------------------------------------------------ Kueue's configuration
    def refresh(self) -> None:
        """Re-read whose dispatcher Kueue waits for, and the MultiKueue checks with their clusters."""
        ref = self.config.kueue_config
        try:
            cm = self.kube.get(f"/api/v1/namespaces/{ref.namespace}/configmaps/{ref.name}")
            name = dispatcher_name_from_kueue_config((cm.get("data") or {}).get(ref.key))
        except KubeError as exc:
            if exc.status != 404:
                raise
            name = dispatcher_name_from_kueue_config(None)
            log.warning("no ConfigMap %s/%s (Kueue's Configuration): Kueue then uses %s", ref.namespace, ref.name, name)
        if name != self.kueue_dispatcher:
            kind = dispatcher_kind(name, self.config.dispatcher_name)
            if kind == "ours":
                log.info("Kueue's multiKueue.dispatcherName is %s: ctwin nominates worker clusters", name)
            else:
                log.warning(
                    "Kueue's multiKueue.dispatcherName is %s (%s), not %s: ctwin nominates nothing (set"
                    " multiKueue.dispatcherName: %s in %s/%s and restart Kueue to let it)",
                    name, "built-in" if kind == "builtin" else "another dispatcher", self.config.dispatcher_name,
                    self.config.dispatcher_name, ref.namespace, ref.name,
                )  # fmt: skip
            self.kueue_dispatcher = name
        checks: dict[str, AdmissionCheckRef] = {}
        for ac in self.kube.list(f"{GROUP}/admissionchecks").get("items", []):
            config_name = multikueue_check(ac)
            if config_name is None:
                continue
            try:
                mkc = self.kube.get(f"{GROUP}/multikueueconfigs/{config_name}")
            except KubeError as exc:
                if exc.status != 404:
                    raise
                log.warning("AdmissionCheck %s names MultiKueueConfig %s, which does not exist", ac["metadata"]["name"],
                            config_name)  # fmt: skip
                continue
            clusters = tuple(str(c) for c in (mkc.get("spec") or {}).get("clusters") or [])
            checks[ac["metadata"]["name"]] = AdmissionCheckRef(ac["metadata"]["name"], config_name, clusters)
        self.checks = checks
        self._refreshed_s = time.monotonic()

    @property
    def ours(self) -> bool:
        return self.kueue_dispatcher == self.config.dispatcher_name

    def site_of(self, cluster: str) -> str:
        return self.config.clusters.get(cluster, cluster)

    # ------------------------------------------------------------------ reconciling
    def reconcile(self, workloads: Sequence[Mapping[str, Any]]) -> list[Nomination]:
        """Nominate every Workload of `workloads` that needs it, with one batch of advice."""
        if not self.ours:
            return []
        now = self.clock()
        todo: list[tuple[Mapping[str, Any], AdmissionCheckRef, str]] = []
        for wl in workloads:
            uid = wl["metadata"]["uid"]
            nominated = tuple((wl.get("status") or {}).get("nominatedClusterNames") or [])
            seen = self._nominated_at.get(uid)
            if nominated and (seen is None or seen[1] != nominated):
                self._nominated_at[uid] = (now, nominated)  # someone's nomination, or ours before a restart
            at = self._nominated_at.get(uid, (None, ()))[0] if nominated else None
            check, why = needs_nomination(
                wl, self.checks, nominated_at_s=at, now_s=now, renominate_after_s=self.config.renominate_after
            )
            if check is None:
                log.debug("%s/%s: %s", wl["metadata"]["namespace"], wl["metadata"]["name"], why)
                continue
            todo.append((wl, check, why))
        if not todo:
            return []
        jobs = []
        for wl, check, _ in todo:
            sites = sorted({self.site_of(c) for c in check.clusters})
            jobs.append(
                advice_job(
                    wl,
                    sites,
                    default_walltime_s=self.config.default_walltime,
                    walltime_annotation=self.config.walltime_annotation,
                )
            )
        answers = self.advice.advise_batch(jobs)
        done = []
        for (wl, check, why), advice in zip(todo, answers, strict=True):
            made = self._nominate(wl, check, why, advice)
            if made is not None:
                done.append(made)
        return done

    def _nominate(
        self, wl: Mapping[str, Any], check: AdmissionCheckRef, why: str, advice: Mapping[str, Any]
    ) -> Nomination | None:
        meta = wl["metadata"]
        site_clusters: dict[str, list[str]] = {}
        for cluster in check.clusters:
            site_clusters.setdefault(self.site_of(cluster), []).append(cluster)
        names, skipped = nomination(advice, site_clusters, self.cap)
        where = f"{meta['namespace']}/{meta['name']}"
        if not names:
            log.warning("%s: no worker cluster can run it (advice %s): %s", where, advice["advice_id"],
                        "; ".join(skipped) or "no feasible site")  # fmt: skip
            return None
        if list(names) == list((wl.get("status") or {}).get("nominatedClusterNames") or []):
            self._nominated_at[meta["uid"]] = (self.clock(), tuple(names))  # re-advised, same answer: a new round
            return None
        try:
            self.kube.patch(
                f"{GROUP}/namespaces/{meta['namespace']}/workloads/{meta['name']}",
                status_apply(wl, names),
                kind="apply",
                field_manager=FIELD_MANAGER,
                force=True,
                subresource="status",
            )
        except KubeError as exc:
            if exc.status in (404, 409):  # deleted, or changed since read: its watch event comes next
                log.info("%s changed while being nominated (%s); it is looked at again", where, exc.reason)
                return None
            raise
        made = Nomination(meta["namespace"], meta["name"], meta["uid"], tuple(names), advice["advice_id"], why,
                          self.clock())  # fmt: skip
        self._nominated_at[meta["uid"]] = (made.at_s, made.clusters)
        self.recent.append(made)
        cq = ((wl.get("status") or {}).get("admission") or {}).get("clusterQueue", "?")
        log.info(
            "nominated %s -> %s (ClusterQueue %s, check %s, advice %s; %s)%s",
            where, ", ".join(names), cq, check.name, advice["advice_id"], why,
            f"; not nominated: {'; '.join(skipped)}" if skipped else "",
        )  # fmt: skip
        return made

    # ------------------------------------------------------------------ the loop
    def run_once(self) -> list[Nomination]:
        self.refresh()
        items = self.kube.list(WORKLOADS).get("items", [])
        return self.reconcile(items)

    def run(self, stop: threading.Event) -> None:
        """List, nominate, watch, until `stop` is set. Errors back off and retry (DispatcherError too:
        the service or the API may come back); the first check() happens before, at start."""
        backoff = 0.5
        while not stop.is_set():
            try:
                self.refresh()
                listed = self.kube.list(WORKLOADS)
                self.reconcile(listed.get("items", []))
                self._watch(listed["metadata"].get("resourceVersion"), stop)
                backoff = 0.5
            except (KubeError, DispatcherError, httpx.HTTPError, ValueError) as exc:
                log.error("dispatcher: %s; retrying in %.1f s", exc, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)

    def _watch(self, resource_version: str | None, stop: threading.Event) -> None:
        """Handle Workload events until the next resync (then return to relist) or a 410."""
        window = max(1, int(min(self.config.resync, 30)))
        while not stop.is_set():
            if time.monotonic() - self._refreshed_s >= self.config.resync:
                return
            try:
                for event in self.kube.watch(WORKLOADS, resource_version=resource_version, timeout_s=window):
                    if stop.is_set():
                        return
                    kind, obj = event.get("type"), event.get("object") or {}
                    if kind == "ERROR":
                        if obj.get("code") == 410:
                            return  # compacted: relist
                        raise KubeError(int(obj.get("code") or 500), str(obj.get("reason")), str(obj.get("message")))
                    resource_version = obj.get("metadata", {}).get("resourceVersion", resource_version)
                    if kind in ("ADDED", "MODIFIED"):
                        self.reconcile([obj])
                    elif kind == "DELETED":
                        self._nominated_at.pop(obj.get("metadata", {}).get("uid", ""), None)
                    if time.monotonic() - self._refreshed_s >= self.config.resync:
                        return
            except KubeError as exc:
                if exc.status == 410:
                    return
                raise
