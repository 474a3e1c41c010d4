import json

import pytest

from trainer.config import TrainConfig


def test_round_trip_through_json():
    config = TrainConfig(epochs=5, update_mode="partial")
    config.bert.num_layers = 3
    again = TrainConfig.from_json(config.to_json())
    assert again == config


@pytest.mark.parametrize(
    "raw, message",
    [
        ({"epoch": 3}, "unknown training setting"),
        ({"bert": {"layers": 2}}, "unknown BERT setting"),
        ({"update_mode": "lora"}, "update_mode"),
        ({"replay_fraction": 1.5}, "replay_fraction"),
        ({"bert": {"hidden_size": 30, "num_heads": 4}}, "divisible"),
        ({"distribution": "gpu"}, "distribution"),
        ({"warm_start_epochs": 0}, "warm_start_epochs"),
        ({"early_stopping_metric": "ndcg"}, "early_stopping_metric"),
        ({"encoder_learning_rate": 0.0}, "encoder_learning_rate must be > 0"),
        ({"encoder_learning_rate": -1e-4}, "encoder_learning_rate must be > 0"),
        ({"bert": {"pooling": "max"}}, "bert.pooling must be one of"),
    ],
)
def test_bad_settings_name_the_setting(raw, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(raw)


def test_a_config_written_before_pooling_and_encoder_rates_existed_reads_as_what_it_was():
    """model.json of older exports has neither field: [CLS] pooling, one rate for the whole model."""
    raw = json.loads(TrainConfig().to_json())
    del raw["bert"]["pooling"], raw["encoder_learning_rate"]
    old = TrainConfig.from_dict(raw)
    assert old.bert.pooling == "cls" and old.encoder_learning_rate is None
    assert TrainConfig.from_dict({"bert": {"pooling": "mean"}, "encoder_learning_rate": 1e-4}).bert.pooling == "mean"
