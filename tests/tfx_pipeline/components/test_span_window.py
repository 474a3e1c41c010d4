"""Window assembly: older spans replayed as a stable, hash-decided sample; held-out pages reused."""
from __future__ import annotations

import os

import pytest
import tensorflow as tf

from tests.helpers import write_examples
from tfx_pipeline.components.span_window import assemble_train, copy_split

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


SPLIT_SIZES = {"train": 140, "eval": 30, "test": 30}


@pytest.fixture(scope="module")
def three_spans(tmp_path_factory) -> list[dict]:
    """Three validated spans, oldest first, each with its own train, eval and test records."""
    members = []
    for day in range(3):
        root = tmp_path_factory.mktemp(f"day{day}")
        for k, (split, n) in enumerate(SPLIT_SIZES.items()):
            write_examples(str(root / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"), n, seed=10 * day + k)
        members.append({"span": 20261101 + day, "date": f"2026-11-0{day + 1}", "examples_uri": str(root),
                        "num_examples": dict(SPLIT_SIZES)})
    return members


def _split_records(member: dict, split: str) -> list[bytes]:
    return _records(os.path.join(member["examples_uri"], f"Split-{split}", "*"))


@pytest.mark.parametrize("replay", [0.0, 0.5])
def test_the_previous_spans_held_out_pages_train_whole_and_older_ones_at_the_replay_share(three_spans, tmp_path,
                                                                                            replay):
    older, previous, newest = three_spans
    out = tmp_path / "train"
    os.makedirs(out)
    written = assemble_train(three_spans, str(out), replay, reuse_holdout=True, seed=0, salt="20261103")
    window = _records(str(out / "*"))
    assert written == len(window)
    # The newest span's train pages and the previous span's eval and test pages, every one of them;
    # never the newest span's own held-out pages (its early stopping and blessing still need them).
    for records in (_split_records(newest, "train"), _split_records(previous, "eval"),
                    _split_records(previous, "test")):
        assert set(records) <= set(window)
    assert not set(_split_records(newest, "eval")) & set(window)
    assert not set(_split_records(newest, "test")) & set(window)
    # Older spans at the replay share, held-out pages included: the earlier updates learned from those.
    older_pages = [r for split in SPLIT_SIZES for r in _split_records(older, split)]
    kept_older = set(older_pages) & set(window)
    previous_train = set(_split_records(previous, "train")) & set(window)
    if replay == 0.0:
        assert not kept_older and not previous_train
        assert written == SPLIT_SIZES["train"] + SPLIT_SIZES["eval"] + SPLIT_SIZES["test"]
    else:
        assert 0 < len(kept_older) < len(older_pages)
        assert 0 < len(previous_train) < SPLIT_SIZES["train"]


def test_without_reuse_the_window_is_the_newest_train_split_and_the_replay_sample(three_spans, tmp_path):
    out = tmp_path / "train"
    os.makedirs(out)
    written = assemble_train(three_spans, str(out), 0.0, reuse_holdout=False, seed=0)
    assert written == SPLIT_SIZES["train"]
    assert sorted(_records(str(out / "*"))) == sorted(_split_records(three_spans[-1], "train"))


def test_a_first_span_has_no_held_out_pages_to_reuse(three_spans, tmp_path):
    out = tmp_path / "train"
    os.makedirs(out)
    assert assemble_train(three_spans[:1], str(out), 1.0, reuse_holdout=True, seed=0) == SPLIT_SIZES["train"]


def test_the_previous_spans_held_out_pages_never_outnumber_the_newest_spans_train_pages(three_spans, tmp_path):
    """After a large span (a backfilled history, a busy hour), a sample of its held-out pages, in
    whole pages, about as many as the newest span's train pages: the update stays about the newest span."""
    previous, newest = three_spans[1], three_spans[2]
    large = dict(previous, num_examples={"train": 140, "eval": 300, "test": 300})
    root = tmp_path / "large"
    for k, split in enumerate(("train", "eval", "test")):
        n = large["num_examples"][split]
        write_examples(str(root / f"Split-{split}" / "data_tfrecord-00000-of-00001.gz"), n, seed=50 + k)
    large["examples_uri"] = str(root)
    out = tmp_path / "train"
    os.makedirs(out)
    written = assemble_train([large, newest], str(out), 0.0, reuse_holdout=True, seed=0, salt="20261103")
    reused_rows = written - newest["num_examples"]["train"]
    assert written == len(_records(str(out / "*")))
    # The fixture's eval and test files share their page ids (r0..r59, 5 rows each), so the page-keyed
    # sample takes k of 60 ids in both: 10 k rows, k ~ Binomial(60, 140 / 600), within 5 standard deviations.
    share = 140 / 600
    assert reused_rows % 10 == 0 and 0 < reused_rows < 600
    assert abs(reused_rows / 10 - 60 * share) < 5 * (60 * share * (1 - share)) ** 0.5
    assert set(_split_records(newest, "train")) <= set(_records(str(out / "*")))
    # Spans of equal size reuse every held-out page (the fixture's 60 against 140 train pages).
    os.makedirs(tmp_path / "equal")
    assert assemble_train(three_spans[1:], str(tmp_path / "equal"), 0.0, reuse_holdout=True, seed=0) == 200
