"""The sweep's search space, as data, in one place.

Each parameter is a dotted config key (the same names as `--set`), with the paper's value
(Sec. 4.2) as its default and a range:

    loss.triplet   lambda_1   choice 0, 0.5, 1, 2      (0 switches the term off)
    loss.nce       lambda_2   choice 0, 0.5, 1, 2
    loss.interp    lambda_3   choice 0, 0.5, 1, 2
    loss.margin    gamma      float 0.05 .. 0.5
    loss.tau       tau        float 0.05 .. 1, log
    loss.queue_size K         choice 256, 1024, 4096, 6536
    loss.interp_rate l        choice 1, 2, 4
    optim.lr                  float 0.01 .. 0.3, log
    optim.batch_size          choice 16, 32, 64

Override from the command line with `--space KEY=LOW:HIGH[:log]` (a float or int range) or
`--space KEY=A,B,C` (choices), or from a JSON file `{"KEY": {"low": .., "high": .., "log":
..} | {"choices": [...]}}`. Only the keys named by `--search` (or the file) are searched; the
rest keep the base config's value.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from mcc.config import ConfigError, PretrainConfig, valid_keys


@dataclass(frozen=True)
class Param:
    key: str
    default: float | int
    low: float | None = None
    high: float | None = None
    log: bool = False
    integer: bool = False
    choices: tuple = field(default_factory=tuple)

    def check(self) -> None:
        if self.choices:
            if len(set(self.choices)) != len(self.choices) or not self.choices:
                raise ConfigError(f"--space {self.key}: choices {list(self.choices)} are empty "
                                  f"or repeat a value")  # fmt: skip
            return
        if self.low is None or self.high is None:
            raise ConfigError(f"--space {self.key}: give LOW:HIGH or choices A,B,C")
        if not self.low < self.high:
            raise ConfigError(
                f"--space {self.key}={self.low}:{self.high} is an empty or inverted range; "
                f"LOW must be below HIGH"
            )
        if self.log and self.low <= 0:
            raise ConfigError(f"--space {self.key}: a log range needs LOW > 0, got {self.low}")

    def values(self) -> list:
        """The values a grid takes: the choices, or the range's ends."""
        return list(self.choices) if self.choices else [self.low, self.high]

    def describe(self) -> str:
        if self.choices:
            return "choice " + ", ".join(str(c) for c in self.choices)
        kind = "int" if self.integer else "float"
        return f"{kind} {self.low:g} .. {self.high:g}" + (", log" if self.log else "")


SPACE: dict[str, Param] = {
    p.key: p
    for p in (
        Param("loss.triplet", 1.0, choices=(0.0, 0.5, 1.0, 2.0)),
        Param("loss.nce", 1.0, choices=(0.0, 0.5, 1.0, 2.0)),
        Param("loss.interp", 1.0, choices=(0.0, 0.5, 1.0, 2.0)),
        Param("loss.margin", 0.15, low=0.05, high=0.5),
        Param("loss.tau", 0.5, low=0.05, high=1.0, log=True),
        Param("loss.queue_size", 6536, choices=(256, 1024, 4096, 6536)),
        Param("loss.interp_rate", 2, choices=(1, 2, 4)),
        Param("optim.lr", 0.1, low=0.01, high=0.3, log=True),
        Param("optim.batch_size", 64, choices=(16, 32, 64)),
    )
}

_INTS = {"loss.queue_size", "loss.interp_rate", "optim.batch_size", "optim.epochs"}


def _number(key: str, text: str):
    try:
        return int(text) if key in _INTS else float(text)
    except ValueError:
        raise ConfigError(f"--space {key}: {text!r} is not a number") from None


def parse_param(key: str, spec) -> Param:
    """A Param from 'LOW:HIGH[:log]', 'A,B,C' or a JSON dict; unknown keys are errors."""
    known = valid_keys(PretrainConfig)
    if key not in known:
        raise ConfigError(f"unknown parameter {key!r}; searchable keys are config keys: "
                          f"{', '.join(known)}")  # fmt: skip
    default = SPACE[key].default if key in SPACE else None
    if isinstance(spec, dict):
        if "choices" in spec:
            p = Param(key, default, choices=tuple(spec["choices"]))
        else:
            p = Param(key, default, low=spec.get("low"), high=spec.get("high"),
                      log=bool(spec.get("log", False)), integer=key in _INTS)  # fmt: skip
    elif ":" in spec:
        parts = spec.split(":")
        log = len(parts) == 3 and parts[2] == "log"
        if len(parts) not in (2, 3) or (len(parts) == 3 and not log):
            raise ConfigError(f"--space {key}={spec}: write LOW:HIGH or LOW:HIGH:log")
        p = Param(key, default, low=_number(key, parts[0]), high=_number(key, parts[1]), log=log,
                  integer=key in _INTS)  # fmt: skip
    else:
        p = Param(key, default, choices=tuple(_number(key, v) for v in spec.split(",") if v))
    p.check()
    return p


def build_space(search: list[str], overrides: list[str], file: str | None) -> dict[str, Param]:
    """The searched parameters: `search` names from SPACE, then `--space` / file entries
    (which are searched too, with their own ranges)."""
    space: dict[str, Param] = {}
    for key in search:
        if key not in SPACE:
            raise ConfigError(f"--search {key!r} has no built-in range; built-in: "
                              f"{', '.join(SPACE)} (give others a range with --space)")  # fmt: skip
        space[key] = SPACE[key]
    if file:
        path = Path(file)
        if not path.is_file():
            raise ConfigError(f"--space-file {file} does not exist")
        try:
            entries = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ConfigError(f"--space-file {file} is not valid JSON: {e}") from None
        for key, spec in entries.items():
            space[key] = parse_param(key, spec)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--space expects KEY=LOW:HIGH or KEY=A,B,C, got {item!r}")
        key, spec = item.split("=", 1)
        space[key.strip()] = parse_param(key.strip(), spec.strip())
    if not space:
        raise ConfigError("the search space is empty: name parameters with --search or --space")
    return space


def check_against(space: dict[str, Param], base: PretrainConfig) -> None:
    """Errors no trial should discover: a queue smaller than a batch it may meet."""
    qs = space.get("loss.queue_size")
    bs = space.get("optim.batch_size")
    k_min = min(qs.values()) if qs else base.loss.queue_size
    b_max = max(bs.values()) if bs else base.optim.batch_size
    if base.loss.nce > 0 or "loss.nce" in space:
        if k_min < b_max:
            raise ConfigError(
                f"loss.queue_size can be {k_min:g}, smaller than a batch of {b_max:g} "
                f"(optim.batch_size): K must be at least the batch size"
            )
    if space.get("optim.lr") is SPACE["optim.lr"] and base.optim.optimizer != "sgd":
        raise ConfigError(
            f"--search optim.lr: the built-in range {SPACE['optim.lr'].describe()} is SGD's, "
            f"and the base config trains with optim.optimizer={base.optim.optimizer}; give a "
            f"range, e.g. --space optim.lr=0.0001:0.01:log"
        )
    for p in space.values():
        if p.choices and any(isinstance(c, float) and not math.isfinite(c) for c in p.choices):
            raise ConfigError(f"--space {p.key}: values must be finite")


def to_tune(space: dict[str, Param]) -> dict:
    """Ray Tune sampling domains for OptunaSearch."""
    from ray import tune

    out = {}
    for key, p in space.items():
        if p.choices:
            out[key] = tune.choice(list(p.choices))
        elif p.integer:
            out[key] = (tune.lograndint if p.log else tune.randint)(int(p.low), int(p.high) + 1)
        else:
            out[key] = (tune.loguniform if p.log else tune.uniform)(p.low, p.high)
    return out
