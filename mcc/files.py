"""Files that a kill never leaves half-written, on a local disk or in object storage.

A local file is written to NAME.tmp beside the target and renamed over it (os.replace is
atomic on one file system), so a reader sees the old file or the new one, never a mix. A URI
(`s3://bucket/key`, `gs://...`, `file:///...`: anything `pyarrow.fs.FileSystem.from_uri`
takes, with credentials and endpoint from the standard environment, e.g. AWS_ENDPOINT_URL)
names an object store, which has no rename: each object is uploaded whole (`write_whole`), so
it appears complete or not at all. Every dataset read and write goes through these functions.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

import pyarrow.fs as pafs


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """A temporary path beside `path` for writers that take a file name (torch.save, parquet);
    it replaces `path` when the block ends without an error and is removed otherwise."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | Path, data: str | bytes) -> None:
    """Write text or bytes to the local file `path` atomically (see the module docstring)."""
    with atomic_path(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data)


def is_uri(path: str | Path) -> bool:
    return "://" in str(path)


@lru_cache(maxsize=16)
def _store(prefix: str) -> pafs.FileSystem:
    return pafs.FileSystem.from_uri(prefix)[0]


def filesystem(path: str | Path) -> tuple[pafs.FileSystem, str]:
    """(the pyarrow file system of `path`, the path inside it): a URI's store (one per scheme
    and bucket, made once per process), or the local disk with an absolute path."""
    text = str(path)
    if not is_uri(text):
        return pafs.LocalFileSystem(), str(Path(text).expanduser().resolve())
    scheme, rest = text.split("://", 1)
    bucket = rest.split("/", 1)[0]
    _, inner = pafs.FileSystem.from_uri(text)
    return _store(f"{scheme}://{bucket}"), inner


def join(base: str | Path, *names: str) -> str:
    """`base`/name/...: a URI stays a URI, a local path stays local."""
    if is_uri(base):
        return "/".join([str(base).rstrip("/"), *names])
    return str(Path(base).joinpath(*names))


def exists(path: str | Path) -> bool:
    fs, inner = filesystem(path)
    return fs.get_file_info(inner).type != pafs.FileType.NotFound


def read_bytes(path: str | Path) -> bytes:
    """The whole file; FileNotFoundError when there is none."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type != pafs.FileType.File:
        raise FileNotFoundError(f"{path} does not exist")
    with fs.open_input_stream(inner) as f:
        return f.read()


def write_whole(path: str | Path, data: str | bytes) -> None:
    """Write `data` to `path` so that a reader never sees part of it: atomically on a local
    disk, as one upload to an object store."""
    data = data.encode() if isinstance(data, str) else data
    if not is_uri(path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return
    fs, inner = filesystem(path)
    with fs.open_output_stream(inner) as f:
        f.write(data)


def make_dirs(path: str | Path) -> None:
    """Create a local folder (and its parents); an object store needs none."""
    if not is_uri(path):
        Path(path).mkdir(parents=True, exist_ok=True)


def list_files(path: str | Path) -> list[str]:
    """Names (relative, with "/") of every file under the folder or prefix `path`; [] if none."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type == pafs.FileType.NotFound:
        return []
    found = fs.get_file_info(pafs.FileSelector(inner, recursive=True, allow_not_found=True))
    return sorted(i.path[len(inner.rstrip("/")) + 1 :] for i in found
                  if i.type == pafs.FileType.File)  # fmt: skip


def staging_dir(uri: str) -> Path:
    """A local folder standing in for the folder `uri` of an object store (a run being
    written, a checkpoint being read): its files are uploaded whole from here, one each."""
    import hashlib
    import tempfile

    key = hashlib.sha256(uri.rstrip("/").encode()).hexdigest()[:16]
    path = Path(tempfile.gettempdir()) / "mcc-staging" / key
    path.mkdir(parents=True, exist_ok=True)
    return path


def download(uri: str, local: str | Path) -> None:
    """Copy the object `uri` to the local file `local` (atomically)."""
    write_whole(local, read_bytes(uri))


def upload(local: str | Path, uri: str) -> None:
    """Copy the local file `local` to `uri` as one whole object."""
    write_whole(uri, Path(local).read_bytes())


def remove(path: str | Path) -> None:
    """Delete the file or object `path` if it is there."""
    fs, inner = filesystem(path)
    if fs.get_file_info(inner).type == pafs.FileType.File:
        fs.delete_file(inner)
