"""Interconnect collector: against node_exporter's e2e output over its own /proc/net/dev and
InfiniBand sysfs fixture, on a capture of this project's Debian 12 Firecracker VM, and on the live
machine. Fixture sources: tests/fixtures/*/PROVENANCE.md."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError

from collectors import registry
from collectors.base import CollectorError, Recorder
from collectors.interconnect import (
    InterconnectCollector,
    InterconnectConfig,
    parse_ib_counter,
    parse_ib_rate,
    parse_ib_state,
)
from collectors.procfs import parse_net_dev
from telemetry.catalog import network as n
from tests.collectors.node_exporter_oracle import ROOT, compare, their_series
from tests.conftest import FIXTURES

FIRECRACKER = FIXTURES / "node" / "debian12-firecracker"


def gather(root: Path | str, **options: object) -> Recorder:
    rec = Recorder(default_ts_ns=1)
    InterconnectCollector(InterconnectConfig.model_validate({"root": str(root), **options})).gather(rec)
    return rec


def devices(rec: Recorder, metric: str) -> set[str]:
    return {s.labels["device"] for s in rec.samples if s.metric == metric}


# -- the oracle: node_exporter's e2e output over the same files ----------------------------------


def test_every_sample_with_a_node_exporter_counterpart_matches_it() -> None:
    # The e2e run passes --collector.netdev.device-include=lo; configure the same.
    rec = gather(ROOT, netdev_include="^lo$")
    result = compare(rec.samples)
    assert result.mismatches == []
    # lo: errs and drop both ways (4); IB: mlx4_0 ports 1 and 2 data + legacy data (8),
    # port 1 packets, errors, discards, wait (5), link_downed on both ports (2),
    # rate, state and phys_state on the 3 ports (9).
    assert result.compared == 4 + 8 + 5 + 2 + 9
    # node_exporter's e2e script greps out these four families (skip_re), so they have no counterpart.
    assert result.unmatched == {
        "node_network_receive_bytes_total",
        "node_network_receive_packets_total",
        "node_network_transmit_bytes_total",
        "node_network_transmit_packets_total",
    }


def test_we_report_every_series_node_exporter_does_for_our_metrics() -> None:
    rec = gather(ROOT, netdev_include="^lo$")
    for metric in rec.names() - compare(rec.samples).unmatched:
        ours = {frozenset(s.labels.items()) for s in rec.samples if s.metric == metric}
        assert ours == their_series(metric), metric


def test_infiniband_values_from_the_node_exporter_fixture() -> None:
    rec = gather(ROOT)
    # mlx4_0/ports/1/counters/port_xmit_data = 3733440 four-byte words
    assert rec.get(n.IB_TX_BYTES, device="mlx4_0", port="1") == 14933760
    assert rec.get(n.IB_RX_BYTES, device="mlx4_0", port="1") == 4631917 * 4
    # port 2's 32-bit counters read 0, its counters_ext 64-bit ones do not
    assert rec.get(n.IB_TX_BYTES, device="mlx4_0", port="2") == 0
    assert rec.get(n.IB_LEGACY_TX_BYTES, device="mlx4_0", port="2") == 14933760
    # "40 Gb/sec (4X QDR)", "4: ACTIVE", "5: LinkUp"
    assert rec.get(n.IB_RATE, device="mlx4_0", port="1") == 5e9
    assert rec.get(n.IB_STATE, device="mlx4_0", port="1") == 4
    assert rec.get(n.IB_PHYS_STATE, device="mlx4_0", port="1") == 5
    assert rec.get(n.IB_TX_WAIT, device="mlx4_0", port="1") == 4294967295  # a saturated 32-bit counter
    # i40iw0 (iWARP) prints "N/A (no PMA)" for every counter: state and rate only
    assert rec.get(n.IB_RATE, device="i40iw0", port="1") == 1.25e9
    ib_names = {s.metric for s in rec.samples if s.labels.get("device") == "i40iw0"}
    assert ib_names == {n.IB_RATE.name, n.IB_STATE.name, n.IB_PHYS_STATE.name}


def test_net_dev_defaults_keep_every_interface() -> None:
    rec = gather(ROOT)
    assert devices(rec, n.NET_RX_BYTES.name) == {
        "tun0", "veth4B09XN", "lo", "eth0", "lxcbr0", "wlan0", "docker0", "ibr10:30", "flannel.1", "💩0",
    }  # fmt: skip
    # "  eth0:68210035552 520993275 ..." (no space after the colon), tx "9315587528 43451486"
    assert rec.get(n.NET_RX_BYTES, device="eth0") == 68210035552
    assert rec.get(n.NET_RX_PACKETS, device="eth0") == 520993275
    assert rec.get(n.NET_TX_BYTES, device="eth0") == 9315587528
    # "flannel.1: ... 20758990068 258369223    0   64 ..." → 64 transmit drops
    assert rec.get(n.NET_TX_DROP, device="flannel.1") == 64
    assert rec.get(n.NET_RX_BYTES, device="💩0") == 57750104


def test_netdev_exclude() -> None:
    rec = gather(ROOT, netdev_exclude=r"^(veth|lxcbr|docker|flannel)")
    assert devices(rec, n.NET_RX_BYTES.name) == {"tun0", "lo", "eth0", "wlan0", "ibr10:30", "💩0"}


# -- missing files and config ---------------------------------------------------------------------


def test_no_infiniband_means_no_ib_samples(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "proc", tmp_path / "proc")
    collector = InterconnectCollector(InterconnectConfig(root=str(tmp_path)))
    assert collector.availability() is None
    rec = Recorder()
    collector.gather(rec)
    assert not {name for name in rec.names() if "infiniband" in name}
    assert rec.get(n.NET_RX_BYTES, device="lo") == 435303245


def test_missing_net_dev_is_an_error_naming_the_file(tmp_path: Path) -> None:
    path = os.path.join(str(tmp_path), "proc", "net", "dev")
    with pytest.raises(CollectorError, match=re.escape(path)):
        gather(tmp_path)
    assert path in (InterconnectCollector(InterconnectConfig(root=str(tmp_path))).availability() or "")


def test_malformed_rate_is_an_error_naming_the_file(tmp_path: Path) -> None:
    shutil.copytree(ROOT, tmp_path / "root")
    rate = tmp_path / "root" / "sys" / "class" / "infiniband" / "mlx4_0" / "ports" / "1" / "rate"
    rate.write_text("fast\n")
    with pytest.raises(CollectorError, match=re.escape(str(rate))):
        gather(tmp_path / "root")


def test_unknown_config_key_is_rejected() -> None:
    with pytest.raises(ValidationError, match="device_include"):
        InterconnectConfig.model_validate({"device_include": "^ib"})


def test_registered_as_interconnect() -> None:
    assert registry.get("interconnect") is InterconnectCollector


# -- a capture of this project's Debian 12 Firecracker VM (kernel 6.18) ------------------------


def test_debian12_firecracker_capture() -> None:
    rec = gather(FIRECRACKER)
    assert devices(rec, n.NET_RX_BYTES.name) == {"lo", "ifb0", "ifb1", "eth0"}
    # "  eth0: 244751500    5214    0    0    0     0          0         0   333970    3773    0 ..."
    assert rec.get(n.NET_RX_BYTES, device="eth0") == 244751500
    assert rec.get(n.NET_RX_PACKETS, device="eth0") == 5214
    assert rec.get(n.NET_TX_BYTES, device="eth0") == 333970
    assert rec.get(n.NET_TX_PACKETS, device="eth0") == 3773
    assert rec.get(n.NET_RX_ERRS, device="eth0") == 0
    # "    lo:    3193      29 ..."
    assert rec.get(n.NET_TX_BYTES, device="lo") == 3193
    assert not {name for name in rec.names() if "infiniband" in name}


# -- the live machine -----------------------------------------------------------------------------


@pytest.mark.skipif(not os.path.exists("/proc/net/dev"), reason="needs Linux /proc")
def test_live_machine() -> None:
    rec = Recorder()
    InterconnectCollector(InterconnectConfig()).gather(rec)
    assert "lo" in devices(rec, n.NET_RX_BYTES.name)
    assert len(devices(rec, n.NET_TX_PACKETS.name)) >= 1


# -- parsers --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("40 Gb/sec (4X QDR)\n", 5e9),
        ("10 Gb/sec (4X)\n", 1.25e9),
        ("2.5 Gb/sec (1X SDR)\n", 312_500_000.0),
        ("14 Gb/sec (1X FDR)\n", 1.75e9),
        ("100 Gb/sec (4X EDR)\n", 12.5e9),
        ("400 Gb/sec (4X NDR)\n", 50e9),
    ],
)
def test_parse_ib_rate(text: str, expected: float) -> None:
    assert parse_ib_rate(text) == expected


def test_parse_ib_rate_rejects_unknown_units() -> None:
    with pytest.raises(ValueError, match="unit"):
        parse_ib_rate("40 furlongs/fortnight\n")


def test_parse_ib_state_and_counter() -> None:
    assert parse_ib_state("4: ACTIVE\n") == 4
    assert parse_ib_state("5: LinkUp\n") == 5
    assert parse_ib_counter("3733440\n") == 3733440
    assert parse_ib_counter("N/A (no PMA)\n") is None


def test_parse_net_dev_name_ends_at_last_colon() -> None:
    text = (
        "Inter-|   Receive\n face |bytes\n"
        "ibr10:30:       1       2    3    4    0     0          0         0"
        "        5       6    7    8    0     0       0          0\n"
    )
    [(name, stats)] = parse_net_dev(text)
    assert name == "ibr10:30"
    assert tuple(stats) == (1, 2, 3, 4, 5, 6, 7, 8)
