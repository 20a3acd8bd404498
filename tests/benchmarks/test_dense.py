"""The parts NYUv2 and Cityscapes share: MTAN layout, augmentation, dense losses and metrics, SegNet-MTAN."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures.vision import write_mtan

from ntkmtl.benchmarks import DataError, get_benchmark
from ntkmtl.benchmarks.dense import (
    confusion_matrix,
    depth_errors,
    depth_terms,
    normal_errors,
    normal_terms,
    segmentation_scores,
    segmentation_terms,
)
from ntkmtl.benchmarks.loading import held_out_split
from ntkmtl.benchmarks.mtan_data import flip, random_flip, random_scale_crop, scale_crop
from ntkmtl.benchmarks.nets.segnet_mtan import SegNetMTAN


# -- losses: the per-image terms add up to the reference's batch losses -------------------------
def test_loss_terms_add_up_to_the_reference_batch_losses():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 5, 4, 6, generator=g)
    label = torch.randint(-1, 5, (3, 4, 6), generator=g)
    depth_pred, depth = torch.randn(3, 1, 4, 6, generator=g), torch.rand(3, 1, 4, 6, generator=g)
    depth[depth < 0.2] = 0
    normal_pred = F.normalize(torch.randn(3, 3, 4, 6, generator=g), dim=1)
    normal = F.normalize(torch.randn(3, 3, 4, 6, generator=g), dim=1)
    normal[:, :, :2, :2] = 0

    sums, counts = segmentation_terms(logits, label)
    assert torch.allclose(sums.sum() / counts.sum(), F.nll_loss(F.log_softmax(logits, 1), label, ignore_index=-1))
    assert counts.tolist() == (label != -1).sum((1, 2)).float().tolist()

    mask = (depth.sum(1) != 0).float().unsqueeze(1)  # the reference's calc_loss, verbatim maths
    sums, counts = depth_terms(depth_pred, depth)
    assert torch.allclose(
        sums.sum() / counts.sum(), ((depth_pred - depth).abs() * mask).sum() / mask.nonzero().shape[0]
    )

    mask = (normal.sum(1) != 0).float().unsqueeze(1)
    sums, counts = normal_terms(normal_pred, normal)
    assert torch.allclose(sums.sum() / counts.sum(), 1 - (normal_pred * normal * mask).sum() / mask.nonzero().shape[0])
    assert counts.tolist() == [20.0, 20.0, 20.0]  # 24 pixels, 4 without a normal


def reference_sr_image_losses(logits, label, depth_pred, depth, normal_pred=None, normal=None):
    """The reference's NTKMTL-SR calc_loss (nyuv2/cityscapes trainers, commented there), re-stated:
    per-image losses [B, K]; segmentation averaged over ALL pixels, depth/normal over valid ones."""
    b = logits.shape[0]
    seg = F.nll_loss(F.log_softmax(logits, 1), label, ignore_index=-1, reduction="none").view(b, -1).mean(1)
    mask = (depth.sum(1) != 0).float().unsqueeze(1)
    dep = ((depth_pred - depth).abs() * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3))
    columns = [seg, dep]
    if normal is not None:
        mask = (normal.sum(1) != 0).float().unsqueeze(1)
        columns.append(1 - (normal_pred * normal * mask).sum((1, 2, 3)) / mask.sum((1, 2, 3)))
    return torch.stack(columns, 1)


@pytest.mark.parametrize("name, batch", [("nyuv2", 2), ("cityscapes", 8)])
def test_sr_chunk_losses_are_the_reference_image_means(tmp_path, name, batch):
    from ntkmtl.benchmarks.base import chunk_losses
    from ntkmtl.methods import get_method

    g = torch.Generator().manual_seed(1)
    bench = get_benchmark(name)
    k = bench.n_tasks
    logits = torch.randn(batch, bench.n_classes, 4, 6, generator=g)
    label = torch.randint(-1, bench.n_classes, (batch, 4, 6), generator=g)
    depth_pred, depth = torch.randn(batch, 1, 4, 6, generator=g), torch.rand(batch, 1, 4, 6, generator=g)
    depth[depth < 0.3] = 0
    normal_pred = F.normalize(torch.randn(batch, 3, 4, 6, generator=g), dim=1)
    normal = F.normalize(torch.randn(batch, 3, 4, 6, generator=g), dim=1)
    normal[:, :, :2, :3] = 0
    outputs = [logits, depth_pred, normal_pred][:k]
    data = {"label": label, "depth": depth, "normal": normal}
    per_image = reference_sr_image_losses(logits, label, depth_pred, depth, *((normal_pred, normal) if k == 3 else ()))
    method = get_method("ntkmtl_sr", k, **bench.method_hparams("ntkmtl_sr", {}))
    slices = method.requirements.batch_chunks(batch)
    losses = chunk_losses(*bench.chunk_loss_terms(outputs, data, bench.loss_terms(outputs, data)), slices)
    # NYUv2's reference trainer: ONE chunk, the batch mean of the per-image losses;
    # Cityscapes': torch.chunk(per_image, 4), each chunk averaged
    expected = (
        per_image.mean(0, keepdim=True)
        if name == "nyuv2"
        else torch.stack([c.mean(0) for c in torch.chunk(per_image, 4)])
    )
    assert losses.shape == ((1, 3) if name == "nyuv2" else (4, 2))
    assert torch.allclose(losses, expected, rtol=1e-6)
    # the named alternative weights each chunk's pixels like the batch loss does
    pixels = get_benchmark(name, chunk_loss="valid_pixels")
    terms = pixels.loss_terms(outputs, data)
    assert torch.equal(
        chunk_losses(*pixels.chunk_loss_terms(outputs, data, terms), slices), chunk_losses(*terms, slices)
    )
    assert not torch.allclose(chunk_losses(*terms, slices)[:, 0], expected[:, 0])  # seg: ÷ valid pixels, not all


# -- metrics against hand-computed values -----------------------------------------------------
def test_segmentation_scores_by_hand():
    label = torch.tensor([[0, 0, 1, 1, 2, -1]])
    pred = torch.tensor([[0, 1, 1, 1, 0, 2]])
    confusion = confusion_matrix(pred, label, 4)  # class 3 absent from truth and prediction
    assert confusion[:3, :3].tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 0]]
    miou, pixacc = segmentation_scores(confusion)
    # IoU: class 0 = 1/(2+2-1), class 1 = 2/(2+3-2), class 2 = 0/(1+0-0); class 3 left out
    assert miou == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert pixacc == pytest.approx(3 / 5)


def test_depth_errors_by_hand():
    pred = torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 1, 2, 2)
    depth = torch.tensor([2.0, 0.0, 3.0, 2.0]).view(1, 1, 2, 2)  # 0 = no measurement
    abs_err, rel_err = depth_errors(pred, depth)
    assert abs_err == pytest.approx((1 + 0 + 2) / 3)
    assert rel_err == pytest.approx((0.5 + 0 + 1) / 3)
    assert depth_errors(pred, torch.zeros_like(depth)) is None


def test_normal_errors_by_hand():
    c, s = math.cos(math.radians(60)), math.sin(math.radians(60))
    truth = torch.tensor([[1.0, 0, 0], [1, 0, 0], [1, 0, 0], [0, 0, 0]]).T.reshape(1, 3, 1, 4)
    pred = torch.tensor([[1.0, 0, 0], [0, 1, 0], [c, s, 0], [0, 0, 1]]).T.reshape(1, 3, 1, 4)
    mean, median, within_11, within_22, within_30 = normal_errors(pred, truth)  # angles 0°, 90°, 60°
    assert mean == pytest.approx(50.0, abs=1e-3)
    assert median == pytest.approx(60.0, abs=1e-3)
    assert (within_11, within_22, within_30) == pytest.approx((1 / 3, 1 / 3, 1 / 3))
    assert normal_errors(pred, torch.zeros_like(truth)) is None


# -- augmentation ---------------------------------------------------------------------------------
def _sample(h=32, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    depth = torch.full((1, h, w), 3.0)
    depth[0, 0, :5] = 0
    return {
        "image": torch.rand(3, h, w, generator=g),
        "label": torch.randint(-1, 13, (h, w), generator=g),
        "depth": depth,
        "normal": F.normalize(torch.randn(3, h, w, generator=g), dim=0),
    }


def test_scale_crop_divides_depth_by_the_scale_and_keeps_size_and_labels():
    sample = _sample()
    out = scale_crop(sample, 1.5, top=5, left=7)
    assert all(out[k].shape == sample[k].shape for k in sample)
    assert set(out["depth"].unique().tolist()) <= {0.0, 2.0}  # 3 / 1.5; unknown stays unknown
    assert out["label"].dtype == torch.long and set(out["label"].unique().tolist()) <= set(
        sample["label"].unique().tolist()
    )
    # the crop's top-left pixel lands on the output's top-left pixel (align_corners)
    assert torch.allclose(out["image"][:, 0, 0], sample["image"][:, 5, 7])
    same = scale_crop(sample, 1.0, top=0, left=0)
    assert all(torch.equal(same[k], sample[k]) for k in sample)


def test_flip_mirrors_everything_and_negates_normal_x():
    sample = _sample()
    out = flip(sample)
    assert torch.equal(out["normal"][0], -sample["normal"][0].flip(-1))
    assert torch.equal(out["normal"][1:], sample["normal"][1:].flip(-1))
    assert torch.equal(out["label"], sample["label"].flip(-1))
    assert torch.equal(out["depth"], sample["depth"].flip(-1))
    assert all(torch.equal(flip(out)[k], sample[k]) for k in sample)


def test_random_augmentation_is_seeded_by_torch():
    sample = _sample()
    torch.manual_seed(3)
    a = random_flip(random_scale_crop(sample))
    torch.manual_seed(3)
    b = random_flip(random_scale_crop(sample))
    assert all(torch.equal(a[k], b[k]) for k in a)
    torch.manual_seed(0)
    flips = [not torch.equal(random_flip(sample)["label"], sample["label"]) for _ in range(40)]
    assert 5 < sum(flips) < 35


# -- splits and data errors ------------------------------------------------------------------
def test_held_out_split_is_fixed_by_split_seed_alone():
    kept, held_out = held_out_split(795, 0.1, split_seed=0)
    assert (len(kept), len(held_out)) == (715, 80)
    assert held_out[:8].tolist() == [2, 8, 13, 19, 23, 26, 36, 45]  # locked: never changes silently
    assert sorted(np.concatenate([kept, held_out]).tolist()) == list(range(795))
    assert held_out_split(795, 0.1, split_seed=1)[1].tolist() != held_out.tolist()


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes"])
def test_by_default_train_is_the_whole_train_split_and_val_is_the_test_set_as_in_the_reference(tmp_path, name):
    write_mtan(tmp_path, name, n_train=5, n_val=3)
    bench = get_benchmark(name, root=str(tmp_path), augment=False)
    splits = bench.splits()
    assert splits["train"][0] == tmp_path.resolve() / "train" and splits["train"][1].tolist() == [0, 1, 2, 3, 4]
    assert splits["val"][0] == splits["test"][0] == tmp_path.resolve() / "val"
    assert splits["val"][1].tolist() == splits["test"][1].tolist() == [0, 1, 2]


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes"])
def test_splits_never_touch_test_and_ignore_the_training_seed(tmp_path, name):
    write_mtan(tmp_path, name, n_train=10, n_val=3)
    bench = get_benchmark(name, root=str(tmp_path), val_fraction=0.2, augment=False)
    splits = bench.splits()
    assert splits["train"][0] == splits["val"][0] == tmp_path.resolve() / "train"
    assert splits["test"][0] == tmp_path.resolve() / "val" and splits["test"][1].tolist() == [0, 1, 2]
    assert len(splits["val"][1]) == 2 and not set(splits["train"][1]) & set(splits["val"][1])
    sizes = [tuple(len(loader.dataset) for loader in bench.loaders(2, seed)) for seed in (0, 1)]
    assert sizes == [(8, 2, 3), (8, 2, 3)]
    train, _, _ = get_benchmark(name, root=str(tmp_path), max_train=3, max_test=1).loaders(2, 0)
    assert len(train.dataset) == 3


@pytest.mark.parametrize("name", ["nyuv2", "cityscapes"])
def test_missing_or_malformed_data_gives_one_clear_data_error(tmp_path, name):
    folder = {"nyuv2": "normal", "cityscapes": "label_7"}[name]
    with pytest.raises(DataError, match="folder does not exist(.|\n)*Expected layout(.|\n)*github.com/lorenmt/mtan"):
        get_benchmark(name, root=str(tmp_path / "nowhere")).check_data()
    write_mtan(tmp_path, name, n_train=3, n_val=2)
    (tmp_path / "val" / folder / "1.npy").unlink()
    with pytest.raises(DataError, match=rf"different numbers of samples: .*'{folder}': 1"):
        get_benchmark(name, root=str(tmp_path)).check_data()
    (tmp_path / "val" / folder / "0.npy").rename(tmp_path / "val" / folder / "1.npy")
    with pytest.raises(
        DataError, match=rf"val/{folder}: expected files 0.npy … N-1.npy, found 1 .npy files not numbered"
    ):
        get_benchmark(name, root=str(tmp_path)).check_data()
    for i in (0, 1):
        np.save(tmp_path / "val" / folder / f"{i}.npy", np.zeros((32, 64, 5), np.float32))
    with pytest.raises(DataError, match=r"array of shape \(32, 64, 5\), expected H×W"):
        get_benchmark(name, root=str(tmp_path)).check_data()


def test_sizes_not_divisible_by_32_are_refused(tmp_path):
    write_mtan(tmp_path, "cityscapes", n_train=2, n_val=1, size=(40, 64))
    with pytest.raises(DataError, match="images are 40×64; SegNet-MTAN needs sides divisible by 32"):
        get_benchmark("cityscapes", root=str(tmp_path)).check_data()


# -- evaluation: batch means as in the reference ---------------------------------------------
class Offset(torch.nn.Module):
    """Predicts the true label, depth + 1 and the true normal: known errors on any data."""

    def forward(self, batch):
        label = batch["label"].clamp_min(0)
        logits = F.one_hot(label, 13).permute(0, 3, 1, 2).float()
        outputs = [logits, batch["depth"] + 1.0]
        if "normal" in batch:
            outputs.append(batch["normal"])
        return outputs, []


def test_depth_metrics_are_means_over_evaluation_batches(tmp_path):
    write_mtan(tmp_path, "nyuv2", n_train=4, n_val=3)
    bench = get_benchmark("nyuv2", root=str(tmp_path), eval_batch_size=2)
    _, _, test = bench.loaders(2, 0)
    values = bench.evaluate(Offset(), test, torch.device("cpu"))
    depths = [np.load(tmp_path / "val" / "depth" / f"{i}.npy") for i in range(3)]
    batches = [np.concatenate([d[d != 0] for d in depths[:2]]), depths[2][depths[2] != 0]]
    assert values["depth_abs_err"] == pytest.approx(1.0)
    assert values["depth_rel_err"] == pytest.approx(np.mean([np.mean(1 / b) for b in batches]), rel=1e-5)
    assert values["seg_miou"] == values["seg_pixacc"] == 1.0
    assert values["normal_mean_deg"] < 0.1 and values["normal_within_11_25"] == 1.0


# -- the network ------------------------------------------------------------------------------
def test_segnet_mtan_has_the_reference_size_and_split():
    nyu = SegNetMTAN((13, 1, 3), (False, False, True))
    assert sum(p.numel() for p in nyu.parameters()) == 44_229_073  # the reference SegNetMtan, NYUv2
    assert sum(p.numel() for p in SegNetMTAN((7, 1)).parameters()) == 41_206_984  # Cityscapes
    heads = sum(p.numel() for p in nyu.task_specific_parameters())
    assert heads + sum(p.numel() for p in nyu.shared_parameters()) == 44_229_073
    assert heads == 3 * (64 * 64 * 9 + 64) + 64 * 17 + 17


def test_segnet_mtan_outputs_and_per_task_representation():
    torch.manual_seed(0)
    net = SegNetMTAN((7, 1, 3), (False, False, True), width_multiplier=0.125)
    outputs, z = net({"image": torch.rand(2, 3, 32, 64)})
    assert [tuple(o.shape) for o in outputs] == [(2, 7, 32, 64), (2, 1, 32, 64), (2, 3, 32, 64)]
    assert torch.allclose(outputs[2].norm(dim=1), torch.ones(2, 32, 64), atol=1e-5)
    assert len(z) == 3 and all(tuple(t.shape) == (2, 8, 32, 64) for t in z)
    # task k's prediction depends on the representation through task k's features only
    (grad,) = torch.autograd.grad(outputs[1].sum(), z[0], allow_unused=True)
    assert grad is None
