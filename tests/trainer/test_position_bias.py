"""Learning from position-biased logs: the position tower learns the examination curve from the
logs alone, and the served model neither takes a position nor depends on one."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf

from trainer import export
from trainer.config import TrainConfig
from trainer.model import examination_table
from trainer.task import train

TINY = {
    "epochs": 4, "batch_size": 40, "vocab_size": 200, "seed": 5, "learning_rate": 0.03,
    "bert": {"hidden_size": 16, "num_layers": 1, "num_heads": 2, "intermediate_size": 32, "max_seq_length": 16},
}
PAGE = 5


def _biased_log(path: str, pages: int, seed: int) -> None:
    """Pages of 5 equally attractive products in random order; shoppers click the top slots far
    more (P(click) = 0.6 / position), so everything the clicks say about order is position."""
    rng = np.random.default_rng(seed)
    titles = ["Nike running shoes", "Xiaomi 5g phone", "red phone case", "跑 鞋 男 run", "the red shoes"]
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tf.io.TFRecordWriter(path, options="GZIP") as writer:
        for page in range(pages):
            for position, t in enumerate(rng.permutation(len(titles)), start=1):
                clicked = int(rng.random() < 0.6 / position)
                values = {"query": "shoes", "title": titles[t], "brand": "b", "category": "c",
                          "product_id": f"p{t}", "request_id": f"r{page}", "user_id": "u1"}
                feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[v.encode()]))
                           for k, v in values.items()}
                feature["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[10.0]))
                for name, value in (("clicked", clicked), ("purchased", int(clicked and rng.random() < 0.3)),
                                    ("position", position)):
                    feature[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))
                writer.write(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    import tensorflow_text  # noqa: F401  (registers the tokenizer's ops for loading)

    tmp = tmp_path_factory.mktemp("position")
    _biased_log(str(tmp / "Split-train" / "data.gz"), 600, 0)
    _biased_log(str(tmp / "Split-eval" / "data.gz"), 60, 1)
    out = str(tmp / "model")
    train(TrainConfig.from_dict(TINY), [str(tmp / "Split-train" / "*")], [str(tmp / "Split-eval" / "*")], out,
          str(tmp / "logs"), base_model=None)
    return out


def test_the_tower_learns_that_lower_slots_are_examined_less(trained):
    logits = examination_table(export.load_base_model(trained).weights)
    examined = 1.0 / (1.0 + np.exp(-logits[1:PAGE + 1]))
    assert np.all(np.diff(examined) < 0), examined
    # The logged click rate falls 5x from slot 1 to slot 5; the tower carries most of that.
    assert examined[0] / examined[-1] > 2.0, examined


def test_serving_takes_no_position_and_scores_do_not_depend_on_one(trained):
    loaded = tf.saved_model.load(trained)
    signature = loaded.signatures["serving_default"]
    inputs = set(signature.structured_input_signature[1])
    assert "position" not in inputs
    assert inputs == {"query", "title", "brand", "category", "product_id", "price"}
    rows = {"query": ["shoes"] * 2, "title": ["Nike running shoes"] * 2, "brand": ["b"] * 2,
            "category": ["c"] * 2, "product_id": ["p0"] * 2, "price": [10.0, 10.0]}
    scores = signature(**{k: tf.constant(v) for k, v in rows.items()})["score"].numpy()
    # Equal up to float rounding: rows of one batch may take different vectorised paths in the matmuls.
    np.testing.assert_allclose(scores[0], scores[1], rtol=1e-6)
    # The products were equally attractive wherever they were shown: once position is explained
    # by the tower, the served scores of the five titles are close to one another.
    titles = ["Nike running shoes", "Xiaomi 5g phone", "red phone case", "跑 鞋 男 run", "the red shoes"]
    page = {"query": ["shoes"] * 5, "title": titles, "brand": ["b"] * 5, "category": ["c"] * 5,
            "product_id": [f"p{t}" for t in range(5)], "price": [10.0] * 5}
    served = signature(**{k: tf.constant(v) for k, v in page.items()})["score"].numpy()
    assert served.max() / served.min() < 1.5, served
