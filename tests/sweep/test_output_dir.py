"""The output directory is checked before Ray starts: a read-only directory, a file in its place
and a full disk each end the sweep with one line (exit 2), no traceback and no stub experiment.

Read-only and full filesystems are real tmpfs mounts where the tests may mount (root); elsewhere
the read-only case uses a directory without write permission and the full disk a patched
``shutil.disk_usage``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
import yaml

from ntkmtl.sweep import output_dir
from ntkmtl.sweep.output_dir import MIN_FREE_BYTES, OutputError, check_output
from ntkmtl.sweep.storage import StorageError
from ntkmtl.sweep.storage_check import check_storage
from ntkmtl.tune import main


def mount_tmpfs(target: Path, options: str) -> bool:
    if os.geteuid() != 0 or not shutil.which("mount"):
        return False
    target.mkdir(parents=True, exist_ok=True)
    return (
        subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(target)], capture_output=True).returncode
        == 0
    )


@pytest.fixture
def read_only_dir(tmp_path):
    target = tmp_path / "ro"
    if mount_tmpfs(target, "ro,size=1m"):
        yield target
        subprocess.run(["umount", str(target)], check=True)
    elif os.geteuid() != 0:
        target.mkdir()
        target.chmod(0o555)
        yield target
        target.chmod(0o755)
    else:
        pytest.skip("root cannot make a directory read-only without mount")


@pytest.fixture
def full_dir(tmp_path, monkeypatch):
    target = tmp_path / "full"
    if mount_tmpfs(target, "size=1m"):
        yield target
        subprocess.run(["umount", str(target)], check=True)
    else:
        target.mkdir()
        usage = namedtuple("usage", "total used free")
        monkeypatch.setattr(output_dir.shutil, "disk_usage", lambda path: usage(2**20, 2**20 - 2**19, 2**19))
        yield target


def sweep_config(tmp_path: Path, output: Path) -> Path:
    path = tmp_path / "out.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "name": "outcheck",
                "benchmark": "toy",
                "seeds": [0],
                "methods": {"ls": {}},
                "train": {"epochs": 1},
                "storage": str(tmp_path / "ray"),
                "output": str(output),
            }
        )
    )
    return path


def test_a_missing_output_is_fine_and_nothing_is_created(tmp_path):
    target = tmp_path / "a" / "b"
    assert check_output(target) == target and not (tmp_path / "a").exists()
    assert check_output(tmp_path) == tmp_path and list(tmp_path.iterdir()) == []  # the probe is gone


def test_a_file_in_place_of_the_output_or_of_a_parent(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError) as info:
        check_output(blocker)
    assert (
        str(info.value)
        == f"output '{blocker}' is a file, not a directory; move it away or choose another with --set output=DIR"
    )
    with pytest.raises(OutputError) as info:
        check_output(blocker / "out")
    assert str(info.value) == (
        f"output '{blocker / 'out'}' cannot be created: '{blocker}' is a file, not a directory; "
        "choose another with --set output=DIR"
    )


def test_a_read_only_output(read_only_dir):
    with pytest.raises(
        OutputError,
        match=rf"^output '{read_only_dir}' is not writable \((OSError: Read-only file system|PermissionError: Permission denied)\); choose another with --set output=DIR$",
    ):
        check_output(read_only_dir)
    with pytest.raises(
        OutputError, match=rf"^output '{read_only_dir / 'new'}' cannot be created in '{read_only_dir}' \("
    ):
        check_output(read_only_dir / "new")


def test_a_full_disk_for_output_and_for_local_storage(full_dir):
    with pytest.raises(
        OutputError,
        match=rf"^output '{full_dir}': only \d\.\d MiB free on its filesystem; a sweep needs at "
        rf"least {MIN_FREE_BYTES // 2**20} MiB there; free some space or choose another",
    ):
        check_output(full_dir)
    with pytest.raises(StorageError, match=rf"^storage '{full_dir}': only \d\.\d MiB free on its filesystem"):
        check_storage(str(full_dir), multi_node=False)


@pytest.mark.parametrize("case", ["file", "read_only", "full"])
def test_cli_refuses_before_ray_starts_in_one_line(case, tmp_path, request, capsys):
    if case == "file":
        output = tmp_path / "taken"
        output.write_text("x")
    else:
        output = request.getfixturevalue(f"{case}_dir")
    assert main([str(sweep_config(tmp_path, output))]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: output '{output}'") and err.count("\n") == 1, err
    assert not (tmp_path / "ray").exists()  # checked before storage and Ray: no stub experiment
    ray = sys.modules.get("ray")
    assert ray is None or not ray.is_initialized()


def test_dry_run_warns_about_the_output(tmp_path, capsys):
    output = tmp_path / "taken"
    output.write_text("x")
    assert main([str(sweep_config(tmp_path, output)), "--dry-run"]) == 0
    assert f"warning: a real run would stop here: output '{output}' is a file" in capsys.readouterr().out
