"""The kube-scheduler extender's decisions: which nodes a pod may go to, and how good each one is.

- filter: the nodes map to sites (service.hooks.k8s_sites); the pod becomes a JobRequest
  (service.hooks.pods) allowed on just those sites; one advice (hook "k8s-extender", so the advice
  log and herding count it) says which sites cannot run it, and their nodes are failed with the
  advice's reason. Nodes of no site pass.
- prioritize: the same pod's advice again (cached by pod UID for `advice_ttl`; a new filter call is
  a new scheduling cycle and advises anew), mapped to scores: the recommended site 10, each other
  feasible site `round(10 × best / its own)` of the objective's measure (turnaround by default, at
  the pod's risk level), at most 9; every node of a site the same score; nodes of no site, and of
  sites whose data ctwin lacks, the neutral score.

Safe fallback, after Trimaran: a scheduling cycle never fails because of ctwin. When the twin's
data is stale or missing for every candidate site, or anything inside ctwin raises, filter passes
every node (no FailedNodes, empty Error) and prioritize gives every node the neutral score; each
fallback is counted by reason (`ctwin_extender_fallback_total{reason}`: stale, bad_pod, error) and
logged once per episode. Only a body that is not an ExtenderArgs is refused (WireError → 400).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from service.hooks.extender_wire import (
    MAX_EXTENDER_PRIORITY,
    ExtenderArgs,
    Node,
    filter_result,
    host_priorities,
    parse_args,
)
from service.hooks.k8s_sites import NodeSites
from service.hooks.pods import PodError, PodInfo, pod_info, pod_request
from twin.advice.live import Advisor
from twin.advice.outcome import Advice, SiteOutcome
from twin.errors import TwinError

__all__ = ["DATA_WORDS", "Decision", "Extender", "scores_of"]

log = logging.getLogger(__name__)

DATA_WORDS = frozenset({"stale", "no_data", "down"})
"""Exclusions that say ctwin does not know the site, not that the site cannot run the pod."""
_MAX_CACHED = 10_000


@dataclass(frozen=True)
class Decision:
    """One pod's advice as the extender uses it."""

    advice_id: str | None
    scores: Mapping[str, int]
    """Site → 0..10, for the feasible sites and (neutral) the ones ctwin lacks data for."""
    failed: Mapping[str, str]
    """Site → why it cannot run the pod."""
    created_s: float = field(default=0.0, compare=False)


class _Fallback(Exception):
    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason


def _measure(outcome: SiteOutcome, risk: str) -> float:
    if outcome.score is not None:
        return outcome.score
    band = outcome.turnaround_s
    return band.at("p90" if risk == "p90" else "p50") if band is not None else 0.0


def scores_of(advice: Advice, feasible: Sequence[SiteOutcome]) -> dict[str, int]:
    """The recommended site 10; each other feasible site round(10 × best / its own), at most 9."""
    if advice.recommended is None:
        return {}
    best = next((_measure(o, advice.risk) for o in feasible if o.site == advice.recommended), None)
    scores = {}
    for outcome in feasible:
        if outcome.site == advice.recommended:
            scores[outcome.site] = MAX_EXTENDER_PRIORITY
            continue
        mine = _measure(outcome, advice.risk)
        ratio = 1.0 if best is None or mine <= 0 else max(0.0, best) / mine
        scores[outcome.site] = max(0, min(MAX_EXTENDER_PRIORITY - 1, round(MAX_EXTENDER_PRIORITY * ratio)))
    return scores


class Extender:
    def __init__(
        self,
        advisor: Advisor,
        sites: NodeSites,
        *,
        default_walltime_s: float,
        advice_ttl_s: float,
        neutral_score: int,
        on_advice: Callable[[PodInfo, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.advisor = advisor
        self.sites = sites
        self.default_walltime_s = default_walltime_s
        self.advice_ttl_s = advice_ttl_s
        self.neutral_score = neutral_score
        self.on_advice = on_advice
        self.clock = clock
        self._cache: OrderedDict[str, Decision] = OrderedDict()
        self._lock = threading.Lock()
        self._episode: str | None = None
        self.requests: Counter[str] = Counter()
        """Answered requests by verb (filter, prioritize)."""
        self.fallbacks: Counter[str] = Counter()
        """Neutral answers by reason (stale, bad_pod, error)."""
        self.failed_nodes = 0
        """Nodes the filter removed (their site cannot run the pod)."""

    # ------------------------------------------------------------------ the two verbs
    def filter(self, body: bytes) -> bytes:
        """An ExtenderFilterResult for the ExtenderArgs in `body` (WireError if it is none)."""
        args = parse_args(body)
        self.requests["filter"] += 1
        decision, sites = self._decision(args, reuse=False)
        if decision is None:
            return filter_result(args.nodes, {}, by_name=args.by_name)
        try:
            passed: list[Node] = []
            failed: dict[str, str] = {}
            for node in args.nodes:
                site = sites.get(node.name)
                reason = decision.failed.get(site) if site is not None else None
                if reason is None:
                    passed.append(node)
                else:
                    failed[node.name] = f"ctwin: site {site} cannot run this pod: {reason}"
            answer = filter_result(passed, failed, by_name=args.by_name)
        except Exception as exc:
            self._fall_back("error", f"{type(exc).__name__}: {exc}", exc_info=True)
            return filter_result(args.nodes, {}, by_name=args.by_name)
        self.failed_nodes += len(failed)
        return answer

    def prioritize(self, body: bytes) -> bytes:
        """A HostPriorityList for the ExtenderArgs in `body` (WireError if it is none)."""
        args = parse_args(body)
        self.requests["prioritize"] += 1
        decision, sites = self._decision(args, reuse=True)
        neutral = self.neutral_score
        if decision is None:
            return host_priorities((n.name, neutral) for n in args.nodes)
        scores, failed = decision.scores, decision.failed
        try:
            out = []
            for node in args.nodes:
                site = sites.get(node.name)
                if site is None:
                    out.append((node.name, neutral))
                else:
                    out.append((node.name, scores.get(site, 0 if site in failed else neutral)))
            return host_priorities(out)
        except Exception as exc:
            self._fall_back("error", f"{type(exc).__name__}: {exc}", exc_info=True)
            return host_priorities((n.name, neutral) for n in args.nodes)

    # ------------------------------------------------------------------ deciding
    def _decision(self, args: ExtenderArgs, *, reuse: bool) -> tuple[Decision | None, dict[str, str]]:
        """(the pod's decision or None for no opinion, node name → site for the mapped nodes)."""
        try:
            sites = {}
            for node in args.nodes:
                site = self.sites.site_of(node)
                if site is not None:
                    sites[node.name] = site
            if not sites:
                return None, sites
            info = pod_info(args.pod)
            if reuse and info.uid:
                cached = self._cached(info.uid)
                if cached is not None:
                    return cached, sites
            decision = self._advise(args, info, sorted(set(sites.values())))
        except _Fallback as fallback:
            self._fall_back(fallback.reason, str(fallback))
            return None, {}
        except (PodError, TwinError) as exc:  # the pod asks for what ctwin cannot read or advise on
            self._fall_back("bad_pod", str(exc))
            return None, {}
        except Exception as exc:
            self._fall_back("error", f"{type(exc).__name__}: {exc}", exc_info=True)
            return None, {}
        if self._episode is not None:
            log.info("extender: advice is back after a fallback episode (%s)", self._episode)
            self._episode = None
        return decision, sites

    def _advise(self, args: ExtenderArgs, info: PodInfo, candidates: list[str]) -> Decision:
        local = self.sites.local_site
        request = pod_request(
            args.pod,
            default_walltime_s=self.default_walltime_s,
            allowed_sites=candidates,
            home=local if local in candidates else None,
        )
        advice = self.advisor.advise(request, "k8s-extender")
        outcomes = [o for o in advice.ranked if o.site in candidates]
        unknown = [o for o in outcomes if not o.feasible and o.excluded_because in DATA_WORDS]
        if len(unknown) == len(candidates):
            raise _Fallback("stale", "; ".join(f"{o.site}: {o.reason}" for o in unknown))
        feasible = [o for o in outcomes if o.feasible]
        scores = scores_of(advice, feasible)
        for outcome in unknown:
            scores[outcome.site] = self.neutral_score
        failed = {o.site: o.reason for o in outcomes if not o.feasible and o.excluded_because not in DATA_WORDS}
        decision = Decision(advice.advice_id, scores, failed, self.clock())
        if info.uid:
            with self._lock:
                self._cache[info.uid] = decision
                self._cache.move_to_end(info.uid)
                while len(self._cache) > _MAX_CACHED:
                    self._cache.popitem(last=False)
        if self.on_advice is not None and info.name:
            try:
                self.on_advice(info, advice.advice_id)
            except Exception:
                log.exception("extender: handing advice %s to the pod worker failed", advice.advice_id)
        return decision

    def _cached(self, uid: str) -> Decision | None:
        with self._lock:
            decision = self._cache.get(uid)
        if decision is None or self.clock() - decision.created_s > self.advice_ttl_s:
            return None
        return decision

    def _fall_back(self, reason: str, detail: str, *, exc_info: bool = False) -> None:
        self.fallbacks[reason] += 1
        if self._episode != reason:
            self._episode = reason
            log.warning("extender: neutral answers (%s): %s", reason, detail, exc_info=exc_info)
