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

import numpy as np
import tensorflow as tf
import tf_keras as keras

from trainer import data, export, row_evidence
from trainer import vocab as vocab_lib
from trainer.config import (
    CLICK_LIST_OUTPUT,
    CLICK_OUTPUT,
    POSITION_KEY,
    PRICE_FEATURE,
    PURCHASE_LIST_OUTPUT,
    PURCHASE_OUTPUT,
    TrainConfig,
)
from trainer.distribution import is_chief, make_strategy
from trainer.flops import training_flops_per_example
from trainer.model import (
    POSITION_TOWER,
    Preprocessor,
    Vocabularies,
    apply_update_mode,
    build_core,
    build_position_tower,
    build_training_model,
    examination_table,
    listwise_softmax_loss,
    log_prob_bce,
    purchase_probability,
    raw_input_specs,
    skip_autograph,
)
from trainer.part_rates import PartRateAdamW, encoder_variables
from trainer.schedule import WarmupLinearDecay
from trainer.warm_start import pull_toward_start, restore_weights, shrink_and_perturb

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


@dataclasses.dataclass
class Trained:
    """A fitted ranker still in memory: what `export` writes, what the next update can start from.

    Keeping it in memory lets the bench score and continue a model without the 10-40 s of saving
    and reloading a SavedModel per update; `train` exports it for the pipeline.
    """

    config: TrainConfig
    vocabs: Vocabularies
    preprocessor: Preprocessor
    core: keras.Model
    tower: keras.Model | None
    facts: dict
    vocab_dir: str  # holds vocab.txt until export copies it into the SavedModel's assets

    def variables(self) -> list[tf.Variable]:
        return list(self.core.variables) + (list(self.tower.variables) if self.tower is not None else [])

    def score(self, features: dict) -> np.ndarray:
        """The served score for raw feature columns (as a Predict request carries them)."""
        tensors = {name: tf.constant(np.asarray(features[name]).reshape(-1)) for name in self.config.string_inputs()}
        tensors[PRICE_FEATURE] = tf.constant(np.asarray(features[PRICE_FEATURE], dtype=np.float32).reshape(-1))
        return self._column_scorer()(tensors).numpy()

    def _column_scorer(self):
        # One trace for columns of any length (a bench scores splits and pages of many sizes;
        # retracing per shape cost seconds per model).
        if getattr(self, "_column_fn", None) is None:
            signature = raw_input_specs(self.config)
            self._column_fn = tf.function(self._served, autograph=False, input_signature=[signature])
        return self._column_fn

    def _scorer(self):
        """The served score of a feature dict of any shape (the teacher inside a tf.data map)."""
        if getattr(self, "_score_fn", None) is None:
            self._score_fn = tf.function(self._served, autograph=False, reduce_retracing=True)
        return self._score_fn

    def _served(self, features: dict) -> tf.Tensor:
        return purchase_probability(self.core(self.preprocessor(features), training=False), self.config)

    def as_base(self) -> export.BaseModel:
        """This model as the next update's base, without a round trip through disk."""
        weights = {v.name: v.numpy() for v in self.variables()}
        return export.BaseModel(None, self.config, self.vocabs, self.facts, weights, teacher=self._scorer())


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
    base = export.load_base_model(base_model) if base_model else None
    trained = fit(config, train_files, eval_files, log_dir, base)
    chief = is_chief()
    # Every worker saves (saving may run collectives); only the chief's export is kept.
    target = serving_model_dir if chief else tempfile.mkdtemp(prefix="freshrank-worker-")
    trained.facts["total_seconds"] = round(time.time() - started, 3)
    export.export_ranker(trained.preprocessor, trained.core, target, trained.config, trained.vocabs,
                         trained.facts, warmup=_warmup_rows(eval_files), model_name=model_name,
                         tower=trained.tower)
    if not chief:
        shutil.rmtree(target, ignore_errors=True)
    shutil.rmtree(trained.vocab_dir, ignore_errors=True)  # the export holds its own copy in assets/
    log.info("exported to %s", target)
    return trained.facts


def fit(
    config: TrainConfig,
    train_files: list[str],
    eval_files: list[str],
    log_dir: str | None,
    base: export.BaseModel | None,
) -> Trained:
    """Fits one model on the window, warm-started from `base` when there is one; nothing is saved."""
    started = time.time()
    keras.backend.clear_session()  # several updates in one process must not share Keras state
    keras.utils.set_random_seed(config.seed)
    strategy = make_strategy(config.distribution, config.tpu_address)
    window = data.scan(train_files)
    config = _architecture(config, base)
    if base is not None and config.warm_start_epochs is not None:
        config = dataclasses.replace(config, epochs=config.warm_start_epochs)
    scratch = tempfile.mkdtemp(prefix="freshrank-vocab-")  # the vocab file until export copies it
    vocabs = _vocabularies(config, window, base, scratch)

    with strategy.scope():
        core, tower, model = _build(config, vocabs)
        reshape = base is not None and (config.warm_start_shrink < 1.0 or config.warm_start_perturb > 0.0)
        fresh = {v.name: v.numpy() for v in model.trainable_variables} if reshape else None
        report = restore_weights(model, base.weights, base.vocabs, vocabs) if base else None
        if reshape:
            shrink_and_perturb(model, fresh, report.base_rows, config.warm_start_shrink, config.warm_start_perturb)
        if base is None and config.init_checkpoint:
            from trainer.checkpoint import load_encoder_weights

            load_encoder_weights(core, config.init_checkpoint)
        trainable = apply_update_mode(core, config)
        if base is not None and config.anchor_weight > 0:
            _anchor_to_base(model, config.anchor_weight)
        list_size = window.list_size()
        # tf.distribute splits a global batch evenly across replicas: whole pages per replica.
        replicas = strategy.num_replicas_in_sync
        pages_per_batch = max(1, config.batch_size // list_size // replicas) * replicas
        steps_per_epoch = config.steps_per_epoch or max(1, window.num_pages // pages_per_batch)
        new_evidence = row_evidence.window_counts(vocabs.ids, window.id_counts, config.id_features())
        row_scales = (row_evidence.row_rate_scales(model, core, config, new_evidence)
                      if base is not None and config.row_evidence_decay is not None else None)
        shared_scale = (row_evidence.shared_rate_scale(core, config, new_evidence)
                        if row_scales is not None and config.shared_evidence_rate else None)
        _compile(model, config, steps_per_epoch, warm=base is not None, list_size=list_size, row_scales=row_scales,
                 shared_scale=shared_scale)

    preprocessor = Preprocessor(config, vocabs)
    start = {v.name: v.numpy() for v in model.variables} if base is not None and config.base_weight_share > 0 else None
    history = _fit(model, preprocessor, config, train_files, eval_files, log_dir, base, steps_per_epoch,
                   pages_per_batch, list_size, even_batches=replicas > 1)
    averaged = None
    if start is not None:
        averaged = _average_with_base(model, start, report.base_rows, config, history.eval_ds)
    row_evidence.record_evidence(core, config, new_evidence)
    facts = {
        "train_examples": window.num_examples,
        "train_pages": window.num_pages,
        "list_size": list_size,
        "examples_processed": len(history.epoch) * steps_per_epoch * pages_per_batch * list_size,
        "train_flops_per_example": training_flops_per_example(core, config),
        "epochs_run": len(history.epoch),
        "train_seconds": round(history.seconds, 3),
        "total_seconds": round(time.time() - started, 3),
        "warm_started": base is not None,
        "base_model": base.path if base else None,
        "trainable_parameters": trainable,
        "total_parameters": int(core.count_params()),
        "update_mode": config.update_mode,
        "new_ids": report.new_ids if report else {f: len(vocabs.ids[f]) for f in config.id_features()},
        "val_auc": _last(history.history.get(VAL_AUC)),
        "val_purchase_objective": _last(history.history.get(VAL_PURCHASE_OBJECTIVE)),
        "best_val_auc": max(history.history.get(VAL_AUC, [float("nan")])),
        "averaged_with_base": averaged,
    }
    facts["train_flops"] = facts["examples_processed"] * facts["train_flops_per_example"]["total"]
    if log_dir and is_chief():  # workers share the run's log dir; one hparams entry and facts.json per run
        _log_hparams(log_dir, config, facts)
    log.info("trained on %d examples in %.1fs", window.num_examples, history.seconds)
    return Trained(config, vocabs, preprocessor, core, tower, facts, scratch)


def rebuild(base: export.BaseModel) -> Trained:
    """A model handed over as weights (`Trained.as_base`, e.g. to another process) as a `Trained`.

    The architecture and vocabularies are the base's; every weight is restored by name, as a
    warm start restores them, so it scores exactly as the model it came from.
    """
    keras.backend.clear_session()
    config, vocabs = base.config, base.vocabs
    core, tower, model = _build(config, vocabs)
    restore_weights(model, base.weights, base.vocabs, vocabs)
    return Trained(config, vocabs, Preprocessor(config, vocabs), core, tower, dict(base.facts),
                   os.path.dirname(vocabs.wordpiece_path))


def _build(config: TrainConfig, vocabs: Vocabularies):
    """The serving core, the training-only position tower (or None) and the model training fits.

    Built with AutoGraph off: tf_keras converts every subclassed layer's `call` (BERT blocks,
    tokenizer, wide cross) while it builds a functional model, and AutoGraph then converts the
    tf_keras code those calls reach as well; none of it branches on a tensor, and the
    conversions cost most of the build's CPU time.
    """
    core = skip_autograph(_plain(build_core)(config, vocabs))
    tower = _plain(build_position_tower)(config) if config.position_bias == "tower" else None
    return core, tower, skip_autograph(_plain(build_training_model)(core, tower, config))


def _plain(fn):
    """`fn` run without AutoGraph conversion (graph code with no tensor-dependent Python control flow)."""
    return tf.autograph.experimental.do_not_convert(fn)


VAL_AUC = f"val_{PURCHASE_OUTPUT}_auc"
VAL_PURCHASE_OBJECTIVE = "val_purchase_objective"


class _PurchaseObjective(keras.callbacks.Callback):
    """Writes the eval split's purchase objective (pointwise + weighted listwise) into the epoch's logs."""

    def __init__(self, listwise_weight: float):
        super().__init__()
        self.listwise_weight = listwise_weight

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and f"val_{PURCHASE_OUTPUT}_loss" in logs:
            logs[VAL_PURCHASE_OBJECTIVE] = purchase_objective(logs, self.listwise_weight, prefix="val_")


def purchase_objective(logs: dict, listwise_weight: float, prefix: str = "") -> float:
    """Pointwise plus weighted listwise purchase loss, from Keras' logs (`prefix` "val_" for eval)."""
    return logs[f"{prefix}{PURCHASE_OUTPUT}_loss"] + listwise_weight * logs.get(f"{prefix}{PURCHASE_LIST_OUTPUT}_loss", 0.0)


def _architecture(config: TrainConfig, base: export.BaseModel | None) -> TrainConfig:
    """The base model fixes the architecture; else a pretrained checkpoint fixes the encoder's."""
    if base is not None:
        return _continue_config(base.config, config)
    if config.init_checkpoint:
        from trainer.checkpoint import read_bert_config

        bert = read_bert_config(config.init_checkpoint, config.bert.max_seq_length, init_layers=config.init_layers)
        # The checkpoint fixes the shape; how it is pooled stays this config's choice.
        return dataclasses.replace(config, bert=dataclasses.replace(bert, pooling=config.bert.pooling))
    if config.init_layers is not None:
        raise ValueError(f"init_layers {config.init_layers} needs init_checkpoint: it keeps a checkpoint's layers")
    return config


def _compile(model: keras.Model, config: TrainConfig, steps_per_epoch: int, warm: bool, list_size: int,
             row_scales: list | None = None, shared_scale: float | None = None) -> None:
    peak = config.warm_start_learning_rate if warm else config.learning_rate
    total_steps = steps_per_epoch * config.epochs
    kind = config.warm_start_schedule if warm else "warmup_decay"
    if kind == "constant":
        schedule = peak
    else:
        warmup = int(total_steps * config.warmup_fraction) if kind == "warmup_decay" else 0
        schedule = WarmupLinearDecay(peak, total_steps, warmup)
    settings = dict(learning_rate=schedule, weight_decay=config.weight_decay, epsilon=1e-6, clipnorm=1.0)
    if config.encoder_learning_rate is None and not row_scales:
        optimizer = keras.optimizers.AdamW(**settings)
    elif config.encoder_learning_rate is None:
        rows = {id(variable) for variable, _ in row_scales}
        shared = [v for v in model.trainable_variables if id(v) not in rows] if shared_scale is not None else []
        optimizer = PartRateAdamW(shared, shared_scale or 1.0, row_scales=row_scales, **settings)
    else:
        # The encoder's peak over the rest's, the same on a warm-started update (docs/pretrained.md).
        optimizer = PartRateAdamW(_encoder_part(model, config), config.encoder_learning_rate / config.learning_rate,
                                  row_scales=row_scales, **settings)
    # The wide part has its own L2 penalty; position logits are not weights to shrink.
    optimizer.exclude_from_weight_decay(var_names=["LayerNorm", "bias", POSITION_TOWER, "wide"])
    listwise = listwise_softmax_loss(list_size)
    model.compile(
        optimizer=optimizer,
        loss={PURCHASE_OUTPUT: _purchase_loss(config), CLICK_OUTPUT: log_prob_bce,
              PURCHASE_LIST_OUTPUT: listwise, CLICK_LIST_OUTPUT: listwise},
        loss_weights={PURCHASE_OUTPUT: 1.0, CLICK_OUTPUT: config.click_loss_weight,
                      PURCHASE_LIST_OUTPUT: config.listwise_weight,
                      CLICK_LIST_OUTPUT: config.listwise_weight * config.click_loss_weight},
        weighted_metrics={PURCHASE_OUTPUT: [ProbabilityAUC(name="auc")]},
    )


def _encoder_part(model: keras.Model, config: TrainConfig) -> list[tf.Variable]:
    """The trainable encoder variables `encoder_learning_rate` applies to; refused when there are none."""
    variables = encoder_variables(model)
    if not variables:
        raise ValueError(
            f"encoder_learning_rate {config.encoder_learning_rate} is set, but no encoder variable is trained "
            f"(update_mode {config.update_mode!r}, frozen_layers {config.frozen_layers}, "
            f"{config.bert.num_layers} layers, pooling {config.bert.pooling!r}): leave encoder_learning_rate "
            "out, or lower frozen_layers so part of the encoder trains")
    return variables


def _average_with_base(model: keras.Model, start: dict, base_rows: dict, config: TrainConfig,
                       eval_ds: tf.data.Dataset) -> bool:
    """Moves the weights `base_weight_share` of the way back to the base model's; with
    `base_weight_select`, only when the eval split's purchase objective says the averaged model is
    better (the logs decide, not the stream). Returns whether the average was kept."""
    if not config.base_weight_select:
        pull_toward_start(model, start, base_rows, config.base_weight_share)
        return True
    trained = model.get_weights()
    as_trained = _purchase_objective(model, eval_ds, config)
    pull_toward_start(model, start, base_rows, config.base_weight_share)
    if _purchase_objective(model, eval_ds, config) <= as_trained:
        return True
    model.set_weights(trained)
    return False


def _purchase_objective(model: keras.Model, eval_ds: tf.data.Dataset, config: TrainConfig) -> float:
    return purchase_objective(model.evaluate(eval_ds, verbose=0, return_dict=True), config.listwise_weight)


def _anchor_to_base(model: keras.Model, weight: float) -> None:
    """L2-SP: a penalty on moving the trainable weights away from the base model's values.

    Weight decay pulls toward zero, which for a warm-started model means toward forgetting; this
    pulls toward what the serving model knew, so one span of new data bends it instead of
    rewriting it.
    """
    anchors = [(v, tf.constant(v.numpy())) for v in model.trainable_variables]

    def penalty():
        return weight * tf.add_n([tf.reduce_sum(tf.square(v - a)) for v, a in anchors])

    model.add_loss(penalty)


class _History:
    """Keras' History plus the seconds `fit` took."""

    def __init__(self, history: keras.callbacks.History, seconds: float, eval_ds: tf.data.Dataset):
        self.epoch, self.history, self.seconds, self.eval_ds = history.epoch, history.history, seconds, eval_ds


def _fit(model: keras.Model, preprocessor: Preprocessor, config: TrainConfig, train_files: list[str],
         eval_files: list[str], log_dir: str | None, base: export.BaseModel | None,
         steps_per_epoch: int, pages_per_batch: int, list_size: int, even_batches: bool = False) -> _History:
    train_ds = data.make_page_dataset(train_files, pages_per_batch, list_size, shuffle=True, seed=config.seed,
                                      repeat=True)
    if config.distill_weight > 0 and base is not None:
        train_ds = _with_soft_labels(train_ds, base, config.distill_weight)
    train_ds = train_ds.map(_plain(lambda x, y, w: (_preprocessed(preprocessor, x), y, w)),
                            num_parallel_calls=tf.data.AUTOTUNE)
    # With several replicas the last, smaller eval batch could not be split into whole pages: dropped.
    eval_ds = data.make_page_dataset(eval_files, pages_per_batch, list_size, shuffle=False, seed=config.seed,
                                     preprocess=_plain(preprocessor), drop_remainder=even_batches)
    first_eval_batch = None
    if not even_batches:
        eval_ds, first_eval_batch = _in_memory(eval_ds, eval_files)
    monitor, mode = {"auc": (VAL_AUC, "max"), "loss": ("val_loss", "min"),
                     "purchase": (VAL_PURCHASE_OBJECTIVE, "min")}[config.early_stopping_metric]
    callbacks: list[keras.callbacks.Callback] = [
        _PurchaseObjective(config.listwise_weight),  # before EarlyStopping: it reads what this writes
        keras.callbacks.EarlyStopping(monitor=monitor, mode=mode, patience=config.early_stopping_patience,
                                      restore_best_weights=True),
    ]
    if log_dir:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=log_dir, update_freq=50, profile_batch=0,
                                                     write_graph=False))
    if not even_batches:
        # Any batch of the training structure builds the state; the in-memory eval split's first
        # costs no pipeline start (about 1 s on 2 cores).
        _plain(_build_training_state)(model, first_eval_batch or next(iter(train_ds.take(1))))
    started = time.time()
    history = model.fit(
        train_ds,
        validation_data=eval_ds,
        epochs=config.epochs,
        steps_per_epoch=steps_per_epoch,
        callbacks=callbacks,
        verbose=1 if sys.stdout.isatty() else 2,
    )
    return _History(history, time.time() - started, eval_ds)


# An eval split up to this size on disk is preprocessed once and kept in memory (its tensors take
# a few times the TFRecords' size); a larger one streams from disk at every evaluation.
IN_MEMORY_EVAL_BYTES = 32 * 2**20


def _in_memory(ds: tf.data.Dataset, files: list[str]) -> tuple[tf.data.Dataset, tuple | None]:
    """The eval split's batches, computed once and replayed from memory.

    Why: Keras starts the validation pipeline again at every epoch, and starting a pipeline
    that tokenizes costs about a second on 2 cores (TensorFlow instantiates and optimises its
    functions each time), longer than evaluating the split. The batches and their order are
    exactly the streamed ones, so validation figures and early stopping do not change.
    Returns the dataset and its first batch (None when it still streams).
    """
    if sum(tf.io.gfile.stat(f).length for f in data.list_files(files)) > IN_MEMORY_EVAL_BYTES:
        return ds, None
    batches = list(ds)
    if not batches:
        return ds, None
    replay = tf.data.Dataset.from_tensors(batches[0])
    for batch in batches[1:]:
        replay = replay.concatenate(tf.data.Dataset.from_tensors(batch))
    return replay, batches[0]


def _build_training_state(model: keras.Model, batch: tuple) -> None:
    """Creates the optimizer's slots and the loss and metric accumulators before Keras traces.

    A tf.function that creates variables on its first call is traced twice (once to create
    them, once more without), and Keras' train step creates these lazily: built here, eagerly on
    one batch, the step is traced once, which saves seconds on every update (on 2 cores, about
    as long as one pass over a span of 1000 searches). Only with one replica: a distribution
    strategy wants its variables created inside its own step.
    """
    x, y, w = batch
    y_pred = model(x, training=False)
    model.compiled_loss(y, y_pred, w, regularization_losses=model.losses)
    model.compiled_metrics.update_state(y, y_pred, w)
    model.optimizer.build(model.trainable_variables)
    model.reset_metrics()


def _preprocessed(preprocessor: Preprocessor, features: dict) -> dict:
    """Raw features -> model inputs; the training-only position passes through untouched."""
    raw = {k: v for k, v in features.items() if k != POSITION_KEY}
    return {**preprocessor(raw), POSITION_KEY: features[POSITION_KEY]}


class ProbabilityAUC(keras.metrics.AUC):
    """AUC of a log-probability output, with thresholds spread where purchase rates live (1e-5..1).

    Keras' evenly spaced thresholds put nearly every prediction of a 2% event below the first
    one and measure nothing.
    """

    def __init__(self, name: str = "auc", **kwargs):
        kwargs.setdefault("thresholds", [float(t) for t in np.geomspace(1e-5, 0.999, 500)])
        super().__init__(name=name, **kwargs)

    def update_state(self, y_true, y_pred, sample_weight=None):
        return super().update_state(y_true, tf.exp(y_pred), sample_weight=sample_weight)


def _continue_config(base: TrainConfig, requested: TrainConfig) -> TrainConfig:
    """Keeps the base model's architecture; takes the optimisation settings from this run."""
    frozen = {"bert", "id_embedding_dim", "interaction_dim", "wide", "wide_cross_buckets", "head_hidden_size", "vocab_size", "init_checkpoint", "init_layers",
              "purchase_model", "position_bias", "max_position", "user_features"}
    changed = [k for k in frozen if getattr(base, k) != getattr(requested, k)]
    if changed:
        log.warning("warm start keeps the base model's %s; pass --from-scratch to change them", changed)
    return dataclasses.replace(requested, **{k: getattr(base, k) for k in frozen})


def _vocabularies(config: TrainConfig, window: data.WindowScan, base, work_dir: str) -> Vocabularies:
    if base is not None:
        ids = {
            f: vocab_lib.grow_id_vocab(base.vocabs.ids[f], window.id_counts[f], config.max_ids_per_feature)
            for f in config.id_features()
        }
        vocab_path = _local_copy(base.vocabs.wordpiece, work_dir)
        # Known categories keep the base model's typical price; a category new in this window gets its own.
        category_price = {**window.category_log_price, **base.vocabs.category_log_price}
        return Vocabularies(vocab_path, base.vocabs.wordpiece, ids, base.vocabs.price_log_mean,
                            base.vocabs.price_log_std, category_price)
    if config.init_checkpoint:
        from trainer.checkpoint import read_checkpoint_vocab

        wordpiece = read_checkpoint_vocab(config.init_checkpoint)
    else:
        wordpiece = vocab_lib.learn_wordpiece_vocab(window.texts, config.vocab_size)
    vocab_lib.check_bert_vocab(wordpiece, "in use")
    ids = {
        f: vocab_lib.grow_id_vocab(["[UNK]"], window.id_counts[f], config.max_ids_per_feature)
        for f in config.id_features()
    }
    return Vocabularies(_local_copy(wordpiece, work_dir), wordpiece, ids, window.price_log_mean,
                        window.price_log_std, dict(window.category_log_price))


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


def _purchase_loss(config: TrainConfig):
    if config.loss == "bce":
        return log_prob_bce

    def mse_on_probability(y_true, log_p):
        return tf.square(tf.cast(y_true, tf.float32) - tf.exp(log_p))

    return mse_on_probability


def _with_soft_labels(ds: tf.data.Dataset, base: export.BaseModel, weight: float) -> tf.data.Dataset:
    """Distillation: the purchase target becomes (1-w)*label + w*the base model's P(purchase).

    The teacher's probability is of the impression as logged: its P(purchase | examined) times
    its own P(examined | position) when it has a position tower, so label and soft label agree
    on what they predict.
    """
    teacher = base.teacher_fn()  # held by the closure: its variables must outlive map()
    examination = examination_table(base.weights)

    def mix(features, labels, *weights):
        raw = {k: v for k, v in features.items() if k != POSITION_KEY}
        teacher_score = teacher(raw)
        if examination is not None:
            rows = tf.clip_by_value(features[POSITION_KEY], 1, examination.shape[0] - 1)
            teacher_score = teacher_score * tf.gather(tf.sigmoid(tf.constant(examination)), rows)
        labels = dict(labels)
        labels[PURCHASE_OUTPUT] = (1.0 - weight) * labels[PURCHASE_OUTPUT] + weight * teacher_score
        return (features, labels, *weights)

    return ds.map(mix)


def _last(values):
    return float(values[-1]) if values else float("nan")


def _log_hparams(log_dir: str, config: TrainConfig, facts: dict) -> None:
    """Hyperparameters and outcome in TensorBoard's HParams dashboard, one entry per update."""
    from tensorboard.plugins.hparams import api as hp

    flat = {
        "learning_rate": config.learning_rate,
        "warm_start_learning_rate": config.warm_start_learning_rate,
        # The rate the encoder got: its own where set, else the rest's (hparams hold no None).
        "encoder_learning_rate": config.encoder_learning_rate or config.learning_rate,
        "pooling": config.bert.pooling,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "update_mode": config.update_mode,
        "replay_fraction": config.replay_fraction,
        "reuse_holdout": config.reuse_holdout,
        "distill_weight": config.distill_weight,
        # Off (None) updates every row at the full rate, as decay 0 does (hparams hold no None).
        "row_evidence_decay": config.row_evidence_decay or 0.0,
        "shared_evidence_rate": config.shared_evidence_rate,
        "purchase_model": config.purchase_model,
        "position_bias": config.position_bias,
        "listwise_weight": config.listwise_weight,
        "wide": config.wide,
        "user_features": config.user_features,
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
