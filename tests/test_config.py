"""Configuration: paper defaults, dotted overrides, validation, round trips."""

from __future__ import annotations

import json

import pytest

from mcc.config import (
    ConfigError,
    EvalConfig,
    PretrainConfig,
    apply_overrides,
    from_dict,
    parse_set_args,
    to_dict,
    valid_keys,
)
from mcc.runs import RunDir


def test_configs_are_frozen():
    cfg = PretrainConfig()
    with pytest.raises(AttributeError):
        cfg.loss.tau = 0.1  # type: ignore[misc]


def test_valid_keys():
    keys = valid_keys(PretrainConfig)
    assert "loss.tau" in keys and "sampling.speeds" in keys and "seed" in keys
    assert "optim.batch_size" in keys and "data.path" in keys
    assert "loss" not in keys
    assert "protocol" in valid_keys(EvalConfig) and "protocol" not in keys


def test_apply_overrides_parses_types():
    base = PretrainConfig()
    cfg = apply_overrides(base, {"loss.tau": "0.2", "sampling.speeds": "1,2"})
    assert cfg.loss.tau == 0.2 and isinstance(cfg.loss.tau, float)
    assert cfg.sampling.speeds == (1, 2)
    assert all(isinstance(s, int) for s in cfg.sampling.speeds)
    assert base.loss.tau == 0.5  # the original is untouched
    cfg = apply_overrides(
        base,
        {
            "loss.queue_size": "128",
            "model.edge_importance": "false",
            "sampling.overflow": "cap",
            "optim.milestones": "(3, 7)",
            "seed": "-4",
        },
    )
    assert cfg.loss.queue_size == 128 and isinstance(cfg.loss.queue_size, int)
    assert cfg.model.edge_importance is False
    assert cfg.sampling.overflow == "cap"
    assert cfg.optim.milestones == (3, 7)
    assert cfg.seed == -4


def test_parse_set_args():
    assert parse_set_args(["loss.tau=0.2", " seed = 3 ", "data.path=a=b"]) == {
        "loss.tau": "0.2",
        "seed": "3",
        "data.path": "a=b",
    }
    assert parse_set_args(None) == {}
    with pytest.raises(ConfigError, match="key=value"):
        parse_set_args(["loss.tau"])


def test_unknown_key_lists_valid_keys():
    with pytest.raises(ConfigError) as e:
        apply_overrides(PretrainConfig(), {"loss.bogus": "1"})
    msg = str(e.value)
    assert "loss.bogus" in msg
    assert "loss.tau" in msg and "sampling.speeds" in msg and "optim.lr" in msg
    with pytest.raises(ConfigError):
        apply_overrides(PretrainConfig(), {"loss": "1"})
    with pytest.raises(ConfigError):
        apply_overrides(PretrainConfig(), {"protocol": "knn"})  # an EvalConfig key


@pytest.mark.parametrize(
    "key, value",
    [
        ("loss.queue_size", "abc"),
        ("loss.queue_size", "1.5"),
        ("loss.tau", "fast"),
        ("sampling.speeds", "1,x"),
        ("model.edge_importance", "maybe"),
        ("optim.batch_size", ""),
    ],
)
def test_bad_value_names_the_key(key, value):
    with pytest.raises(ConfigError) as e:
        apply_overrides(PretrainConfig(), {key: value})
    assert key in str(e.value)


def test_queue_smaller_than_batch():
    with pytest.raises(ConfigError) as e:
        apply_overrides(PretrainConfig(), {"loss.queue_size": "32"})
    assert "loss.queue_size=32" in str(e.value) and "64" in str(e.value)
    cfg = apply_overrides(PretrainConfig(), {"loss.queue_size": "32", "optim.batch_size": "32"})
    assert cfg.loss.queue_size == 32
    # without the NCE term the queue is unused
    cfg = apply_overrides(PretrainConfig(), {"loss.queue_size": "32", "loss.nce": "0"})
    assert cfg.loss.nce == 0


def test_slow_rule_exact_needs_divisible_speeds():
    with pytest.raises(ConfigError) as e:
        apply_overrides(PretrainConfig(), {"loss.slow_rule": "exact"})
    msg = str(e.value)
    assert "[1]" in msg and "interp_rate=2" in msg
    with pytest.raises(ConfigError) as e:
        apply_overrides(
            PretrainConfig(),
            {"loss.slow_rule": "exact", "loss.interp_rate": "4", "sampling.speeds": "2,4,8"},
        )
    assert "[2]" in str(e.value)
    cfg = apply_overrides(PretrainConfig(), {"loss.slow_rule": "exact", "sampling.speeds": "2,4,8"})
    assert cfg.loss.slow_rule == "exact"
    # reconstruction needs no interpolation rule: the paper's speeds 1, 2, 4, 8 are allowed
    cfg = apply_overrides(
        PretrainConfig(), {"loss.slow_rule": "exact", "loss.interp_target": "reconstruct"}
    )
    assert (cfg.loss.slow_rule, 1 in cfg.sampling.speeds) == ("exact", True)


@pytest.mark.parametrize("speeds", ["0,1,2", "1,-2", ""])
def test_bad_speeds(speeds):
    with pytest.raises(ConfigError, match="sampling.speeds"):
        apply_overrides(PretrainConfig(), {"sampling.speeds": speeds})


def test_one_speed_needs_no_positive():
    with pytest.raises(ConfigError, match="two speeds"):
        apply_overrides(PretrainConfig(), {"sampling.speeds": "2"})
    cfg = apply_overrides(PretrainConfig(), {"sampling.speeds": "2", "sampling.positive": "none"})
    assert cfg.sampling.speeds == (2,)


@pytest.mark.parametrize(
    "key, value",
    [
        ("sampling.overflow", "wrap"),
        ("sampling.negative", "noise"),
        ("sampling.positive", "all"),
        ("loss.slow_rule", "nearest"),
        ("loss.interp_target", "both"),
        ("data.normalize", "scale"),
        ("optim.schedule", "linear"),
        ("precision", "fp8"),
        ("model.backbone", "resnet"),
    ],
)
def test_choices_are_checked(key, value):
    with pytest.raises(ConfigError) as e:
        apply_overrides(PretrainConfig(), {key: value})
    assert key in str(e.value) and value in str(e.value)


@pytest.mark.parametrize(
    "key, value",
    [
        ("loss.tau", "0"),
        ("loss.tau", "-0.1"),
        ("loss.margin", "-0.1"),
        ("sampling.shear", "-0.1"),
        ("loss.momentum", "1.0"),
        ("loss.interp_rate", "0"),
        ("sampling.clip_len", "0"),
        ("optim.batch_size", "0"),
        ("optim.lr", "-1"),
        ("model.width", "0"),
        ("data.val_fraction", "1.0"),
    ],
)
def test_ranges_are_checked(key, value):
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
        apply_overrides(PretrainConfig(), {key: value})


def test_eval_ranges():
    with pytest.raises(ConfigError, match="label_fraction"):
        apply_overrides(EvalConfig(), {"label_fraction": "0"})
    with pytest.raises(ConfigError, match="protocol"):
        apply_overrides(EvalConfig(), {"protocol": "semi"})
    cfg = apply_overrides(EvalConfig(), {"protocol": "knn", "label_fraction": "0.1"})
    assert cfg.protocol == "knn" and cfg.label_fraction == 0.1


def test_round_trip_through_a_run_folders_config_json(tmp_path):
    """What a run saves (RunDir.write_config, JSON) rebuilds the same config: tuples, bools,
    paths with spaces and non-default values of both config classes."""
    pre = apply_overrides(
        PretrainConfig(),
        {
            "loss.tau": "0.2",
            "sampling.speeds": "1,2",
            "sampling.overflow": "cap",
            "optim.milestones": "5",
            "model.edge_importance": "no",
            "data.path": "/tmp/x y",
            "seed": "7",
        },
    )
    ev = apply_overrides(EvalConfig(), {"protocol": "semi", "label_fraction": "0.1",
                                        "optim.milestones": "", "scored": "val"})  # fmt: skip
    for cls, cfg in ((PretrainConfig, pre), (EvalConfig, ev)):
        run = RunDir(tmp_path / cls.__name__)
        run.write_config(to_dict(cfg))
        saved = json.loads((run.path / "config.json").read_text())
        assert from_dict(cls, saved) == cfg != cls()
    assert saved["label_fraction"] == 0.1 and saved["optim"]["milestones"] == []
    back = from_dict(PretrainConfig, json.loads((tmp_path / "PretrainConfig" / "config.json")
                                                .read_text()))  # fmt: skip
    assert back.sampling.speeds == (1, 2) and back.optim.milestones == (5,)
    assert back.model.edge_importance is False and back.data.path == "/tmp/x y"


def test_from_dict_rejects_unknown_keys():
    d = to_dict(PretrainConfig())
    d["loss"]["bogus"] = 1
    with pytest.raises(ConfigError, match="loss.bogus"):
        from_dict(PretrainConfig, d)


@pytest.mark.parametrize("key", ["loss.tau", "loss.margin", "optim.lr", "loss.triplet"])
@pytest.mark.parametrize("value", ["nan", "inf"])
def test_non_finite_values_are_rejected(key, value):
    with pytest.raises(ConfigError, match="not a finite number"):
        apply_overrides(PretrainConfig(), {key: value})
