"""Probed link figures in the transfer planner and the twin's link view: a fresh probe replaces the
configured capacity and latency (and says so), a stale one is ignored (and says so), and the twin
folds link_probe series into LinkView by the link's ends whichever way round they are written."""

from __future__ import annotations

from dataclasses import replace

import pytest

from telemetry.catalog import links as lm
from telemetry.schema import Batch, Sample
from twin.advice.transfer import TransferPlanner
from twin.live import build_twin
from twin.topology import LinkSpec, SiteSpec, Topology
from twin.view import LinkView

S = 1_000_000_000
CONFIGURED = LinkView("hpc", "cloud", "", 10e9, 0.030, "ok", None, None, None)
PROBED = replace(
    CONFIGURED,
    probe_throughput_bps=95.8e6,
    probe_throughput_last_bps=97e6,
    probe_rtt_s=0.002,
    probe_rtt_last_s=0.002,
    probe_throughput_age_s=20.0,
    probe_rtt_age_s=20.0,
)
SIZE = 40e6


def test_a_fresh_probe_replaces_the_configured_capacity_and_latency() -> None:
    route = TransferPlanner([PROBED], probe_max_age_s=300).route("cloud", "hpc", SIZE)
    assert route is not None
    (hop,) = route.hops
    assert hop.probed and hop.measured and hop.latency_s == 0.002
    assert hop.available_bps == 95.8e6 and hop.capacity_bps == 97e6  # p10: the better of EMA and last
    band = route.seconds(SIZE)
    assert band.p50 == pytest.approx(0.002 + SIZE * 8 / 95.8e6)
    assert band.p10 == pytest.approx(0.002 + SIZE * 8 / 97e6) and band.p90 == pytest.approx(0.002 + SIZE * 16 / 95.8e6)
    assert "probed 95.8 Mb/s (20 s old) instead of the configured 10 Gb/s" in hop.reason
    assert "probed RTT 2 ms instead of the configured 30 ms" in hop.reason
    assert "probed 95.8 Mb/s" in route.describe(SIZE)


def test_a_stale_probe_is_ignored_and_the_reason_says_so() -> None:
    stale = replace(PROBED, probe_throughput_age_s=301.0, probe_rtt_age_s=301.0)
    route = TransferPlanner([stale], probe_max_age_s=300).route("cloud", "hpc", SIZE)
    assert route is not None
    (hop,) = route.hops
    assert not hop.probed and hop.capacity_bps == 10e9 and hop.latency_s == 0.030
    assert "past 5 min: ignored" in hop.reason and "configured 10 Gb/s" in hop.reason
    assert "ignored" in route.describe(SIZE)


def test_probed_throughput_is_not_reduced_by_interface_traffic() -> None:
    """The probe shared the link with that traffic (and its own bytes are in the counters)."""
    busy = replace(PROBED, rx_bps=90e6, tx_bps=10e6, data_age_s=1.0)
    route = TransferPlanner([busy]).route("hpc", "cloud", SIZE)
    assert route is not None and route.hops[0].available_bps == 95.8e6


def test_unprobed_links_keep_their_figures_and_description() -> None:
    route = TransferPlanner([CONFIGURED]).route("hpc", "cloud", SIZE)
    assert route is not None and not route.hops[0].probed
    text = route.describe(SIZE)
    assert text.startswith("40 MB over hpc → cloud at 10 Gb/s ≈ ") and "(" not in text and "probe" not in text


def test_the_twin_folds_probe_series_into_the_link_by_its_ends() -> None:
    topology = Topology(
        (SiteSpec("hpc", "hpc"), SiteSpec("cloud", "cloud")),
        (LinkSpec("hpc", "cloud", bandwidth_bps=10e9, latency_s=0.03), LinkSpec("hpc", "edge")),
    )
    twin = build_twin(topology, clock=lambda: 1000.0)
    labels = {"link": "x", "a": "cloud", "b": "hpc", "direction": "download", "site": "cloud", "host": "h"}
    older = {**labels, "direction": "upload", "host": "other"}
    twin.state.write(
        Batch.from_samples(
            [
                Sample(lm.THROUGHPUT.name, 90e6, labels, 990 * S),
                Sample(lm.THROUGHPUT_LAST.name, 91e6, labels, 990 * S),
                Sample(lm.RTT.name, 0.004, labels, 980 * S),
                Sample(lm.THROUGHPUT.name, 50e6, older, 900 * S),  # an older probe of the same link
                Sample(lm.TRANSFER_BYTES.name, 8e6, labels, 990 * S),  # store only
            ]
        )
    )
    probed, other = twin.links()
    assert probed.probe_throughput_bps == 90e6 and probed.probe_throughput_last_bps == 91e6
    assert probed.probe_rtt_s == 0.004 and probed.probe_rtt_last_s is None
    assert probed.probe_throughput_age_s == pytest.approx(10.0) and probed.probe_rtt_age_s == pytest.approx(20.0)
    assert probed.bandwidth_bps == 10e9  # the configured figure stays in the view
    assert other.probe_throughput_bps is None and other.probe_throughput_age_s is None
