"""A search: Optuna's TPE (seeded, the study persisted to OUT/optuna.journal) proposes the
trials, ASHA stops the weak ones early on the per-epoch validation kNN; `--resume` restores
an interrupted search from OUT/tune/sweep, its scheduler from OUT/tune/asha-state.pkl, so
that it ends as the same search uninterrupted would (tune/scheduler.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
from ray import tune

from mcc.config import PretrainConfig
from tune import tuner
from tune.space import Param, to_tune
from tune.trial import METRIC

STUDY = "mcc-sweep"
NAME = "sweep"  # the Tune experiment, OUT/tune/sweep
ASHA_STATE = "asha-state.pkl"  # the scheduler's rungs, beside it (tune/scheduler.py)


def journal(out: Path):
    import optuna

    return optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(out / "optuna.journal"))
    )


def run(args, base: PretrainConfig, space: dict[str, Param], out: Path) -> pd.DataFrame:
    """`args.trials` trials over `space` (or the rest of a restored search); the table of
    them (see tuner.finish). Test score: `args.test_eval`, by default the best trial's."""
    import optuna
    from ray.tune.search.optuna import OptunaSearch

    from tune.scheduler import ResumableASHA

    path = out / "tune" / NAME
    restored = bool(args.resume and tune.Tuner.can_restore(path))
    asha_state = out / "tune" / ASHA_STATE
    if restored:
        fitting = tune.Tuner.restore(str(path), tuner.trainable(args, base, out),
                                     resume_unfinished=True, resume_errored=True)  # fmt: skip
    else:
        searcher = OptunaSearch(metric=METRIC, mode="max", seed=args.seed,
                                sampler=optuna.samplers.TPESampler(seed=args.seed),
                                storage=journal(out), study_name=STUDY)  # fmt: skip
        asha_state.unlink(missing_ok=True)  # a new search: no rungs from another one
        scheduler = ResumableASHA(asha_state, max_t=base.optim.epochs,
                                  grace_period=min(args.grace_epochs, base.optim.epochs),
                                  reduction_factor=2)  # fmt: skip
        at_once = tuner.trials_at_once(args)
        fitting = tune.Tuner(
            tuner.trainable(args, base, out),
            param_space=to_tune(space),
            tune_config=tune.TuneConfig(metric=METRIC, mode="max", search_alg=searcher,
                                        scheduler=scheduler, num_samples=args.trials,
                                        max_concurrent_trials=at_once),  # fmt: skip
            run_config=tuner.run_config(NAME, base, out),
        )
    fitted, interrupted = tuner.fit(fitting)
    # a restored search may have been started with another --trials: trust its own count
    left = tuner.unfinished(fitted, 0 if restored else args.trials)
    rows = [tuner.row_of(r, dict(r.config or {}), base.optim.epochs, out) for r in fitted]
    return tuner.finish(rows, base, out, test_eval=args.test_eval or "best", grid=False,
                        space=space, importances=importances(out),
                        interrupted=interrupted or left > 0, left=left)  # fmt: skip


def importances(out: Path) -> dict:
    """Optuna's parameter importances (fANOVA) of the study in `out`, or why there are none."""
    import optuna

    try:
        study = optuna.load_study(study_name=STUDY, storage=journal(out))
        return optuna.importance.get_param_importances(study)
    except Exception as e:  # too few finished trials, or no variation: say so in the summary
        return {"(not available)": f"{type(e).__name__}: {e}"}
