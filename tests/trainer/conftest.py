"""One default-architecture export shared by tests/trainer/test_export.py and test_serving_ops.py.

Both only read it (its signatures, warmup records, weights, op types), and each export of the
default ranker costs ~10 s of tf.saved_model.save, so it is built once per session.
"""
from __future__ import annotations

import pytest

from tests.helpers import EXPORT_ROWS


@pytest.fixture(scope="session")
def exported_ranker(tmp_path_factory):
    """(export path, Keras core model, position tower): an untrained default TrainConfig ranker,
    warmup rows included."""
    from trainer import export
    from trainer import vocab as vocab_lib
    from trainer.config import TrainConfig
    from trainer.model import Preprocessor, Vocabularies, build_core, build_position_tower

    tmp = tmp_path_factory.mktemp("export")
    # The union of the two vocabularies the files used before they shared this export.
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "shoes", "phone", "跑", "鞋", "手", "机", "##s"]
    vocab_lib.write_lines(str(tmp / "src" / "vocab.txt"), words)
    ids = {"product_id": ["[UNK]", "p1"], "brand": ["[UNK]", "Nike"], "category": ["[UNK]", "shoes"]}
    vocabs = Vocabularies(str(tmp / "src" / "vocab.txt"), words, ids, 5.0, 1.5)
    config = TrainConfig()
    model = build_core(config, vocabs)
    tower = build_position_tower(config)
    out = str(tmp / "model")
    warmup = [{k: EXPORT_ROWS[k][i] for k in EXPORT_ROWS} for i in range(2)]
    export.export_ranker(Preprocessor(config, vocabs), model, out, config, vocabs, {"train_examples": 12},
                         warmup=warmup, tower=tower)
    return out, model, tower
