"""Per-part peak learning rates: the BERT encoder at its own rate, the rest of the ranker at `learning_rate`.

Why: a pretrained encoder is fine-tuned at 1e-5 to 1e-4, while the randomly initialised wide
part, id embeddings, heads and position tower need the ranker's 3e-3 to learn anything from a
day of logs. One rate for both either washes the pretrained weights out or leaves the rest
untrained (docs/pretrained.md measured the second).

Why one AdamW with a per-variable rate factor and not two optimizers in a custom `train_step`:
the result is the same update, with less machinery to keep working. Adam's moments, its
`clipnorm` (tf-keras clips each gradient by its own norm) and AdamW's decoupled weight decay
(`variable * weight_decay * rate`) are all per variable, and both parts share the step count, so
AdamW over the encoder at `scale x schedule(step)` plus AdamW over the rest at `schedule(step)` is
exactly this (tests/trainer/test_part_rates.py checks it against two AdamW instances). Keras'
own `fit`, its `train_step`, tf.distribute (the optimizer's distributed apply calls
`update_step` per variable, on every replica's copy) and `update_mode="partial"` (frozen
variables are simply not in the trainable list) all stay as they are. Scaling the encoder's
*gradients* instead would do nothing: Adam divides each step by the gradient's running RMS,
so the step size does not depend on the gradient's scale.
"""
from __future__ import annotations

import numpy as np
import tensorflow as tf
import tf_keras as keras

# The encoder's variables are `bert/...` (trainer/bert.py keeps Google's checkpoint names).
ENCODER_PREFIX = "bert/"


def encoder_variables(model: keras.Model) -> list[tf.Variable]:
    """The model's trainable `bert/...` variables: what `encoder_learning_rate` applies to."""
    return [v for v in model.trainable_variables if v.name.startswith(ENCODER_PREFIX)]


class PartRateAdamW(keras.optimizers.AdamW):
    """AdamW whose rate (and so its decoupled weight decay) is `rate_scale` x the schedule's for
    the variables in `scaled`, and the schedule's own for every other variable; a variable in
    `row_scales` (variable, factors) pairs also has a factor per row (a `[rows, 1]` array: trainer/row_evidence.py).

    A row factor works because Adam's step for an element is the rate times m / sqrt(v): scaling
    the rate scales the step, where scaling the gradient would cancel out (see above)."""

    def __init__(self, scaled: list[tf.Variable], rate_scale: float,
                 row_scales: list[tuple[tf.Variable, np.ndarray]] | None = None, **kwargs):
        if not rate_scale > 0:
            raise ValueError(f"rate_scale must be > 0, got {rate_scale}")
        super().__init__(**kwargs)
        self.rate_scale = float(rate_scale)
        # Keys, not the variables: `_var_key` maps a replica's copy of a distributed variable to
        # the same key as the variable itself, and ints keep the optimizer's checkpoint unchanged.
        self._scaled_keys = frozenset(self._var_key(v) for v in scaled)
        self._row_scales = {}
        for variable, rows in row_scales or ():
            rows = np.asarray(rows, dtype=np.float32)
            if rows.ndim != len(variable.shape) or rows.shape[0] != variable.shape[0]:
                raise ValueError(f"row scales of shape {rows.shape} do not fit {variable.name} {tuple(variable.shape)}")
            self._row_scales[self._var_key(variable)] = rows
        self._active_scale = 1.0

    def rate_scale_of(self, variable: tf.Variable):
        """The variable's factor: a float, or a `[rows, 1]` tensor for a table with row factors."""
        key = self._var_key(variable)
        scale = self.rate_scale if key in self._scaled_keys else 1.0
        rows = self._row_scales.get(key)
        return scale if rows is None else tf.constant(rows * scale, dtype=variable.dtype)

    # AdamW.update_step reads `self.learning_rate` once and is linear in it; the factor is set
    # around that call (at trace time, in the same thread), so Adam's own code does the update.
    @property
    def learning_rate(self):
        rate = keras.optimizers.AdamW.learning_rate.fget(self)
        scale = getattr(self, "_active_scale", 1.0)
        if isinstance(scale, float) and scale == 1.0:
            return rate
        return tf.cast(rate, scale.dtype) * scale if tf.is_tensor(scale) else rate * scale

    @learning_rate.setter
    def learning_rate(self, value):
        keras.optimizers.AdamW.learning_rate.fset(self, value)

    def update_step(self, gradient, variable):
        self._active_scale = self.rate_scale_of(variable)
        try:
            return super().update_step(gradient, variable)
        finally:
            self._active_scale = 1.0

    def _apply_weight_decay(self, variables):
        """tf-keras' distributed weight decay (`variable -= variable * wd * rate`) at each variable's rate.

        Rewritten rather than wrapped: Keras runs it through a merge call, which under
        MirroredStrategy executes on another thread than the one that would set the factor.
        """
        if self.weight_decay is None:
            return

        def decay_all(distribution, variables, **kwargs):
            def decay(variable):
                if self._use_weight_decay(variable):
                    rate = tf.cast(keras.optimizers.AdamW.learning_rate.fget(self), variable.dtype)
                    rate = rate * self.rate_scale_of(variable)
                    variable.assign_sub(variable * tf.cast(self.weight_decay, variable.dtype) * rate)

            for variable in variables:
                distribution.extended.update(variable, decay, group=False)

        tf.__internal__.distribute.interim.maybe_merge_call(decay_all, self._distribution_strategy, variables)
