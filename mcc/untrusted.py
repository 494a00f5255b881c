"""Reading raw input that nobody vouches for: the checks every importer shares.

A raw dataset can hold anything: a FIFO or a device where a file should be, a 1 GB file of
zeros, counts written `1_0` (which Python's `int()` reads as 10), coordinates like `1e39`
that are finite as float64 but infinite as float32, stray carriage returns. The importers
(mcc.datasets: ntu, kinetics, pkummd, nwucla, npz) read through these helpers, so that each
kind of damage is caught once, the same way, before any large allocation:

- `regular_file_problem` / `read_bytes`: only regular files are read (FIFOs would block,
  devices never end), and none larger than `MAX_FILE_BYTES`;
- `split_lines`: LF, CRLF or CR line endings, but not a mixture that makes the line
  structure ambiguous (a lone CR in a file of LF lines);
- `parse_int` / `parse_float`: ASCII decimal numerals only (no `_`, no `0x`, no Unicode
  digits), integers within declared bounds;
- `float32_problem` / `finite_float32`: a value is stored only if it is finite as float32.

Every problem is a `BadInput` whose message is a one-line reason for the manifest.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path
from typing import BinaryIO

import numpy as np

# A raw file of one sample (an NTU .skeleton, a Kinetics clip, a PKU-MMD video's skeleton or
# labels) is at most a few MB (PKU-MMD's longest skeleton: ~10 MB); larger is not a sample.
MAX_FILE_BYTES = 64 * 2**20
FLOAT32_MAX = float(np.finfo(np.float32).max)

_INT = re.compile(r"[+-]?[0-9]+")
# What C's strtod reads in decimal, plus nan/inf (rejected later as non-finite values).
_FLOAT = re.compile(
    r"[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?|[+-]?(?:nan|inf|infinity)", re.I
)
_KINDS = (
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISSOCK, "a socket"),
)


class BadInput(ValueError):
    """Raw input that cannot be converted; the message is the one-line reason."""


# --------------------------------------------------------------------------- files


def file_kind(mode: int) -> str:
    """'a FIFO', 'a folder', ... for a stat mode that is not a regular file."""
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def regular_file_problem(path: str | Path) -> str | None:
    """None for a regular file (or a link to one), else why it is skipped: a FIFO, a device,
    a folder, a broken link. Used when listing a source folder: such entries are listed as
    rejected instead of read (reading a FIFO blocks; /dev/zero never ends)."""
    try:
        mode = os.stat(path).st_mode
    except OSError as e:
        return f"cannot be read ({e.strerror or e})"
    if stat.S_ISREG(mode):
        return None
    return f"{file_kind(mode)}, not a regular file: skipped"


def open_regular(path: str | Path, limit: int | None = MAX_FILE_BYTES) -> BinaryIO:
    """An open binary file, after checking on its descriptor that it is a regular file of
    at most `limit` bytes (None: any size); BadInput otherwise. Opened without blocking, so
    a FIFO (or a file replaced by one after listing) cannot hang the reader."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as e:
        raise BadInput(f"cannot read the file ({e.strerror or e})") from None
    st = os.fstat(fd)
    problem = None
    if not stat.S_ISREG(st.st_mode):
        problem = f"{file_kind(st.st_mode)}, not a regular file"
    elif limit is not None and st.st_size > limit:
        problem = f"file of {st.st_size / 2**20:.0f} MB, over the {_mb(limit)} limit"
    if problem:
        os.close(fd)
        raise BadInput(problem)
    return os.fdopen(fd, "rb")


def read_bytes(path: str | Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most `limit` bytes; BadInput otherwise (see
    open_regular)."""
    with open_regular(path, limit) as f:
        data = f.read(limit + 1)  # the file may have grown since fstat
    if len(data) > limit:
        raise BadInput(f"file over the {_mb(limit)} limit")
    return data


def _mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


# --------------------------------------------------------------------------- text


def split_lines(text: str) -> list[str]:
    """The lines of a text file, as `text.split("\\n")` (a final newline leaves one empty
    item; a CR before the LF stays and counts as whitespace). A file without LF is split at
    CR (old Mac line ends). Raises BadInput for a CR that is not part of a CRLF in a file of
    LF lines: "a\\r\\r\\n" (line ends converted twice) or "1.0\\r2.0" could be one line or two,
    and guessing would shift every later frame."""
    if "\n" not in text:
        return text.split("\r")
    if text.count("\r") != text.count("\r\n"):
        at = next(m.start() for m in re.finditer("\r(?!\n)", text))
        line = text.count("\n", 0, at) + 1
        raise BadInput(
            f"line {line}: a carriage return (CR) not followed by LF: mixed or doubled line endings"
        )
    return text.split("\n")


def parse_int(text: str, what: str, lo: int | None = 0, hi: int | None = None) -> int:
    """A decimal integer in lo..hi, strictly: ASCII digits with an optional sign (Python's
    int() also takes `1_0`, Unicode digits and surrounding whitespace of any kind); BadInput
    naming `what` otherwise."""
    s = text.strip(" \t\r\n")
    if not _INT.fullmatch(s):
        raise BadInput(f"{what} {s[:40]!r} is not an integer")
    if len(s) > 30:  # a count of 10**30 is not a count; also keeps int() cheap
        raise BadInput(f"{what} {s[:40]}... is far too large")
    n = int(s)
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        lo_s = "" if lo is None else str(lo)
        hi_s = "" if hi is None else str(hi)
        raise BadInput(f"{what} {n} outside {lo_s}..{hi_s}")
    return n


def is_float(text: str) -> bool:
    """A decimal numeral (or nan / inf) as C and numpy's text readers take it: no `_`, no
    hex, no Unicode digits."""
    return _FLOAT.fullmatch(text.strip(" \t\r\n")) is not None


def parse_float(text: str, what: str) -> float:
    """A finite decimal number, strictly (see is_float); BadInput naming `what` otherwise."""
    if not is_float(text):
        raise BadInput(f"{what} {text.strip()[:40]!r} is not a number")
    x = float(text)
    if not np.isfinite(x):
        raise BadInput(f"{what} {text.strip()[:40]!r} is not a finite number")
    return x


# --------------------------------------------------------------------------- values


def not_float32(values: np.ndarray) -> np.ndarray:
    """Bool mask of the values that are not finite as float32: NaN, inf, and finite float64
    values beyond float32's range (1e39 -> inf when stored)."""
    a = np.asarray(values)
    if a.dtype.kind in "biu":
        return np.abs(a.astype(np.float64)) > FLOAT32_MAX
    return ~(np.abs(a) <= FLOAT32_MAX)  # NaN compares False


def float32_problem(values: np.ndarray) -> str | None:
    """None when every value is finite as float32, else a one-line reason naming the first
    offending value."""
    bad = not_float32(values)
    if not bad.any():
        return None
    v = np.asarray(values).ravel()[int(np.flatnonzero(bad.ravel())[0])]
    n = int(bad.sum())
    return f"non-finite in float32: {n} value(s) NaN, inf or beyond +-3.4e38, e.g. {float(v)!r}"


def finite_float32(values: np.ndarray, what: str) -> np.ndarray:
    """values as float32, or BadInput when any of them is not finite as float32."""
    problem = float32_problem(values)
    if problem:
        raise BadInput(f"{what}: {problem}")
    return np.asarray(values, dtype=np.float32)
