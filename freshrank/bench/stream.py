"""The bench's data: market spans written the way ExampleGen writes them.

Each span lands as `<root>/<date>/Split-{train,eval,test}/data_tfrecord-00000-of-00001.gz`
(GZIP tf.Examples), split by `request_id` 14/3/3 like the pipeline's ExampleGen, so whole
result pages stay in one split. The layout is what SpanWindow's `copy_split` reads, which
lets the bench assemble its windows (and replay samples) with the component's own code.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import os
from collections.abc import Callable

SPLITS = ("train", "eval", "test")
# ExampleGen's hash buckets in tfx_pipeline/pipeline.py: train 14, eval 3, test 3 of 20.
_BUCKETS = (("train", 14), ("eval", 3), ("test", 3))
# Held-out (eval and test) pages per train page: what reusing a span's held-out pages adds.
HELD_OUT_PER_TRAIN = sum(size for name, size in _BUCKETS if name != "train") / dict(_BUCKETS)["train"]
FILE_NAME = "data_tfrecord-00000-of-00001.gz"


@dataclasses.dataclass(frozen=True)
class StreamSpan:
    """One written span: where its splits are and how many examples each holds."""

    date: str
    uri: str
    num_examples: dict[str, int]

    def files(self, split: str) -> list[str]:
        return [os.path.join(self.uri, f"Split-{split}", "*")]

    def member(self) -> dict:
        """The span as a SpanWindow index entry (what `copy_split` takes)."""
        return {"span": self.date, "date": self.date, "examples_uri": self.uri,
                "num_examples": dict(self.num_examples)}


def split_of(request_id: str) -> str:
    """The split a result page falls in: a stable hash of its request_id into 20 buckets."""
    bucket = int.from_bytes(hashlib.blake2b(request_id.encode(), digest_size=8).digest(), "big") % 20
    for name, size in _BUCKETS:
        if bucket < size:
            return name
        bucket -= size
    raise AssertionError("unreachable")


def write_stream(root: str, start: datetime.date, days: int, requests_per_day: int, seed: int,
                 drift: str, progress: Callable[[str], None] | None = None) -> list[StreamSpan]:
    """Simulates `days` consecutive days of the shop (legacy ranking) and writes each as a span."""
    from freshrank.market import Market

    market = Market(seed=seed, market_start=start, drift=drift)
    spans = []
    for offset in range(days):
        day = start + datetime.timedelta(days=offset)
        rows = market.simulate_day_fields(day, requests_per_day)
        spans.append(write_span_records(os.path.join(root, day.isoformat()), day.isoformat(), rows))
        if progress is not None:
            progress(f"span {day.isoformat()}: {len(rows)} impressions")
    return spans


def write_span_records(uri: str, date: str, rows: list[list]) -> StreamSpan:
    """Market rows (SPAN_COLUMNS order) as GZIP tf.Example TFRecords, one file per split."""
    import tensorflow as tf

    counts = dict.fromkeys(SPLITS, 0)
    writers = {}
    try:
        for split in SPLITS:
            os.makedirs(os.path.join(uri, f"Split-{split}"), exist_ok=True)
            writers[split] = tf.io.TFRecordWriter(os.path.join(uri, f"Split-{split}", FILE_NAME),
                                                  options="GZIP")
        for row in rows:
            split = split_of(str(row[0]))
            writers[split].write(example_bytes(row))
            counts[split] += 1
    finally:
        for writer in writers.values():
            writer.close()
    return StreamSpan(date, uri, counts)


def example_bytes(row: list) -> bytes:
    """One market row (SPAN_COLUMNS order) as the tf.Example CsvExampleGen makes of its CSV line.

    Every column travels, typed as ExampleGen infers it: ids and text as bytes, `price` as float,
    `position`, `clicked` and `purchased` as int64.
    """
    import tensorflow as tf

    from freshrank.market import SPAN_COLUMNS

    feature = {}
    for name, value in zip(SPAN_COLUMNS, row, strict=True):
        if name == "price":
            feature[name] = tf.train.Feature(float_list=tf.train.FloatList(value=[float(value)]))
        elif name in _INT_COLUMNS:
            feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[int(value)]))
        else:
            feature[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=[str(value).encode("utf-8")]))
    return tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString()


_INT_COLUMNS = ("position", "clicked", "purchased")
