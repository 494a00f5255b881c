"""ASHA that a killed and resumed sweep replays to the same stops.

Two things made a resumed search stop other trials than the same search uninterrupted
(measured on the quick start: the best trial stopped after 2 epochs once resumed):
 - Tune saves its trials and the searcher when it checkpoints an experiment, but not the
   scheduler: `Tuner.restore` brings back ASHA as it was built, its rungs empty, so every
   trial after a restore is compared against fewer recorded scores than before the kill.
 - ASHA's default clock, `training_iteration`, counts the reports of one trial process: a
   trial restored without a Tune checkpoint (our trials resume their own Ray Train run)
   starts counting at 1 again while its Train run continues at epoch k, so its scores land
   on the wrong rungs.

`ResumableASHA` keeps its whole state (rungs, which trial is in which bracket, the trials
it stopped) in one file, written whole after every change, and reads it back on the first
call after a restore; its clock is the Train run's own epoch count, `epoch` + 1 in the
metrics every epoch reports (EPOCHS). A trial it stopped before the kill that Tune's
staler experiment state restores as running is stopped again at its first report.
"""

from __future__ import annotations

import pickle
from pathlib import Path

from ray.tune.schedulers import ASHAScheduler, TrialScheduler

from mcc.files import atomic_write

EPOCHS = "epochs_done"  # ASHA's clock: epochs the trial's Train run has finished
_OWN = ("_state_file", "_loaded")  # attributes of this object, not of ASHA's state


def with_clock(result: dict) -> dict:
    """`result` with EPOCHS, from the `epoch` (0-based) that every epoch's report carries."""
    return {**result, EPOCHS: int(result["epoch"]) + 1} if result and "epoch" in result else result


class ResumableASHA(ASHAScheduler):
    def __init__(self, state_file: str, **kwargs) -> None:
        super().__init__(time_attr=EPOCHS, **kwargs)
        self._state_file = str(state_file)
        self._loaded = False
        self._stopped: set[str] = set()

    def _load(self) -> None:
        """Once per process: the state the last run saved, when there is one."""
        if self._loaded:
            return
        self._loaded = True
        if Path(self._state_file).exists():
            state = pickle.loads(Path(self._state_file).read_bytes())
            self.__dict__.update({k: v for k, v in state.items() if k not in _OWN})

    def _save(self) -> None:
        state = {k: v for k, v in self.__dict__.items() if k not in _OWN}
        atomic_write(self._state_file, pickle.dumps(state))

    def on_trial_add(self, tune_controller, trial) -> None:
        self._load()
        if trial.trial_id not in self._trial_info:  # a restored trial keeps its bracket
            super().on_trial_add(tune_controller, trial)
            self._save()

    def on_trial_result(self, tune_controller, trial, result: dict) -> str:
        self._load()
        if trial.trial_id in self._stopped:
            return TrialScheduler.STOP
        action = super().on_trial_result(tune_controller, trial, with_clock(result))
        if action == TrialScheduler.STOP:
            self._stopped.add(trial.trial_id)
        self._save()
        return action

    def on_trial_complete(self, tune_controller, trial, result: dict) -> None:
        self._load()
        if trial.trial_id not in self._trial_info:  # completed before the kill: recorded
            return
        super().on_trial_complete(tune_controller, trial, with_clock(result))
        self._trial_info.pop(trial.trial_id, None)
        self._save()

    def on_trial_remove(self, tune_controller, trial) -> None:
        self._load()
        self._trial_info.pop(trial.trial_id, None)
        self._save()
