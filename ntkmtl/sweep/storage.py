"""Where a sweep keeps its checkpoints and results: local paths, NFS, S3, GCS.

Since Ray 2.7, Tune no longer copies trial directories from worker nodes to the head: every node
writes its checkpoints straight to ``storage_path``. On a multi-node cluster that path must be
reachable from every node (S3, GCS, or a shared mount such as NFS), or trials that run on a
worker write to that worker's own disk and can neither be resumed nor collected. This module
turns the sweep config's ``storage`` entry into what ``ray.tune.RunConfig`` takes and checks it
before any trial starts, so such a sweep fails in a second with a clear message, not hours later.

The ``storage`` entry is either a string or a mapping:

    storage: /scratch/me/ray_results              # local path (or a shared mount)
    storage: file:///mnt/nfs/ray_results          # the same, as a URI
    storage: s3://bucket/prefix                   # AWS S3 (credentials from the environment)
    storage: gs://bucket/prefix                   # Google Cloud Storage
    storage: {path: s3://bucket/prefix, endpoint_url: http://127.0.0.1:9000, region: us-east-1}
                                                  # S3-compatible server (MinIO, Ceph, moto)
    storage: {path: /data/ray_results, shared: true}
                                                  # a shared mount this module cannot detect

Functions (none of them imports Ray):

``parse_storage(storage) -> StorageLocation``
    ``StorageLocation(filesystem, path)`` is a named tuple: ``filesystem`` is a
    ``pyarrow.fs.FileSystem`` for s3/gs (None for local paths) and ``path`` the path inside it
    (``bucket/prefix`` for buckets, an absolute path for local storage). Use it as
    ``RunConfig(**location.run_config_kwargs())`` and, to resume experiment ``name``,
    ``Tuner.restore(location.join(name), trainable, storage_filesystem=location.filesystem)``.
    ``None`` means Ray's default, ``~/ray_results``. Bad input raises ``StorageError``.

``check_storage(storage, multi_node) -> StorageLocation``
    ``parse_storage`` (on AWS S3 without a region, the bucket's region is looked up) plus two
    checks: a probe file is written, read back and deleted (the error names the URI and the
    cause: missing bucket, no credentials, read-only directory); and with ``multi_node=True`` a
    node-local path is rejected, a path being shared when it is on a network or cluster
    filesystem (NFS, Lustre, GPFS, CephFS, BeeGFS, a FUSE bucket mount…) or marked
    ``shared: true``. A local path needs ``output_dir.MIN_FREE_BYTES`` free. Give the returned
    location, not the parsed one, to ``RunConfig``.

``mount_of(path) -> (mount point, filesystem type)``
    The mount holding ``path`` (or its nearest existing ancestor), from ``/proc/mounts``.

``StorageError`` is a ``ValueError``: every problem with the ``storage`` entry raises it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pyarrow.fs

from ntkmtl.sweep.output_dir import free_space_problem

DEFAULT_STORAGE = "~/ray_results"
"""Ray Tune's own default ``storage_path``: fine on one machine, wrong on a cluster."""

SCHEMES = ("file", "s3", "gs")
OPTION_KEYS = ("path", "endpoint_url", "region", "shared")

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


class StorageError(ValueError):
    """The sweep's storage is malformed, unreachable, unwritable or node-local."""


class StorageLocation(NamedTuple):
    """A parsed storage entry: a pyarrow filesystem (None: local) and the path inside it."""

    filesystem: pyarrow.fs.FileSystem | None
    path: str

    def run_config_kwargs(self) -> dict[str, Any]:
        """The ``storage_path`` / ``storage_filesystem`` arguments of ``ray.tune.RunConfig``."""
        return {"storage_path": self.path, "storage_filesystem": self.filesystem}

    def join(self, *parts: str) -> str:
        """``path/part/…`` in this location's own convention (an experiment directory, a file)."""
        return "/".join([self.path.rstrip("/"), *parts])

    def uri(self, *parts: str) -> str:
        """A human-readable URI for messages: ``s3://bucket/prefix[/part/…]`` or the local path."""
        path = self.join(*parts) if parts else self.path
        if self.filesystem is None:
            return path
        scheme = {"gcs": "gs"}.get(self.filesystem.type_name, self.filesystem.type_name)
        return f"{scheme}://{path}"


def parse_storage(storage: str | os.PathLike | Mapping[str, Any] | None) -> StorageLocation:
    """Resolve a ``storage`` entry (see the module docstring) to a filesystem and a path."""
    options = _options(storage)
    uri = options["path"]
    parts = urlsplit(uri)
    scheme = parts.scheme.lower()
    is_windows_drive = len(scheme) == 1  # C:\... parses with scheme "c"
    if not scheme or is_windows_drive:
        scheme = "file"
        local = uri
    elif scheme not in SCHEMES:
        raise StorageError(
            f"storage {uri!r}: unsupported scheme {parts.scheme!r}; valid: a local path, "
            + ", ".join(f"{s}://" for s in SCHEMES)
        )
    else:
        local = parts.path if scheme == "file" else None
    remote_only = [k for k in ("endpoint_url", "region") if k in options]
    if scheme == "file":
        if parts.scheme and parts.netloc not in ("", "localhost"):
            raise StorageError(
                f"storage {uri!r}: a file:// URI names no host (file:///abs/path); got host {parts.netloc!r}"
            )
        if remote_only:
            raise StorageError(
                f"storage {uri!r}: option(s) {', '.join(remote_only)} apply to s3:// and gs:// only, not to local paths"
            )
        return StorageLocation(None, str(Path(local).expanduser().absolute()))
    if "shared" in options:
        raise StorageError(
            f"storage {uri!r}: option 'shared' applies to local paths only; buckets are always "
            "reachable from every node"
        )
    bucket = parts.netloc
    if not bucket:
        raise StorageError(f"storage {uri!r}: no bucket name; expected {scheme}://bucket/prefix")
    path = "/".join(p for p in [bucket, parts.path.strip("/")] if p)
    return StorageLocation(_bucket_filesystem(scheme, options), path)


def check_storage(storage: str | os.PathLike | Mapping[str, Any] | None, multi_node: bool) -> StorageLocation:
    """Parse ``storage`` and make sure a sweep can use it; raise StorageError if not.

    With ``multi_node`` (the Ray cluster has more than one node), a node-local path is refused:
    trials on other nodes would write their checkpoints to their own disks.
    """
    location = _with_bucket_region(parse_storage(storage), _options(storage))
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


def _options(storage: str | os.PathLike | Mapping[str, Any] | None) -> dict[str, Any]:
    """The storage entry as a mapping with at least ``path``; unknown keys are refused."""
    if storage is None:
        return {"path": DEFAULT_STORAGE}
    if isinstance(storage, (str, os.PathLike)):
        options: dict[str, Any] = {"path": os.fspath(storage)}
    elif isinstance(storage, Mapping):
        options = dict(storage)
    else:
        raise StorageError(
            f"storage must be a path, a URI or a mapping with 'path'; got {type(storage).__name__} {storage!r}"
        )
    unknown = sorted(set(options) - set(OPTION_KEYS))
    if unknown:
        raise StorageError(
            f"storage: unknown option(s) {', '.join(map(repr, unknown))}; valid: {', '.join(OPTION_KEYS)}"
        )
    path = options.get("path")
    if not isinstance(path, (str, os.PathLike)) or not os.fspath(path).strip():
        raise StorageError(f"storage: 'path' must be a non-empty path or URI; got {path!r}")
    options["path"] = os.fspath(path).strip()
    for key in ("endpoint_url", "region"):
        if key in options and (not isinstance(options[key], str) or not options[key]):
            raise StorageError(f"storage: {key!r} must be a non-empty string; got {options[key]!r}")
    if "shared" in options and not isinstance(options["shared"], bool):
        raise StorageError(f"storage: 'shared' must be true or false; got {options['shared']!r}")
    return options


def _bucket_filesystem(scheme: str, options: Mapping[str, Any]) -> pyarrow.fs.FileSystem:
    """An S3 or GCS pyarrow filesystem; credentials come from the usual environment/config."""
    kwargs: dict[str, Any] = {}
    endpoint = options.get("endpoint_url")
    if endpoint:
        parts = urlsplit(endpoint)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise StorageError(
                f"storage: endpoint_url {endpoint!r} must look like http://host:port or https://host[:port]"
            )
        kwargs["endpoint_override"] = parts.netloc + parts.path.rstrip("/")
        kwargs["scheme"] = parts.scheme
    if scheme == "s3":
        if "region" in options:
            kwargs["region"] = options["region"]
        return pyarrow.fs.S3FileSystem(**kwargs)
    if "region" in options:
        raise StorageError(f"storage {options['path']!r}: option 'region' applies to s3:// only")
    return pyarrow.fs.GcsFileSystem(**kwargs)


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
