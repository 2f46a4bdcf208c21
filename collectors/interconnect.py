"""Interconnect metrics: every interface in /proc/net/dev and every InfiniBand port in sysfs.

Names and conversions follow node_exporter's netdev and infiniband collectors (data counters
are in 4-byte words, `rate` is a text like "40 Gb/sec (4X QDR)"), so its end-to-end output over
the same sysfs capture is our test oracle. A host without InfiniBand simply has no IB samples;
/proc/net/dev exists on every Linux host and is required.
"""

from __future__ import annotations

import errno
import os
import re
from typing import ClassVar

from collectors.base import Collector, CollectorConfig, CollectorError, Emit
from collectors.procfs import DeviceFilter, parse_net_dev, read_text
from collectors.registry import register
from telemetry.catalog import Metric
from telemetry.catalog import network as n

__all__ = [
    "InterconnectCollector",
    "InterconnectConfig",
    "parse_ib_counter",
    "parse_ib_rate",
    "parse_ib_state",
]


class InterconnectConfig(CollectorConfig):
    root: str = "/"
    """Where the host's /proc and /sys are mounted."""
    netdev_include: re.Pattern[str] | None = None
    """When set, only interfaces whose name matches are reported."""
    netdev_exclude: re.Pattern[str] | None = None
    """Interfaces whose name matches are skipped. Like node_exporter, nothing (not even lo) is
    excluded by default; on container hosts `^(veth|cali|lxc)` keeps veth churn out of the store."""


# -- sysfs value parsers (pure) -------------------------------------------------------------------

_RATE_UNIT = {"Gb/sec": 1e9 / 8, "Mb/sec": 1e6 / 8}


def parse_ib_rate(text: str) -> float:
    """Bytes per second from a port's `rate`, e.g. "40 Gb/sec (4X QDR)" → 5e9."""
    value, unit = text.split(maxsplit=2)[:2]
    try:
        scale = _RATE_UNIT[unit]
    except KeyError:
        raise ValueError(f"unknown rate unit in {text.strip()!r}") from None
    return float(value) * scale


def parse_ib_state(text: str) -> int:
    """The numeric code of `state` ("4: ACTIVE") or `phys_state` ("5: LinkUp")."""
    return int(text.split(":", 1)[0])


def parse_ib_counter(text: str) -> int | None:
    """A counter's value; None for "N/A (no PMA)", which ports without a performance-management
    agent (e.g. iWARP i40iw) print instead of a number."""
    text = text.strip()
    return int(text) if text.isdigit() else None


# counters/<file> → (metric, multiplier). port_*_data count 4-byte words (IBA spec, PortCounters).
_COUNTERS: tuple[tuple[str, Metric, int], ...] = (
    ("port_rcv_data", n.IB_RX_BYTES, 4),
    ("port_xmit_data", n.IB_TX_BYTES, 4),
    ("port_rcv_packets", n.IB_RX_PACKETS, 1),
    ("port_xmit_packets", n.IB_TX_PACKETS, 1),
    ("port_rcv_errors", n.IB_RX_ERRORS, 1),
    ("port_xmit_discards", n.IB_TX_DISCARDS, 1),
    ("port_xmit_wait", n.IB_TX_WAIT, 1),
    ("link_downed", n.IB_LINK_DOWNED, 1),
)
# counters_ext/<file>: the 64-bit data counters mlx4 exposes next to its saturating 32-bit ones.
_COUNTERS_EXT: tuple[tuple[str, Metric, int], ...] = (
    ("port_rcv_data_64", n.IB_LEGACY_RX_BYTES, 4),
    ("port_xmit_data_64", n.IB_LEGACY_TX_BYTES, 4),
)
# Read failures that mean "this port has no such value" rather than a broken host; sysfs returns
# EINVAL or EOPNOTSUPP for counters some HCAs and port states can't supply.
_NO_VALUE = frozenset({errno.ENOENT, errno.ENOTDIR, errno.EINVAL, errno.EOPNOTSUPP, errno.EACCES, errno.EPERM})


def _read_sysfs(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError as exc:
        if exc.errno in _NO_VALUE:
            return None
        raise CollectorError(f"cannot read {path}: {exc.strerror or exc}") from exc


def _list_dir(path: str) -> list[str]:
    """Sorted entry names, or [] when the directory does not exist."""
    try:
        return sorted(os.listdir(path))
    except (FileNotFoundError, NotADirectoryError):
        return []
    except OSError as exc:
        raise CollectorError(f"cannot list {path}: {exc.strerror or exc}") from exc


@register
class InterconnectCollector(Collector):
    name: ClassVar[str] = "interconnect"
    config_model: ClassVar[type[CollectorConfig]] = InterconnectConfig

    def __init__(self, config: CollectorConfig | None = None) -> None:
        super().__init__(config)
        if not isinstance(self.config, InterconnectConfig):
            raise TypeError(f"InterconnectCollector needs an InterconnectConfig, got {type(self.config).__name__}")
        cfg = self.config
        self._net_dev_path = os.path.join(cfg.root, "proc", "net", "dev")
        self._ib_path = os.path.join(cfg.root, "sys", "class", "infiniband")
        self._keep_netdev = DeviceFilter(cfg.netdev_include, cfg.netdev_exclude)

    def availability(self) -> str | None:
        # InfiniBand is optional: no IB devices only means no IB samples.
        return None if os.path.exists(self._net_dev_path) else f"{self._net_dev_path} not found"

    def gather(self, emit: Emit) -> None:
        self._gather_net_dev(emit)
        self._gather_infiniband(emit)

    def _gather_net_dev(self, emit: Emit) -> None:
        path = self._net_dev_path
        text = read_text(path)
        if text is None:
            raise CollectorError(f"{path} not found: is root pointing at a Linux /proc?")
        try:
            interfaces = parse_net_dev(text, self._keep_netdev)
        except (ValueError, IndexError) as exc:
            raise CollectorError(f"{path}: unexpected format: {exc}") from exc
        for device, s in interfaces:
            labels = {"device": device}
            emit(n.NET_RX_BYTES, s.rx_bytes, labels)
            emit(n.NET_RX_PACKETS, s.rx_packets, labels)
            emit(n.NET_RX_ERRS, s.rx_errs, labels)
            emit(n.NET_RX_DROP, s.rx_drop, labels)
            emit(n.NET_TX_BYTES, s.tx_bytes, labels)
            emit(n.NET_TX_PACKETS, s.tx_packets, labels)
            emit(n.NET_TX_ERRS, s.tx_errs, labels)
            emit(n.NET_TX_DROP, s.tx_drop, labels)

    def _gather_infiniband(self, emit: Emit) -> None:
        for device in _list_dir(self._ib_path):
            ports_dir = os.path.join(self._ib_path, device, "ports")
            for port in _list_dir(ports_dir):
                self._gather_port(emit, os.path.join(ports_dir, port), {"device": device, "port": port})

    def _gather_port(self, emit: Emit, port_dir: str, labels: dict[str, str]) -> None:
        for name, metric, parse in (
            ("rate", n.IB_RATE, parse_ib_rate),
            ("state", n.IB_STATE, parse_ib_state),
            ("phys_state", n.IB_PHYS_STATE, parse_ib_state),
        ):
            path = os.path.join(port_dir, name)
            text = _read_sysfs(path)
            if text is None:
                continue
            try:
                value: float = parse(text)
            except (ValueError, IndexError) as exc:
                raise CollectorError(f"{path}: unexpected format: {exc}") from exc
            emit(metric, value, labels)
        for subdir, table in (("counters", _COUNTERS), ("counters_ext", _COUNTERS_EXT)):
            base = os.path.join(port_dir, subdir)
            for name, metric, scale in table:
                text = _read_sysfs(os.path.join(base, name))
                if text is None:
                    continue
                count = parse_ib_counter(text)
                if count is not None:
                    emit(metric, count * scale, labels)
