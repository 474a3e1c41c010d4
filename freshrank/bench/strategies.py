"""The update strategies the bench compares: what each trains on, from what, and how.

Every strategy starts from the same first model (span 1, from scratch). After that:

- static: never updated.
- full_retrain: from scratch on the whole window (the newest `window` spans), every span.
- warm_start: from its previous model, on the newest span only.
- warm_start_replay: as warm_start, plus a `replay_fraction` sample of the older window spans
  (sampled by SpanWindow's own `_copy_split`, as the pipeline's window is).
- warm_start_partial: as warm_start, in `update_mode="partial"` (embeddings and the lower
  encoder layers frozen).
- warm_start_distill: as warm_start, with the previous model's scores mixed into the purchase
  labels (`distill_weight`, trainer/task.py `_with_soft_labels`).

Warm-start strategies take `warm_epochs` passes (default 1: one incremental SGD pass over the new
data, the mechanism's update); from-scratch training takes `epochs`.
"""
from __future__ import annotations

import dataclasses

from trainer.config import TrainConfig

STRATEGIES = ("static", "full_retrain", "warm_start", "warm_start_replay", "warm_start_partial",
              "warm_start_distill")


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    updates: bool = True
    warm: bool = True
    replay_fraction: float = 0.0  # share of each older window span; 1.0 with warm=False: whole window
    update_mode: str = "full"
    distill_weight: float = 0.0

    def train_config(self, base: TrainConfig, epochs: int, warm_epochs: int) -> TrainConfig:
        return dataclasses.replace(
            base, epochs=warm_epochs if self.warm else epochs, update_mode=self.update_mode,
            replay_fraction=self.replay_fraction, distill_weight=self.distill_weight)


def strategies(replay_fraction: float = 0.3, distill_weight: float = 0.3) -> dict[str, Strategy]:
    """The six strategies by name, in report order."""
    return {
        "static": Strategy("static", updates=False, warm=False),
        "full_retrain": Strategy("full_retrain", warm=False, replay_fraction=1.0),
        "warm_start": Strategy("warm_start"),
        "warm_start_replay": Strategy("warm_start_replay", replay_fraction=replay_fraction),
        "warm_start_partial": Strategy("warm_start_partial", update_mode="partial"),
        "warm_start_distill": Strategy("warm_start_distill", distill_weight=distill_weight),
    }
