"""Line protocol from batches: escaping per the spec, precision, chunking, what cannot be sent.

The bytes are checked exactly here; that a real server parses them back to the same labels and
values is tests/integration/test_influx_victoriametrics.py."""

from __future__ import annotations

import polars as pl
import pytest

from telemetry.line_protocol import LineEncoder, escape_measurement, escape_tag, series_prefix
from telemetry.schema import Batch, Sample


def lines(encoder: LineEncoder, batch: Batch) -> list[str]:
    out = []
    for body in encoder.bodies(batch):
        assert body.endswith(b"\n")
        out.extend(body.decode().split("\n")[:-1])
    return out


def test_escaping_follows_the_spec() -> None:
    assert escape_measurement("a b,c=d") == "a\\ b\\,c=d"  # `=` needs no escape in a measurement
    assert escape_tag("a b,c=d") == "a\\ b\\,c\\=d"
    assert escape_tag("back\\slash") == "back\\\\slash"
    assert escape_tag("two\nlines\r") == "two\\nlines\\r"
    assert escape_tag('quote"d') == 'quote"d'


def test_tags_sorted_and_empty_values_left_out() -> None:
    assert series_prefix("m", '{"z":"1","a":"x y","e":""}') == "m,a=x\\ y,z=1"
    assert series_prefix("m", "{}") == "m"


def test_one_line_per_sample_with_the_value_field_and_exact_floats() -> None:
    values = [0.1 + 0.2, 1e20, -0.0, 1.5e-7, 2.0**53 + 2]
    batch = Batch.from_samples(
        Sample("m", v, {"host": "n1"}, 1_700_000_000_123_456_789 + i) for i, v in enumerate(values)
    )
    got = lines(LineEncoder(), batch)
    assert got[0] == "m,host=n1 value=0.30000000000000004 1700000000123456789"
    assert [float(line.split(" ")[1].removeprefix("value=")) for line in got] == values  # shortest round trip


@pytest.mark.parametrize(
    ("precision", "stamp"),
    [("ns", "1700000000123456789"), ("us", "1700000000123456"), ("ms", "1700000000123"), ("s", "1700000000")],
)
def test_timestamp_precision(precision: str, stamp: str) -> None:
    batch = Batch.from_samples([Sample("m", 1.0, {}, 1_700_000_000_123_456_789)])
    assert lines(LineEncoder(precision), batch) == [f"m value=1.0 {stamp}"]  # type: ignore[arg-type]


def test_bodies_are_chunked_in_order() -> None:
    batch = Batch.from_samples(Sample("m", float(i), {"k": str(i % 3)}, i) for i in range(10))
    bodies = list(LineEncoder(lines_per_body=4).bodies(batch))
    assert [b.count(b"\n") for b in bodies] == [4, 4, 2]
    assert [line.rsplit(" ", 1)[1] for body in bodies for line in body.decode().splitlines()] == [
        str(i) for i in range(10)
    ]


def test_a_scrape_at_one_instant_carries_it_on_every_line_of_every_body() -> None:
    batch = Batch.from_samples(Sample("m", float(i), {"k": str(i)}, 1_700_000_000_987_654_321) for i in range(7))
    bodies = list(LineEncoder("ms", lines_per_body=3).bodies(batch))
    got = [line for body in bodies for line in body.decode().splitlines()]
    assert [b.count(b"\n") for b in bodies] == [3, 3, 1]
    assert got == [f"m,k={i} value={float(i)} 1700000000987" for i in range(7)]


def test_nan_and_infinity_are_left_out_and_counted() -> None:
    encoder = LineEncoder()
    batch = Batch.from_samples(
        [Sample("m", float("nan"), {}, 1), Sample("m", float("inf"), {}, 2), Sample("m", 1.0, {}, 3)]
    )
    assert lines(encoder, batch) == ["m value=1.0 3"]
    assert encoder.skipped_samples == 2
    assert list(encoder.bodies(Batch.from_samples([Sample("m", float("nan"), {}, 1)]))) == []


def test_a_sample_without_a_value_or_a_timestamp_is_left_out_and_counted() -> None:
    encoder = LineEncoder()
    frame = pl.DataFrame(
        {"metric": ["m", "m", "m"], "labels": ["{}", "{}", "{}"], "value": [None, 2.0, 3.0], "ts_ns": [1, None, 3]},
        schema={"metric": pl.String, "labels": pl.String, "value": pl.Float64, "ts_ns": pl.Int64},
    )
    assert lines(encoder, Batch(frame)) == ["m value=3.0 3"]
    assert encoder.skipped_samples == 2


def test_the_prefix_cache_is_bounded() -> None:
    encoder = LineEncoder(cache_series=5)
    for start in range(0, 40, 4):
        batch = Batch.from_samples(Sample("m", 1.0, {"k": str(i)}, i) for i in range(start, start + 4))
        assert lines(encoder, batch)[0] == f"m,k={start} value=1.0 {start}"
        assert encoder.cached_series <= 5


def test_a_repeated_series_set_reuses_its_prefixes_and_new_series_are_added() -> None:
    encoder = LineEncoder()
    first = Batch.from_samples(Sample("m", float(i), {"k": str(i)}, i) for i in range(3))
    again = Batch.from_samples(Sample("m", float(i) + 0.5, {"k": str(i)}, 10 + i) for i in range(3))
    grown = Batch.from_samples(Sample("m", 1.0, {"k": str(i)}, 20) for i in (2, 9, 0))
    assert lines(encoder, first) == ["m,k=0 value=0.0 0", "m,k=1 value=1.0 1", "m,k=2 value=2.0 2"]
    assert lines(encoder, again) == ["m,k=0 value=0.5 10", "m,k=1 value=1.5 11", "m,k=2 value=2.5 12"]
    assert lines(encoder, grown) == ["m,k=2 value=1.0 20", "m,k=9 value=1.0 20", "m,k=0 value=1.0 20"]
    assert encoder.cached_series == 4


def test_a_hash_collision_in_the_cache_cannot_mislabel_a_series() -> None:
    encoder = LineEncoder(templates=0)  # through the hashed cache, not a reused series set
    list(encoder.bodies(Batch.from_samples([Sample("m", 1.0, {"k": "a"}, 1)])))
    encoder._cache = encoder._cache.with_columns(labels=pl.lit('{"k":"other"}'), prefix=pl.lit("wrong value="))
    assert lines(encoder, Batch.from_samples([Sample("m", 2.0, {"k": "a"}, 2)])) == ["m,k=a value=2.0 2"]


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="precision"):
        LineEncoder("h")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="lines_per_body"):
        LineEncoder(lines_per_body=0)


def test_templates_are_bounded_in_rows_too() -> None:
    encoder = LineEncoder(cache_series=10)
    for start in range(0, 60, 6):
        batch = Batch.from_samples(Sample("m", 1.0, {"k": str(i)}, i) for i in range(start, start + 6))
        assert lines(encoder, batch)[-1] == f"m,k={start + 5} value=1.0 {start + 5}"
        assert encoder._template_rows <= 10 and sum(t[0].len() for t in encoder._templates.values()) <= 10
