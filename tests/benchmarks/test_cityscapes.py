"""Cityscapes: declarations, Δm, and training one epoch on a tiny fixture in the MTAN layout."""

import math

import pytest
from fixtures.vision import write_mtan

from ntkmtl.benchmarks import get_benchmark
from ntkmtl.train import Trial, TrialConfig

NAMES = ["seg_miou", "seg_pixacc", "depth_abs_err", "depth_rel_err"]


def test_declarations_follow_the_paper():
    bench = get_benchmark("cityscapes")
    assert bench.tasks == ("segmentation", "depth")
    assert [(m.name, m.higher_is_better, m.baseline) for m in bench.metrics] == [
        ("seg_miou", True, 0.7401),
        ("seg_pixacc", True, 0.9316),
        ("depth_abs_err", False, 0.0125),
        ("depth_rel_err", False, 27.77),
    ]
    d = bench.defaults
    assert (d.epochs, d.batch_size, d.lr, d.scheduler) == (200, 8, 1e-4, "step")
    assert bench.layout.folders["label"] == "label_7" and "normal" not in bench.layout.folders
    assert bench.method_hparams("ntkmtl_sr", {})["n_splits"] == 4  # the reference's Cityscapes trainer


def test_delta_m_on_known_vectors():
    bench = get_benchmark("cityscapes")
    values = {"seg_miou": 0.7401, "seg_pixacc": 0.9316, "depth_abs_err": 0.0125 * 0.8, "depth_rel_err": 27.77 * 1.4}
    assert bench.delta_m(values) == pytest.approx((0 + 0 - 20 + 40) / 4)


def test_one_epoch_on_the_fixture_gives_finite_metrics(tmp_path):
    write_mtan(tmp_path, "cityscapes", n_train=6, n_val=3)
    config = TrialConfig(
        benchmark="cityscapes",
        method="ntkmtl",
        epochs=1,
        batch_size=3,
        data={"root": str(tmp_path), "width_multiplier": 0.125, "eval_batch_size": 2},
    )
    (record,) = list(Trial(config).run())
    assert record["status"] == "completed"
    for split in ("val", "test"):
        for name in NAMES + ["delta_m"]:
            assert math.isfinite(record[f"{split}_{name}"]), (split, name)
    assert record["weight_segmentation"] > 0 and record["weight_depth"] > 0
