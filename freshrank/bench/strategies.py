"""The update strategies the bench compares: what each trains on, from what, and how.

Every strategy starts from the same first model (span 1, from scratch). After that:

- static: never updated.
- full_retrain: from scratch on the whole window (the newest `window` spans) at every span,
  `epochs` passes: the expensive reference an incremental update has to match.
- warm_start: from its previous model, on the newest span only.
- warm_start_replay: as warm_start, plus a `replay_fraction` sample of each older window span
  (sampled by SpanWindow's own `copy_split`, as the pipeline's window is).
- warm_start_partial: as warm_start, in `update_mode="partial"` (embeddings and the lower
  encoder layers frozen; its backward pass stops above them, which `train_flops` counts).
- warm_start_distill: as warm_start, with the previous model's scores mixed into the purchase
  labels (`distill_weight`, trainer/task.py `_with_soft_labels`).
- pipeline_default: exactly what `freshrank run` does with its defaults: the bench's TrainConfig
  as given (its replay fraction, passes, learning rates), the pipeline's default window, and the
  served model follows the blessing rule: a rejected candidate is not served and the next update
  starts from the model that still is.

The named warm-start strategies change only their own lever against the defaults and take
`warm_epochs` passes; from-scratch training takes `epochs`. Other strategies (a sweep) are
built the same way with `Strategy(name, overrides={...})`.
"""
from __future__ import annotations

import dataclasses

from trainer.config import TrainConfig

STRATEGIES = ("static", "full_retrain", "warm_start", "warm_start_replay", "warm_start_partial",
              "warm_start_distill", "pipeline_default")


@dataclasses.dataclass(frozen=True)
class Strategy:
    name: str
    updates: bool = True
    warm: bool = True
    replay_fraction: float = 0.0  # share of each older window span; 1.0 with warm=False: whole window
    window: int | None = None  # spans in the window; None: the bench's --window
    overrides: dict = dataclasses.field(default_factory=dict)  # TrainConfig fields
    defaults: bool = False  # the TrainConfig exactly as given (pipeline_default)
    follows_blessing: bool = False  # a rejected candidate is neither served nor continued
    # Replay the same sample of an older span at every update (the pipeline draws a new one per
    # update); an ablation only.
    fixed_replay_sample: bool = False
    # The new span's pages a strategy that follows blessing is blessed on (`--bless-pages`); None:
    # the bench's setting. Lets one run compare two blessing rules' served chains, paired.
    bless_pages: str | None = None

    def train_config(self, base: TrainConfig, epochs: int, warm_epochs: int) -> TrainConfig:
        if self.defaults:
            return base
        config = dataclasses.replace(base, epochs=epochs, warm_start_epochs=warm_epochs, update_mode="full",
                                     replay_fraction=self.replay_fraction, distill_weight=0.0)
        return dataclasses.replace(config, **self.overrides)

    def window_spans(self, bench_window: int) -> int:
        return self.window if self.window is not None else bench_window


def strategies(base: TrainConfig, pipeline_window: int, replay_fraction: float = 0.3,
               distill_weight: float = 0.3) -> dict[str, Strategy]:
    """The seven strategies by name, in report order."""
    return {
        "static": Strategy("static", updates=False, warm=False),
        "full_retrain": Strategy("full_retrain", warm=False, replay_fraction=1.0),
        "warm_start": Strategy("warm_start"),
        "warm_start_replay": Strategy("warm_start_replay", replay_fraction=replay_fraction),
        "warm_start_partial": Strategy("warm_start_partial", overrides={"update_mode": "partial"}),
        "warm_start_distill": Strategy("warm_start_distill", overrides={"distill_weight": distill_weight}),
        "pipeline_default": Strategy("pipeline_default", replay_fraction=base.replay_fraction,
                                     window=pipeline_window, defaults=True, follows_blessing=True),
    }
