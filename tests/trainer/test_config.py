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
    ],
)
def test_bad_settings_name_the_setting(raw, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig.from_dict(raw)
