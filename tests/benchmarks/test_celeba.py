"""CelebA: annotation parsing, the uint8 image cache, F1, BCE loss terms, data errors, one epoch."""

import math
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from fixtures.vision import write_celeba

from ntkmtl.benchmarks import DataError, get_benchmark
from ntkmtl.benchmarks.celeba import f1_scores
from ntkmtl.benchmarks.celeba_data import (
    ATTR_FILE,
    ATTRIBUTES,
    IMAGE_DIR,
    PARTITION_FILE,
    load_image,
    read_annotations,
)
from ntkmtl.benchmarks.nets.celeba_cnn import CelebACNN
from ntkmtl.train import Trial, TrialConfig


def bench(root, cache, **options):
    return get_benchmark(
        "celeba", root=str(root), cache_dir=str(cache), image_size=16, width_multiplier=0.125, **options
    )


def test_declarations_follow_the_paper():
    b = get_benchmark("celeba")
    assert b.tasks == ATTRIBUTES and len(b.tasks) == 40
    assert b.metrics[0].name == "f1_5_o_Clock_Shadow" and b.metrics[-1].name == "f1_Young"
    assert b.metrics[-1].baseline == 0.91907 and all(m.higher_is_better for m in b.metrics)
    d = b.defaults
    assert (d.epochs, d.batch_size, d.lr, d.scheduler) == (15, 256, 3e-4, "cosine")
    assert b.options["image_size"] == 64
    assert sum(p.numel() for p in CelebACNN().parameters()) == 5_197_160  # the reference Network


def test_f1_by_hand():
    tp, fp, fn = torch.tensor([3.0, 0.0, 5.0]), torch.tensor([1.0, 0.0, 0.0]), torch.tensor([2.0, 4.0, 0.0])
    f1 = f1_scores(tp, fp, fn)
    assert f1.tolist() == pytest.approx([2 * 0.75 * 0.6 / 1.35, 0.0, 1.0], abs=1e-6)  # P=3/4, R=3/5


def test_evaluate_counts_f1_per_attribute_at_threshold_one_half(tmp_path):
    labels = torch.tensor([[1.0, 0.0], [1.0, 1.0], [0.0, 1.0], [1.0, 0.0]]).repeat(1, 20)
    logits = torch.tensor([[2.0, 1.0], [-1.0, 3.0], [0.5, -2.0], [0.1, -0.1]]).repeat(1, 20)

    class Fixed(torch.nn.Module):
        def forward(self, batch):
            return logits[batch["rows"]], None

    loader = [
        {"rows": torch.tensor([0, 1]), "labels": labels[:2]},
        {"rows": torch.tensor([2, 3]), "labels": labels[2:]},
    ]
    values = get_benchmark("celeba").evaluate(Fixed(), loader, torch.device("cpu"))
    # attribute 0: predicted 1,0,1,1 vs true 1,1,0,1 → tp 2, fp 1, fn 1 → F1 = 2/3
    # attribute 1: predicted 1,1,0,0 vs true 0,1,1,0 → tp 1, fp 1, fn 1 → F1 = 1/2
    assert values["f1_5_o_Clock_Shadow"] == pytest.approx(2 / 3, abs=1e-6)
    assert values["f1_Arched_Eyebrows"] == pytest.approx(1 / 2, abs=1e-6)
    assert values["f1_Young"] == pytest.approx(1 / 2, abs=1e-6)


def test_loss_terms_are_the_reference_bce_per_image():
    g = torch.Generator().manual_seed(0)
    logits, labels = torch.randn(5, 40, generator=g), torch.randint(0, 2, (5, 40), generator=g).float()
    sums, counts = get_benchmark("celeba").loss_terms(logits, {"labels": labels})
    assert sums.shape == counts.shape == (5, 40) and bool((counts == 1).all())
    reference = torch.stack([F.binary_cross_entropy(torch.sigmoid(logits[:, k]), labels[:, k]) for k in range(40)])
    assert torch.allclose(sums.mean(0), reference, atol=1e-6)


def test_annotations_and_the_image_cache(tmp_path):
    root = write_celeba(tmp_path / "celeba", n_train=5, n_val=2, n_test=2)
    names, labels, split = read_annotations(root)
    first = (root / ATTR_FILE).read_text().splitlines()[2].split()
    assert names[0] == first[0] == "000001.jpg" and labels[0].tolist() == [int(v == "1") for v in first[1:]]
    assert split.tolist() == [0] * 5 + [1] * 2 + [2] * 2

    b = bench(root, tmp_path / "cache", max_train=3)
    train, val, test = b.loaders(batch_size=2, seed=0)
    assert (len(train.dataset), len(val.dataset), len(test.dataset)) == (3, 2, 2)
    assert len(train) == 1  # the last batch of one image is dropped: BatchNorm1d needs two
    (cache,) = list((tmp_path / "cache").glob("*.npy"))
    images = np.load(cache, mmap_mode="r")
    assert images.dtype == np.uint8 and images.shape == (7, 16, 16, 3)  # 3 + 2 + 2 images used
    assert np.array_equal(images[3], load_image(root / IMAGE_DIR / "000006.jpg", 16))  # first val image
    sample = val.dataset[0]
    assert torch.equal(sample["image"], torch.from_numpy(images[3].copy()).permute(2, 0, 1).float() / 255)
    assert sample["labels"].tolist() == labels[5].astype(float).tolist()
    built = os.stat(cache).st_mtime_ns
    b.loaders(batch_size=2, seed=1)
    assert os.stat(cache).st_mtime_ns == built and len(list((tmp_path / "cache").iterdir())) == 1


def test_missing_or_malformed_data_gives_one_clear_data_error(tmp_path):
    with pytest.raises(DataError, match="folder does not exist(.|\n)*Expected layout(.|\n)*mmlab.ie.cuhk.edu.hk"):
        bench(tmp_path / "nowhere", tmp_path).check_data()
    root = write_celeba(tmp_path / "celeba", n_train=3, n_val=1, n_test=1)
    (root / PARTITION_FILE).rename(tmp_path / "partition")
    with pytest.raises(DataError, match="Eval/list_eval_partition.txt is missing"):
        bench(root, tmp_path).check_data()
    (tmp_path / "partition").rename(root / PARTITION_FILE)

    text = (root / ATTR_FILE).read_text()
    (root / ATTR_FILE).write_text(text.replace("Smiling", "Smile"))
    with pytest.raises(DataError, match="line 2 should name the 40 attributes"):
        bench(root, tmp_path).check_data()
    (root / ATTR_FILE).write_text(
        text.replace("000004.jpg -1", "000004.jpg 0").replace("000004.jpg  1", "000004.jpg 0")
    )
    with pytest.raises(DataError, match=r"line 6 is '000004.jpg 0"):
        bench(root, tmp_path).loaders(2, 0)
    lines = text.splitlines()
    (root / ATTR_FILE).write_text("\n".join(lines[:2] + [lines[2].replace(" 1", " x", 1)] + lines[3:]) + "\n")
    with pytest.raises(DataError, match=r"line 3 is '000001.jpg .*x.*', not a file name and 40 values"):
        bench(root, tmp_path).loaders(2, 0)  # numpy 2.4 raises on the token instead of warning
    (root / ATTR_FILE).write_text("\n".join(lines[:3] + ["000002.jpg"] + lines[4:]) + "\n")
    with pytest.raises(DataError, match=r"line 4 is '000002.jpg', not a file name"):
        bench(root, tmp_path).loaders(2, 0)
    (root / ATTR_FILE).write_text(text)
    for path in (ATTR_FILE, PARTITION_FILE):
        original = (root / path).read_bytes()
        (root / path).write_bytes(b"\xff\xfe\x00 binary")
        with pytest.raises(DataError, match=f"{path}: malformed file: not a text file"):
            bench(root, tmp_path).loaders(2, 0)
        (root / path).write_bytes(original)
    (root / ATTR_FILE).write_text(text)
    (root / IMAGE_DIR / "000005.jpg").unlink()
    with pytest.raises(DataError, match="000005.jpg: image listed in the annotation file is missing"):
        bench(root, tmp_path).loaders(2, 0)
    write_celeba(root, n_train=3, n_val=1, n_test=1)
    (root / IMAGE_DIR / "000003.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="000003.jpg: not a readable image"):
        bench(root, tmp_path).loaders(2, 0)
    assert not list(tmp_path.glob("*.npy"))  # the half-built cache is removed


def test_one_epoch_on_the_fixture_gives_finite_metrics(tmp_path):
    root = write_celeba(tmp_path / "celeba", n_train=9, n_val=3, n_test=3)
    config = TrialConfig(
        benchmark="celeba",
        method="ntkmtl_sr",
        epochs=1,
        batch_size=4,
        data={"root": str(root), "cache_dir": str(tmp_path / "cache"), "image_size": 16, "width_multiplier": 0.125},
    )
    (record,) = list(Trial(config).run())
    assert record["status"] == "completed"
    for split in ("val", "test"):
        assert all(math.isfinite(record[f"{split}_f1_{a}"]) for a in ATTRIBUTES)
        assert math.isfinite(record[f"{split}_delta_m"])
    assert all(math.isfinite(record[f"weight_{a}"]) for a in ATTRIBUTES)
