"""The pipeline's own health: how each collector and the store behave."""

from telemetry.catalog._core import catalog

d = catalog.define
COL = ("collector",)

COLLECTOR_DURATION = d("ctwin_collector_duration_seconds", "gauge", "seconds", "Duration of the last collection.", COL)
COLLECTOR_ERRORS = d("ctwin_collector_errors_total", "counter", "errors", "Failed or timed-out collections.", COL)
COLLECTOR_LAST_SUCCESS = d("ctwin_collector_last_success_timestamp_seconds", "gauge", "seconds", "Unix time of the last successful collection.", COL)
SCRAPE_LIMIT_EXCEEDED = d("ctwin_scrape_limit_exceeded_total", "counter", "scrapes", "Collections refused because the source exceeded a configured limit (sample_limit, label_limit, label_name_length_limit, label_value_length_limit, body_size_limit).", ("collector", "limit"))
COLLECTOR_SAMPLES = d("ctwin_collector_samples_total", "counter", "samples", "Samples produced by the collector.", COL)
PIPELINE_DROPPED = d("ctwin_pipeline_dropped_samples_total", "counter", "samples", "Samples lost, by reason: buffer_full (the sinks fell behind), store_failed (the store refused them and the retry backlog overflowed, or shutdown came first).", ("reason",))
STORE_WRITE_SECONDS = d("ctwin_store_write_seconds", "gauge", "seconds", "Duration of the last durable store append.")
STORE_HEALTHY = d("ctwin_store_healthy", "gauge", "", "1 while writes to the store succeed, 0 from a refused write until one succeeds again.")
AGENT_CONNECTED = d("ctwin_agent_connected", "gauge", "", "1 while the agent's target takes its batches, 0 from a refused send until the spool is replayed.")
AGENT_SPOOLED = d("ctwin_agent_spooled_samples", "gauge", "samples", "Samples waiting in the agent's spool for the target.")
AGENT_SENT = d("ctwin_agent_sent_samples_total", "counter", "samples", "Samples the target took, straight away or replayed from the spool.")
AGENT_DROPPED = d("ctwin_agent_dropped_samples_total", "counter", "samples", "Samples the agent gave up, by reason: spool_full (the oldest spooled), rejected (refused for good by the target), buffer_full, store_failed.", ("reason",))
