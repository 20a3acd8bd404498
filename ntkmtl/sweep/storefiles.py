"""Small JSON files in a sweep's storage (local or a bucket), and stopping a sweep on a write error.

The journal of the early-stopping scheduler, the driver lock and the sweep identity live next to
Ray's own files in the storage location (``storage.StorageLocation``); these helpers read and
write them through the location's pyarrow filesystem, so they work on a local path, NFS and S3
alike. A local write goes through a temporary file and a rename (a crash never leaves half a
file); an S3 object is replaced whole by its upload.

A file ntkmtl rewrites during a run must not be named ``*.json`` or ``*.pkl``: at a restore Ray
copies every such file of the experiment directory into its driver staging directory and, at
each experiment snapshot, uploads that directory back over the experiment, so a stale copy would
replace the newer file (a resumed seed-aware sweep lost its journal that way and hung). Their
names end in ``.journal``, ``.identity`` and ``.lock`` (``ray_synced(name)`` tells).

``request_stop(message)``: a write to the output or the storage failed while Ray runs. The
message is kept (``stop_reasons``) and Ray is asked to stop as on Ctrl-C (SIGUSR1, which Tune
handles by saving the experiment one last time): the sweep ends resumable and the driver prints
the one line. Plain Python, no Ray.
"""

from __future__ import annotations

import json
import os
import signal
import uuid
from typing import Any

import pyarrow.fs

stop_reasons: list[str] = []


RAY_SYNCED_SUFFIXES = (".json", ".pkl")  # ray.tune's sync_down_experiment_state copies these


def ray_synced(name: str) -> bool:
    """Whether Ray's restore copies a file of this name to its staging directory (and back)."""
    return name.endswith(RAY_SYNCED_SUFFIXES)


def filesystem_of(filesystem: pyarrow.fs.FileSystem | None) -> pyarrow.fs.FileSystem:
    return filesystem or pyarrow.fs.LocalFileSystem()


def read_json(filesystem: pyarrow.fs.FileSystem | None, path: str) -> Any | None:
    """The JSON document at ``path``, or None when there is none (an unreadable one raises ValueError)."""
    fs = filesystem_of(filesystem)
    try:
        if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
            return None
        with fs.open_input_stream(path) as f:
            text = f.read().decode("utf-8")
    except FileNotFoundError:
        return None
    return json.loads(text)


def write_json(filesystem: pyarrow.fs.FileSystem | None, path: str, data: Any) -> None:
    """Write ``data`` as JSON at ``path``, whole or not at all."""
    _write_bytes(filesystem, path, (json.dumps(data, indent=1, sort_keys=True, default=str) + "\n").encode("utf-8"))


def _write_bytes(filesystem: pyarrow.fs.FileSystem | None, path: str, payload: bytes) -> None:
    fs = filesystem_of(filesystem)
    parent = path.rpartition("/")[0]
    if parent:
        fs.create_dir(parent, recursive=True)
    if isinstance(fs, pyarrow.fs.LocalFileSystem):
        tmp = f"{parent}/.{path.rpartition('/')[2]}.{os.getpid()}.{uuid.uuid4().hex[:6]}.tmp"
        with open(tmp, "wb") as f:
            f.write(payload)
        os.replace(tmp, path)
        return
    with fs.open_output_stream(path) as f:
        f.write(payload)


def read_lines(filesystem: pyarrow.fs.FileSystem | None, path: str) -> tuple[list[Any], bool] | None:
    """The JSON values of a JSON-lines file, and whether its last line was cut short (a crash
    while appending; that line is left out); None when there is no file."""
    fs = filesystem_of(filesystem)
    try:
        if fs.get_file_info(path).type != pyarrow.fs.FileType.File:
            return None
        with fs.open_input_stream(path) as f:
            lines = f.read().decode("utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return None
    values, cut = [], False
    for i, line in enumerate(lines):
        try:
            values.append(json.loads(line))
        except ValueError:
            if i < len(lines) - 1:
                raise ValueError(f"{path}: line {i + 1} is not JSON") from None
            cut = True
    return values, cut


def append_lines(filesystem: pyarrow.fs.FileSystem | None, path: str, values: list[Any], whole: list[Any]) -> None:
    """Append ``values`` to the JSON-lines file at ``path`` (cost: the new lines, not the file).
    Where the filesystem cannot append (object stores: S3, GCS), the file is written as ``whole``."""
    fs = filesystem_of(filesystem)
    payload = "".join(json.dumps(v, default=str) + "\n" for v in values).encode("utf-8")
    try:
        with fs.open_append_stream(path) as f:
            f.write(payload)
    except NotImplementedError:  # pyarrow.lib.ArrowNotImplementedError: no append on this store
        write_lines(fs, path, whole)


def write_lines(filesystem: pyarrow.fs.FileSystem | None, path: str, values: list[Any]) -> None:
    """Write ``values`` as a JSON-lines file at ``path``, whole or not at all (as ``write_json``)."""
    _write_bytes(filesystem, path, "".join(json.dumps(v, default=str) + "\n" for v in values).encode("utf-8"))


def delete(filesystem: pyarrow.fs.FileSystem | None, path: str) -> None:
    try:
        filesystem_of(filesystem).delete_file(path)
    except (FileNotFoundError, OSError):
        pass


def describe(error: BaseException) -> str:
    """An OSError in a few words: 'No space left on device' (not a traceback)."""
    text = getattr(error, "strerror", None) or str(error)
    return " ".join(str(text).split()).rstrip(".")


def request_stop(message: str) -> None:
    """Keep ``message`` and ask Ray Tune to end the run resumably (as Ctrl-C does)."""
    if message not in stop_reasons:
        stop_reasons.append(message)
    handler = signal.getsignal(signal.SIGUSR1)
    if callable(handler):  # Tune's handler (run in the main thread): stop, save the experiment, return
        os.kill(os.getpid(), signal.SIGUSR1)
    else:  # not inside Tuner.fit (or no handler): raise where we are
        raise OSError(message)
