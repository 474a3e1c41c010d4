"""A home's layout comes from one place, and its run records read back whole or not at all."""
from __future__ import annotations

import datetime
import json

from tfx_pipeline.config import PipelineConfig
from tfx_pipeline.home import Home


def test_every_path_of_a_home_and_the_pipeline_config_agree(tmp_path):
    home = Home(str(tmp_path / "h"))
    assert home.metadata_path == str(tmp_path / "h" / "metadata.sqlite")
    assert home.serving_dir("shop") == str(tmp_path / "h" / "serving" / "shop")
    assert home.retired_dir("shop") == str(tmp_path / "h" / "retired" / "shop")
    assert home.quarantine_dir("2026-11-01") == str(tmp_path / "h" / "quarantine" / "2026-11-01")
    config = PipelineConfig(data_root=str(tmp_path), home=str(tmp_path / "h"), span=datetime.date(2026, 11, 1),
                            model_name="shop")
    assert (config.metadata_path, config.pipeline_root, config.span_index_dir, config.runs_log, config.serving_dir) \
        == (home.metadata_path, home.pipeline_root, home.span_index_dir, home.runs_log, home.serving_dir("shop"))
    assert Home("gs://bucket/home").serving_dir("ranker") == "gs://bucket/home/serving/ranker"


def test_runs_skip_a_torn_last_line(tmp_path):
    home = Home(str(tmp_path))
    assert home.runs() == []
    with open(home.runs_log, "w", encoding="utf-8") as f:
        f.write(json.dumps({"span": "2026-11-01", "status": "pushed"}) + "\n\n")
        f.write(json.dumps({"span": "2026-11-02", "status": "not_blessed"}) + "\n")
        f.write('{"span": "2026-11-03", "sta')  # killed mid-write
    assert [r["span"] for r in home.runs()] == ["2026-11-01", "2026-11-02"]
