"""Active link probes between sites (collectors.link_probe): round-trip time and throughput of a
bounded transfer to a ctwin probe endpoint, smoothed per link like FTS's optimizer does (an
exponential moving average seeded with the first value; FTS's EMA_ALPHA is 0.1), with the raw
value of the last probe beside it. `a` and `b` are the ends of the `links:` entry measured."""

from telemetry.catalog._core import catalog

d = catalog.define
LINK = ("link", "a", "b", "direction")

RTT = d("ctwin_link_rtt_seconds", "gauge", "seconds", "Round-trip time to the link's probe endpoint, EMA of the per-probe medians.", LINK)
RTT_LAST = d("ctwin_link_rtt_last_seconds", "gauge", "seconds", "Median round-trip time of the last probe's echoes (raw).", LINK)
RTT_LOST = d("ctwin_link_rtt_lost_ratio", "gauge", "ratio", "Share of the last probe's round trips that got no answer in time, 0..1.", LINK)
THROUGHPUT = d("ctwin_link_throughput_bits_per_second", "gauge", "bits_per_second", "Throughput of the bounded probe transfer (bytes from first to last byte ÷ that time), EMA over probes.", LINK)
THROUGHPUT_LAST = d("ctwin_link_throughput_last_bits_per_second", "gauge", "bits_per_second", "Throughput of the last probe transfer (raw).", LINK)
TRANSFER_BYTES = d("ctwin_link_probe_transfer_bytes", "gauge", "bytes", "Bytes moved by the last probe transfer (capped by the collector's and the endpoint's byte and time caps).", LINK)
