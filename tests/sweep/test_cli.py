"""`python -m ntkmtl.tune`: --help lists the methods, --dry-run prints the plan and starts nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from ntkmtl.tune import main

CONFIGS = Path(__file__).resolve().parents[2] / "tune_configs"


def test_help_lists_methods_and_their_hyperparameters(capsys):
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    out = capsys.readouterr().out
    for text in ("--dry-run", "--resume", "--address", "--set", "ntkmtl_sr", "ntk_exp = 0.5", "famo", "gamma"):
        assert text in out


def test_dry_run_prints_the_plan(capsys):
    assert main([str(CONFIGS / "quickstart.yaml"), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "10 trials = 5 configurations x 2 seeds, 3 epochs each" in out
    assert "ntkmtl                  2       4      12" in out and "seed_asha on val_delta_m (min)" in out


def test_dry_run_of_a_paper_grid_warns_about_missing_data(capsys, tmp_path):
    assert main([str(CONFIGS / "nyuv2_paper.yaml"), "--dry-run", "--set", f"data.root={tmp_path / 'nyu'}"]) == 0
    out = capsys.readouterr().out
    assert "54 trials = 18 configurations x 3 seeds, 200 epochs each" in out
    assert "warning: a real run would stop here" in out and "data.root" in out and "nyu" in out


def test_every_config_opens_with_its_command_and_validates(capsys):
    files = sorted(CONFIGS.glob("*.yaml"))
    assert {f.name for f in files} >= {
        "quickstart.yaml",
        "qm9_paper.yaml",
        "celeba_paper.yaml",
        "nyuv2_paper.yaml",
        "cityscapes_paper.yaml",
    }
    for path in files:
        first = path.read_text().splitlines()[0]
        assert first.startswith("# python -m ntkmtl.tune tune_configs/" + path.name), path
        assert main([str(path), "--dry-run"]) == 0, path
        assert "deprecated" not in capsys.readouterr().err, path  # shipped configs use early_stopping:


def test_bad_override_is_one_line_exit_2(capsys):
    assert main([str(CONFIGS / "toy.yaml"), "--set", "methods.ntkmtl.ntk_exp=[9]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "methods.ntkmtl.ntk_exp = 9" in err[0] and "out of range" in err[0]


def test_the_old_scheduler_key_warns_in_one_line_and_both_names_fail_in_one(capsys, tmp_path):
    text = (CONFIGS / "toy.yaml").read_text()
    old = tmp_path / "old.yaml"
    old.write_text(text.replace("\nearly_stopping:", "\nscheduler:"))
    assert main([str(old), "--dry-run"]) == 0
    captured = capsys.readouterr()
    assert captured.err.splitlines() == [
        f"warning: {old}: `scheduler:` is deprecated, rename it to `early_stopping:` (same keys); "
        "the old name goes in 0.3"
    ]
    assert "early_stopping: seed_asha on val_delta_m (min), grace period 2" in captured.out
    both = tmp_path / "both.yaml"
    both.write_text(text + "scheduler: {type: none}\n")
    assert main([str(both), "--dry-run"]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"error: {both}: both `scheduler:` and `early_stopping:` are given; `scheduler:` is the deprecated name "
        "of `early_stopping:`, keep only `early_stopping:`"
    ]
