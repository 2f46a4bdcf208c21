"""Self-metrics of the InfluxDB mirror (store.backend: influx): is the server taking writes, what
waits in the spool, and every sample that did not get there, by reason."""

from telemetry.catalog._core import catalog

d = catalog.define

INFLUX_CONNECTED = d("ctwin_influx_connected", "gauge", "", "1 while InfluxDB takes writes; 0 from a refused write until the spool is replayed.")
INFLUX_SAMPLES = d("ctwin_influx_samples_total", "counter", "samples", "Samples by outcome: sent (acknowledged at once), replayed (acknowledged from the spool), spooled (put on disk while InfluxDB was away), dropped_spool_full (oldest given up at the spool bound), skipped_nonfinite (NaN or infinite: line protocol cannot carry them).", ("outcome",))
INFLUX_SPOOLED = d("ctwin_influx_spool_samples", "gauge", "samples", "Samples waiting in the spool for InfluxDB.")
INFLUX_REJECTED = d("ctwin_influx_rejected_bodies_total", "counter", "requests", "Write requests InfluxDB refused as malformed (400): logged, not retried.")
