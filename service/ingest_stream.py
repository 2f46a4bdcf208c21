"""Reading an Arrow IPC stream from outside (POST /v1/ingest) without trusting it.

Why not `pyarrow.ipc.open_stream` alone: it decompresses each record batch before anyone can
see how many rows it holds, so a 4 MiB zstd body could expand to gigabytes in the server. Here
every message's header is read first (a flatbuffer: the few fields needed are read by hand,
each read bounds-checked): a batch that is compressed or a dictionary batch is refused, and the
row count is checked against the limit before the batch is decoded. What is decoded is then
bounded by the body's size, and validated in full, so a malformed buffer is a 422, not a crash.
"""

from __future__ import annotations

import struct

import pyarrow as pa

from service.api.errors import ApiError

__all__ = ["read_stream"]

_SCHEMA, _RECORD_BATCH = 1, 3
"""Arrow's MessageHeader union tags (format/Message.fbs)."""


class _Malformed(ValueError):
    pass


def _u32(buf: bytes, pos: int) -> int:
    if pos < 0 or pos + 4 > len(buf):
        raise _Malformed("offset out of range")
    return int(struct.unpack_from("<I", buf, pos)[0])


def _field(buf: bytes, table: int, index: int) -> int:
    """Absolute position of field `index` of the flatbuffer table at `table`, or 0 when absent."""
    if table < 0 or table + 4 > len(buf):
        raise _Malformed("table out of range")
    vtable = table - int(struct.unpack_from("<i", buf, table)[0])
    if vtable < 0 or vtable + 4 > len(buf):
        raise _Malformed("vtable out of range")
    size = int(struct.unpack_from("<H", buf, vtable)[0])
    slot = 4 + 2 * index
    if slot + 2 > size or vtable + slot + 2 > len(buf):
        return 0
    offset = int(struct.unpack_from("<H", buf, vtable + slot)[0])
    return table + offset if offset else 0


def _header(metadata: bytes) -> tuple[int, int, bool]:
    """(header type, rows, compressed) of one message's metadata."""
    root = _u32(metadata, 0)
    kind_at = _field(metadata, root, 1)
    kind = metadata[kind_at] if kind_at and kind_at < len(metadata) else 0
    if kind != _RECORD_BATCH:
        return kind, 0, False
    header_at = _field(metadata, root, 2)
    if not header_at:
        raise _Malformed("a record batch without its header")
    header = header_at + _u32(metadata, header_at)
    length_at = _field(metadata, header, 0)
    if length_at and length_at + 8 > len(metadata):
        raise _Malformed("length out of range")
    rows = int(struct.unpack_from("<q", metadata, length_at)[0]) if length_at else 0
    return kind, rows, bool(_field(metadata, header, 3))


def read_stream(body: bytes, max_rows: int) -> pa.Table:
    """The stream's record batches as one table; ApiError 413 beyond `max_rows`, 422 otherwise."""
    try:
        reader = pa.ipc.MessageReader.open_stream(pa.BufferReader(body))
        schema: pa.Schema | None = None
        batches: list[pa.RecordBatch] = []
        rows = 0
        while True:
            try:
                message = reader.read_next_message()
            except StopIteration:
                break
            kind, n, compressed = _header(message.metadata.to_pybytes())
            if kind == _SCHEMA and schema is None:
                schema = pa.ipc.read_schema(message)
                if len(set(schema.names)) != len(schema.names):
                    raise ApiError(422, "bad_schema", f"column names repeat: {schema.names}")
                continue
            if kind != _RECORD_BATCH or schema is None:
                raise _Malformed(f"unexpected {message.type} message (only a schema, then record batches)")
            if compressed:
                raise ApiError(422, "compressed", "send the stream uncompressed (write_ipc_stream's default)")
            rows += n
            if n < 0 or rows > max_rows:
                raise ApiError(
                    413,
                    "too_many_rows",
                    f"the batch holds more than {max_rows:,} rows (serve.max_ingest_rows); send smaller batches",
                )
            batch = pa.ipc.read_record_batch(message, schema)
            batch.validate(full=True)
            batches.append(batch)
        if schema is None:
            raise _Malformed("no schema message")
        return pa.Table.from_batches(batches, schema=schema)
    except (
        pa.ArrowException,
        OSError,
        ValueError,
        struct.error,
        IndexError,
    ) as exc:  # OSError, UnicodeDecodeError: pyarrow's too
        raise ApiError(422, "bad_arrow", f"the body is not an Arrow IPC stream ({exc})") from None
