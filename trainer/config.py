"""Ranker and training settings, carried from the pipeline to `run_fn` as one JSON document.

They travel through the Trainer's `custom_config` so a compiled Kubeflow pipeline carries
exactly what a local run uses; unknown keys are an error so a typo never silently falls
back to a default.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

# Features the model reads, as they arrive from ExampleGen and from gRPC clients.
TEXT_FEATURES = ("query", "title", "brand", "category", "product_id")
PRICE_FEATURE = "price"
LABEL_KEY = "purchased"
CLICK_KEY = "clicked"
GROUP_KEY = "request_id"
# Logged, training only: the position the logging ranker gave the impression (1 = top).
POSITION_KEY = "position"
# The training model's outputs (log-probabilities of what was logged) and the labels' keys.
CLICK_OUTPUT, PURCHASE_OUTPUT = "click", "purchase"
# The same log-probabilities under a listwise softmax over each result page.
CLICK_LIST_OUTPUT, PURCHASE_LIST_OUTPUT = "click_list", "purchase_list"
ID_FEATURES = ("product_id", "brand", "category")
# Who searched: an id feature (and a serving input) only for models with `user_features`.
USER_KEY = "user_id"


PURCHASE_MODELS = ("ctcvr", "direct")
POSITION_BIAS_MODES = ("tower", "none")
WARM_START_SCHEDULES = ("warmup_decay", "decay", "constant")
DISTRIBUTIONS = ("default", "mirrored", "multi_worker", "tpu")  # tf.distribute strategies (trainer/distribution.py)
# How the encoder turns its token outputs into one vector (trainer/bert.py `BertEncoder`).
POOLINGS = ("cls", "mean")
# What a model exported before these settings existed was: read back with these, it warm-starts.
LEGACY_MODEL_SETTINGS = {"purchase_model": "direct", "position_bias": "none", "user_features": False,
                         "wide": False}


@dataclasses.dataclass
class BertConfig:
    """Encoder shape. CPU-friendly defaults; BERT-base is 12 layers, 768 hidden, 12 heads, 3072."""

    vocab_size: int = 0  # fixed by the vocabulary actually used
    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 2
    intermediate_size: int = 256
    max_seq_length: int = 48
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    dropout_rate: float = 0.1
    attention_dropout_rate: float = 0.1
    initializer_range: float = 0.02
    # "cls": the tanh pooler over [CLS] (BERT's pre-training, Google and Hugging Face BertModel
    # checkpoints); "mean": the mask-weighted mean of the token outputs, with no pooler, which is
    # how sentence-transformers checkpoints (all-MiniLM-L6-v2) were trained to make a sentence
    # vector. Configs written before this field read as "cls", what those models computed.
    pooling: str = "cls"


@dataclasses.dataclass
class TrainConfig:
    """Everything `run_fn` needs besides the data and the base model."""

    bert: BertConfig = dataclasses.field(default_factory=BertConfig)
    # Side features.
    id_embedding_dim: int = 16
    # Width of the bag-of-wordpieces query-document interaction beside the encoder; 0: off.
    interaction_dim: int = 0
    # The wide part (trainer/wide.py): L2-regularised id biases, relative price, match features and
    # hashed query-word x category / brand crosses, added to the deep part's logits.
    wide: bool = True
    wide_l2: float = 1e-4
    wide_cross_buckets: int = 2**16
    max_ids_per_feature: int = 200_000
    head_hidden_size: int = 64
    click_loss_weight: float = 1.0  # weight of the click log-loss (and of its listwise term); 0 turns it off
    loss: str = "bce"  # "bce" (purchase log-loss) or "mse"
    # Weight of the listwise softmax cross-entropy over each result page (TF-Ranking's default for
    # purchase labels), on purchases and, times click_loss_weight, on clicks. It is the page's
    # conditional likelihood given how many events it had, so it learns only what differs within
    # a page: the order. 0: pointwise log-loss alone.
    listwise_weight: float = 1.0
    # What the purchase head predicts. "ctcvr": P(click | examined) x P(purchase | click), the
    # e-commerce factorisation of ESMM (Ma et al., SIGIR 2018), trained on every impression, so the
    # plentiful clicks teach the click half; "direct": one head for P(purchase | examined).
    purchase_model: str = "ctcvr"
    # How training accounts for the logging ranker's positions. "tower": a position-only tower gives
    # P(examined | position), multiplied in during training and left out at serving (PAL, Guo et
    # al., RecSys 2019), so the model learns relevance, not the old ranking's order; "none".
    position_bias: str = "tower"
    max_position: int = 50  # positions above share the last examination row
    # The shopper's id as an id feature (tastes: brand affinity, price sensitivity). It makes
    # `user_id` a serving input, so clients send who is searching.
    user_features: bool = False
    # Optimisation.
    learning_rate: float = 3e-3
    # The BERT encoder's own peak rate (its `bert/...` variables; trainer/part_rates.py), with the
    # same schedule shape; everything else (wide part, id embeddings, heads, position tower) keeps
    # `learning_rate`. A pretrained encoder wants a fine-tuning rate (1e-5 to 1e-4) that would leave
    # the randomly initialised rest nearly untrained. None: the encoder trains at `learning_rate`.
    # A warm-started update scales it by the same ratio: the encoder's peak is
    # warm_start_learning_rate x encoder_learning_rate / learning_rate.
    encoder_learning_rate: float | None = None
    # A warm-started update: two passes over the newest span at the from-scratch peak rate, with
    # warm-up and decay, and no replay of older spans. Measured against full retraining (7-span
    # window, 3 epochs, from scratch) on a mild and a strong stream (benchmarks/update_sweep.py,
    # docs/warm-start.md): the best of the measured updates at a quarter of full retraining's
    # compute or less (19% over the first four updates, less as the window fills); the old default
    # update (one pass at 1e-3) captured 3-14 points less of the legacy-to-best gap.
    warm_start_learning_rate: float = 3e-3
    weight_decay: float = 0.01
    warmup_fraction: float = 0.1
    batch_size: int = 64
    epochs: int = 3
    warm_start_epochs: int | None = 2  # passes of a warm-started update; None: `epochs`
    early_stopping_patience: int = 2
    # What early stopping watches on the eval split: "purchase" (the purchase objective: pointwise
    # plus listwise purchase loss; the served score is the purchase probability), "loss" (that plus
    # the weighted click terms: click memorisation, fastest to overfit, then decides) or "auc"
    # (purchase AUC: a small span's eval split holds a few dozen purchases, +-0.04 of noise).
    early_stopping_metric: str = "purchase"
    steps_per_epoch: int | None = None  # None: one pass over the training split
    # Incremental update.
    update_mode: str = "full"  # "full" or "partial" (embeddings and lower layers frozen)
    frozen_layers: int = 1  # in partial mode: encoder layers frozen from the bottom
    replay_fraction: float = 0.0  # share of each older window span replayed (window assembly)
    # Window assembly too: the previous span's eval and test pages train once its early stopping
    # and blessing are done (older spans' at replay_fraction); see docs/warm-start.md, round 8.
    reuse_holdout: bool = True
    distill_weight: float = 0.0  # weight of the base model's predictions as soft labels
    # A warm-started update's learning-rate schedule: "warmup_decay" (linear warm-up over
    # `warmup_fraction` of the steps, then linear decay to zero), "decay" (no warm-up) or
    # "constant" (the warm-start rate throughout).
    warm_start_schedule: str = "warmup_decay"
    # L2 pull toward the base model's weights (L2-SP, Li et al. 2018): anchor_weight x the sum of
    # squared differences over the trainable weights restored from the base. 0 turns it off.
    anchor_weight: float = 0.0
    # After a warm-started update, each weight moves this share of the way back to the base
    # model's value (weight averaging, WiSE-FT); 0: the update as trained.
    base_weight_share: float = 0.0
    # Keep that average only when the newest span's eval split prefers it (purchase objective).
    base_weight_select: bool = False
    # Shrink and perturb before a warm-started update (Ash & Adams, NeurIPS 2020): every restored
    # weight becomes warm_start_shrink x its base value + warm_start_perturb x the fresh model's
    # initial value. Warm-started networks are known to generalise worse than fresh ones trained on
    # the same data; shrinking toward a fresh start restores plasticity. 1.0 and 0.0: off.
    warm_start_shrink: float = 1.0
    warm_start_perturb: float = 0.0
    # Per-row rates for id tables in a warm update (trainer/row_evidence.py): each id row's peak
    # rate x n_new / (n_new + row_evidence_decay x n_old), its impressions in this window against
    # the evidence the base model carries for it, old evidence halved per update by default
    # (docs/warm-start.md, round 6); None: every row at the full rate.
    row_evidence_decay: float | None = 0.5
    # With per-row rates on: every other trainable weight (encoder, heads, wide part's dense
    # weights, position tower) at the peak x N_new / (N_new + row_evidence_decay x N_old), the
    # window's impressions against the evidence the base model carries in all (row_evidence.py).
    shared_evidence_rate: bool = False
    # Vocabulary.
    vocab_size: int = 4000
    init_checkpoint: str | None = None
    # Keep only the bottom K encoder layers of a deeper pretrained checkpoint; None: all of them.
    init_layers: int | None = None
    # tf.distribute: one of DISTRIBUTIONS.
    distribution: str = "default"
    tpu_address: str | None = None
    seed: int = 42

    def id_features(self) -> tuple[str, ...]:
        """The features with a learned row per id (rows survive warm start by id)."""
        return ID_FEATURES + ((USER_KEY,) if self.user_features else ())

    def string_inputs(self) -> tuple[str, ...]:
        """The serving signature's string inputs, in order (`price` is the one float input)."""
        return TEXT_FEATURES + ((USER_KEY,) if self.user_features else ())

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> TrainConfig:
        raw = dict(raw)
        bert_raw = raw.pop("bert", {}) or {}
        _reject_unknown(cls, raw, "training setting")
        _reject_unknown(BertConfig, bert_raw, "BERT setting")
        config = cls(bert=BertConfig(**bert_raw), **raw)
        config.validate()
        return config

    @classmethod
    def from_json(cls, text: str) -> TrainConfig:
        return cls.from_dict(json.loads(text))

    def validate(self) -> None:
        problems = []
        if self.loss not in ("bce", "mse"):
            problems.append(f"loss must be 'bce' or 'mse', got {self.loss!r}")
        if self.purchase_model not in PURCHASE_MODELS:
            problems.append(f"purchase_model must be one of {PURCHASE_MODELS}, got {self.purchase_model!r}")
        if self.position_bias not in POSITION_BIAS_MODES:
            problems.append(f"position_bias must be one of {POSITION_BIAS_MODES}, got {self.position_bias!r}")
        if self.early_stopping_metric not in ("purchase", "loss", "auc"):
            problems.append("early_stopping_metric must be 'purchase', 'loss' or 'auc', "
                            f"got {self.early_stopping_metric!r}")
        if self.max_position < 1:
            problems.append(f"max_position must be >= 1, got {self.max_position}")
        if self.loss == "mse" and self.purchase_model == "ctcvr":
            problems.append("loss 'mse' needs purchase_model 'direct' (ctcvr trains a product of probabilities)")
        if self.update_mode not in ("full", "partial"):
            problems.append(f"update_mode must be 'full' or 'partial', got {self.update_mode!r}")
        if self.distribution not in DISTRIBUTIONS:
            problems.append(
                f"distribution must be default, mirrored, multi_worker or tpu, got {self.distribution!r}"
            )
        if not 0.0 <= self.replay_fraction <= 1.0:
            problems.append(f"replay_fraction must lie in [0, 1], got {self.replay_fraction}")
        if self.warm_start_schedule not in WARM_START_SCHEDULES:
            problems.append(f"warm_start_schedule must be one of {WARM_START_SCHEDULES}, "
                            f"got {self.warm_start_schedule!r}")
        if not 0.0 <= self.base_weight_share < 1.0:
            problems.append(f"base_weight_share must lie in [0, 1), got {self.base_weight_share}")
        if not 0.0 < self.warm_start_shrink <= 1.0:
            problems.append(f"warm_start_shrink must lie in (0, 1], got {self.warm_start_shrink}")
        if not 0.0 <= self.warm_start_perturb <= 1.0:
            problems.append(f"warm_start_perturb must lie in [0, 1], got {self.warm_start_perturb}")
        if self.anchor_weight < 0:
            problems.append(f"anchor_weight must be >= 0, got {self.anchor_weight}")
        if self.row_evidence_decay is not None and not 0.0 <= self.row_evidence_decay <= 1.0:
            problems.append(f"row_evidence_decay must lie in [0, 1] (or null: off), got {self.row_evidence_decay}")
        if self.warm_start_epochs is not None and self.warm_start_epochs < 1:
            problems.append(f"warm_start_epochs must be >= 1, got {self.warm_start_epochs}")
        if self.batch_size < 1 or self.epochs < 1:
            problems.append("batch_size and epochs must be >= 1")
        if self.learning_rate <= 0 or self.warm_start_learning_rate <= 0:
            problems.append("learning rates must be > 0")
        if self.shared_evidence_rate and (self.row_evidence_decay is None or self.encoder_learning_rate is not None):
            problems.append("shared_evidence_rate needs row_evidence_decay set and encoder_learning_rate null "
                            f"(got {self.row_evidence_decay} and {self.encoder_learning_rate})")
        if self.encoder_learning_rate is not None and not self.encoder_learning_rate > 0:
            problems.append(f"encoder_learning_rate must be > 0 (or null: the same as learning_rate), "
                            f"got {self.encoder_learning_rate}")
        if self.bert.pooling not in POOLINGS:
            problems.append(f"bert.pooling must be one of {POOLINGS}, got {self.bert.pooling!r}")
        if self.bert.hidden_size % self.bert.num_heads:
            problems.append(
                f"hidden_size {self.bert.hidden_size} must be divisible by num_heads {self.bert.num_heads}"
            )
        if self.bert.max_seq_length < 8:
            problems.append("max_seq_length must be >= 8")
        if self.init_layers is not None and self.init_layers < 1:
            problems.append(f"init_layers must be >= 1, got {self.init_layers}")
        if self.distill_weight < 0 or self.click_loss_weight < 0 or self.listwise_weight < 0:
            problems.append("loss weights must be >= 0")
        if problems:
            raise ValueError("invalid trainer config: " + "; ".join(problems))


def _reject_unknown(cls: type, raw: dict[str, Any], what: str) -> None:
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"unknown {what}(s) {unknown}; known: {sorted(known)}")
