"""Off the request path: annotate advised pods with their advice id, and report where they ran.

The extender answers the scheduler from memory; everything that needs the Kubernetes API happens
here, in one thread with a bounded queue (a slow or absent API server never slows a scheduling
cycle, it only delays or drops annotations, which are counted):

- `advised(pod, advice_id)`: the pod gets `ctwin.io/advice-id: <id>` (a merge patch; the latest
  cycle's advice wins), so `kubectl get pod -o yaml` says which answer placed it.
- Then the pod is watched (a GET per pending pod every `interval_s`; a pod is given up after
  `give_up_s`): once `spec.nodeName` is set, its node's site is the chosen site, and the advice is
  reported (`Advisor.report`: herding and the outcome join follow). The job id there is the
  `JobID` annotation that interLink's virtual kubelet sets when the remote job is created
  (pkg/virtualkubelet/execute.go: `pod.Annotations["JobID"] = resp.PodJID`), so a pod offloaded to
  an HPC site joins that site's job history; on a cluster node it is `<namespace>/<name>`.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from service.hooks.extender_wire import node_from_object
from service.hooks.k8s_sites import NodeSites, is_virtual
from service.hooks.kube import KubeClient, KubeError
from service.hooks.pods import PodInfo
from twin.advice.live import Advisor

__all__ = ["ADVICE_ANNOTATION", "INTERLINK_JOB_ID", "PodWorker"]

log = logging.getLogger(__name__)

ADVICE_ANNOTATION = "ctwin.io/advice-id"
INTERLINK_JOB_ID = "JobID"
_MAX_QUEUED = 10_000
_MAX_PENDING = 10_000


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
        interval_s: float = 1.0,
        give_up_s: float = 3600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client_factory = client
        self.sites = sites
        self.advisor = advisor
        self.interval_s = interval_s
        self.give_up_s = give_up_s
        self.clock = clock
        self._queue: queue.Queue[tuple[PodInfo, str]] = queue.Queue(_MAX_QUEUED)
        self._pending: dict[str, _Pending] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.annotated = 0
        self.reported = 0
        self.dropped = 0
        """Advice never annotated: the queue was full, or the API refused the patch."""

    # ------------------------------------------------------------------ public
    def advised(self, info: PodInfo, advice_id: str) -> None:
        """Called on the request path: queue it, never block."""
        try:
            self._queue.put_nowait((info, advice_id))
        except queue.Full:
            self.dropped += 1

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="k8s-pod-worker", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    # ------------------------------------------------------------------ the thread
    def _run(self) -> None:
        client: KubeClient | None = None
        while not self._stop.is_set():
            try:
                if client is None:
                    client = self._client_factory()
                self._annotate(client)
                self._check_bound(client)
            except Exception:
                log.exception("k8s pod worker: a round failed; retrying in %.0f s", self.interval_s)
                if client is not None:
                    client.close()
                client = None
            self._stop.wait(self.interval_s)
        if client is not None:
            client.close()

    def _annotate(self, client: KubeClient) -> None:
        while True:
            try:
                info, advice_id = self._queue.get_nowait()
            except queue.Empty:
                return
            path = f"/api/v1/namespaces/{info.namespace}/pods/{info.name}"
            try:
                client.patch(path, {"metadata": {"annotations": {ADVICE_ANNOTATION: advice_id}}})
            except KubeError as exc:
                self.dropped += 1
                if exc.status != 404:
                    log.warning("k8s pod worker: cannot annotate %s/%s: %s", info.namespace, info.name, exc)
                continue
            self.annotated += 1
            if info.uid in self._pending or len(self._pending) < _MAX_PENDING:
                self._pending[info.uid] = _Pending(info, advice_id, self.clock())

    def _check_bound(self, client: KubeClient) -> None:
        for uid, pending in list(self._pending.items()):
            info = pending.info
            try:
                pod = client.get(f"/api/v1/namespaces/{info.namespace}/pods/{info.name}")
            except KubeError as exc:
                if exc.status == 404:
                    del self._pending[uid]
                continue
            if (pod.get("metadata") or {}).get("uid") != uid:
                del self._pending[uid]  # deleted and re-created under the same name
                continue
            node_name = (pod.get("spec") or {}).get("nodeName")
            if not node_name:
                if self.clock() - pending.since_s > self.give_up_s:
                    del self._pending[uid]
                continue
            node = node_from_object(client.get(f"/api/v1/nodes/{node_name}"))
            site = self.sites.site_of(node)
            annotations = (pod.get("metadata") or {}).get("annotations") or {}
            advice_id = annotations.get(ADVICE_ANNOTATION, pending.advice_id)
            if site is None:
                del self._pending[uid]
                continue
            if is_virtual(node):
                job_id = annotations.get(INTERLINK_JOB_ID)
                if not job_id:  # the virtual kubelet has not created the remote job yet
                    if self.clock() - pending.since_s > self.give_up_s:
                        del self._pending[uid]
                    continue
            else:
                job_id = f"{info.namespace}/{info.name}"
            del self._pending[uid]
            try:
                self.advisor.report(advice_id, site, str(job_id))
                self.reported += 1
            except Exception as exc:
                log.warning("k8s pod worker: cannot report %s (%s on %s): %s", advice_id, job_id, site, exc)
