"""Config limits beyond the keys: duplicate YAML keys, seeds the RNGs accept, names the
filesystem accepts. Each was accepted before and failed later (a lost grid, an error in every
trial, an ``OSError`` after dry-run passed); each is now one line, exit 2, before Ray."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest

from ntkmtl.sweep.config import ConfigError, load_config
from ntkmtl.sweep.limits import NAME_MAX, RESERVED_BYTES, SEED_MAX
from ntkmtl.tune import main

CONFIG = """\
    name: dup
    benchmark: toy
    seeds: [0]
    methods:
      ntkmtl: {ntk_exp: [0.5]}
      ls: {}
      ntkmtl: {ntk_exp: [1.0]}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "sweep.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_method_listed_twice_is_an_error_naming_the_key_and_both_lines(tmp_path):
    path = write(tmp_path, CONFIG)
    with pytest.raises(ConfigError) as info:
        load_config(path, check_data=False)
    assert str(info.value) == (
        f"{path}: line 7: key 'ntkmtl' is given twice in one mapping (first on line 5); "
        "YAML would keep only the last, so remove or merge one of them"
    )


def test_duplicate_keys_anywhere_and_in_overrides_are_refused(tmp_path):
    nested = write(tmp_path, "benchmark: toy\nseeds: [0]\nmethods: {ls: {}}\ntrain: {epochs: 2, epochs: 3}\n")
    with pytest.raises(ConfigError, match=r"line 4: key 'epochs' is given twice in one mapping \(first on line 4\)"):
        load_config(nested, check_data=False)
    good = write(tmp_path, "benchmark: toy\nseeds: [0]\nmethods: {ls: {}}\n")
    with pytest.raises(
        ConfigError, match=r"--set 'methods=\{ls: \{\}, ls: \{max_norm: 1\}\}': line 1: key 'ls' is given twice"
    ):
        load_config(good, ["methods={ls: {}, ls: {max_norm: 1}}"], check_data=False)


def test_yaml_merge_keys_override_as_yaml_defines(tmp_path):
    from ntkmtl.sweep import strict_yaml

    assert strict_yaml.load("a: &x {p: 1, q: 2}\nb: {<<: *x, p: 3}\n")["b"] == {"p": 3, "q": 2}


def test_cli_duplicate_key_is_one_line_exit_2(tmp_path, capsys):
    assert main([str(write(tmp_path, CONFIG)), "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "key 'ntkmtl' is given twice" in err and "Traceback" not in err


def test_seeds_are_bounded_by_what_numpy_accepts(tmp_path):
    path = write(tmp_path, "benchmark: toy\nmethods: {ls: {}}\nseeds: [0]\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, ["seeds=[0, 4294967296]"], check_data=False)
    assert str(info.value) == (
        f"{path}: seeds[1] = 4294967296: must be an integer from 0 to 4294967295 "
        "(2**32 - 1: numpy's random.seed, which every trial calls, accepts no larger seed)"
    )
    assert load_config(path, [f"seeds=[{SEED_MAX}]"], check_data=False).seeds == (SEED_MAX,)
    with pytest.raises(ValueError):
        np.random.seed(SEED_MAX + 1)  # the bound is numpy's, not ours


def test_the_largest_seed_trains(toy):
    from ntkmtl.train import Trial, TrialConfig

    trial = Trial(
        TrialConfig(benchmark="toy", data={"n_train": 64, "n_val": 16, "n_test": 16}, seed=SEED_MAX, epochs=1)
    )
    records = list(trial.run())
    assert len(records) == 1 and records[0]["epoch"] == 1


def test_a_name_too_long_for_the_files_named_after_it_fails_validation(tmp_path, capsys):
    path = write(tmp_path, "benchmark: toy\nmethods: {ls: {}}\nseeds: [0]\n")
    longest = "n" * (NAME_MAX - RESERVED_BYTES)
    assert load_config(path, [f"name={longest}"], check_data=False).name == longest
    assert len(f".{longest}.sweep.json.4194304.tmp") <= NAME_MAX  # the longest file ntkmtl names after it
    assert main([str(path), "--dry-run", "--set", f"name={'a' * 300}"]) == 2
    err = capsys.readouterr().err
    assert err == (
        f"error: {path}: name = '{'a' * 40}…': is 300 bytes long; at most 215 bytes, since directories and files "
        "are named after it (e.g. '.<name>.sweep.json.<pid>.tmp', '<name>-extend<k>') and a file name may have "
        "at most 255 bytes\n"
    )
    with pytest.raises(OSError):  # what the name would have met later
        (tmp_path / f"{'a' * 300}.sweep.json").write_text("{}")


def test_output_and_local_storage_paths_are_checked_against_component_and_path_limits(tmp_path):
    path = write(tmp_path, "benchmark: toy\nmethods: {ls: {}}\nseeds: [0]\n")
    with pytest.raises(
        ConfigError, match=r"output = '.*…': has a component of 256 bytes \('x{40}…'\); at most 255 bytes each"
    ):
        load_config(path, [f"output={tmp_path}/{'x' * 256}/out"], check_data=False)
    deep = "/".join(["d" * 200] * 19)
    with pytest.raises(ConfigError, match=r"storage = .*: is \d+ bytes long; at most 3584 bytes"):
        load_config(path, [f"storage=/{deep}"], check_data=False)
    assert load_config(path, [f"storage=s3://bucket/{'p' * 300}"], check_data=False)  # object keys are not files
