"""Nodes and partitions from `sinfo --json`, `sinfo -N --json` (data_parser) and slurmrestd's
/nodes and /partitions, for every Slurm JSON version (see `slurm_json`)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import polars as pl

from collectors.slurm_doc import Parsed, open_document, records
from collectors.slurm_fields import expand_hostlist, integer, mem_mib_to_bytes, node_state

__all__ = ["NODE_SCHEMA", "PARTITION_SCHEMA", "parse_nodes", "parse_partitions", "partitions_from_nodes"]

NODE_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "state": pl.List(pl.String()),  # base state first, then flags: ["IDLE", "DRAIN"]
    "cpus_total": pl.Int64(),
    "cpus_allocated": pl.Int64(),
    "memory_total_bytes": pl.Int64(),
    "memory_allocated_bytes": pl.Int64(),
    "partitions": pl.List(pl.String()),
}

PARTITION_SCHEMA: dict[str, pl.DataType] = {
    "name": pl.String(),
    "state": pl.String(),  # UP / DOWN / DRAIN / INACTIVE; null when the source does not say
    "nodes": pl.List(pl.String()),
    "nodes_total": pl.Int64(),
    "cpus_total": pl.Int64(),
}


# --- nodes ------------------------------------------------------------------------------------


def _node(n: Mapping[str, Any]) -> tuple[Any, ...]:
    name = n["name"]
    if not isinstance(name, str) or not name:
        raise ValueError(f"node name {name!r}")
    return (
        name,
        node_state(n.get("state"), n.get("state_flags")),
        integer(n.get("cpus")),
        integer(n.get("alloc_cpus")),
        mem_mib_to_bytes(n.get("real_memory")),
        mem_mib_to_bytes(n.get("alloc_memory")),
        [str(p) for p in n.get("partitions") or []],
    )


def _sinfo_nodes(entry: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    """Node rows from one data_parser `sinfo` entry (a group of nodes sharing state and partition).

    With `sinfo -N` every entry is one node and the values are exact; for a group of several
    nodes, CPU and memory figures are the group's totals split evenly.
    """
    names = [str(x) for x in (entry.get("nodes") or {}).get("nodes") or []]
    if not names:
        return []
    cpus, memory = entry.get("cpus") or {}, entry.get("memory") or {}
    k = len(names)

    def share(total: int | None) -> int | None:
        return None if total is None else total // k

    mem_max = mem_mib_to_bytes(memory.get("maximum"))
    mem_total = mem_max if mem_max is not None and mem_max == mem_mib_to_bytes(memory.get("minimum")) else None
    partition = (entry.get("partition") or {}).get("name")
    state = node_state((entry.get("node") or {}).get("state"))
    alloc_mem = mem_mib_to_bytes(memory.get("allocated"))
    cpus_total, cpus_alloc = share(integer(cpus.get("total"))), share(integer(cpus.get("allocated")))
    parts = [partition] if partition else []
    return [(name, state, cpus_total, cpus_alloc, mem_total, share(alloc_mem), parts) for name in names]


def _merge_nodes(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """`sinfo -N` repeats a node once per partition: keep the first row, union the partitions."""
    merged: dict[str, tuple[Any, ...]] = {}
    for row in rows:
        if row[0] in merged:
            first = merged[row[0]]
            parts = list(first[6]) + [p for p in row[6] if p not in first[6]]
            merged[row[0]] = (*first[:6], parts)
        else:
            merged[row[0]] = row
    return list(merged.values())


def parse_nodes(data: str | bytes | Mapping[str, Any], source: str, *, strict: bool = True) -> Parsed:
    """Nodes from `sinfo --json`, `sinfo -N --json` (data_parser) or slurmrestd /nodes (NODE_SCHEMA)."""
    doc, version, key, problems = open_document(data, source, ("nodes", "sinfo"), strict)
    if key == "nodes":
        rows = records(doc[key], _node, source, "nodes", problems, NODE_SCHEMA)
    else:
        groups = records(doc[key], _sinfo_nodes, source, "sinfo", problems, NODE_SCHEMA)
        rows = [row for group in groups for row in group]
    frame = pl.DataFrame(_merge_nodes(rows), schema=NODE_SCHEMA, orient="row")
    return Parsed(frame, version, source, tuple(problems))


# --- partitions -------------------------------------------------------------------------------


def _state_word(value: Any) -> str | None:
    words = node_state(value)
    return words[0] if words else None


def _partition(p: Mapping[str, Any]) -> tuple[Any, ...]:
    name = p["name"]
    nodes_field = p.get("nodes")
    if isinstance(nodes_field, Mapping):  # data_parser v0.0.39+
        nodes = expand_hostlist(nodes_field.get("configured"))
        total_nodes = integer(nodes_field.get("total"))
        total_cpus = integer((p.get("cpus") or {}).get("total"))
        state = _state_word((p.get("partition") or {}).get("state"))
    else:  # openapi v0.0.37/38
        nodes = expand_hostlist(nodes_field)
        total_nodes, total_cpus = integer(p.get("total_nodes")), integer(p.get("total_cpus"))
        state = _state_word(p.get("state"))
    return (str(name), state, nodes, len(nodes) if total_nodes is None else total_nodes, total_cpus)


def partitions_from_nodes(nodes: pl.DataFrame) -> pl.DataFrame:
    """Partitions as far as a node list tells them (sinfo has no partition state): PARTITION_SCHEMA."""
    if nodes.is_empty():
        return pl.DataFrame(schema=PARTITION_SCHEMA)
    return (
        nodes.select("name", "cpus_total", pl.col("partitions").alias("partition"))
        .explode("partition")
        .drop_nulls("partition")
        .group_by("partition", maintain_order=True)
        .agg(
            pl.col("name").alias("nodes"),
            pl.len().cast(pl.Int64).alias("nodes_total"),
            pl.col("cpus_total").sum().alias("cpus_total"),
        )
        .select(
            pl.col("partition").alias("name"),
            pl.lit(None, pl.String()).alias("state"),
            "nodes",
            "nodes_total",
            "cpus_total",
        )
        .cast(PARTITION_SCHEMA)  # type: ignore[arg-type]
    )


def _sinfo_partitions(entries: list[Any], source: str, problems: list[str]) -> list[tuple[Any, ...]]:
    seen: dict[str, tuple[Any, ...]] = {}
    parts = [e.get("partition") for e in entries if isinstance(e, Mapping) and isinstance(e.get("partition"), Mapping)]
    for row in records(parts, _partition, source, "sinfo.partition", problems, PARTITION_SCHEMA):
        seen.setdefault(row[0], row)
    return list(seen.values())


def parse_partitions(data: str | bytes | Mapping[str, Any], source: str, *, strict: bool = True) -> Parsed:
    """Partitions from slurmrestd /partitions, or derived from a sinfo document (PARTITION_SCHEMA)."""
    doc, version, key, problems = open_document(data, source, ("partitions", "sinfo", "nodes"), strict)
    if key == "partitions":
        frame = pl.DataFrame(records(doc[key], _partition, source, "partitions", problems, PARTITION_SCHEMA),
                             schema=PARTITION_SCHEMA, orient="row")  # fmt: skip
    elif key == "sinfo":
        frame = pl.DataFrame(_sinfo_partitions(doc[key], source, problems), schema=PARTITION_SCHEMA, orient="row")
    else:
        nodes = records(doc[key], _node, source, "nodes", problems, NODE_SCHEMA)
        frame = partitions_from_nodes(pl.DataFrame(_merge_nodes(nodes), schema=NODE_SCHEMA, orient="row"))
    return Parsed(frame, version, source, tuple(problems))
