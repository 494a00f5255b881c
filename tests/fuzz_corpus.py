"""A seeded corpus of broken inputs for `python -m mcc prepare`, made from sample files.

The sample files are staged from a data folder (ntu/, kinetics/, pkummd/, natops/natops.npz):
by default the real sample data (MCC_SHARED_DATA, as tests/conftest.py finds it) when
present, else the generated stand-in of tests/raw_formats.py; `--data DIR` picks another.
Each case stages the sample files of one format in a fresh folder, adds or damages one input
with one kind of damage, imports the folder with the CLI in this process (`--workers 1`) and
checks that

- nothing raises, nothing hangs (an alarm after TIMEOUT_S) and memory stays bounded (the
  address space is capped at MEMORY_HEADROOM over what the process already uses);
- the good samples are exactly those of a clean import of the sample files alone, value for
  value;
- each bad sample is in dataset.json's rejected list with a one-line reason, or, for an
  input that cannot be read at all, the run ends with exactly one `error:` line, a
  non-zero exit status and no dataset;
- nothing else is printed on stderr (no warning) and no stored value is non-finite.

The classes of damage: numeric overflow (1e39 is finite in float64, inf in float32),
NaN / inf, odd numerals (`1_0`, hex, Unicode digits, decimal commas), huge or negative
counts and indices, line endings, special files (FIFOs, devices, folders, broken links,
sparse giants), truncation and garbage bytes, structural damage, out-of-range and
non-integer labels, duplicates, corrupt archives (bad CRC, zip bombs, pickles).

    python tests/fuzz_corpus.py [--seed N] [--only TEXT] [--data DIR] [-v]

prints the inputs tried / handled / failed (and why each failure failed); tests/test_fuzz.py
runs the same corpus under pytest.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import pickle
import resource
import shutil
import signal
import struct
import sys
import tempfile
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

# The folder the sample files are staged from (use_data sets these; see the end of the file).
DATA = NTU_DIR = KINETICS_DIR = PKU_DIR = NATOPS_NPZ = NATOPS_LAYOUT = Path()
PKU_REAL = ""  # the shortest sample video: the corpus imports it once more per case
FORMATS = ("ntu", "kinetics", "pkummd", "npz")
TIMEOUT_S = 20
MEMORY_HEADROOM = 3 * 2**30
GIANT = 2 * 2**30  # a sparse file this large: no disk used, but no importer may read it


@dataclass
class Expect:
    """What a case must produce beyond the clean import of the sample files.

    rejected: sample ids that must be listed in dataset.json's rejected list (each once;
        an id may repeat). absent: sample ids that must not be imported. extra: ids
        imported beyond the sample ones, each mapped to the sample whose joints it must
        equal (or None). error: the whole import must fail with one `error:` line."""

    rejected: list[str] = field(default_factory=list)
    absent: set[str] = field(default_factory=set)
    extra: dict[str, str | None] = field(default_factory=dict)
    error: bool = False
    never: Path | None = None  # a file that must not exist afterwards (a pickle's payload)


@dataclass(frozen=True)
class Case:
    name: str  # "<format>/<damage>"
    make: Callable[[Path, np.random.Generator], Expect]

    @property
    def fmt(self) -> str:
        return self.name.split("/")[0]


CASES: list[Case] = []


def case(name: str):
    def register(fn):
        CASES.append(Case(name, fn))
        return fn

    return register


# ============================================================================ staging


def stage(fmt: str, root: Path) -> Path:
    """Copy the sample files of a format into root; returns what --src gets."""
    if fmt == "ntu":
        shutil.copytree(NTU_DIR, root / "ntu")
        return root / "ntu"
    if fmt == "kinetics":
        (root / "kinetics").mkdir()
        for p in sorted(KINETICS_DIR.glob("*.json")):
            if not p.name.startswith("kinetics_"):
                shutil.copy(p, root / "kinetics" / p.name)
        shutil.copy(KINETICS_DIR / "label_name.txt", root / "kinetics" / "label_name.txt")
        return root / "kinetics"
    if fmt == "pkummd":
        # The shortest sample video only: the long ones would triple the corpus's time
        # (skeleton parsing) without covering anything more.
        shutil.copytree(
            PKU_DIR,
            root / "pkummd",
            ignore=lambda d, names: [
                n
                for n in names
                if n.endswith(".txt")
                and Path(d).name in ("skeleton", "labels")
                and not n.startswith(PKU_REAL)
            ],
        )
        return root / "pkummd"
    (root / "npz").mkdir()
    shutil.copy(NATOPS_NPZ, root / "npz" / "data.npz")
    return root / "npz" / "data.npz"


def cli_args(fmt: str, src: Path, out: Path) -> list[str]:
    common = ["--src", str(src), "--out", str(out), "--workers", "1", "--no-progress"]
    extra = {
        "ntu": ["ntu60"],
        "kinetics": ["kinetics", "--split", "train"],
        "pkummd": ["pkummd"],
        "npz": ["npz", "--layout", str(NATOPS_LAYOUT)],
    }[fmt]
    return ["prepare", extra[0], *common, *extra[1:]]


class Hung(BaseException):
    """Raised by the alarm: a BaseException, so that no importer's `except OSError` (which
    would catch TimeoutError) can turn a hang into a reject."""


@contextlib.contextmanager
def guarded():
    """Raise Hung after TIMEOUT_S and MemoryError past MEMORY_HEADROOM (Linux)."""

    def alarm(signum, frame):
        raise Hung(f"no result after {TIMEOUT_S} s")

    old_handler = signal.signal(signal.SIGALRM, alarm)
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    vm = _vm_bytes()
    if vm:
        cap = vm + MEMORY_HEADROOM
        resource.setrlimit(resource.RLIMIT_AS, (cap if hard < 0 else min(cap, hard), hard))
    signal.alarm(TIMEOUT_S)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old_handler)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _vm_bytes() -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


@dataclass
class Outcome:
    rc: int | None
    stdout: str
    stderr: str
    raised: str = ""
    seconds: float = 0.0


def run_import(fmt: str, src: Path, out: Path) -> Outcome:
    from mcc.cli import main

    o, e = io.StringIO(), io.StringIO()
    t0 = time.perf_counter()
    rc, raised = None, ""
    with contextlib.redirect_stdout(o), contextlib.redirect_stderr(e):
        try:
            with guarded():
                rc = main(cli_args(fmt, src, out))
        except BaseException as exc:  # noqa: BLE001 - whatever escapes is the finding
            import traceback

            raised = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return Outcome(rc, o.getvalue(), e.getvalue(), raised, time.perf_counter() - t0)


# ============================================================================ checking


@dataclass
class Imported:
    samples: dict  # id -> Sample
    rejected: list[tuple[str, str]]


def read_result(out: Path) -> Imported:
    from mcc.shards import load_samples, read_manifest

    m = read_manifest(out)
    samples = {s.sample_id: s for s in load_samples(out)}
    return Imported(samples, [(r.get("sample_id", r.get("file")), r["reason"]) for r in m.rejected])


def check(outcome: Outcome, out: Path, expect: Expect, base: Imported) -> list[str]:
    """The problems with one case's result (empty: handled)."""
    if outcome.raised:
        return [f"raised {outcome.raised[-300:]}"]
    problems = []
    if "Traceback" in outcome.stderr:
        problems.append("traceback on stderr")
    err_lines = [x for x in outcome.stderr.splitlines() if x.strip()]
    if expect.error:
        if outcome.rc in (0, None):
            problems.append(f"exit status {outcome.rc}, expected an error")
        if len(err_lines) != 1 or not err_lines[0].startswith("error: "):
            problems.append(f"stderr is not one 'error:' line: {outcome.stderr[-300:]!r}")
        if (out / "dataset.json").exists() or list(out.glob("*.parquet")):
            problems.append("a dataset was written despite the error")
        return problems
    if outcome.rc != 0:
        return problems + [f"exit status {outcome.rc}: {outcome.stderr[-300:]!r}"]
    if err_lines:
        problems.append(f"stderr not empty: {outcome.stderr[-300:]!r}")
    got = read_result(out)
    for sid, s in got.samples.items():
        if not np.isfinite(s.joints).all():
            problems.append(f"{sid}: non-finite value stored")
    want = (set(base.samples) - expect.absent) | set(expect.extra)
    if set(got.samples) != want:
        missing, surplus = sorted(want - set(got.samples)), sorted(set(got.samples) - want)
        problems.append(f"imported ids differ: missing {missing[:4]}, unexpected {surplus[:4]}")
    differ = [
        sid
        for sid in sorted(set(base.samples) & set(got.samples))
        if (base.samples[sid].label, base.samples[sid].split, base.samples[sid].subject)
        != (got.samples[sid].label, got.samples[sid].split, got.samples[sid].subject)
        or not np.array_equal(base.samples[sid].joints, got.samples[sid].joints)
    ]
    if differ:
        problems.append(f"{len(differ)} sample(s) differ from the clean import, e.g. {differ[0]}")
    for sid, ref in expect.extra.items():
        if ref is not None and sid in got.samples:
            if not np.array_equal(got.samples[sid].joints, base.samples[ref].joints):
                problems.append(f"{sid}: joints differ from {ref}'s")
    new = list(got.rejected)
    for r in base.rejected:
        if r in new:
            new.remove(r)
    if sorted(i for i, _ in new) != sorted(expect.rejected):
        problems.append(
            f"rejected {sorted(i for i, _ in new)[:6]}, expected {sorted(expect.rejected)[:6]}"
        )
    for sid, reason in new:
        if not isinstance(reason, str) or not reason.strip() or "\n" in reason:
            problems.append(f"{sid}: reason is not one line: {reason!r}")
    return problems


_BASELINES: dict[str, Imported] = {}


def baseline(fmt: str) -> Imported:
    """The clean import of the sample files alone (cached per format)."""
    if fmt not in _BASELINES:
        with tempfile.TemporaryDirectory(prefix=f"fuzz-base-{fmt}-") as tmp:
            src = stage(fmt, Path(tmp))
            outcome = run_import(fmt, src, Path(tmp) / "out")
            if outcome.rc != 0 or outcome.raised:
                raise RuntimeError(f"the clean {fmt} import failed: {outcome}")
            _BASELINES[fmt] = read_result(Path(tmp) / "out")
    return _BASELINES[fmt]


def run_case(c: Case, seed: int = 0) -> list[str]:
    """Stage, damage, import and check one case; the list of problems (empty: handled)."""
    if not PKU_REAL:  # no folder chosen yet
        use_data(default_data())
    rng = np.random.default_rng([seed, zlib_crc(c.name)])
    base = baseline(c.fmt)
    with tempfile.TemporaryDirectory(prefix="fuzz-") as tmp:
        root = Path(tmp)
        src = stage(c.fmt, root)
        expect = c.make(src, rng)
        out = root / "out"
        problems = check(run_import(c.fmt, src, out), out, expect, base)
        if expect.never is not None and expect.never.exists():
            problems.append(f"{expect.never} exists: something was unpickled")
        return problems


def zlib_crc(text: str) -> int:
    import zlib

    return zlib.crc32(text.encode())


# ============================================================================ shared damage


def special_file(path: Path, kind: str) -> None:
    """Put a non-regular (or unreadably large) entry at path."""
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "device":
        path.symlink_to("/dev/zero")  # reading it never ends
    elif kind == "folder":
        path.mkdir()
    elif kind == "broken-link":
        path.symlink_to(path.with_name("no-such-target"))
    elif kind == "giant":
        with open(path, "wb") as f:  # sparse: takes no disk space
            f.truncate(GIANT)
    else:
        raise ValueError(kind)


SPECIAL = ("fifo", "device", "folder", "broken-link", "giant")


def cut(data: bytes, rng: np.random.Generator, lo: float = 0.1, hi: float = 0.9) -> bytes:
    return data[: int(len(data) * rng.uniform(lo, hi))]


# ============================================================================ NTU

NTU_NEW = "S099C001P001R001A001"  # a valid ntu60 name no sample file has


def ntu_real(rng) -> tuple[str, bytes]:
    files = sorted(NTU_DIR.glob("*.skeleton"))
    p = files[int(rng.integers(len(files)))]
    return p.stem, p.read_bytes()


def ntu_layout(lines: list[str]) -> dict[str, list[int]]:
    """Line indices of a valid file: counts, info lines, joint counts, joint lines."""
    at = {"frame_count": [0], "body_count": [], "info": [], "joint_count": [], "joint": []}
    i = 1
    for _ in range(int(lines[0])):
        at["body_count"].append(i)
        nb = int(lines[i])
        i += 1
        for _ in range(nb):
            at["info"].append(i)
            at["joint_count"].append(i + 1)
            at["joint"] += range(i + 2, i + 2 + 25)
            i += 27
    return at


def ntu_edit(rng, kind: str, edit: Callable[[list[str]], str]) -> bytes:
    """A sample file with one line of `kind` (chosen by rng) replaced by edit(fields)."""
    _, data = ntu_real(rng)
    lines = data.decode().split("\r\n")
    i = int(rng.choice(ntu_layout(lines)[kind]))
    lines[i] = edit(lines[i].split())
    return "\r\n".join(lines).encode()


def ntu_write(src: Path, data: bytes, name: str = NTU_NEW) -> None:
    (src / f"{name}.skeleton").write_bytes(data)


def ntu_reject(name: str, data_fn: Callable[[np.random.Generator], bytes]):
    """Register a case: one new file, built by data_fn, that must be rejected."""

    def make(src: Path, rng) -> Expect:
        ntu_write(src, data_fn(rng))
        return Expect(rejected=[NTU_NEW])

    case(f"ntu/{name}")(make)


def _field(i: int, value: str):
    def edit(fields: list[str]) -> str:
        fields[i] = value
        return " ".join(fields)

    return edit


for _name, _value in [
    ("coordinate-1e39", "1e39"),
    ("coordinate-minus-1e39", "-1e39"),
    ("coordinate-3.5e38", "3.5e38"),
    ("coordinate-1e309", "1e309"),
    ("coordinate-nan", "nan"),
    ("coordinate-NaN", "NaN"),
    ("coordinate-inf", "inf"),
    ("coordinate-minus-infinity", "-Infinity"),
    ("coordinate-underscore", "0_5"),
    ("coordinate-hex-float", "0x1p-2"),
    ("coordinate-decimal-comma", "0,25"),
    ("coordinate-empty-string", '""'),
    ("coordinate-fullwidth-digit", "０.5"),
]:
    ntu_reject(_name, lambda rng, v=_value: ntu_edit(rng, "joint", _field(int(rng.integers(3)), v)))

for _name, _kind, _value in [
    ("frame-count-underscore", "frame_count", None),  # "82" -> "8_2": int() reads 82
    ("body-count-underscore", "body_count", "0_1"),
    ("joint-count-underscore", "joint_count", "2_5"),
    ("joint-count-fullwidth", "joint_count", "２５"),
    ("joint-count-arabic-indic", "joint_count", "٢٥"),
    ("joint-count-float", "joint_count", "25.0"),
    ("joint-count-exponent", "joint_count", "2.5e1"),
    ("joint-count-hex", "joint_count", "0x19"),
    ("joint-count-huge", "joint_count", "1000000000"),
    ("joint-count-negative", "joint_count", "-25"),
    ("frame-count-huge", "frame_count", "99999999999"),
    ("frame-count-1e40", "frame_count", "1" + "0" * 40),
    ("frame-count-negative", "frame_count", "-1"),
    ("body-count-bomb", "body_count", "1000000000"),
    ("body-count-7", "body_count", "7"),
    ("body-id-2**64", "info", None),
    ("body-id-negative", "info", None),
    ("body-id-underscore", "info", None),
]:

    def _count_edit(fields, kind=_kind, value=_value, name=_name):
        if value is not None:
            return value
        if kind == "frame_count":
            return fields[0][:1] + "_" + fields[0][1:]
        body_id = {
            "body-id-2**64": str(2**64),
            "body-id-negative": "-5",
            "body-id-underscore": "7205_7594037944738",
        }[name]
        return " ".join([body_id, *fields[1:]])

    ntu_reject(_name, lambda rng, k=_kind, e=_count_edit: ntu_edit(rng, k, e))


def _bodyid_bomb(rng) -> bytes:
    """Every frame a new bodyID: assembling bodies x frames densely would need ~2.7 GB."""
    frames = 3000
    joint = "0.1 0.2 3.0 1 1 1 1 0 0 0 1 2"
    out = [str(frames)]
    for f in range(frames):
        out += ["1", f"{1000 + f} 0 1 1 1 1 0 0.01 -0.25 2", "25"] + [joint] * 25
    return ("\r\n".join(out) + "\r\n").encode()


ntu_reject("distinct-body-ids-bomb", _bodyid_bomb)


def _line_ends(convert: Callable[[bytes], bytes]):
    def make(src: Path, rng) -> Expect:
        real, data = ntu_real(rng)
        ntu_write(src, convert(data))
        return Expect(extra={NTU_NEW: real})

    return make


# LF, CR and mixed line ends read as the official CRLF: the same joints.
case("ntu/line-ends-lf")(_line_ends(lambda d: d.replace(b"\r\n", b"\n")))
case("ntu/line-ends-cr-only")(_line_ends(lambda d: d.replace(b"\r\n", b"\r")))
case("ntu/line-ends-mixed-lf-crlf")(
    _line_ends(
        lambda d: b"\n".join(
            x.replace(b"\r\n", b"\n") if i % 2 else x for i, x in enumerate(d.split(b"\n"))
        )
    )
)
# Converted twice (CRCRLF): every line is followed by a CR alone; ambiguous, rejected.
ntu_reject(
    "line-ends-crlf-converted-twice", lambda rng: ntu_real(rng)[1].replace(b"\r\n", b"\r\r\n")
)
ntu_reject(
    "stray-cr-inside-joint-line",
    lambda rng: ntu_edit(rng, "joint", lambda f: " ".join(f[:5]) + "\r" + " ".join(f[5:])),
)
ntu_reject("truncated-mid-file", lambda rng: cut(ntu_real(rng)[1], rng))
ntu_reject(
    "truncated-at-line-end",
    lambda rng: (
        b"\r\n".join(ntu_real(rng)[1].split(b"\r\n")[: int(rng.integers(5, 200))]) + b"\r\n"
    ),
)
ntu_reject("empty-file", lambda rng: b"")
ntu_reject("whitespace-only", lambda rng: b"  \r\n\r\n")
ntu_reject("frame-count-only", lambda rng: b"82\r\n")
ntu_reject("zero-frames", lambda rng: b"0\r\n")
ntu_reject("no-body-in-any-frame", lambda rng: b"3\r\n0\r\n0\r\n0\r\n")
ntu_reject("trailing-garbage-lines", lambda rng: ntu_real(rng)[1] + b"1 2 3\r\nfoo\r\n")
ntu_reject("joint-line-11-fields", lambda rng: ntu_edit(rng, "joint", lambda f: " ".join(f[:11])))
ntu_reject(
    "joint-line-13-fields", lambda rng: ntu_edit(rng, "joint", lambda f: " ".join(f + ["1"]))
)
ntu_reject("info-line-9-fields", lambda rng: ntu_edit(rng, "info", lambda f: " ".join(f[:9])))
ntu_reject(
    "nul-byte-in-joint-line",
    lambda rng: ntu_edit(rng, "joint", lambda f: " ".join(f).replace(" ", "\0", 1)),
)
ntu_reject("random-bytes", lambda rng: rng.bytes(5000))
ntu_reject("utf16-encoded", lambda rng: ntu_real(rng)[1].decode().encode("utf-16"))
ntu_reject("utf8-bom", lambda rng: b"\xef\xbb\xbf" + ntu_real(rng)[1])


def _all_zero(rng) -> bytes:
    _, data = ntu_real(rng)
    lines = data.decode().split("\r\n")
    for i in ntu_layout(lines)["joint"]:
        f = lines[i].split()
        lines[i] = " ".join(["0", "0", "0", *f[3:]])
    return "\r\n".join(lines).encode()


ntu_reject("all-joints-zero", _all_zero)

for _kind in SPECIAL:

    def _ntu_special(src: Path, rng, kind=_kind) -> Expect:
        special_file(src / f"{NTU_NEW}.skeleton", kind)
        return Expect(rejected=[NTU_NEW])

    case(f"ntu/special-{_kind}")(_ntu_special)


@case("ntu/bad-name-camera-4")
def _ntu_bad_name(src: Path, rng) -> Expect:
    ntu_write(src, ntu_real(rng)[1], "S001C004P001R001A001")
    return Expect(rejected=["S001C004P001R001A001"])


@case("ntu/duplicate-in-subfolder")
def _ntu_duplicate(src: Path, rng) -> Expect:
    real, data = ntu_real(rng)
    (src / "copy").mkdir()
    ntu_write(src / "copy", cut(data, rng), real)  # a damaged second copy under the same name
    return Expect(rejected=[real])


@case("ntu/ntu120-only-action-skipped")
def _ntu120(src: Path, rng) -> Expect:
    ntu_write(src, ntu_real(rng)[1], "S018C001P001R001A061")  # skipped by ntu60, not rejected
    return Expect()


# ============================================================================ Kinetics

KIN_NEW = "zz_fuzz_clip"


def kin_real(rng) -> tuple[str, dict]:
    files = sorted(p for p in KINETICS_DIR.glob("*.json") if not p.name.startswith("kinetics_"))
    p = files[int(rng.integers(len(files)))]
    return p.stem, json.loads(p.read_bytes())


def kin_person(d: dict, rng) -> dict:
    frames = [f for f in d["data"] if f["skeleton"]]
    frame = frames[int(rng.integers(len(frames)))]
    return frame["skeleton"][int(rng.integers(len(frame["skeleton"])))]


def kin_write(src: Path, data: bytes | str, name: str = KIN_NEW) -> None:
    p = src / f"{name}.json"
    p.write_bytes(data.encode() if isinstance(data, str) else data)


def kin_raw_value(rng, key: str, raw: str) -> str:
    """A sample clip's JSON text with one number of one person's `key` list replaced by raw
    text (which json.dumps could not write: 1e400, NaN, ...)."""
    _, d = kin_real(rng)
    person = kin_person(d, rng)
    person[key][int(rng.integers(len(person[key])))] = "@RAW@"
    return json.dumps(d).replace('"@RAW@"', raw, 1)


def kin_reject(name: str, data_fn: Callable[[np.random.Generator], bytes | str]):
    def make(src: Path, rng) -> Expect:
        kin_write(src, data_fn(rng))
        return Expect(rejected=[KIN_NEW])

    case(f"kinetics/{name}")(make)


for _name, _key, _raw in [
    ("pose-1e39", "pose", "1e39"),
    ("pose-minus-1e39", "pose", "-1e39"),
    ("score-1e39", "score", "1e39"),
    ("pose-1e400", "pose", "1e400"),
    ("pose-NaN", "pose", "NaN"),
    ("pose-Infinity", "pose", "Infinity"),
    ("score-minus-Infinity", "score", "-Infinity"),
    ("pose-string-number", "pose", '"0.5"'),
    ("pose-true", "pose", "true"),
    ("pose-null", "pose", "null"),
    ("pose-nested-list", "pose", "[0.5]"),
    ("pose-int-10**400", "pose", "1" + "0" * 400),
    ("pose-int-5000-digits", "pose", "1" * 5000),
]:
    kin_reject(_name, lambda rng, k=_key, r=_raw: kin_raw_value(rng, k, r))


def kin_edit(edit: Callable[[dict, np.random.Generator], object]):
    def data(rng) -> str:
        _, d = kin_real(rng)
        d = edit(d, rng) or d
        return json.dumps(d)

    return data


def _frame(d, rng) -> dict:
    return d["data"][int(rng.integers(len(d["data"])))]


for _name, _value in [
    ("frame-index-float", 1.0),
    ("frame-index-string", "1"),
    ("frame-index-true", True),
    ("frame-index-negative", -1),
    ("frame-index-10**30", 10**30),
    ("frame-index-past-limit", 10**6),
]:
    kin_reject(_name, kin_edit(lambda d, rng, v=_value: _frame(d, rng).update(frame_index=v)))

kin_reject(
    "frame-index-duplicate",
    kin_edit(lambda d, rng: d["data"][1].update(frame_index=d["data"][0]["frame_index"])),
)
kin_reject("pose-35-values", kin_edit(lambda d, rng: kin_person(d, rng)["pose"].pop()))
kin_reject("no-data", kin_edit(lambda d, rng: d.pop("data") and None))
kin_reject("data-not-a-list", kin_edit(lambda d, rng: d.update(data={"0": 1})))
kin_reject("skeleton-not-a-list", kin_edit(lambda d, rng: _frame(d, rng).update(skeleton=5)))
kin_reject("person-not-an-object", kin_edit(lambda d, rng: _frame(d, rng).update(skeleton=[[1]])))
kin_reject("empty-data", kin_edit(lambda d, rng: d.update(data=[])))
kin_reject("top-level-list", kin_edit(lambda d, rng: [d]))


def _nobody(d, rng):
    for f in d["data"]:
        for p in f["skeleton"]:
            p["pose"] = [0] * 36
            p["score"] = [0] * 18


kin_reject("nobody-in-any-frame", kin_edit(_nobody))
kin_reject(
    "unknown-label-and-index",
    kin_edit(lambda d, rng: d.update(label="no such class", label_index=9999)),
)
kin_reject("truncated", lambda rng: cut(json.dumps(kin_real(rng)[1]).encode(), rng))
kin_reject("empty-file", lambda rng: b"")
kin_reject("random-bytes", lambda rng: rng.bytes(3000))
kin_reject("deep-nesting", lambda rng: "[" * 200_000 + "]" * 200_000)


def kin_same(name: str, encode: Callable[[str], bytes]):
    """The same clip in another encoding JSON allows (RFC 8259 8.1): read alike."""

    def make(src: Path, rng) -> Expect:
        real, d = kin_real(rng)
        kin_write(src, encode(json.dumps(d)))
        return Expect(extra={KIN_NEW: real})

    case(f"kinetics/{name}")(make)


kin_same("utf16-encoded", lambda t: t.encode("utf-16"))
kin_same("utf8-bom", lambda t: b"\xef\xbb\xbf" + t.encode())
kin_same("whitespace-and-indent", lambda t: json.dumps(json.loads(t), indent=3).encode())


@case("kinetics/label-index-huge-text-wins")
def _kin_huge_index(src: Path, rng) -> Expect:
    real, d = kin_real(rng)
    d["label_index"] = 10**30  # the text names a class: used (the mismatch is listed)
    kin_write(src, json.dumps(d, indent=1))
    return Expect(extra={KIN_NEW: real})


for _kind in SPECIAL:

    def _kin_special(src: Path, rng, kind=_kind) -> Expect:
        special_file(src / f"{KIN_NEW}.json", kind)
        return Expect(rejected=[KIN_NEW])

    case(f"kinetics/special-{_kind}")(_kin_special)


# ============================================================================ PKU-MMD

PKU_NEW = "0999-L"


def pku_real(rng) -> tuple[str, list[str], list[str]]:
    """(video, skeleton lines, label lines) of the shortest sample video (the corpus imports
    it once more per case: the short one keeps the corpus fast)."""
    v = PKU_REAL
    skel = (PKU_DIR / "skeleton" / f"{v}.txt").read_text().splitlines()
    labels = [x for x in (PKU_DIR / "labels" / f"{v}.txt").read_text().splitlines() if x.strip()]
    return v, skel, labels


def pku_ids(video: str, labels: list[str]) -> list[str]:
    return [f"{video}_{n:04d}_A{int(x.split(',')[0]):02d}" for n, x in enumerate(labels, 1)]


def pku_add(src: Path, skel: bytes | str | None, labels: bytes | str | None) -> None:
    """Add video PKU_NEW (listed as a training video in both split files)."""
    for f in ("cross-subject.txt", "cross-view.txt"):
        p = src / "splits" / f
        p.chmod(0o644)
        lines = p.read_text().splitlines()
        lines[1] = f"{PKU_NEW}, " + lines[1]
        p.write_text("\n".join(lines) + "\n")
    for folder, data in (("skeleton", skel), ("labels", labels)):
        if data is not None:
            path = src / folder / f"{PKU_NEW}.txt"
            path.write_bytes(data.encode() if isinstance(data, str) else data)


def pku_copy(rng) -> tuple[str, list[str], list[str], dict[str, str]]:
    """A sample video's lines, and {new id: its id} for its rows as video PKU_NEW."""
    v, skel, labels = pku_real(rng)
    return v, skel, labels, dict(zip(pku_ids(PKU_NEW, labels), pku_ids(v, labels)))


def _text(lines: list[str]) -> str:
    return "\n".join(lines) + "\n"


def pku_row_case(name: str, row: Callable[[int], str], reject_id: Callable[[int], str]):
    """A copy of a sample video plus one appended label row; only that row is rejected."""

    def make(src: Path, rng) -> Expect:
        _, skel, labels, refs = pku_copy(rng)
        n = len(labels) + 1
        pku_add(src, _text(skel), _text(labels + [row(len(skel))]))
        return Expect(rejected=[reject_id(n)], extra=refs)

    case(f"pkummd/{name}")(make)


def _with_label(label: int):
    return lambda n: f"{PKU_NEW}_{n:04d}_A{label:02d}"


def _no_label(n: int) -> str:
    return f"{PKU_NEW}_{n:04d}"


for _name, _row, _rid in [
    ("row-past-the-end", lambda f: f"5,{f + 10},{f + 50},2", _with_label(5)),
    ("row-ends-past-the-end", lambda f: f"5,{f - 10},{f + 5},2", _with_label(5)),
    ("row-huge-end-frame", lambda f: "5,1,99999999999999999999,2", _with_label(5)),
    ("row-end-frame-1e40", lambda f: "5,1," + "9" * 40 + ",2", _no_label),
    ("row-label-underscore", lambda f: "1_0,1,20,2", _no_label),
    ("row-start-underscore", lambda f: "5,1_0,20,2", _no_label),
    ("row-confidence-underscore", lambda f: "5,1,20,1_0", _no_label),
    ("row-confidence-nan", lambda f: "5,1,20,nan", _no_label),
    ("row-confidence-inf", lambda f: "5,1,20,inf", _no_label),
    ("row-confidence-1e999", lambda f: "5,1,20,1e999", _no_label),
    ("row-label-0", lambda f: "0,1,20,2", _no_label),
    ("row-label-52", lambda f: "52,1,20,2", _no_label),
    ("row-label-negative", lambda f: "-3,1,20,2", _no_label),
    ("row-label-text", lambda f: "A,1,20,2", _no_label),
    ("row-label-fullwidth", lambda f: "５,1,20,2", _no_label),
    ("row-3-fields", lambda f: "5,1,20", _no_label),
    ("row-5-fields", lambda f: "5,1,20,2,9", _no_label),
    ("row-start-after-end", lambda f: "5,30,20,2", _no_label),
    ("row-start-0", lambda f: "5,0,20,2", _no_label),
    ("row-empty-field", lambda f: "5,,20,2", _no_label),
]:
    pku_row_case(_name, _row, _rid)


def pku_segment_case(name: str, value: str):
    """One skeleton value inside one row's segment damaged: only that row is rejected."""

    def make(src: Path, rng) -> Expect:
        _, skel, labels, refs = pku_copy(rng)
        k = int(rng.integers(len(labels)))
        _, start, end, _ = (int(x) for x in labels[k].split(","))
        i = int(rng.integers(start - 1, end))
        # other rows may cover the frame too (overlapping segments): they are bad as well
        hit = [
            j for j, x in enumerate(labels) if int(x.split(",")[1]) <= i + 1 <= int(x.split(",")[2])
        ]
        vals = skel[i].split()
        vals[int(rng.integers(75))] = value  # body 1: never a dropped all-zero body
        skel[i] = " ".join(vals)
        pku_add(src, _text(skel), _text(labels))
        new_ids = pku_ids(PKU_NEW, labels)
        bad = [new_ids[j] for j in hit]
        return Expect(rejected=bad, extra={k2: v for k2, v in refs.items() if k2 not in bad})

    case(f"pkummd/{name}")(make)


for _name, _value in [
    ("skeleton-nan", "nan"),
    ("skeleton-1e39", "1e39"),
    ("skeleton-minus-1e39", "-1e39"),
    ("skeleton-inf", "inf"),
]:
    pku_segment_case(_name, _value)


def pku_video_case(name: str, damage: Callable[[list[str], np.random.Generator], bytes | str]):
    """The whole skeleton file damaged: every row of the video is rejected."""

    def make(src: Path, rng) -> Expect:
        _, skel, labels, _ = pku_copy(rng)
        pku_add(src, damage(skel, rng), _text(labels))
        return Expect(rejected=pku_ids(PKU_NEW, labels))

    case(f"pkummd/{name}")(make)


def _value_at(skel: list[str], rng, value: str) -> str:
    i = int(rng.integers(len(skel)))
    vals = skel[i].split()
    vals[int(rng.integers(len(vals)))] = value
    skel[i] = " ".join(vals)
    return _text(skel)


def _drop_value(skel, rng):
    i = int(rng.integers(len(skel)))
    skel[i] = " ".join(skel[i].split()[:-1])
    return _text(skel)


pku_video_case("skeleton-underscore", lambda s, rng: _value_at(s, rng, "0_5"))
pku_video_case("skeleton-hex", lambda s, rng: _value_at(s, rng, "0x10"))
pku_video_case("skeleton-149-values", _drop_value)
pku_video_case("skeleton-blank-line-inside", lambda s, rng: _text(s[:100] + [""] + s[100:]))
pku_video_case("skeleton-truncated", lambda s, rng: cut(_text(s).encode(), rng))
pku_video_case("skeleton-random-bytes", lambda s, rng: rng.bytes(5000))
pku_video_case("skeleton-utf16", lambda s, rng: _text(s).encode("utf-16"))
pku_video_case("skeleton-crlf-converted-twice", lambda s, rng: "\r\r\n".join(s) + "\r\r\n")
pku_video_case("skeleton-empty", lambda s, rng: b"")
pku_video_case("skeleton-semicolon-separator", lambda s, rng: _text(s).replace(" ", ";", 1))


def pku_same_case(name: str, convert_skel, convert_labels):
    """Line ends converted: read exactly like the original video."""

    def make(src: Path, rng) -> Expect:
        _, skel, labels, refs = pku_copy(rng)
        pku_add(src, convert_skel(_text(skel)), convert_labels(_text(labels)))
        return Expect(extra=refs)

    case(f"pkummd/{name}")(make)


def _same(t: str) -> str:
    return t


pku_same_case(
    "line-ends-crlf", lambda t: t.replace("\n", "\r\n"), lambda t: t.replace("\n", "\r\n")
)
pku_same_case("line-ends-cr-only", lambda t: t.replace("\n", "\r"), lambda t: t.replace("\n", "\r"))
# ASCII whitespace other than space and tab (form feed, the separator controls) separates
# values for str.split and numpy alike, and is not a line break: read alike.
pku_same_case("skeleton-form-feed-as-space", lambda t: t.replace(" ", "\x0c", 1), _same)
pku_same_case("skeleton-file-separator-as-space", lambda t: t.replace(" ", "\x1c", 1), _same)


@case("pkummd/label-blank-lines")
def _pku_blank_rows(src: Path, rng) -> Expect:
    """Blank lines are skipped; a row keeps its line number in its id."""
    _, skel, labels, refs = pku_copy(rng)
    pku_add(src, _text(skel), "\n" + "\n\n".join(labels) + "\n")
    ids = [f"{PKU_NEW}_{2 * n:04d}_A{int(x.split(',')[0]):02d}" for n, x in enumerate(labels, 1)]
    return Expect(extra=dict(zip(ids, refs.values())))


for _kind in SPECIAL:
    for _which in ("skeleton", "labels"):

        def _pku_special(src: Path, rng, kind=_kind, which=_which) -> Expect:
            _, skel, labels, _ = pku_copy(rng)
            if kind == "giant":  # a regular file: listed, then too large to read
                special_file(src / which / f"{PKU_NEW}.txt", kind)
                pku_add(
                    src, *((None, _text(labels)) if which == "skeleton" else (_text(skel), None))
                )
                return Expect(
                    rejected=pku_ids(PKU_NEW, labels) if which == "skeleton" else [PKU_NEW]
                )
            special_file(src / which / f"{PKU_NEW}.txt", kind)
            pku_add(src, *((None, _text(labels)) if which == "skeleton" else (_text(skel), None)))
            # the entry is listed as skipped, and the video's other file has no partner
            return Expect(rejected=[PKU_NEW, PKU_NEW])

        case(f"pkummd/special-{_which}-{_kind}")(_pku_special)


@case("pkummd/label-file-empty")
def _pku_empty_labels(src: Path, rng) -> Expect:
    _, skel, _, _ = pku_copy(rng)
    pku_add(src, _text(skel), "")
    return Expect(rejected=[PKU_NEW])


@case("pkummd/label-file-stray-cr")
def _pku_stray_cr(src: Path, rng) -> Expect:
    _, skel, labels, _ = pku_copy(rng)
    pku_add(src, _text(skel), _text(labels).replace(",", "\r", 1))
    return Expect(rejected=[PKU_NEW])


# ============================================================================ .npz


def natops() -> dict[str, np.ndarray]:
    with np.load(NATOPS_NPZ) as d:
        return {k: d[k].copy() for k in d.files}


def npz_bytes(arrays: dict, compressed: bool = False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def npz_case(name: str, edit: Callable[[dict, np.random.Generator], Expect]):
    """natops.npz with its arrays edited; edit returns the expectation."""

    def make(src: Path, rng) -> Expect:
        a = natops()
        expect = edit(a, rng)
        src.write_bytes(npz_bytes(a))
        return expect

    case(f"npz/{name}")(make)


def _pick(a: dict, rng) -> int:
    return int(rng.integers(len(a["labels"])))


def _sample_reject(key: str, value, dtype=None):
    """One element of array `key` set to value (after casting the array to dtype)."""

    def edit(a: dict, rng) -> Expect:
        i = _pick(a, rng)
        if key not in a:  # the values a clean import assumes: T frames, subject -1
            a[key] = np.full(len(a["labels"]), 51 if key == "lengths" else -1)
        if dtype is not None:
            a[key] = a[key].astype(dtype)
        a[key][i] = value
        sid = str(a["sample_ids"][i])
        return Expect(rejected=[sid], absent={sid})

    return edit


for _name, _key, _value, _dtype in [
    ("label-99", "labels", 99, None),
    ("label-float-2.5", "labels", 2.5, np.float64),
    ("label-nan", "labels", np.nan, np.float64),
    ("label-inf", "labels", np.inf, np.float64),
    ("label-huge-2**62", "labels", 2**62, None),
    ("label-uint64-max", "labels", 2**64 - 1, np.uint64),
    ("label-negative", "labels", -1, None),
    ("length-0", "lengths", 0, None),
    ("length-past-T", "lengths", 52, None),
    ("length-float", "lengths", 10.5, np.float64),
    ("length-nan", "lengths", np.nan, np.float64),
    ("subject-2**40", "subjects", 2**40, np.int64),
    ("subject-float", "subjects", 1.5, np.float64),
    ("split-val", "split", "val", None),
]:
    npz_case(_name, _sample_reject(_key, _value, _dtype))


def _joint_value(value, dtype=None):
    def edit(a: dict, rng) -> Expect:
        i = _pick(a, rng)
        if dtype is not None:
            a["joints"] = a["joints"].astype(dtype)
        idx = tuple(int(rng.integers(s)) for s in a["joints"].shape[1:])
        a["joints"][(i, *idx)] = value
        sid = str(a["sample_ids"][i])
        return Expect(rejected=[sid], absent={sid})

    return edit


npz_case("joints-1e39-float64", _joint_value(1e39, np.float64))
npz_case("joints-minus-1e39-float64", _joint_value(-1e39, np.float64))
npz_case("joints-nan", _joint_value(np.nan))
npz_case("joints-inf", _joint_value(np.inf))


@case("npz/labels-float-but-integral")
def _npz_float_labels(src: Path, rng) -> Expect:
    a = natops()
    a["labels"] = a["labels"].astype(np.float32)  # 3.0 is label 3: same import
    src.write_bytes(npz_bytes(a))
    return Expect()


@case("npz/duplicate-sample-ids")
def _npz_dups(src: Path, rng) -> Expect:
    a = natops()
    i, j = sorted(rng.choice(len(a["labels"]), 2, replace=False).tolist())
    first, second = str(a["sample_ids"][i]), str(a["sample_ids"][j])
    a["sample_ids"] = a["sample_ids"].astype("<U32")
    a["sample_ids"][j] = first
    src.write_bytes(npz_bytes(a))
    return Expect(rejected=[first], absent={second})


@case("npz/class-names-too-few")
def _npz_few_classes(src: Path, rng) -> Expect:
    a = natops()
    a["class_names"] = np.array(["c0", "c1", "c2"])
    bad = [str(s) for s, y in zip(a["sample_ids"], a["labels"]) if y >= 3]
    src.write_bytes(npz_bytes(a))
    return Expect(rejected=bad, absent=set(bad))


def npz_error(name: str, data_fn: Callable[[np.random.Generator], bytes]):
    def make(src: Path, rng) -> Expect:
        src.write_bytes(data_fn(rng))
        return Expect(error=True)

    case(f"npz/{name}")(make)


def _edited(edit: Callable[[dict], None], compressed: bool = False):
    def data(rng) -> bytes:
        a = natops()
        edit(a)
        return npz_bytes(a, compressed)

    return data


npz_error("labels-strings", _edited(lambda a: a.update(labels=a["labels"].astype(str))))
npz_error("labels-bool", _edited(lambda a: a.update(labels=a["labels"] > 2)))
npz_error("labels-1-based", _edited(lambda a: a.update(labels=a["labels"] + 1)))
npz_error("labels-missing", _edited(lambda a: a.pop("labels").size and None))
npz_error("labels-2d", _edited(lambda a: a.update(labels=a["labels"][:, None])))
npz_error(
    "empty-arrays",
    _edited(
        lambda a: a.update(
            joints=a["joints"][:0],
            labels=a["labels"][:0],
            split=a["split"][:0],
            sample_ids=a["sample_ids"][:0],
        )
    ),
)
npz_error("zero-frames", _edited(lambda a: a.update(joints=a["joints"][:, :, :0])))
npz_error("joints-1d", _edited(lambda a: a.update(joints=a["joints"].ravel())))
npz_error("joints-wrong-joint-count", _edited(lambda a: a.update(joints=a["joints"][..., :7, :])))
npz_error("joints-strings", _edited(lambda a: a.update(joints=a["joints"].astype(str))))
npz_error(
    "joints-fortran-order", _edited(lambda a: a.update(joints=np.asfortranarray(a["joints"])))
)
npz_error("split-wrong-length", _edited(lambda a: a.update(split=a["split"][:5])))


def _truncated(rng) -> bytes:
    return cut(npz_bytes(natops()), rng, 0.05, 0.95)


def _flip(compressed: bool):
    def data(rng) -> bytes:
        raw = bytearray(npz_bytes(natops(), compressed))
        with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
            info = zf.getinfo("joints.npy")
        # past the local header: inside the member's (compressed) data
        start = info.header_offset + 30 + len(info.filename) + len(info.extra) + 200
        k = int(rng.integers(start, start + info.compress_size - 400))
        raw[k] ^= 1 << int(rng.integers(8))
        return bytes(raw)

    return data


def _npy(shape: tuple, dtype: str, data: bytes) -> bytes:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": dtype, "fortran_order": False, "shape": shape}
    )
    return buf.getvalue() + data


def _zip(members: dict[str, bytes], compressed: bool = True) -> bytes:
    buf = io.BytesIO()
    method = zipfile.ZIP_DEFLATED if compressed else zipfile.ZIP_STORED
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def _bomb_joints(rng) -> bytes:
    """A joints header declaring 16.3 M sequences (74.5 GiB of float32) over 4 KB of data."""
    a = natops()
    n = int(74.5 * 2**30 / (51 * 8 * 3 * 4))
    labels = a["labels"].astype("<i8")
    return _zip(
        {
            "joints.npy": _npy((n, 1, 51, 8, 3), "<f4", bytes(4096)),
            "labels.npy": _npy((len(labels),), "<i8", labels.tobytes()),
        }
    )


def _bomb_labels(rng) -> bytes:
    """Sample joints, labels declaring 10**10 entries (80 GB) over a few bytes."""
    a = natops()
    members = {f"{k}.npy": _npy_of(v) for k, v in a.items() if k != "labels"}
    members["labels.npy"] = _npy((10**10,), "<i8", bytes(64))
    return _zip(members)


def _npy_of(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    np.save(buf, arr)
    return buf.getvalue()


def _lying_zip_size(rng) -> bytes:
    """The zip directory claims a huge uncompressed size the deflate stream does not hold."""
    raw = bytearray(npz_bytes(natops(), compressed=True))
    with zipfile.ZipFile(io.BytesIO(bytes(raw))) as zf:
        info = zf.getinfo("joints.npy")
    central = raw.rfind(b"PK\x01\x02" + raw[info.header_offset + 4 : info.header_offset + 6])
    for at in (info.header_offset + 22, central + 24):  # local and central uncompressed size
        raw[at : at + 4] = struct.pack("<I", 0xFFFFFFF0)
    return bytes(raw)


class Boom:
    """Unpickling this runs a shell command that creates `marker`."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@case("npz/pickled-object-member")
def _pickle_member(src: Path, rng) -> Expect:
    a = natops()
    members = {f"{k}.npy": _npy_of(v) for k, v in a.items() if k != "labels"}
    marker = src.with_name("unpickled")
    payload = pickle.dumps(np.array([Boom(marker)], dtype=object))
    members["labels.npy"] = _npy((1,), "|O", payload)
    src.write_bytes(_zip(members))
    return Expect(error=True, never=marker)


def _duplicate_member(rng) -> bytes:
    a = natops()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf, contextlib.suppress(UserWarning):
        import warnings

        warnings.simplefilter("ignore")
        for k, v in a.items():
            zf.writestr(f"{k}.npy", _npy_of(v))
        zf.writestr("labels.npy", _npy_of(a["labels"] + 7))
    return buf.getvalue()


npz_error("truncated", _truncated)
npz_error("bit-flip-stored", _flip(compressed=False))
npz_error("bit-flip-compressed", _flip(compressed=True))
npz_error("zip-bomb-joints-header", _bomb_joints)
npz_error("zip-bomb-labels-header", _bomb_labels)
npz_error("zip-directory-lies-about-size", _lying_zip_size)
npz_error("duplicate-member-name", _duplicate_member)
npz_error("not-a-zip", lambda rng: rng.bytes(4000))
npz_error("empty-file", lambda rng: b"")
npz_error("npy-not-npz", lambda rng: _npy_of(natops()["joints"]))

for _kind in SPECIAL:

    def _npz_special(src: Path, rng, kind=_kind) -> Expect:
        src.unlink()
        special_file(src, kind)
        return Expect(error=True)

    case(f"npz/special-{_kind}")(_npz_special)


# ============================================================================ main


def run_corpus(seed: int = 0, only: str = "", verbose: bool = False) -> tuple[int, int, list]:
    """(tried, handled, [(case name, problems)])."""
    failed = []
    tried = 0
    for c in CASES:
        if only and only not in c.name:
            continue
        tried += 1
        t0 = time.perf_counter()
        try:
            problems = run_case(c, seed)
        except Exception as e:  # noqa: BLE001 - a broken case is a failure, not a crash
            problems = [f"the case itself failed: {type(e).__name__}: {e}"]
        if problems:
            failed.append((c.name, problems))
        if verbose:
            state = "FAILED " + "; ".join(problems) if problems else "ok"
            print(f"{c.name:55s} {time.perf_counter() - t0:5.2f}s {state}", flush=True)
    return tried, tried - len(failed), failed


def use_data(folder: str | Path) -> None:
    """Stage the sample files from this folder (ntu/, kinetics/, pkummd/, natops/)."""
    global DATA, NTU_DIR, KINETICS_DIR, PKU_DIR, NATOPS_NPZ, NATOPS_LAYOUT, PKU_REAL
    DATA = Path(folder)
    NTU_DIR, KINETICS_DIR, PKU_DIR = DATA / "ntu", DATA / "kinetics", DATA / "pkummd"
    NATOPS_NPZ = DATA / "natops" / "natops.npz"
    NATOPS_LAYOUT = DATA / "natops" / "natops_layout.json"
    videos = sorted((PKU_DIR / "skeleton").glob("*.txt"), key=lambda p: (p.stat().st_size, p))
    PKU_REAL = videos[0].stem if videos else ""
    _BASELINES.clear()


def default_data() -> Path:
    """The real sample data when present, else the generated stand-in (tests/conftest.py)."""
    from conftest import DATA as data

    return data


def main(argv: list[str] | None = None) -> int:
    import argparse

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--only", default="", help="run the cases whose name contains this text")
    p.add_argument("--data", help="the folder to stage sample files from (default: the real "
                   "sample data when present, else a generated stand-in)")  # fmt: skip
    p.add_argument("-v", "--verbose", action="store_true", help="one line per case")
    args = p.parse_args(argv)
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    use_data(args.data or default_data())
    print(f"staging from {DATA}", flush=True)
    t0 = time.perf_counter()
    tried, handled, failed = run_corpus(args.seed, args.only, args.verbose)
    for name, problems in failed:
        print(f"FAILED {name}: " + "; ".join(problems))
    print(
        f"fuzz corpus (seed {args.seed}): {tried} inputs tried, {handled} handled, "
        f"{len(failed)} failed ({time.perf_counter() - t0:.1f}s)"
    )
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
