"""NYUv2: 13-class segmentation, depth and surface normals of indoor scenes (Silberman et al., ECCV 2012).

The MTAN pre-processed version (795 train and 654 test images of 288×384, see ``mtan_data``),
SegNet-MTAN, Adam 1e-4 halved every 100 epochs, 200 epochs, batch 2, with augmentation, as the
reference's NYUv2 trainer (which also gives NTKMTL-SR a single chunk per batch: n_splits 1).
Nine metrics; Δm against the STL baselines of docs/REFERENCE_FACTS.md §3 (from CAGrad).
"""

from __future__ import annotations

from ntkmtl.benchmarks.base import Metric, TrainDefaults
from ntkmtl.benchmarks.dense import DenseBenchmark, mtan_options
from ntkmtl.benchmarks.mtan_data import MTANLayout

METRICS = (
    Metric("seg_miou", True, 0.3830),
    Metric("seg_pixacc", True, 0.6376),
    Metric("depth_abs_err", False, 0.6754),
    Metric("depth_rel_err", False, 0.2780),
    Metric("normal_mean_deg", False, 25.01),
    Metric("normal_median_deg", False, 19.21),
    Metric("normal_within_11_25", True, 0.3014),
    Metric("normal_within_22_5", True, 0.5720),
    Metric("normal_within_30", True, 0.6915),
)


class NYUv2(DenseBenchmark):
    name = "nyuv2"
    tasks = ("segmentation", "depth", "normal")
    n_classes = 13
    layout = MTANLayout(
        name="NYUv2",
        folders={"image": "image", "label": "label", "depth": "depth", "normal": "normal"},
        counts={"train": 795, "val": 654},
        size=(288, 384),
    )
    defaults = TrainDefaults(epochs=200, batch_size=2, lr=1e-4, scheduler="step", gpu_fraction=1.0)
    data_options = mtan_options("NYUv2", root="~/data/nyuv2", eval_batch_size=2)
    # The reference's NYUv2 trainer averages the batch into ONE chunk for NTKMTL-SR.
    method_defaults = {"ntkmtl_sr": {"n_splits": 1}}

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return METRICS
