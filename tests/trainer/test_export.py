"""The export is a TF Serving servable: three signatures that agree, and what warm start reads back."""
import numpy as np
import pytest
import tensorflow as tf
from tensorflow.core.protobuf import saved_model_pb2

from tests.helpers import EXPORT_ROWS as ROWS
from trainer import export


@pytest.fixture
def exported(exported_ranker):
    """The session's shared export (tests/trainer/conftest.py): (path, Keras core model)."""
    return exported_ranker


def _examples():
    serialized = []
    for i in range(2):
        feature = {k: tf.train.Feature(bytes_list=tf.train.BytesList(value=[ROWS[k][i].encode()]))
                   for k in ("query", "title", "brand", "category", "product_id")}
        feature["price"] = tf.train.Feature(float_list=tf.train.FloatList(value=[ROWS["price"][i]]))
        serialized.append(tf.train.Example(features=tf.train.Features(feature=feature)).SerializeToString())
    return tf.constant(serialized)


def test_signatures_agree_and_carry_tf_serving_method_names(exported):
    path, _, _ = exported
    loaded = tf.saved_model.load(path)
    raw = {k: tf.constant(v) for k, v in ROWS.items()}
    score = loaded.signatures["serving_default"](**raw)["score"].numpy()
    regress = loaded.signatures["regress"](inputs=_examples())["outputs"].numpy()
    classify = loaded.signatures["classify"](inputs=_examples())
    np.testing.assert_allclose(score, regress, rtol=1e-6)
    np.testing.assert_allclose(classify["scores"].numpy()[:, 1], score, rtol=1e-6)
    assert classify["classes"].numpy().tolist() == [[b"0", b"1"], [b"0", b"1"]]
    assert ((score > 0) & (score < 1)).all()

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString(open(f"{path}/saved_model.pb", "rb").read())
    signatures = proto.meta_graphs[0].signature_def
    assert signatures["regress"].method_name == "tensorflow/serving/regress"
    assert signatures["classify"].method_name == "tensorflow/serving/classify"
    assert signatures["serving_default"].method_name == "tensorflow/serving/predict"
    assert set(signatures["serving_default"].inputs) == set(ROWS)


def test_served_score_is_what_the_trained_model_computes_eagerly(exported):
    """The signatures are traced without autograph (it made every export seconds slower); the
    servable must still compute exactly what the in-memory model computes in eager mode."""
    from trainer.model import Preprocessor, purchase_probability

    path, model, _ = exported
    base = export.load_base_model(path)
    raw = {k: tf.constant(v) for k, v in ROWS.items()}
    eager = purchase_probability(model(Preprocessor(base.config, base.vocabs)(raw), training=False), base.config)
    served = tf.saved_model.load(path).signatures["serving_default"](**raw)["score"]
    np.testing.assert_allclose(served.numpy(), eager.numpy(), rtol=1e-5, atol=1e-6)


def test_base_model_reads_back_weights_vocabularies_and_facts(exported):
    path, model, tower = exported
    base = export.load_base_model(path)
    assert base.vocabs.wordpiece[:4] == ["[PAD]", "[UNK]", "[CLS]", "[SEP]"]
    assert base.vocabs.ids["product_id"] == ["[UNK]", "p1"]
    assert base.vocabs.price_log_mean == 5.0 and base.facts == {"train_examples": 12}
    # The position tower is saved for the next warm start, though no signature reads it.
    assert set(base.weights) == {v.name for v in model.variables + tower.variables}
    assert any(name.startswith("position_bias/") for name in base.weights)
    # So is the evidence each id row has seen (trainer/row_evidence.py), which no signature reads either.
    assert {"product_id_evidence/embeddings:0", "brand_evidence/embeddings:0"} <= set(base.weights)
    for v in model.variables + tower.variables:
        np.testing.assert_array_equal(base.weights[v.name], v.numpy())


def test_a_foreign_model_is_refused_with_the_fix(tmp_path):
    with pytest.raises(ValueError, match="--from-scratch"):
        export.load_base_model(str(tmp_path))


def test_warmup_requests_ship_with_the_version(exported):
    from tensorflow_serving.apis import prediction_log_pb2

    path, _, _ = exported
    logs = []
    for record in tf.data.TFRecordDataset(f"{path}/assets.extra/tf_serving_warmup_requests"):
        log = prediction_log_pb2.PredictionLog()
        log.ParseFromString(record.numpy())
        logs.append(log)
    assert logs, "no warmup records"
    request = logs[0].predict_log.request
    assert set(request.inputs) == set(ROWS)
    assert request.model_spec.signature_name == "serving_default"
    # The recorded request must run on the servable as TF Serving would replay it.
    loaded = tf.saved_model.load(path)
    inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    scores = loaded.signatures["serving_default"](**{k: tf.constant(v) for k, v in inputs.items()})["score"]
    assert scores.shape[0] == len(inputs["query"])


@pytest.mark.parametrize("save_traces", [True, False])
def test_weights_read_back_from_versions_saved_with_and_without_keras_traces(tmp_path, save_traces):
    # Versions pushed before exports left out Keras' layer traces carry them; a warm start from
    # either kind must read the same weights, by variable name, without loading the SavedModel.
    import tf_keras as keras
    from tf_keras.src.saving.legacy.saved_model.utils import keras_option_scope

    inputs = keras.Input(shape=(3,))
    ranker = keras.Model(inputs, keras.layers.Dense(2, name="head")(keras.layers.Dense(4, name="hidden")(inputs)))
    module = tf.Module()
    module.ranker, module.other = ranker, tf.Variable([1.0], name="not_the_ranker")
    with keras_option_scope(save_traces=save_traces):
        tf.saved_model.save(module, str(tmp_path))
    weights = export.read_weights(str(tmp_path), children=("ranker",))
    assert set(weights) == {v.name for v in ranker.variables}
    for v in ranker.variables:
        np.testing.assert_array_equal(weights[v.name], v.numpy())
