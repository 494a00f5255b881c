"""What a sweep or grid prints while it runs: one line per trial per epoch.

Tune's own reporter prints its status table every 5 s (about 1000 lines for a 5-cell grid
on 2 cores), most of them unchanged. Instead, with Tune's output off (`verbose=0`), this
callback prints, in the main process:

    trial loss.nce=0.0,model.backbone=stgcn,seed=0 started (1 running, 4 pending)
    trial loss.nce=0.0,model.backbone=stgcn,seed=0 epoch 3/8: val_knn_top1 21.3, loss 0.412 (12 s)
    trial loss.nce=0.0,model.backbone=stgcn,seed=0 done: val_knn_top1 24.0 after 8 epochs (1:40)
    [4:10] 1 running, 3 pending, 1 done, 0 failed; best val_knn_top1 24.0 (loss.nce=0.0,...)

and the last line, a heartbeat, whenever it has printed nothing for `heartbeat_s` (60 s):
a trial's first epoch can take minutes, and the screen should never look hung.
"""

from __future__ import annotations

import time

from ray import tune

HEARTBEAT_S = 60.0


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    h, m = divmod(m, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def _value(v) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    return str(v)


def trial_label(trial) -> str:
    """A grid cell's run name (its folder under trials/), else Tune's id and the sampled
    values."""
    from tune.trial import cell_name

    cfg = trial.config or {}
    if "cell" in cfg:
        return cell_name(cfg["cell"])
    params = ",".join(f"{k}={_value(v)}" for k, v in sorted(cfg.items()))
    return f"{trial.trial_id} ({params})" if params else trial.trial_id


class EpochLines(tune.Callback):
    """One line per trial per epoch (`epoch`, `metric`, `loss` of each result), a line when a
    trial starts, ends or fails, and a status line after `heartbeat_s` of silence."""

    def __init__(self, metric: str, epochs: int, heartbeat_s: float = HEARTBEAT_S) -> None:
        self.metric, self.epochs, self.heartbeat_s = metric, epochs, heartbeat_s
        self._reset()

    def _reset(self) -> None:
        self._t0 = self._last = time.monotonic()
        self._seen: dict[str, float] = {}  # trial id -> when its last line was printed
        self._best: tuple[float, str] | None = None

    def setup(self, **info) -> None:  # a restored experiment starts its clock again
        self._reset()

    def _say(self, text: str) -> None:
        print(text, flush=True)
        self._last = time.monotonic()

    def _counts(self, trials, trial=None, status: str = "") -> str:
        """Trials by status; `trial` counted as `status` (Tune calls the callback before it
        updates the trial's own)."""
        n = {}
        for t in trials:
            st = status if t is trial else t.status
            n[st] = n.get(st, 0) + 1
        return (f"{n.get('RUNNING', 0)} running, {n.get('PENDING', 0)} pending, "
                f"{n.get('TERMINATED', 0)} done, {n.get('ERROR', 0)} failed")  # fmt: skip

    def on_trial_start(self, iteration, trials, trial, **info) -> None:
        self._seen[trial.trial_id] = time.monotonic()
        self._say(f"trial {trial_label(trial)} started ({self._counts(trials, trial, 'RUNNING')})")

    def on_trial_result(self, iteration, trials, trial, result, **info) -> None:
        now = time.monotonic()
        took = now - self._seen.get(trial.trial_id, now)
        self._seen[trial.trial_id] = now
        parts = []
        v = result.get(self.metric)
        if isinstance(v, (int, float)):
            parts.append(f"{self.metric} {v:.1f}")
            if self._best is None or v > self._best[0]:
                self._best = (float(v), trial_label(trial))
        if isinstance(result.get("loss"), (int, float)):
            parts.append(f"loss {result['loss']:.3f}")
        epoch = result.get("epoch")
        when = f"epoch {epoch + 1}/{self.epochs}" if isinstance(epoch, int) else (
            f"iteration {result.get('training_iteration', '?')}")  # fmt: skip
        self._say(f"trial {trial_label(trial)} {when}: {', '.join(parts) or 'reported'} "
                  f"({took:.0f} s)")  # fmt: skip

    def on_trial_complete(self, iteration, trials, trial, **info) -> None:
        last = trial.last_result or {}
        v = last.get(self.metric)
        score = f"{self.metric} {v:.1f}" if isinstance(v, (int, float)) else "no result"
        epochs = last.get("epoch")
        after = f" after epoch {epochs + 1}/{self.epochs}" if isinstance(epochs, int) else ""
        counts = self._counts(trials, trial, "TERMINATED")
        self._say(f"trial {trial_label(trial)} done: {score}{after} ({counts})")

    def on_trial_error(self, iteration, trials, trial, **info) -> None:
        where = getattr(trial, "error_file", None) or getattr(trial, "path", None) or "above"
        self._say(f"trial {trial_label(trial)} FAILED; its error: {where}")

    def on_step_end(self, iteration, trials, **info) -> None:
        if time.monotonic() - self._last < self.heartbeat_s:
            return
        best = f"; best {self.metric} {self._best[0]:.1f} ({self._best[1]})" if self._best else ""
        self._say(f"[{_clock(time.monotonic() - self._t0)}] {self._counts(trials)}{best}")
