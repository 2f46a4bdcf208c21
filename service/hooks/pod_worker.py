"""Off the request path: annotate advised pods with their advice id, and report where they ran.

The extender answers the scheduler from memory; everything that needs the Kubernetes API happens
here, in background threads with a bounded queue (a slow or absent API server never slows a
scheduling cycle, it only delays or drops annotations, which are counted):

- `advised(pod, advice_id)`: the pod gets `ctwin.io/advice-id: <id>` (a merge patch; the latest
  cycle's advice wins), so `kubectl get pod -o yaml` says which answer placed it.
- Binding is seen on one watch of pods (service.hooks.informer), not by polling: the field selector
  `spec.schedulerName=<scheduler_name>` (kube-apiserver supports it for pods since 1.x; default
  `ctwin-scheduler`, the shipped profile) keeps the stream to the pods ctwin's scheduler places, so
  thousands of pending pods cost one stream instead of a GET each per second. Once an advised pod's
  `spec.nodeName` is set, its node's site is the chosen site and the advice is reported, once
  (`Advisor.report`: herding and the outcome join follow). The job id is the `JobID` annotation
  that interLink's virtual kubelet sets when the remote job is created
  (pkg/virtualkubelet/execute.go: `pod.Annotations["JobID"] = resp.PodJID`), which comes after the
  binding, in a MODIFIED event; on a cluster node it is `<namespace>/<name>`. A pod still unbound,
  or bound to a virtual node without a JobID, after `give_up_s` is forgotten.

Races: an advised pod is registered before its patch is sent, so a binding committed after the
patch reaches the watch with the pod registered; a binding committed before it shows in the
patch's answer (the pod as it is now), which is checked the same way.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from collectors.kube_api import KubeClient, KubeError
from collectors.kube_objects import INTERLINK_JOB_ID
from service.hooks.extender_wire import Node, node_from_object
from service.hooks.informer import Informer
from service.hooks.k8s_sites import NodeSites, is_virtual
from service.hooks.pods import PodInfo
from twin.advice.live import Advisor

__all__ = ["ADVICE_ANNOTATION", "INTERLINK_JOB_ID", "PodWorker"]

log = logging.getLogger(__name__)

ADVICE_ANNOTATION = "ctwin.io/advice-id"
PODS_PATH = "/api/v1/pods"
_MAX_QUEUED = 10_000
_MAX_PENDING = 10_000
_TICK_S = 1.0


@dataclass
class _Pending:
    info: PodInfo
    advice_id: str
    since_s: float


class PodWorker:
    def __init__(
        self,
        client: Callable[[], KubeClient],
        sites: NodeSites,
        advisor: Advisor,
        *,
        scheduler_name: str = "ctwin-scheduler",
        node_lookup: Callable[[str], Node | None] | None = None,
        give_up_s: float = 3600.0,
        watch_timeout_s: int = 240,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client
        self.sites = sites
        self.advisor = advisor
        self.scheduler_name = scheduler_name
        self.node_lookup = node_lookup
        """Name → Node from the node cache; a miss is a GET of the node."""
        self.give_up_s = give_up_s
        self.clock = clock
        self._queue: queue.Queue[tuple[PodInfo, str]] = queue.Queue(_MAX_QUEUED)
        self._pending: dict[str, _Pending] = {}
        self._lock = threading.Lock()
        self._api_lock = threading.Lock()  # the client for patches and node GETs, shared by both threads
        self._client: KubeClient | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned: set[str] = set()
        self.informer = Informer(
            "pods",
            client,
            PODS_PATH,
            on_list=self._listed,
            on_event=self._event,
            field_selector=f"spec.schedulerName={scheduler_name}" if scheduler_name else None,
            watch_timeout_s=watch_timeout_s,
            clock=clock,
        )
        self.annotated = 0
        self.reported = 0
        self.dropped = 0
        """Advice never annotated: the queue was full, or the API refused the patch."""
        self.abandoned = 0
        """Annotated pods never reported: unbound or without a JobID after give_up_s, or outside the watch."""

    # ------------------------------------------------------------------ public
    def advised(self, info: PodInfo, advice_id: str) -> None:
        """Called on the request path: queue it, never block."""
        try:
            self._queue.put_nowait((info, advice_id))
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        if self._thread is None:
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="k8s-pod-annotator", daemon=True)
            self._thread.start()
            self.informer.start()

    def stop(self) -> None:
        self._stop.set()
        self.informer.stop()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self._close_client()

    @property
    def pending(self) -> int:
        return len(self._pending)

    # ------------------------------------------------------------------ annotating (its own thread)
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                info, advice_id = self._queue.get(timeout=_TICK_S)
            except queue.Empty:
                self._give_up_old()
                continue
            try:
                self._annotate(info, advice_id)
            except Exception as exc:  # the API unreachable: this annotation is lost, the next may not be
                self.dropped += 1
                self._forget(info.uid)
                log.warning("k8s pod worker: cannot annotate %s/%s: %s", info.namespace, info.name, exc)
                self._close_client()
                self._stop.wait(_TICK_S)

    def _annotate(self, info: PodInfo, advice_id: str) -> None:
        with self._lock:
            if info.uid in self._pending or len(self._pending) < _MAX_PENDING:
                self._pending[info.uid] = _Pending(info, advice_id, self.clock())
        path = f"/api/v1/namespaces/{info.namespace}/pods/{info.name}"
        try:
            with self._api_lock:
                pod = self._api().patch(path, {"metadata": {"annotations": {ADVICE_ANNOTATION: advice_id}}})
        except KubeError as exc:
            self.dropped += 1
            self._forget(info.uid)
            if exc.status != 404:
                log.warning("k8s pod worker: cannot annotate %s/%s: %s", info.namespace, info.name, exc)
            return
        self.annotated += 1
        scheduler = str((pod.get("spec") or {}).get("schedulerName") or "")
        if self.scheduler_name and scheduler != self.scheduler_name and not (pod.get("spec") or {}).get("nodeName"):
            self._forget(info.uid)  # the watch will never show its binding
            self.abandoned += 1
            if scheduler not in self._warned:
                self._warned.add(scheduler)
                log.warning(
                    "k8s pod worker: pod %s/%s has schedulerName %r, not %r (schedulers.kubernetes.scheduler_name):"
                    " where it is bound is not reported",
                    info.namespace, info.name, scheduler, self.scheduler_name,
                )  # fmt: skip
            return
        self._consider(pod)  # already bound before the patch landed?

    def _api(self) -> KubeClient:
        if self._client is None:
            self._client = self._client_factory()
        return self._client

    def _close_client(self) -> None:
        with self._api_lock:
            client, self._client = self._client, None
        if client is not None:
            client.close()

    def _forget(self, uid: str) -> None:
        with self._lock:
            self._pending.pop(uid, None)

    def _give_up_old(self) -> None:
        now = self.clock()
        with self._lock:
            old = [uid for uid, p in self._pending.items() if now - p.since_s > self.give_up_s]
            for uid in old:
                del self._pending[uid]
        self.abandoned += len(old)

    # ------------------------------------------------------------------ the watch (the informer's thread)
    def _listed(self, pods: Sequence[Mapping[str, Any]]) -> None:
        if not self._pending:
            return
        for pod in pods:
            self._consider(pod)

    def _event(self, kind: str, pod: Mapping[str, Any]) -> None:
        if kind == "DELETED":
            self._forget(str((pod.get("metadata") or {}).get("uid") or ""))
        else:
            self._consider(pod)

    def _consider(self, pod: Mapping[str, Any]) -> None:
        """Report the pod's advice if it is an advised pod now bound (with its JobID on a virtual node)."""
        meta = pod.get("metadata") or {}
        uid = str(meta.get("uid") or "")
        pending = self._pending.get(uid)
        node_name = (pod.get("spec") or {}).get("nodeName")
        if pending is None or not node_name:
            return
        node = self._node(str(node_name))
        if node is None:
            return  # the node is gone, or the API is unreachable: a later event, or give_up, decides
        site = self.sites.site_of(node)
        annotations = meta.get("annotations") or {}
        job_id = f"{pending.info.namespace}/{pending.info.name}"
        if site is not None and is_virtual(node):
            job_id = str(annotations.get(INTERLINK_JOB_ID) or "")
            if not job_id:
                return  # the virtual kubelet has not created the remote job yet: a MODIFIED event will say
        with self._lock:
            if self._pending.pop(uid, None) is None:  # the other thread reported it first
                return
        if site is None:
            return  # a node of no site: nothing to report
        try:
            self.advisor.report(pending.advice_id, site, job_id)
            self.reported += 1
        except Exception as exc:
            log.warning("k8s pod worker: cannot report %s (%s on %s): %s", pending.advice_id, job_id, site, exc)

    def _node(self, name: str) -> Node | None:
        node = self.node_lookup(name) if self.node_lookup is not None else None
        if node is not None:
            return node
        try:
            with self._api_lock:
                return node_from_object(self._api().get(f"/api/v1/nodes/{name}"))
        except KubeError as exc:
            if exc.status != 404:
                log.warning("k8s pod worker: cannot read node %s: %s", name, exc)
        except Exception as exc:
            log.warning("k8s pod worker: cannot read node %s: %s", name, exc)
            self._close_client()
        return None
