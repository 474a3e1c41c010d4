"""Pipeline settings: where data and state live, which span, the window, and the gates."""
from __future__ import annotations

import dataclasses
import datetime
import os

from trainer.config import TrainConfig

DEFAULT_MODEL_NAME = "ranker"
DEFAULT_WINDOW = 7


@dataclasses.dataclass
class PipelineConfig:
    data_root: str
    home: str
    span: datetime.date
    window: int = DEFAULT_WINDOW
    from_scratch: bool = False
    model_name: str = DEFAULT_MODEL_NAME
    pipeline_name: str = "freshrank"
    train: TrainConfig = dataclasses.field(default_factory=TrainConfig)
    # Blessing: an absolute floor always, and no worse than the serving model by more than this.
    min_auc: float = 0.52
    bless_tolerance: float = 0.0
    beam_pipeline_args: list[str] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        self.data_root = os.path.abspath(self.data_root)
        self.home = os.path.abspath(self.home)
        if self.window < 1:
            raise ValueError(f"--window must be >= 1, got {self.window}")
        if not self.model_name or any(c in self.model_name for c in "/\\. "):
            raise ValueError(f"--model-name {self.model_name!r} must be a plain name (no '/', '.', spaces)")

    @property
    def pipeline_root(self) -> str:
        return os.path.join(self.home, "pipeline")

    @property
    def metadata_path(self) -> str:
        return os.path.join(self.home, "metadata.sqlite")

    @property
    def serving_dir(self) -> str:
        return os.path.join(self.home, "serving", self.model_name)

    @property
    def span_index_dir(self) -> str:
        return os.path.join(self.home, "span_index")

    @property
    def runs_log(self) -> str:
        return os.path.join(self.home, "runs.jsonl")
