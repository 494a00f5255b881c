"""A grid: explicit cells through `tune.grid_search`, no searcher, no early stopping.

Finished cells are cached in OUT/cells/NAME.json (tune/trial.py) and skipped on the next
run, and a cut-off cell continues its own Train run, so each invocation is a fresh Tune
experiment over the cells still to run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pandas as pd
from ray import tune

from mcc.config import PretrainConfig
from tune import tuner
from tune.space import Param
from tune.trial import METRIC, cell_name


def run(args, base: PretrainConfig, cells: list[dict], out: Path,
        space: dict[str, Param] | None = None) -> pd.DataFrame:  # fmt: skip
    """Run every cell of `cells` not cached in `out`; the table of all of them (see
    tuner.finish; `space`, the parameters the cells were made from, is listed in the
    summary). Test scores: `args.test_eval`, by default every cell."""
    epochs = base.optim.epochs
    cached, todo = [], []
    for c in cells:
        f = out / "cells" / f"{cell_name(c)}.json"
        (cached.append(json.loads(f.read_text())) if f.exists() else todo.append(c))
    print(f"grid: {len(cells)} cells, {len(cached)} cached, {len(todo)} to run", flush=True)
    rows, left, interrupted = [], 0, False
    if todo:
        at_once = tuner.trials_at_once(args)
        name = f"grid-{time.strftime('%Y%m%d-%H%M%S')}"
        fitted, interrupted = tuner.fit(tune.Tuner(
            tuner.trainable(args, base, out),
            param_space={"cell": tune.grid_search(todo)},
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", max_concurrent_trials=at_once),
            run_config=tuner.run_config(name, base, out),
        ))  # fmt: skip
        left = tuner.unfinished(fitted, len(todo))
        interrupted = interrupted or left > 0
        for r in fitted:
            params = dict((r.config or {})["cell"])
            done = out / "cells" / f"{cell_name(params)}.json"
            # the cell's own record when it has one: right also when its Train run had
            # already finished before this trial (a resumed cell reports no epochs to Tune)
            rows.append(cached_row(json.loads(done.read_text()), epochs, "completed")
                        if done.exists() else tuner.row_of(r, params, epochs, out))  # fmt: skip
    rows += [cached_row(c, epochs, "completed (cached)") for c in cached]
    return tuner.finish(rows, base, out, test_eval=args.test_eval or "all", grid=True,
                        space=space, interrupted=interrupted, left=left)  # fmt: skip


def cached_row(c: dict, max_epochs: int, status: str) -> dict:
    """A finished cell's row, from its OUT/cells/NAME.json."""
    return {
        "trial": cell_name(c["params"]),
        **{f"param:{k}": v for k, v in c["params"].items()},
        METRIC: c.get(METRIC),
        f"best_{METRIC}": c.get(METRIC),
        "epochs": c.get("epochs"),
        "wall_time_s": c.get("wall_time_s"),
        "status": status if c.get("epochs") == max_epochs else f"{status} ({c.get('epochs')} ep)",
        "error": "",
        "checkpoint": c.get("checkpoint", ""),
    }
