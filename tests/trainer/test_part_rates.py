"""Per-part learning rates (trainer/part_rates.py): the encoder at its own peak rate, the rest at `learning_rate`."""
from __future__ import annotations

import os

import numpy as np
import pytest
import tensorflow as tf
import tf_keras as keras

from tests.helpers import write_examples
from trainer.config import TrainConfig
from trainer.part_rates import PartRateAdamW
from trainer.schedule import WarmupLinearDecay

STEPS, TOTAL, WARMUP, PEAK, SCALE = 6, 10, 2, 3e-3, 0.05
SETTINGS = dict(weight_decay=0.01, epsilon=1e-6, clipnorm=1.0)


def _gradients(seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    # Large enough that clipnorm 1.0 clips some of them: clipping must stay per variable.
    return [(rng.normal(size=(3, 4)) * 2, rng.normal(size=(4,)) * 0.1) for _ in range(STEPS)]


def _variables(name_prefix: str = ""):
    rng = np.random.default_rng(1)
    return (tf.Variable(rng.normal(size=(3, 4)).astype("float32"), name=f"{name_prefix}bert/layer/kernel"),
            tf.Variable(rng.normal(size=(4,)).astype("float32"), name=f"{name_prefix}head/kernel"))


def _part_rate_run(strategy: tf.distribute.Strategy) -> list[np.ndarray]:
    with strategy.scope():
        encoder, rest = _variables()
        optimizer = PartRateAdamW([encoder], SCALE, learning_rate=WarmupLinearDecay(PEAK, TOTAL, WARMUP), **SETTINGS)
        optimizer.build([encoder, rest])

    @tf.function
    def step(g_encoder, g_rest):
        strategy.run(lambda a, b: optimizer.apply_gradients([(a, encoder), (b, rest)]), args=(g_encoder, g_rest))

    for g_encoder, g_rest in _gradients():
        step(tf.constant(g_encoder, tf.float32), tf.constant(g_rest, tf.float32))
    return [encoder.numpy(), rest.numpy()]


def _two_adamw_run(encoder_peak: float) -> list[np.ndarray]:
    """The reference: one AdamW per part, each on its own variables, the encoder's at its own peak."""
    encoder, rest = _variables("reference/")
    for_encoder = keras.optimizers.AdamW(learning_rate=WarmupLinearDecay(encoder_peak, TOTAL, WARMUP), **SETTINGS)
    for_rest = keras.optimizers.AdamW(learning_rate=WarmupLinearDecay(PEAK, TOTAL, WARMUP), **SETTINGS)
    for g_encoder, g_rest in _gradients():
        for_encoder.apply_gradients([(tf.constant(g_encoder, tf.float32), encoder)])
        for_rest.apply_gradients([(tf.constant(g_rest, tf.float32), rest)])
    return [encoder.numpy(), rest.numpy()]


@pytest.mark.parametrize("distributed", [False, True], ids=["default_strategy", "mirrored"])
def test_one_adamw_with_a_rate_factor_is_two_adamw_over_the_two_parts(distributed):
    """Exactly the update two optimizers would make (moments, clipping and weight decay included),
    also through MirroredStrategy's distributed apply (replica copies, merge call)."""
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"]) if distributed else tf.distribute.get_strategy()
    encoder, rest = _part_rate_run(strategy)
    want_encoder, want_rest = _two_adamw_run(PEAK * SCALE)
    np.testing.assert_allclose(encoder, want_encoder, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(rest, want_rest, rtol=1e-5, atol=1e-7)
    # The factor changed something: at the shared peak the encoder ends elsewhere.
    same_rate_encoder, _ = _two_adamw_run(PEAK)
    assert np.abs(same_rate_encoder - want_encoder).max() > 1e-3


def test_a_non_positive_factor_is_refused():
    with pytest.raises(ValueError, match="rate_scale must be > 0"):
        PartRateAdamW([], 0.0, learning_rate=1e-3)


# Few steps: Adam's first steps already move each weight by about the rate.
TINY = {
    "epochs": 1, "steps_per_epoch": 4, "batch_size": 16, "vocab_size": 200, "seed": 3, "warm_start_epochs": 1,
    "bert": {"hidden_size": 16, "num_layers": 2, "num_heads": 2, "intermediate_size": 32, "max_seq_length": 16},
}


@pytest.fixture(scope="module")
def window(tmp_path_factory):
    """A tiny window and a model trained on it (at one rate: its hparams say so), the base below."""
    from trainer.task import fit

    tmp = tmp_path_factory.mktemp("part_rates")
    files = []
    for name, n, seed in (("train", 120, 0), ("eval", 30, 1)):
        write_examples(str(tmp / f"Split-{name}" / "data_tfrecord-00000-of-00001.gz"), n, seed)
        files.append(str(tmp / f"Split-{name}" / "*"))
    base = fit(TrainConfig.from_dict(TINY), [files[0]], [files[1]], str(tmp / "base-logs"), None)
    return files, base.as_base(), str(tmp / "base-logs" / "hparams")


def _moved(trained, base) -> dict[str, float]:
    after = {v.name: v.numpy() for v in trained.variables()}
    return {k: float(np.abs(after[k] - base.weights[k]).max()) for k in after
            if k in base.weights and after[k].shape == base.weights[k].shape}


def test_the_encoder_moves_at_its_own_rate_and_the_rest_at_learning_rate(window, tmp_path):
    """A warm-started partial update, encoder at 1/10 of the rest's rate (3e-4 against 3e-3, so
    1e-4 against the update's 1e-3). Adam moves a weight by at most about the rate per step (exactly
    the rate on its first), so over the update's steps the unfrozen encoder moves by at most ~the
    sum of its rates and the heads' steadiest weight by ~the sum of theirs: 10x apart. Encoder at
    the rest's rate, or at its own 3e-4 unscaled by the warm ratio, would move 10x or 3x more."""
    from trainer.task import fit

    (train_files, eval_files), base, base_hparams = window
    config = TrainConfig.from_dict({**TINY, "encoder_learning_rate": 3e-4, "warm_start_learning_rate": 1e-3,
                                    "update_mode": "partial"})
    log_dir = str(tmp_path / "logs")
    moved = _moved(fit(config, [train_files], [eval_files], log_dir, base), base)
    steps = TINY["steps_per_epoch"]
    schedule = WarmupLinearDecay(1e-3, steps, int(steps * config.warmup_fraction))
    rest_sum = float(sum(schedule(s) for s in range(steps)))
    encoder_sum = rest_sum * 3e-4 / 3e-3

    frozen = [k for k in moved if k.startswith("bert/embeddings/") or "/layer_0/" in k]
    assert frozen and all(moved[k] == 0.0 for k in frozen)
    trained_encoder = [k for k in moved if "/layer_1/" in k or "/pooler/" in k]
    encoder = max(moved[k] for k in trained_encoder)
    head = max(moved[k] for k in moved if k.startswith("head/"))
    assert 0 < encoder < 1.2 * encoder_sum, (encoder, encoder_sum)
    assert head > 0.5 * rest_sum, (head, rest_sum)
    assert _hparams(os.path.join(log_dir, "hparams"))["encoder_learning_rate"] == pytest.approx(3e-4)
    assert _hparams(base_hparams)["encoder_learning_rate"] == pytest.approx(TrainConfig().learning_rate)


def _hparams(directory: str) -> dict:
    """The hparams a run recorded, read back from its event file as TensorBoard reads them."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.plugins.hparams import metadata

    events = EventAccumulator(directory)
    events.Reload()
    content = events.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG]
    info = metadata.parse_session_start_info_plugin_data(content)
    return {k: v.number_value if v.HasField("number_value") else v.string_value for k, v in info.hparams.items()}


def test_an_encoder_rate_with_no_encoder_variable_to_train_is_refused(window):
    """Partial mode freezing every encoder layer of a mean-pooled encoder (no pooler) leaves no
    encoder variable to train: the rate would do nothing, so it is refused, naming the settings."""
    from trainer.task import fit

    (train_files, eval_files), _, _ = window
    config = TrainConfig.from_dict({**TINY, "encoder_learning_rate": 1e-4, "update_mode": "partial",
                                    "frozen_layers": 2, "bert": {**TINY["bert"], "pooling": "mean"}})
    with pytest.raises(ValueError, match="encoder_learning_rate 0.0001 is set, but no encoder variable is trained"):
        fit(config, [train_files], [eval_files], None, None)
