"""Where a sweep keeps its checkpoints and results: the ``storage`` entry → a filesystem and a path.

The ``storage`` entry is either a string or a mapping:

    storage: /scratch/me/ray_results              # local path (or a shared mount)
    storage: file:///mnt/nfs/ray_results          # the same, as a URI
    storage: s3://bucket/prefix                   # AWS S3 (credentials from the environment)
    storage: gs://bucket/prefix                   # Google Cloud Storage
    storage: {path: s3://bucket/prefix, endpoint_url: http://127.0.0.1:9000, region: us-east-1}
                                                  # S3-compatible server (MinIO, Ceph, moto)
    storage: {path: /data/ray_results, shared: true}
                                                  # a shared mount storage_check cannot detect

``parse_storage(storage) -> StorageLocation``
    ``StorageLocation(filesystem, path)`` is a named tuple: ``filesystem`` is a
    ``pyarrow.fs.FileSystem`` for s3/gs (None for local paths) and ``path`` the path inside it
    (``bucket/prefix`` for buckets, an absolute path for local storage). Use it as
    ``RunConfig(**location.run_config_kwargs())`` and, to resume experiment ``name``,
    ``Tuner.restore(location.join(name), trainable, storage_filesystem=location.filesystem)``.
    ``None`` means Ray's default, ``~/ray_results``. Bad input raises ``StorageError``.

Parsing is offline (the sweep config is checked with it before Ray starts); whether the storage
works — a probe write, a node-local path on a cluster, free space — is ``storage_check.py``'s.
``StorageError`` is a ``ValueError``: every problem with the ``storage`` entry raises it. No Ray.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit

import pyarrow.fs

DEFAULT_STORAGE = "~/ray_results"
"""Ray Tune's own default ``storage_path``: fine on one machine, wrong on a cluster."""

SCHEMES = ("file", "s3", "gs")
OPTION_KEYS = ("path", "endpoint_url", "region", "shared")


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
    options = storage_options(storage)
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


def storage_options(storage: str | os.PathLike | Mapping[str, Any] | None) -> dict[str, Any]:
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
