"""Storage entries: URI parsing, the write probe, node-local rejection, and a sweep on local S3."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.fs
import pyarrow.parquet as pq
import pytest
import yaml

from ntkmtl.sweep import storage as st
from ntkmtl.sweep import storage_check
from ntkmtl.sweep.export import read_results
from ntkmtl.sweep.storage import StorageError, parse_storage
from ntkmtl.sweep.storage_check import check_storage, mount_of

# --- parsing -------------------------------------------------------------------------------


def test_local_path_and_file_uri_resolve_to_the_same_absolute_path(tmp_path):
    assert parse_storage(str(tmp_path)) == (None, str(tmp_path))
    assert parse_storage(f"file://{tmp_path}") == (None, str(tmp_path))
    assert parse_storage(tmp_path) == (None, str(tmp_path))
    assert parse_storage({"path": str(tmp_path), "shared": True}) == (None, str(tmp_path))


def test_relative_and_home_paths_become_absolute(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert parse_storage("results").path == str(tmp_path / "results")
    assert parse_storage("~/x").path == str(tmp_path / "home" / "x")
    assert parse_storage(None).path == str(tmp_path / "home" / "ray_results")


def test_s3_uri_gives_an_s3_filesystem_and_bucket_path():
    location = parse_storage("s3://my-bucket/sweeps/qm9/")
    assert isinstance(location.filesystem, pyarrow.fs.S3FileSystem)
    assert location.path == "my-bucket/sweeps/qm9"
    assert location.uri() == "s3://my-bucket/sweeps/qm9"
    assert location.uri("exp") == "s3://my-bucket/sweeps/qm9/exp"  # SweepOutcome.experiment_path
    assert location.join("exp", "trial") == "my-bucket/sweeps/qm9/exp/trial"
    assert location.run_config_kwargs() == {
        "storage_path": "my-bucket/sweeps/qm9",
        "storage_filesystem": location.filesystem,
    }
    assert parse_storage("s3://my-bucket").path == "my-bucket"


def test_s3_endpoint_options_reach_pyarrow(monkeypatch):
    seen = {}
    monkeypatch.setattr(st.pyarrow.fs, "S3FileSystem", lambda **kw: seen.update(kw) or "fs")
    location = parse_storage({"path": "s3://b/p", "endpoint_url": "http://127.0.0.1:9000", "region": "eu-west-1"})
    assert location == ("fs", "b/p")
    assert seen == {"endpoint_override": "127.0.0.1:9000", "scheme": "http", "region": "eu-west-1"}


def test_gs_uri_gives_a_gcs_filesystem():
    location = parse_storage("gs://bucket/a/b")
    assert isinstance(location.filesystem, pyarrow.fs.GcsFileSystem)
    assert location.path == "bucket/a/b"
    assert location.uri() == "gs://bucket/a/b"
    assert location.uri("exp") == "gs://bucket/a/b/exp"


@pytest.mark.parametrize(
    ("storage", "message"),
    [
        ("hdfs://nn/x", "unsupported scheme 'hdfs'; valid: a local path, file://, s3://, gs://"),
        ("s3://", "no bucket name"),
        ("file://host/x", "names no host"),
        ({"path": "/x", "endpoint_url": "http://h:1"}, "apply to s3:// and gs:// only"),
        ({"path": "s3://b", "shared": True}, "'shared' applies to local paths only"),
        ({"path": "gs://b", "region": "us"}, "'region' applies to s3:// only"),
        ({"path": "s3://b", "endpoint_url": "127.0.0.1:9000"}, "must look like http://host:port"),
        ({"path": "s3://b", "bucket": "x"}, "unknown option(s) 'bucket'; valid: path, endpoint_url"),
        ({"endpoint_url": "http://h:1"}, "'path' must be a non-empty path or URI; got None"),
        ({"path": "/x", "shared": "yes"}, "'shared' must be true or false; got 'yes'"),
        (3, "got int 3"),
    ],
)
def test_bad_entries_raise_a_specific_value_error(storage, message):
    with pytest.raises(ValueError) as info:
        parse_storage(storage)
    assert message in str(info.value)
    assert isinstance(info.value, StorageError)


# --- mounts and node-local rejection -------------------------------------------------------


@pytest.fixture
def fake_mounts(tmp_path, monkeypatch):
    """/proc/mounts with an NFS mount at tmp_path/nfs and the rest on ext4."""
    (tmp_path / "nfs").mkdir()
    mounts = tmp_path / "mounts"
    mounts.write_text(
        f"/dev/vda / ext4 rw 0 0\nserver:/export {tmp_path / 'nfs'} nfs4 rw,vers=4.2 0 0\nproc /proc proc rw 0 0\n"
    )
    monkeypatch.setattr(storage_check, "MOUNTS_FILE", str(mounts))
    return tmp_path


def test_mount_of_finds_the_innermost_mount_of_missing_paths_too(fake_mounts):
    nfs = fake_mounts / "nfs"
    assert mount_of(nfs / "not" / "yet" / "there") == (str(nfs), "nfs4")
    assert mount_of(fake_mounts / "local") == ("/", "ext4")


def test_multi_node_rejects_node_local_paths_with_the_reason_and_the_fix(fake_mounts):
    local = fake_mounts / "local"
    with pytest.raises(StorageError) as info:
        check_storage(str(local), multi_node=True)
    text = str(info.value)
    assert f"storage {str(local)!r} is on a node-local filesystem (ext4 mounted at /)" in text
    assert "Ray 2.7" in text and "s3://bucket/prefix" in text and "shared: true" in text
    assert not local.exists(), "the check must fail before writing anything"
    with pytest.raises(StorageError, match="no storage set, so Ray's default storage"):
        check_storage(None, multi_node=True)


def test_shared_mounts_and_explicit_shared_pass_on_multi_node(fake_mounts):
    nfs_results = fake_mounts / "nfs" / "results"
    assert check_storage(str(nfs_results), multi_node=True) == (None, str(nfs_results))
    local = fake_mounts / "local"
    assert check_storage({"path": str(local), "shared": True}, multi_node=True).path == str(local)
    assert check_storage(str(local), multi_node=False).path == str(local)


def test_probe_creates_the_directory_and_leaves_no_file(tmp_path):
    target = tmp_path / "a" / "b"
    check_storage(str(target), multi_node=False)
    assert target.is_dir() and list(target.iterdir()) == []


def test_unwritable_local_storage_names_the_path_and_the_cause(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    with pytest.raises(StorageError) as info:
        check_storage(str(blocker / "results"), multi_node=False)
    text = str(info.value)
    assert text.startswith(f"storage {str(blocker / 'results')!r} is not writable: ")
    assert "NotADirectoryError" in text and "Cannot create directory" in text


def test_aws_bucket_region_is_looked_up_only_when_given_nowhere(monkeypatch):
    asked = []
    monkeypatch.setattr(
        storage_check.pyarrow.fs, "resolve_s3_region", lambda bucket: asked.append(bucket) or "eu-central-1"
    )
    monkeypatch.setattr(storage_check, "_probe", lambda location: None)
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    location = check_storage("s3://far-bucket/x", multi_node=True)
    assert asked == ["far-bucket"] and location.filesystem.region == "eu-central-1"
    assert check_storage({"path": "s3://b/x", "region": "us-west-2"}, True).filesystem.region == "us-west-2"
    assert check_storage({"path": "s3://b/x", "endpoint_url": "http://h:9"}, True).path == "b/x"
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    check_storage("s3://other/x", multi_node=True)
    assert asked == ["far-bucket"]


# --- an S3-compatible server on localhost --------------------------------------------------


@pytest.fixture(scope="module")
def s3_server():
    """moto's S3 server on 127.0.0.1 with one bucket; yields its endpoint URL."""
    moto_server = pytest.importorskip("moto.server")
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="testing", AWS_SECRET_ACCESS_KEY="testing", AWS_DEFAULT_REGION="us-east-1")
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    pyarrow.fs.S3FileSystem(endpoint_override=f"{host}:{port}", scheme="http", allow_bucket_creation=True).create_dir(
        "sweeps"
    )
    yield f"http://{host}:{port}"
    server.stop()
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def test_probe_on_s3_writes_and_cleans_up(s3_server):
    location = check_storage({"path": "s3://sweeps/probe", "endpoint_url": s3_server}, multi_node=True)
    files = location.filesystem.get_file_info(pyarrow.fs.FileSelector("sweeps/probe", recursive=True))
    assert [f.path for f in files if f.type == pyarrow.fs.FileType.File] == []


def test_missing_bucket_is_reported_with_its_uri(s3_server):
    with pytest.raises(StorageError, match=r"storage 's3://nope/x' is not writable: OSError: .*Bucket 'nope'"):
        check_storage({"path": "s3://nope/x", "endpoint_url": s3_server}, multi_node=False)


def read_s3_json_lines(filesystem, path: str) -> list[dict]:
    with filesystem.open_input_stream(path) as f:
        return [json.loads(line) for line in f.read().decode().splitlines() if line.strip()]


@pytest.mark.slow
def test_sweep_on_s3_is_interrupted_then_resumed_to_completion(s3_server, tmp_path):
    """A toy sweep with moto's S3 as storage: Ctrl-C mid-sweep, then --resume completes it."""
    storage = {"path": "s3://sweeps/runs", "endpoint_url": s3_server}
    config = {
        "name": "s3sweep",
        "benchmark": "toy",
        "data": {"n_train": 128, "n_val": 32, "n_test": 32},
        "train": {"epochs": 4, "batch_size": 64},
        "seeds": [0, 1],
        "methods": {"ls": {}},
        "resources": {"cpu": 1},
        "early_stopping": {"type": "none"},
        "storage": storage,
        "output": str(tmp_path / "parquet"),
        "max_failures": 0,
    }
    config_file = tmp_path / "s3sweep.yaml"
    config_file.write_text(yaml.safe_dump(config))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root), "NTKMTL_INJECT": "sleep@*:*"}  # 2 s per epoch
    command = [sys.executable, "-m", "ntkmtl.tune", str(config_file)]

    first = subprocess.Popen(command, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first.poll() is None:
        files = list((tmp_path / "parquet").glob("*.parquet"))
        if files and max(pq.read_table(f).num_rows for f in files) >= 2:
            break
        time.sleep(0.2)
    assert first.poll() is None, first.stdout.read().decode()[-3000:]
    first.send_signal(signal.SIGINT)  # what Ctrl-C does: Tune saves its state to S3 and stops
    log = first.communicate(timeout=120)[0].decode()
    rows_before = read_results(tmp_path / "parquet")
    assert len(rows_before) < 2 * 4, log[-3000:]

    second = subprocess.run(command + ["--resume"], cwd=root, env=env, capture_output=True, text=True, timeout=180)
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert "Ray experiment: s3://sweeps/runs/s3sweep" in second.stdout  # the URI, with its scheme

    df = read_results(tmp_path / "parquet")
    assert len(df) == 2 * 4 and not df.duplicated(["trial_id", "epoch"]).any()
    assert set(df["status"]) == {"completed"}
    # Ray's state and the checkpoints are in the bucket, not on local disk
    location = parse_storage(storage)
    experiment = location.join("s3sweep")
    listing = location.filesystem.get_file_info(pyarrow.fs.FileSelector(experiment, recursive=True))
    names = [f.path for f in listing]
    assert f"{experiment}/tuner.pkl" in names
    assert any("/checkpoint_" in n for n in names)
    # a trial interrupted after epoch k went on from its checkpoint: epoch 1 is never repeated
    results = [p for p in names if p.endswith("/result.json")]
    assert len(results) == 2
    resumed = 0
    for path in results:
        epochs = [r["epoch"] for r in read_s3_json_lines(location.filesystem, path) if "epoch" in r]
        assert epochs.count(1) == 1 and epochs[-1] == 4, epochs
        resumed += len({r["pid"] for r in read_s3_json_lines(location.filesystem, path)}) > 1
    assert resumed >= 1
