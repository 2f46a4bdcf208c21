"""Child process for the crash-safety test: appends numbered batches forever and prints
`ACK <seq>` after each append returns (i.e. after the store acknowledged it)."""

import sys

from telemetry.schema import Batch, Sample
from telemetry.stores.base import Selection
from telemetry.stores.duckdb_store import DuckDBStore

PER_BATCH = 2000


def main(path: str) -> None:
    store = DuckDBStore(path, memory_limit="256MB")
    done = store.query(Selection(metrics=("crash_seq",)), step_ns=None)
    seq = int(done["value"].max()) + 1 if done.height else 0  # type: ignore[arg-type]
    print("READY", flush=True)
    while True:
        batch = Batch.from_samples(
            [Sample("crash_seq", float(seq), {"part": "head"}, seq * 1000)]
            + [Sample("crash_payload", float(i), {"i": str(i % 97)}, seq * 1000 + i) for i in range(PER_BATCH)]
        )
        store.append(batch)
        sys.stdout.write(f"ACK {seq}\n")
        sys.stdout.flush()
        seq += 1


if __name__ == "__main__":
    main(sys.argv[1])
