"""The FLOPs of one training example, counted from the built model, frozen layers honoured.

Comparing update strategies by examples processed alone hides what partial mode saves: a frozen
lower encoder still runs forward, but its backward pass is skipped (nothing below it needs a
gradient). So compute = examples processed x (forward FLOPs + backward FLOPs of the layers
above the frozen prefix), with backward = twice forward (gradients for the inputs and for the
weights, Kaplan et al. 2020's 6N rule). Matrix multiplies only, 2 FLOPs per multiply-add;
embedding and id lookups, the wide part's sparse rows, norms and activations are left out as
they are in every FLOP count of transformers.
"""
from __future__ import annotations

import tf_keras as keras

from trainer.config import TrainConfig


def _dense_kernels(layer: keras.layers.Layer) -> int:
    """Multiply-adds of one row through the layer's dense kernels (rank-2 weights)."""
    return sum(int(w.shape[0]) * int(w.shape[1]) for w in layer.weights
               if w.shape.rank == 2 and "kernel" in w.name)


def training_flops_per_example(core: keras.Model, config: TrainConfig) -> dict[str, int]:
    """{'forward', 'backward', 'total'} FLOPs of one impression through the ranker's core.

    The encoder runs once per impression over `max_seq_length` tokens (query and title as one
    pair); per block: its projections for every token plus the attention's two S x S x hidden
    products. The pooler and the head run once per impression. Batches are padded only to their
    longest pair (trainer/text.py), so the work done is less than this nominal count (about 0.6
    of it on the generated market); every strategy is counted the same way, so the ratios between
    them, which is what the bench compares, are unaffected.
    """
    seq, hidden = config.bert.max_seq_length, config.bert.hidden_size
    encoder = core.get_layer("bert")
    stack: list[tuple[int, bool]] = [(0, encoder.embeddings.trainable)]  # lookups: no matmul
    for block in encoder.blocks:
        stack.append((2 * seq * _dense_kernels(block) + 4 * seq * seq * hidden, block.trainable))
    stack.append((2 * _dense_kernels(encoder.pooler), encoder.pooler.trainable))
    head = sum(_dense_kernels(layer) for layer in core.layers if layer is not encoder)
    stack.append((2 * head, True))
    forward = sum(flops for flops, _ in stack)
    # Backward runs from the top down to the lowest trainable layer and stops there.
    lowest = next((i for i, (_, trainable) in enumerate(stack) if trainable), len(stack))
    backward = 2 * sum(flops for flops, _ in stack[lowest:])
    return {"forward": forward, "backward": backward, "total": forward + backward}
