"""SpanWindow: gate the new span, then assemble the rolling training window and the blessing data.

Why a component and not a Resolver: ExampleGen ingests one span per run, and the Kubeflow V2
compiler rejects every Resolver but the latest-artifact ones, so a window built from
SpanRangeStrategy would not compile. This component keeps a small index of validated spans
(JSON files next to the pipeline root, any filesystem TF can write) and materialises the
window as ONE Examples artifact: `Split-train` holds the newest span's training examples
plus the older window spans' (all of them, or a replayed sample) and, with `reuse_holdout`, the
previous span's eval and test pages (`assemble_train`), `Split-eval` holds the
newest span's eval split for early stopping, and `Split-test` the newest span's test split (with
`bless_on_eval_pages`, its eval and test splits) with inverse-propensity weights
(tfx_pipeline/ips_split.py), which the Evaluator blesses on; the
curve behind them is fitted to the window's whole train splits (not the replay sample) and its
first entries are recorded as the artifact's `ips_curve`. Trainer reads only train and eval. It
runs the same under every orchestrator.

It is also the data gate: the span's statistics are checked against the schema and the
previous validated span's statistics (drift comparators), and its clicks and purchases must still
fall with position as the previous span's do (tfx_pipeline/label_check.py: labels joined to the
wrong rows keep every statistic TFDV sees); any problem raises DataRejected, so nothing downstream
(training, evaluation, push) runs on bad data.
"""

import hashlib
import json
import os

import tensorflow as tf
from tfx.components.statistics_gen import stats_artifact_utils
from tfx.components.util import examples_utils
from tfx.dsl.component.experimental.annotations import InputArtifact, OutputArtifact, Parameter
from tfx.dsl.component.experimental.decorators import component
from tfx.types import artifact_utils
from tfx.types.standard_artifacts import Examples, ExampleStatistics, Schema
from tfx.utils import io_utils

from tfx_pipeline import data_gate, ips_split, label_check, span_index
from tfx_pipeline.spans import DAY, Span
from trainer import propensity
from trainer.config import CLICK_KEY, GROUP_KEY, LABEL_KEY, POSITION_KEY

TRAIN, EVAL, TEST = "train", "eval", "test"


@component
def SpanWindow(  # noqa: N802 (TFX component names are classes)
    examples: InputArtifact[Examples],
    statistics: InputArtifact[ExampleStatistics],
    schema: InputArtifact[Schema],
    window: OutputArtifact[Examples],
    index_dir: Parameter[str],
    window_size: Parameter[int] = 7,
    replay_fraction: Parameter[float] = 1.0,
    seed: Parameter[int] = 0,
    label_position_check: Parameter[int] = 1,
    interval: Parameter[str] = DAY,
    reuse_holdout: Parameter[int] = 0,
    bless_on_eval_pages: Parameter[int] = 0,
) -> None:
    span = int(examples.get_int_custom_property("span"))
    day = Span(span, interval).isoformat()  # `2026-11-01`, or `2026-11-01T13` for an hourly span
    schema_proto = io_utils.SchemaReader().read(io_utils.get_only_uri_in_dir(schema.uri))
    index = SpanIndex(index_dir)
    previous = index.previous(span)
    problems: list[data_gate.Problem] = []
    for split in artifact_utils.decode_split_names(examples.split_names):
        stats = stats_artifact_utils.load_statistics(statistics, split).proto()
        prev_stats = None
        if previous is not None and split == TRAIN:
            prev_artifact_uri = previous["statistics_uri"]
            prev_stats = _load_stats_from_uri(prev_artifact_uri, split)
        problems += data_gate.check_split(stats, schema_proto, day, split, prev_stats)
    if label_position_check and previous is not None and not problems:
        problems += _label_problems(examples.uri, previous, day)
    if problems:
        raise data_gate.DataRejected(problems)

    counts = {
        split: _num_examples(stats_artifact_utils.load_statistics(statistics, split).proto())
        for split in artifact_utils.decode_split_names(examples.split_names)
    }
    index.record(span, day, examples.uri, statistics.uri, counts)
    members = index.window(span, window_size)

    train_dir = os.path.join(window.uri, f"Split-{TRAIN}")
    eval_dir = os.path.join(window.uri, f"Split-{EVAL}")
    tf.io.gfile.makedirs(train_dir)
    tf.io.gfile.makedirs(eval_dir)
    train_examples = assemble_train(members, train_dir, replay_fraction, bool(reuse_holdout), seed, salt=str(span))
    eval_examples = copy_split(index.get(span), EVAL, eval_dir, 1.0, seed)
    curve = ips_split.estimate_curve([path for member in members for path in _split_files(member, TRAIN)])
    test_dir = os.path.join(window.uri, f"Split-{TEST}")
    tf.io.gfile.makedirs(test_dir)
    blessed_on = [EVAL, TEST] if bless_on_eval_pages else [TEST]
    test_examples = ips_split.write_weighted_split(
        [path for split in blessed_on for path in _split_files(index.get(span), split)],
        os.path.join(test_dir, f"{day}-ips.gz"), curve)

    window.split_names = artifact_utils.encode_split_names([TRAIN, EVAL, TEST])
    window.span = span
    examples_utils.set_payload_format(window, examples_utils.get_payload_format(examples))
    window.set_json_value_custom_property("window_spans", [m["date"] for m in members])
    window.set_int_custom_property("train_examples", train_examples)
    window.set_int_custom_property("eval_examples", eval_examples)
    window.set_float_custom_property("replay_fraction", float(replay_fraction))
    window.set_int_custom_property("reuse_holdout", int(bool(reuse_holdout)))
    window.set_int_custom_property("test_examples", test_examples)
    window.set_json_value_custom_property("test_splits", blessed_on)
    window.set_json_value_custom_property("ips_curve", [round(float(v), 4) for v in curve[:ips_split.CURVE_ENTRIES]])
    window.set_float_custom_property("ips_max_weight", float(propensity.MAX_WEIGHT))


class SpanIndex:
    """One JSON file per validated span (tfx_pipeline/span_index.py); the newest write wins."""

    def __init__(self, directory: str):
        self.directory = directory
        tf.io.gfile.makedirs(directory)

    def _path(self, span: int) -> str:
        return span_index.entry_path(self.directory, span)

    def all(self) -> list[dict]:
        return [entry for _, entry in span_index.read_entries(self.directory, tf.io.gfile.listdir, tf.io.gfile.GFile)]

    def get(self, span: int) -> dict:
        with tf.io.gfile.GFile(self._path(span)) as f:
            return json.load(f)

    def previous(self, span: int) -> dict | None:
        older = [e for e in self.all() if e["span"] < span]
        return older[-1] if older else None

    def record(self, span: int, day: str, examples_uri: str, statistics_uri: str, counts: dict) -> None:
        entry = {"span": span, "date": day, "examples_uri": examples_uri,
                 "statistics_uri": statistics_uri, "num_examples": counts}
        tmp = self._path(span) + ".tmp"
        with tf.io.gfile.GFile(tmp, "w") as f:
            f.write(json.dumps(entry, sort_keys=True))
        tf.io.gfile.rename(tmp, self._path(span), overwrite=True)

    def window(self, span: int, size: int) -> list[dict]:
        return [e for e in self.all() if e["span"] <= span][-size:]


def _label_problems(examples_uri: str, previous: dict, day: str) -> list[data_gate.Problem]:
    """The label gate (tfx_pipeline/label_check.py): the span's train labels against the previous span's."""
    dtypes = {POSITION_KEY: tf.int64, CLICK_KEY: tf.int64, LABEL_KEY: tf.int64}
    new = ips_split.read_columns(_files_under(os.path.join(examples_uri, f"Split-{TRAIN}"), day, TRAIN), dtypes)
    old = ips_split.read_columns(_split_files(previous, TRAIN), dtypes)
    problems = []
    for column in (CLICK_KEY, LABEL_KEY):
        evidence = label_check.evidence(column, new[POSITION_KEY], new[column], old[POSITION_KEY], old[column])
        if evidence.flat:
            problems.append(data_gate.Problem(day, TRAIN, column, evidence.describe()))
    return problems


def _load_stats_from_uri(statistics_uri: str, split: str):
    artifact = ExampleStatistics()
    artifact.uri = statistics_uri
    artifact.split_names = artifact_utils.encode_split_names([split])
    return stats_artifact_utils.load_statistics(artifact, split).proto()


def _num_examples(stats) -> int:
    return int(stats.datasets[0].num_examples) if stats.datasets else 0


def assemble_train(members: list[dict], out_dir: str, replay_fraction: float, reuse_holdout: bool, seed: int,
                   salt: str = "") -> int:
    """Writes a window's training split: `members` oldest first, the newest last; returns its records.

    The newest span's train pages enter whole, each older span's at `replay_fraction`. With
    `reuse_holdout` the older spans' eval and test pages train too: the previous span's whole
    (they held out that span's early stopping and blessing, which are done, and no served model
    has learned from them: 30% more new pages for an update), older ones at `replay_fraction`
    like their train pages (the previous updates already learned from them). The previous span's
    held-out pages never outnumber the newest span's train pages (a sample of them when they
    would, as after a large backfilled history): the update stays about the newest span. The
    bench assembles its windows here too, so what it measures is what the pipeline trains on.
    """
    total = 0
    for position, member in enumerate(members):
        newest, previous = position == len(members) - 1, position == len(members) - 2
        fraction = 1.0 if newest else replay_fraction
        if fraction > 0.0:  # an older span with no replay share is not read at all
            total += copy_split(member, TRAIN, out_dir, fraction, seed, salt)
        if newest or not reuse_holdout:
            continue  # the newest span's held-out pages still hold out its early stopping and blessing
        held = _held_out_share(member, members[-1]) if previous else replay_fraction
        if held > 0.0:
            for split in (EVAL, TEST):
                total += copy_split(member, split, out_dir, held, seed, salt)
    return total


def _held_out_share(previous: dict, newest: dict) -> float:
    """The share of the previous span's held-out pages an update reuses: all of them, unless they
    outnumber the newest span's train pages."""
    held_out = sum(int(previous["num_examples"].get(split, 0)) for split in (EVAL, TEST))
    newest_train = int(newest["num_examples"].get(TRAIN, 0))
    return 1.0 if held_out <= newest_train else newest_train / held_out


def copy_split(member: dict, split: str, out_dir: str, fraction: float, seed: int, salt: str = "") -> int:
    """Copies (fraction 1) or samples one span's split into the window; returns the records kept.

    The sample is keyed by `seed` and `salt` (the pipeline passes the newest span), so a rerun of
    the same update replays the same pages and the next update replays another sample: over
    successive updates an old span is replayed across all its pages, not the same share again.
    """
    files = _split_files(member, split)
    # Several splits of one span may land in one folder (held-out pages reused for training).
    stem = member["date"] if split == TRAIN else f"{member['date']}-{split}"
    if fraction >= 1.0:
        for i, path in enumerate(files):
            tf.io.gfile.copy(path, os.path.join(out_dir, f"{stem}-{i:05d}.gz"), overwrite=True)
        return int(member["num_examples"].get(split, 0))
    kept = 0
    target = os.path.join(out_dir, f"{stem}-replay.gz")
    with tf.io.TFRecordWriter(target, options="GZIP") as writer:
        for record in tf.data.TFRecordDataset(files, compression_type="GZIP").as_numpy_iterator():
            # A keyed hash of the record's result page decides: a page is replayed whole or not at
            # all (the listwise losses need whole pages), and the same sample on every rerun.
            digest = hashlib.blake2b(_page_key(record), digest_size=8, key=f"{seed}:{salt}".encode()).digest()
            if int.from_bytes(digest, "big") / 2**64 < fraction:
                writer.write(record)
                kept += 1
    return kept


def _page_key(record: bytes) -> bytes:
    """The record's `request_id` (its result page); the record itself when it has none."""
    values = tf.train.Example.FromString(record).features.feature[GROUP_KEY].bytes_list.value
    return values[0] if values else record


def _split_files(member: dict, split: str) -> list[str]:
    return _files_under(os.path.join(member["examples_uri"], f"Split-{split}"), member["date"], split)


def _files_under(source: str, day: str, split: str) -> list[str]:
    files = sorted(tf.io.gfile.glob(os.path.join(source, "*")))
    if not files:
        raise FileNotFoundError(f"span {day}: no {split} examples under {source}")
    return files
