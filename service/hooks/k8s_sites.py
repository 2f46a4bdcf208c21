"""Which ctwin site a Kubernetes node is.

A cluster's own nodes are the local site. An interLink virtual node is the remote site it
fronts: the virtual kubelet registers it with the label `virtual-node.interlink/type=virtual-kubelet`,
the taint `virtual-node.interlink/no-schedule=true:NoSchedule` and the OS `virtual-kubelet`, and
with its default capacity (100 CPU / 3000G) it looks like a giant idle machine to the scheduler,
which is why the scheduler needs ctwin to tell the sites apart.

In order: `schedulers.kubernetes.nodes` (name → site); the node's `site_label` (default
`ctwin.io/site`) when it names a configured site; a virtual node named like a site; then any other
plain node is the local site and a virtual node nothing maps is no site at all (it passes the
filter with the neutral score: ctwin cannot say what it fronts).

With `nodeCacheCapable: true` the scheduler sends node names only. A name then maps by config, else
through the node cache (service.hooks.node_cache: the API's nodes, listed and watched, when
`schedulers.kubernetes.api` is set) by the same rules as a full object, else by what an earlier full
body showed of it. A name none of these knows is no site (it passes, neutral score, as an unmapped
node does) and is counted in `unknown_names`: a cache not yet synced, or a node newer than its last
event.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping

from collectors.kube_objects import INTERLINK_LABEL, INTERLINK_OS, INTERLINK_TAINT, node_site, virtual_node
from service.hooks.extender_wire import Node

__all__ = ["INTERLINK_LABEL", "INTERLINK_OS", "INTERLINK_TAINT", "NodeSites", "is_virtual"]

_MAX_REMEMBERED = 100_000


def is_virtual(node: Node) -> bool:
    """An interLink (virtual-kubelet) node (collectors.kube_objects.virtual_node)."""
    return virtual_node(node.labels, node.operating_system, node.taints)


class NodeSites:
    def __init__(
        self,
        sites: Iterable[str],
        local_site: str,
        mapping: Mapping[str, str],
        site_label: str,
        lookup: Callable[[str], Node | None] | None = None,
    ) -> None:
        self.sites = frozenset(sites)
        for node, site in mapping.items():
            if site not in self.sites:
                raise ValueError(f"schedulers.kubernetes.nodes.{node}: no site named {site!r}")
        if local_site not in self.sites:
            raise ValueError(f"schedulers.kubernetes.local_site: no site named {local_site!r}")
        self.local_site = local_site
        self.mapping = dict(mapping)
        self.site_label = site_label
        self.lookup = lookup
        """Name → the node in full (the node cache), for names-only requests."""
        self._seen: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self.unknown_names = 0
        """Names-only nodes that nothing mapped: not in the config, the cache or an earlier body."""

    def site_of(self, node: Node) -> str | None:
        """The node's site, or None (module docstring)."""
        mapped = self.mapping.get(node.name)
        if mapped is not None:
            return mapped
        if node.by_name:
            cached = self.lookup(node.name) if self.lookup is not None else None
            if cached is not None:
                return self._from_object(cached)
            if node.name in self._seen:  # what an earlier full body showed of it
                return self._seen[node.name]
            self.unknown_names += 1
            return None
        site = self._from_object(node)
        if self._seen.get(node.name, "") != site:
            with self._lock:
                if len(self._seen) >= _MAX_REMEMBERED:
                    self._seen.clear()
                self._seen[node.name] = site
        return site

    def _from_object(self, node: Node) -> str | None:
        return node_site(
            node.name,
            node.labels,
            is_virtual(node),
            sites=self.sites,
            local_site=self.local_site,
            mapping={},  # the mapping was consulted first, by site_of
            site_label=self.site_label,
        )
