"""Cityscapes: 7-class segmentation and depth of street scenes (Cordts et al., CVPR 2016).

The MTAN pre-processed version (2975 train and 500 test images of 128×256, 7 coarse classes in
``label_7``, depth as stored by MTAN: disparity-like values, hence the large relative error),
SegNet-MTAN, Adam 1e-4 halved every 100 epochs, 200 epochs, batch 8, with augmentation
(docs/REFERENCE_FACTS.md §4). Four metrics; Δm against the STL baselines of docs/REFERENCE_FACTS.md §3.
"""

from __future__ import annotations

from ntkmtl.benchmarks.base import Metric, TrainDefaults
from ntkmtl.benchmarks.dense import DenseBenchmark, mtan_options
from ntkmtl.benchmarks.mtan_data import MTANLayout

METRICS = (
    Metric("seg_miou", True, 0.7401),
    Metric("seg_pixacc", True, 0.9316),
    Metric("depth_abs_err", False, 0.0125),
    Metric("depth_rel_err", False, 27.77),
)


class Cityscapes(DenseBenchmark):
    name = "cityscapes"
    tasks = ("segmentation", "depth")
    n_classes = 7
    layout = MTANLayout(
        name="Cityscapes",
        folders={"image": "image", "label": "label_7", "depth": "depth"},
        counts={"train": 2975, "val": 500},
        size=(128, 256),
    )
    defaults = TrainDefaults(epochs=200, batch_size=8, lr=1e-4, scheduler="step", gpu_fraction=1.0)
    data_options = mtan_options("Cityscapes", root="~/data/cityscapes", eval_batch_size=8)

    @property
    def metrics(self) -> tuple[Metric, ...]:
        return METRICS
