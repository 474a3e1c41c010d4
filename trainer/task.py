"""The TFX Trainer entry point (`run_fn`): fit the ranker on the window, warm-started when it can be.

Order of decisions: the base model (the latest blessed one) fixes the architecture, the
WordPiece vocabulary and the price normalisation; the window only adds new id rows. Without a
base model the architecture comes from the config and the vocabulary from the pretrained
checkpoint, or is learned from this window and frozen from then on.
"""
from __future__ import annotations

import dataclasses
import json
import logging
import os
import shutil
import sys
import tempfile
import time

import tensorflow as tf
import tf_keras as keras

from trainer import data, export
from trainer import vocab as vocab_lib
from trainer.config import ID_FEATURES, TrainConfig
from trainer.distribution import is_chief, make_strategy
from trainer.model import Preprocessor, Vocabularies, apply_update_mode, build_core, skip_autograph
from trainer.schedule import WarmupLinearDecay
from trainer.warm_start import restore_weights

CUSTOM_CONFIG_KEY = "freshrank_train_config"
# TF Serving replays warmup requests against the version it is loading; the name is informational.
MODEL_NAME_KEY = "freshrank_model_name"
WARMUP_ROWS = 10
log = logging.getLogger("freshrank.trainer")


def run_fn(fn_args) -> None:
    """TFX generic Trainer hook; see `train` for the work."""
    raw = (fn_args.custom_config or {}).get(CUSTOM_CONFIG_KEY, "{}")
    config = TrainConfig.from_json(raw) if isinstance(raw, str) else TrainConfig.from_dict(raw)
    train(
        config=config,
        train_files=list(fn_args.train_files),
        eval_files=list(fn_args.eval_files),
        serving_model_dir=fn_args.serving_model_dir,
        log_dir=fn_args.model_run_dir,
        base_model=fn_args.base_model,
        model_name=(fn_args.custom_config or {}).get(MODEL_NAME_KEY, "ranker"),
    )


def train(
    config: TrainConfig,
    train_files: list[str],
    eval_files: list[str],
    serving_model_dir: str,
    log_dir: str,
    base_model: str | None,
    model_name: str = "ranker",
) -> dict:
    """Trains and exports one model; returns the facts also written into the export's model.json."""
    started = time.time()
    keras.backend.clear_session()  # several updates in one process must not share Keras state
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.distribution, config.tpu_address)
    window = data.scan(train_files)
    base = export.load_base_model(base_model) if base_model else None
    if base is not None:
        # The architecture and the text side are frozen by the model being continued.
        config = _continue_config(base.config, config)
    elif config.init_checkpoint:
        from trainer.checkpoint import read_bert_config

        config = dataclasses.replace(
            config, bert=read_bert_config(config.init_checkpoint, config.bert.max_seq_length)
        )
    scratch = tempfile.mkdtemp(prefix="freshrank-vocab-")  # the vocab file until export copies it
    vocabs = _vocabularies(config, window, base, scratch)

    with strategy.scope():
        model = skip_autograph(build_core(config, vocabs))
        report = restore_weights(model, base.weights, base.vocabs, vocabs) if base else None
        if base is None and config.init_checkpoint:
            from trainer.checkpoint import load_encoder_weights

            load_encoder_weights(model, config.init_checkpoint)
        trainable = apply_update_mode(model, config)
        steps_per_epoch = config.steps_per_epoch or max(1, window.num_examples // config.batch_size)
        total = steps_per_epoch * config.epochs
        peak = config.warm_start_learning_rate if base else config.learning_rate
        schedule = WarmupLinearDecay(peak, total, int(total * config.warmup_fraction))
        optimizer = keras.optimizers.AdamW(
            learning_rate=schedule, weight_decay=config.weight_decay, epsilon=1e-6, clipnorm=1.0
        )
        optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias"])
        model.compile(
            optimizer=optimizer,
            loss={"purchase_logit": _purchase_loss(config), "click_logit": _bce()},
            loss_weights={"purchase_logit": 1.0, "click_logit": config.click_loss_weight},
            metrics={"purchase_logit": [keras.metrics.AUC(name="auc", from_logits=True)]},
        )

    preprocessor = Preprocessor(config, vocabs)
    train_ds = data.make_dataset(train_files, config.batch_size, shuffle=True, seed=config.seed, repeat=True)
    if config.distill_weight > 0 and base is not None:
        train_ds = _with_soft_labels(train_ds, base.path, config.distill_weight)
    train_ds = train_ds.map(lambda x, y: (preprocessor(x), y), num_parallel_calls=tf.data.AUTOTUNE)
    eval_ds = data.make_dataset(
        eval_files, config.batch_size, shuffle=False, seed=config.seed, preprocess=preprocessor
    )
    callbacks = [
        keras.callbacks.EarlyStopping(
            monitor="val_purchase_logit_auc", mode="max", patience=config.early_stopping_patience,
            restore_best_weights=True,
        ),
        keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=50, profile_batch=0, write_graph=False),
    ]
    fit_started = time.time()
    history = model.fit(
        train_ds,
        validation_data=eval_ds,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    train_seconds = time.time() - fit_started
    facts = {
        "train_examples": window.num_examples,
        "examples_processed": len(history.epoch) * steps_per_epoch * config.batch_size,
        "epochs_run": len(history.epoch),
        "train_seconds": round(train_seconds, 3),
        "total_seconds": round(time.time() - started, 3),
        "warm_started": base is not None,
        "base_model": base.path if base else None,
        "trainable_parameters": trainable,
        "total_parameters": int(model.count_params()),
        "update_mode": config.update_mode,
        "new_ids": report.new_ids if report else {f: len(vocabs.ids[f]) for f in ID_FEATURES},
        "val_auc": _last(history.history.get("val_purchase_logit_auc")),
        "best_val_auc": max(history.history.get("val_purchase_logit_auc", [float("nan")])),
    }
    chief = is_chief()
    if chief:  # workers share the run's log dir; one hparams entry and facts.json per run
        _log_hparams(log_dir, config, facts)
    # Every worker saves (saving may run collectives); only the chief's export is kept.
    target = serving_model_dir if chief else tempfile.mkdtemp(prefix="freshrank-worker-")
    export.export_ranker(preprocessor, model, target, config, vocabs, facts,
                         warmup=_warmup_rows(eval_files), model_name=model_name)
    if not chief:
        shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(scratch, ignore_errors=True)  # the export holds its own copy in assets/
    log.info("trained on %d examples in %.1fs; exported to %s", window.num_examples, train_seconds, target)
    return facts


def _continue_config(base: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """Keeps the base model's architecture; takes the optimisation settings from this run."""
    frozen = {"bert", "id_embedding_dim", "head_hidden_size", "vocab_size", "init_checkpoint"}
    changed = [k for k in frozen if getattr(base, k) != getattr(requested, k)]
    if changed:
        log.warning("warm start keeps the base model's %s; pass --from-scratch to change them", changed)
    return dataclasses.replace(requested, **{k: getattr(base, k) for k in frozen})


def _vocabularies(config: TrainConfig, window: data.WindowScan, base, work_dir: str) -> Vocabularies:
    if base is not None:
        ids = {
            f: vocab_lib.grow_id_vocab(base.vocabs.ids[f], window.id_counts[f], config.max_ids_per_feature)
            for f in ID_FEATURES
        }
        vocab_path = _local_copy(base.vocabs.wordpiece, work_dir)
        return Vocabularies(vocab_path, base.vocabs.wordpiece, ids, base.vocabs.price_log_mean,
                            base.vocabs.price_log_std)
    if config.init_checkpoint:
        from trainer.checkpoint import read_checkpoint_vocab

        wordpiece = read_checkpoint_vocab(config.init_checkpoint)
    else:
        wordpiece = vocab_lib.learn_wordpiece_vocab(window.texts, config.vocab_size)
    vocab_lib.check_bert_vocab(wordpiece, "in use")
    ids = {
        f: vocab_lib.grow_id_vocab(["[UNK]"], window.id_counts[f], config.max_ids_per_feature)
        for f in ID_FEATURES
    }
    return Vocabularies(_local_copy(wordpiece, work_dir), wordpiece, ids, window.price_log_mean,
                        window.price_log_std)


def _local_copy(wordpiece: list[str], work_dir: str) -> str:
    # The file must be named vocab.txt: it becomes the SavedModel asset assets/vocab.txt.
    path = os.path.join(work_dir, "vocab.txt")
    vocab_lib.write_lines(path, wordpiece)
    return path


def _warmup_rows(patterns: list[str]) -> list[dict]:
    """A few real rows of one result page, the shape a ranking request has."""
    spec = data.feature_spec(with_labels=False)
    spec["request_id"] = tf.io.FixedLenFeature([], tf.string, default_value="")
    batch = next(iter(data.records(patterns).batch(200).map(lambda x: tf.io.parse_example(x, spec))))
    rows = [{k: (v[i].decode("utf-8") if isinstance(v[i], bytes) else float(v[i]))
             for k, v in ((k, t.numpy()) for k, t in batch.items())} for i in range(len(batch["price"]))]
    first = rows[0]["request_id"]
    page = [r for r in rows if r["request_id"] == first][:WARMUP_ROWS]
    return [{k: v for k, v in r.items() if k != "request_id"} for r in page]


def _bce():
    return keras.losses.BinaryCrossentropy(from_logits=True)


def _purchase_loss(config: TrainConfig):
    if config.loss == "bce":
        return _bce()

    def mse_on_probability(y_true, logits):
        return tf.reduce_mean(tf.square(tf.cast(y_true, tf.float32) - tf.sigmoid(logits)), axis=-1)

    return mse_on_probability


def _with_soft_labels(ds: tf.data.Dataset, base_path: str, weight: float) -> tf.data.Dataset:
    """Distillation: the purchase target becomes (1-w)*label + w*base model's probability."""
    loaded = tf.saved_model.load(base_path)  # held by the closure: its variables must outlive map()

    def mix(features, labels):
        teacher_score = loaded.signatures["serving_default"](**features)["score"]
        labels = dict(labels)
        labels["purchase_logit"] = (1.0 - weight) * labels["purchase_logit"] + weight * teacher_score
        return features, labels

    return ds.map(mix)


def _last(values):
    return float(values[-1]) if values else float("nan")


def _log_hparams(log_dir: str, config: TrainConfig, facts: dict) -> None:
    """Hyperparameters and outcome in TensorBoard's HParams dashboard, one entry per update."""
    from tensorboard.plugins.hparams import api as hp

    flat = {
        "learning_rate": config.learning_rate,
        "warm_start_learning_rate": config.warm_start_learning_rate,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "update_mode": config.update_mode,
        "replay_fraction": config.replay_fraction,
        "distill_weight": config.distill_weight,
        "num_layers": config.bert.num_layers,
        "hidden_size": config.bert.hidden_size,
        "warm_started": bool(facts["warm_started"]),
    }
    with tf.summary.create_file_writer(os.path.join(log_dir, "hparams")).as_default():
        hp.hparams(flat)
        tf.summary.scalar("best_val_auc", facts["best_val_auc"], step=0)
        tf.summary.scalar("train_seconds", facts["train_seconds"], step=0)
    with tf.io.gfile.GFile(os.path.join(log_dir, "facts.json"), "w") as f:
        f.write(json.dumps(facts, default=str))
