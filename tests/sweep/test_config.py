"""Sweep config validation: every bad config gets its own clear error, before Ray is imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from ntkmtl.benchmarks import BENCHMARKS
from ntkmtl.sweep.config import ConfigError, apply_override, load_config, parse_config

GOOD = {
    "name": "t",
    "benchmark": "toy",
    "train": {"epochs": 4},
    "seeds": [0, 1],
    "methods": {"ls": {}, "ntkmtl": {"ntk_exp": [0.5, 1.0]}},
    "early_stopping": {"type": "asha", "grace_period": 2},
}


def with_(change: dict) -> dict:
    """GOOD with dotted keys replaced (value None deletes the key)."""
    raw = json.loads(json.dumps(GOOD))
    for dotted, value in change.items():
        *parents, last = dotted.split(".")
        node = raw
        for p in parents:
            node = node.setdefault(p, {})
        if value is None:
            node.pop(last, None)
        else:
            node[last] = value
    return raw


# (change to GOOD, fragments the message must contain): each a different mistake.
BAD = {
    "unknown top-level key": ({"trian": {"epochs": 3}}, ["trian", "did you mean 'train'", "valid keys"]),
    "missing benchmark": ({"benchmark": None}, ["benchmark", "is required"]),
    "unknown benchmark": ({"benchmark": "qm10"}, ["benchmark = 'qm10'", f"valid: {', '.join(sorted(BENCHMARKS))}"]),
    "unknown method": ({"methods": {"ntkmlt": {}}}, ["methods.ntkmlt", "did you mean 'ntkmtl'", "valid:"]),
    "unknown hyperparameter": (
        {"methods": {"ls": {"ntk_exp": [0.5]}}},
        ["methods.ls.ntk_exp", "unknown key 'ntk_exp'", "max_norm"],
    ),
    "hyperparameter wrong type": (
        {"methods": {"ntkmtl": {"ntk_exp": [0.5, "big"]}}},
        ["methods.ntkmtl.ntk_exp[1] = 'big'", "not a number"],
    ),
    "hyperparameter out of range": (
        {"methods": {"ntkmtl": {"ntk_exp": -1}}},
        ["methods.ntkmtl.ntk_exp = -1", "out of range", "[0, 4]"],
    ),
    "empty grid": ({"methods": {"ntkmtl": {"ntk_exp": []}}}, ["methods.ntkmtl.ntk_exp = []", "empty grid"]),
    "no methods": ({"methods": {}}, ["methods = {}", "is empty"]),
    "empty seeds": ({"seeds": []}, ["seeds = []", "is empty"]),
    "duplicate seed": ({"seeds": [0, 0]}, ["seeds = [0, 0]", "more than once"]),
    "seed not an integer": ({"seeds": [0, 1.5]}, ["seeds[1] = 1.5", "integer"]),
    "epochs zero": ({"train.epochs": 0}, ["train.epochs = 0", ">= 1"]),
    "lr negative": ({"train.lr": -0.1}, ["train.lr = -0.1", "> 0"]),
    "bad device": ({"train.device": "tpu"}, ["train.device = 'tpu'", "valid: auto, cpu, cuda"]),
    "unknown data option": ({"data": {"n_trian": 10}}, ["data.n_trian", "unknown data option", "n_train"]),
    "data option out of range": ({"data": {"n_train": 0}}, ["data.n_train = 0", "out of range"]),
    "negative cpu": ({"resources": {"cpu": -1}}, ["resources.cpu = -1", "> 0"]),
    "gpu 1.5": ({"resources": {"gpu": 1.5}}, ["resources.gpu = 1.5", "whole number"]),
    "unknown early stopping": (
        {"early_stopping.type": "hyperband"},
        ["early_stopping.type = 'hyperband'", "valid: none, asha, seed_asha"],
    ),
    "mode contradicts metric": ({"early_stopping.mode": "max"}, ["early_stopping.mode = 'max'", "lower is better"]),
    "metric unknown": (
        {"early_stopping.metric": "test_delta_m"},
        ["early_stopping.metric = 'test_delta_m'", "val_delta_m"],
    ),
    "grace beyond epochs": ({"early_stopping.grace_period": 9}, ["early_stopping.grace_period = 9", "4 epochs"]),
    "reduction factor 1": ({"early_stopping.reduction_factor": 1}, ["early_stopping.reduction_factor = 1", "> 1"]),
    "seed_asha concurrency": (
        {"early_stopping.type": "seed_asha", "max_concurrent": 1},
        ["max_concurrent = 1", "seeds"],
    ),
    "negative max_failures": ({"max_failures": -1}, ["max_failures = -1", ">= 0"]),
    "bad storage scheme": ({"storage": "ftp://host/x"}, ["storage = 'ftp://host/x'", "unsupported scheme"]),
    "wandb online without key": ({"wandb": {"enabled": True, "mode": "online"}}, ["wandb.mode = 'online'", "API key"]),
    "wandb unknown key": ({"wandb": {"enabled": True, "projcet": "x"}}, ["wandb.projcet", "did you mean 'project'"]),
    "bad name": ({"name": "my sweep/1"}, ["name = 'my sweep/1'", "letters, digits"]),
}


@pytest.fixture(autouse=True)
def no_wandb_key(monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))


def test_good_config_is_typed_and_complete():
    cfg = parse_config(GOOD, source="good.yaml")
    assert cfg.benchmark == "toy" and cfg.seeds == (0, 1) and cfg.epochs == 4
    assert [m.name for m in cfg.methods] == ["ls", "ntkmtl"]
    assert cfg.methods[1].grid == {"ntk_exp": (0.5, 1.0)}
    assert cfg.data["n_train"] == 512  # the benchmark's defaults filled in
    assert (cfg.early_stopping.type, cfg.early_stopping.metric, cfg.early_stopping.mode) == (
        "asha",
        "val_delta_m",
        "min",
    )
    assert cfg.output == "results/t" and cfg.max_failures == 1 and cfg.resources.gpu is None


@pytest.mark.parametrize("case", sorted(BAD))
def test_each_bad_config_names_key_and_value(case):
    change, fragments = BAD[case]
    with pytest.raises(ConfigError) as info:
        parse_config(with_(change), source="bad.yaml")
    message = str(info.value)
    assert message.startswith("bad.yaml: ")
    for fragment in fragments:
        assert fragment in message, (case, message)
    assert "\n" not in message


def test_bad_configs_give_distinct_messages():
    messages = set()
    for change, _ in BAD.values():
        with pytest.raises(ConfigError) as info:
            parse_config(with_(change), source="bad.yaml")
        messages.add(str(info.value))
    assert len(messages) == len(BAD) >= 10


def test_missing_data_directory_is_reported_before_anything_runs(tmp_path):
    raw = with_(
        {
            "benchmark": "celeba",
            "data": {"root": str(tmp_path / "nowhere")},
            "methods": {"ls": {}},
            "early_stopping": {"type": "none"},
        }
    )
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="celeba.yaml")
    assert "celeba.yaml: data.root = " in str(info.value) and "nowhere" in str(info.value)


def test_wandb_offline_needs_no_key_and_env_mode_wins(monkeypatch):
    cfg = parse_config(with_({"wandb": {"enabled": True, "mode": "offline"}}))
    assert cfg.wandb.enabled and cfg.wandb.mode == "offline"
    monkeypatch.setenv("WANDB_MODE", "offline")
    assert parse_config(with_({"wandb": {"enabled": True, "mode": "online"}})).wandb.mode == "offline"


def test_overrides_and_file_loading(tmp_path):
    path = tmp_path / "sweep.yaml"
    path.write_text("# python -m ntkmtl.tune sweep.yaml\n" + yaml.safe_dump(with_({"name": None})))
    cfg = load_config(path, ["train.epochs=3", "seeds=[5]", "methods.ntkmtl.ntk_exp=[0.75]"])
    assert cfg.name == "sweep" and cfg.epochs == 3 and cfg.seeds == (5,)
    assert cfg.methods[1].grid == {"ntk_exp": (0.75,)}
    with pytest.raises(ConfigError, match="not of the form key=value"):
        apply_override({}, "train.epochs", "cli")
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "broken.yaml").write_text("methods: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(tmp_path / "broken.yaml")


def test_cli_rejects_bad_configs_without_importing_ray(tmp_path):
    """Ten bad configs through the CLI entry point in one fresh interpreter: exit 2, one line, no Ray."""
    paths = []
    for i, case in enumerate(sorted(BAD)[:10]):
        path = tmp_path / f"bad{i}.yaml"
        path.write_text(yaml.safe_dump(with_(BAD[case][0])))
        paths.append(str(path))
    script = textwrap.dedent(f"""
        import contextlib, io, json, sys
        from ntkmtl.tune import main
        out = []
        for path in {paths!r}:
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                code = main([path])
            out.append([code, err.getvalue()])
        print(json.dumps({{"results": out, "ray_imported": "ray" in sys.modules}}))
    """)
    env = {
        "PATH": "/usr/bin:/bin",
        "NETRC": str(tmp_path / "none"),
        "HOME": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).parents[2]),
    }
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ray_imported"] is False
    messages = []
    for code, err in report["results"]:
        assert code == 2
        lines = err.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
        messages.append(lines[0])
    assert len(set(messages)) == 10


# -- the top-level `scheduler:` renamed `early_stopping:` (the old name works until 0.3) -----------------
DEPRECATION = (
    "warning: {where}: `scheduler:` is deprecated, rename it to `early_stopping:` (same keys); the old name goes in 0.3"
)


def old_spelling(raw: dict) -> dict:
    """``raw`` as a config written before the rename: early stopping under ``scheduler:``."""
    return {("scheduler" if key == "early_stopping" else key): value for key, value in raw.items()}


def test_the_old_scheduler_key_still_works_with_one_deprecation_line(capsys):
    new = parse_config(GOOD, source="new.yaml")
    assert capsys.readouterr().err == ""
    old = parse_config(old_spelling(GOOD), source="old.yaml")
    assert capsys.readouterr().err.splitlines() == [DEPRECATION.format(where="old.yaml")]
    assert old.early_stopping == new.early_stopping and old.early_stopping.grace_period == 2
    with pytest.raises(ConfigError) as info:  # the section's errors name the key it has now
        parse_config(old_spelling(with_({"early_stopping.grace_period": 9})), source="old.yaml")
    assert str(info.value).startswith("old.yaml: early_stopping.grace_period = 9: exceeds the 4 epochs")


def test_both_names_at_once_are_one_line_error(capsys):
    raw = {**GOOD, "scheduler": {"type": "none"}}
    with pytest.raises(ConfigError) as info:
        parse_config(raw, source="both.yaml")
    assert str(info.value) == (
        "both.yaml: both `scheduler:` and `early_stopping:` are given; `scheduler:` is the deprecated name of "
        "`early_stopping:`, keep only `early_stopping:`"
    )
    assert capsys.readouterr().err == ""


def test_set_takes_either_name_over_either_spelling_of_the_file(tmp_path, capsys):
    new_file, old_file = tmp_path / "new.yaml", tmp_path / "old.yaml"
    new_file.write_text(yaml.safe_dump(GOOD))
    old_file.write_text(yaml.safe_dump(old_spelling(GOOD)))
    cfg = load_config(new_file, ["scheduler.type=seed_asha"])
    assert cfg.early_stopping.type == "seed_asha" and cfg.early_stopping.grace_period == 2
    assert capsys.readouterr().err.splitlines() == [
        f"warning: {new_file}: --set 'scheduler.type=seed_asha': `scheduler` is deprecated, rename it to "
        "`early_stopping` (same keys: --set early_stopping.type=seed_asha); the old name goes in 0.3"
    ]
    cfg = load_config(old_file, ["early_stopping.type=seed_asha"])  # the file's key is renamed first
    assert cfg.early_stopping.type == "seed_asha" and cfg.early_stopping.grace_period == 2
    assert capsys.readouterr().err.splitlines() == [DEPRECATION.format(where=old_file)]
    assert load_config(new_file, ["early_stopping.grace_period=3"]).early_stopping.grace_period == 3
    assert capsys.readouterr().err == ""


def test_a_config_pickled_by_ntkmtl_0_1_unpickles(capsys):
    """Ray's tuner.pkl of a searched sweep holds the SweepConfig: one written before the rename (and
    before config.py was split) must load for --resume. The fixture is ntkmtl 0.1's
    ``pickle.dumps(parse_config(OLD), protocol=0)``, early stopping in its field ``scheduler``."""
    import pickle

    old = {
        "name": "old",
        "benchmark": "toy",
        "train": {"epochs": 3},
        "seeds": [0, 1],
        "methods": {"ls": {}, "ntkmtl": {"ntk_exp": {"low": 0.25, "high": 1.5}}},
        "search": {"type": "random", "samples": 2},
        "early_stopping": {"type": "seed_asha", "grace_period": 1, "reduction_factor": 2},
        "output": "/srv/sweeps/old/out",
    }
    fixture = Path(__file__).parents[1] / "fixtures" / "sweep_config_0.1.pickle"
    assert b"SchedulerConfig" in fixture.read_bytes() and b"ntkmtl.sweep.config\nMethodGrid" in fixture.read_bytes()
    loaded = pickle.loads(fixture.read_bytes())
    assert loaded == parse_config(old, source="old.yaml")
    assert loaded.early_stopping.type == "seed_asha" and not hasattr(loaded, "scheduler")
