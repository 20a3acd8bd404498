"""Checking a sweep's storage before any trial starts: reachable, writable, shared when it must be.

Since Ray 2.7, Tune no longer copies trial directories from worker nodes to the head: every node
writes its checkpoints straight to ``storage_path``. On a multi-node cluster that path must be
reachable from every node (S3, GCS, or a shared mount such as NFS), or trials that run on a
worker write to that worker's own disk and can neither be resumed nor collected. So a sweep
whose storage cannot work fails here in a second, with a clear message, not hours later.
Parsing the ``storage`` entry itself (offline, no probe) is ``storage.py``'s.

``check_storage(storage, multi_node) -> StorageLocation``
    ``storage.parse_storage`` (on AWS S3 without a region, the bucket's region is looked up) plus
    two checks: a probe file is written, read back and deleted (the error names the URI and the
    cause: missing bucket, no credentials, read-only directory); and with ``multi_node=True`` a
    node-local path is rejected, a path being shared when it is on a network or cluster
    filesystem (``SHARED_FILESYSTEMS``: NFS, Lustre, GPFS, CephFS, BeeGFS, a FUSE bucket mount…)
    or marked ``shared: true``. A local path needs ``output_dir.MIN_FREE_BYTES`` free. Give the
    returned location, not the parsed one, to ``RunConfig``.

``mount_of(path) -> (mount point, filesystem type)``
    The mount holding ``path`` (or its nearest existing ancestor), from ``/proc/mounts``.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow.fs

from ntkmtl.sweep.output_dir import free_space_problem
from ntkmtl.sweep.storage import StorageError, StorageLocation, parse_storage, storage_options

SHARED_FILESYSTEMS = frozenset(
    {
        "nfs",
        "nfs4",
        "cifs",
        "smb3",
        "smbfs",
        "lustre",
        "gpfs",
        "beegfs",
        "ceph",
        "cephfs",
        "glusterfs",
        "fuse.glusterfs",
        "fuse.cephfs",
        "fuse.ceph-fuse",
        "fuse.gcsfuse",
        "fuse.s3fs",
        "fuse.juicefs",
        "fuse.mount-s3",
        "fuse.goofys",
        "fuse.rclone",
        "fuse.sshfs",
        "wekafs",
        "panfs",
        "orangefs",
        "pvfs2",
        "afs",
        "9p",
        "virtiofs",
    }
)
"""Filesystem types (the third column of /proc/mounts) that every node of a cluster can mount."""

MOUNTS_FILE = "/proc/mounts"


MOUNTS_FILE = "/proc/mounts"


def check_storage(storage: str | os.PathLike | Mapping[str, Any] | None, multi_node: bool) -> StorageLocation:
    """Parse ``storage`` and make sure a sweep can use it; raise StorageError if not.

    With ``multi_node`` (the Ray cluster has more than one node), a node-local path is refused:
    trials on other nodes would write their checkpoints to their own disks.
    """
    location = _with_bucket_region(parse_storage(storage), storage_options(storage))
    if multi_node and location.filesystem is None:
        shared = isinstance(storage, Mapping) and storage.get("shared") is True
        if not shared:
            mount, fstype = mount_of(location.path)
            if fstype not in SHARED_FILESYSTEMS:
                unset = "no storage set, so Ray's default " if storage is None else ""
                raise StorageError(
                    f"{unset}storage {location.path!r} is on a node-local filesystem ({fstype} mounted "
                    f"at {mount}), but the Ray cluster has more than one node. Since Ray 2.7 "
                    "every node writes its trials' checkpoints directly to the storage path, so "
                    "trials on other nodes would write to their own disks and could not be "
                    "resumed or collected. Use storage every node can reach: s3://bucket/prefix, "
                    "gs://bucket/prefix, or a directory on a shared mount (NFS, Lustre, GPFS…). "
                    "If this path is shared in a way not detected here, write "
                    f"storage: {{path: {location.path}, shared: true}}."
                )
    _probe(location)
    if location.filesystem is None and free_space_problem(location.path):
        raise StorageError(
            f"storage {location.path!r}: {free_space_problem(location.path)}; free some space or choose another storage"
        )
    return location


def mount_of(path: str | os.PathLike) -> tuple[str, str]:
    """The mount point and filesystem type holding ``path`` (its nearest existing ancestor)."""
    target = Path(path).expanduser().absolute()
    while not target.exists() and target != target.parent:
        target = target.parent
    target = target.resolve()
    best = ("/", "unknown")
    try:
        with open(MOUNTS_FILE, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return best
    for line in lines:
        fields = line.split()
        if len(fields) < 3:
            continue
        mount = fields[1].replace("\\040", " ")
        inside = target == Path(mount) or Path(mount) in target.parents
        if inside and len(mount) >= len(best[0]):
            best = (mount, fields[2])
    return best


def _with_bucket_region(location: StorageLocation, options: Mapping[str, Any]) -> StorageLocation:
    """On AWS with no region given anywhere, ask S3 for the bucket's region (one request).

    A client set to the wrong region gets redirects instead of objects; pyarrow does not follow
    them. This runs in ``check_storage`` only, so parsing a config stays offline.
    """
    is_aws_s3 = isinstance(location.filesystem, pyarrow.fs.S3FileSystem) and "endpoint_url" not in options
    region_known = "region" in options or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if not is_aws_s3 or region_known:
        return location
    bucket = location.path.split("/")[0]
    try:
        region = pyarrow.fs.resolve_s3_region(bucket)
    except OSError:  # no network or no such bucket: the probe reports it with its cause
        return location
    return StorageLocation(pyarrow.fs.S3FileSystem(region=region), location.path)


def _probe(location: StorageLocation) -> None:
    """Write, read back and delete a small file at the storage location."""
    filesystem = location.filesystem or pyarrow.fs.LocalFileSystem()
    probe = location.join(f".ntkmtl-write-probe-{uuid.uuid4().hex}")
    payload = b"ntkmtl storage probe\n"
    try:
        filesystem.create_dir(location.path, recursive=True)
        with filesystem.open_output_stream(probe) as f:
            f.write(payload)
        with filesystem.open_input_stream(probe) as f:
            echoed = f.read()
        filesystem.delete_file(probe)
    except Exception as exc:  # pyarrow raises OSError subclasses, botocore-free
        cause = " ".join(str(exc).split()).rstrip(".")
        raise StorageError(
            f"storage {location.uri()!r} is not writable: {type(exc).__name__}: {cause}. "
            "Check that the bucket or directory exists, that the credentials in the environment "
            "(AWS_ACCESS_KEY_ID…, GOOGLE_APPLICATION_CREDENTIALS) can write to it, and, for an "
            "S3-compatible server, its endpoint_url."
        ) from exc
    if echoed != payload:
        raise StorageError(
            f"storage {location.uri()!r}: a probe file read back differently from what was "
            "written; the storage is not usable for checkpoints"
        )
