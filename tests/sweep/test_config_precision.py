"""train.precision and train.task_gradients in a sweep config: validated before Ray starts."""

import pytest

from ntkmtl.sweep.config import ConfigError, parse_config

BASE = {"name": "t", "benchmark": "toy", "train": {"epochs": 2}, "seeds": [0], "methods": {"ls": {}, "ntkmtl": {}}}


def config(train=None, methods=None):
    return {**BASE, "train": {**BASE["train"], **(train or {})}, "methods": methods or BASE["methods"]}


def test_precision_and_task_gradients_reach_the_trial_settings():
    cfg = parse_config(config({"precision": "bf16", "task_gradients": "batched"}), source="p.yaml")
    assert cfg.train == {"epochs": 2, "precision": "bf16", "task_gradients": "batched"}
    assert "precision" not in parse_config(config(), source="p.yaml").train  # default: the trainer's fp32


@pytest.mark.parametrize(
    "train, methods, fragments",
    [
        ({"precision": "fp8"}, None, ["p.yaml: train.precision = 'fp8'", "valid: fp32, bf16, fp16"]),
        ({"task_gradients": "vmap"}, None, ["train.task_gradients = 'vmap'", "valid: auto, loop, batched"]),
        (
            {"precision": "fp16"},
            {"ls": {}, "ntkmtl_sr": {}},
            ["train.precision = 'fp16'", "not available for method 'ntkmtl_sr'", "(methods.ntkmtl_sr)"],
        ),
        (
            {"precision": "fp16", "task_gradients": "batched"},
            None,
            ["train.precision = 'fp16'", "needs task_gradients 'loop'"],
        ),
    ],
)
def test_bad_precision_settings_are_one_line(train, methods, fragments):
    with pytest.raises(ConfigError) as error:
        parse_config(config(train, methods), source="p.yaml")
    message = str(error.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message
