"""Replay: older window spans enter a training window as a stable, hash-decided sample."""
from __future__ import annotations

import os

import pytest
import tensorflow as tf

from tests.helpers import write_examples
from tfx_pipeline.components.span_window import copy_split

N_PER_FILE = 1500


def _records(pattern: str) -> list[bytes]:
    files = sorted(tf.io.gfile.glob(pattern))
    return list(tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator())


@pytest.fixture(scope="module")
def member(tmp_path_factory) -> dict:
    """One validated span as SpanWindow's index records it: two ExampleGen shards of the train split."""
    root = tmp_path_factory.mktemp("span")
    for shard in range(2):
        write_examples(str(root / "Split-train" / f"data_tfrecord-0000{shard}-of-00002.gz"), N_PER_FILE, seed=shard)
    return {"span": 20261101, "date": "2026-11-01", "examples_uri": str(root),
            "num_examples": {"train": 2 * N_PER_FILE}}


def _sample(member: dict, out, fraction: float, seed: int, salt: str = "") -> tuple[int, list[bytes]]:
    os.makedirs(out, exist_ok=True)
    kept = copy_split(member, "train", str(out), fraction, seed, salt)
    return kept, _records(os.path.join(out, "*"))


def _page(record: bytes) -> bytes:
    return tf.train.Example.FromString(record).features.feature["request_id"].bytes_list.value[0]


def test_replay_keeps_the_configured_share_of_an_older_span_in_whole_pages(member, tmp_path):
    source = _records(os.path.join(member["examples_uri"], "Split-train", "*"))
    kept, sample = _sample(member, tmp_path / "a", 0.25, seed=0)
    assert kept == len(sample)
    # Pages drawn Bernoulli(0.25): the count of pages kept is within 5 standard deviations.
    pages = {_page(r) for r in source}
    chosen_pages = {_page(r) for r in sample}
    assert abs(len(chosen_pages) - 0.25 * len(pages)) < 5 * (len(pages) * 0.25 * 0.75) ** 0.5
    assert set(sample) <= set(source)
    # A page is replayed whole or not at all: the listwise losses see no truncated pages.
    chosen = {_page(r) for r in sample}
    assert sorted(sample) == sorted(r for r in source if _page(r) in chosen)
    # Records are sampled independently of their shard: both shards are represented.
    firsts = set(_records(os.path.join(member["examples_uri"], "Split-train", "*00000-of-*")))
    assert 0 < len(set(sample) & firsts) < kept


def test_the_same_seed_replays_the_same_sample_and_another_seed_another(member, tmp_path):
    _, first = _sample(member, tmp_path / "a", 0.3, seed=0)
    _, again = _sample(member, tmp_path / "b", 0.3, seed=0)
    _, other = _sample(member, tmp_path / "c", 0.3, seed=1)
    assert first == again
    overlap = len(set(first) & set(other)) / len(first)
    assert 0.1 < overlap < 0.55  # independent samples of 30% of the pages overlap by about 30%


def test_each_update_replays_another_sample_of_an_older_span(member, tmp_path):
    """The pipeline salts the sample with the newest span: a rerun of one update replays the same
    pages, the next update others, so over updates an old span is replayed across all its pages."""
    _, update_a = _sample(member, tmp_path / "a", 0.5, seed=0, salt="20261105")
    _, rerun_a = _sample(member, tmp_path / "b", 0.5, seed=0, salt="20261105")
    _, update_b = _sample(member, tmp_path / "c", 0.5, seed=0, salt="20261106")
    assert update_a == rerun_a
    pages_a, pages_b = {_page(r) for r in update_a}, {_page(r) for r in update_b}
    assert 0.35 < len(pages_a & pages_b) / len(pages_a) < 0.65  # independent halves overlap by about half


def test_fraction_one_copies_every_shard_and_zero_replays_nothing(member, tmp_path):
    kept, everything = _sample(member, tmp_path / "all", 1.0, seed=0)
    assert kept == 2 * N_PER_FILE == len(everything)
    assert len(os.listdir(tmp_path / "all")) == 2
    kept, nothing = _sample(member, tmp_path / "none", 0.0, seed=0)
    assert kept == 0 and nothing == []


def test_a_span_without_the_split_names_the_span(member, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"span 2026-11-01: no eval examples"):
        copy_split(member, "eval", str(tmp_path), 1.0, seed=0)
