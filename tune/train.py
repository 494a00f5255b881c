"""One MCC pretraining (+ evaluation) on Ray: Ray Data sampling, Ray Train DDP workers.

    python tune/train.py --data data/synthetic --out runs/ray1 [--preset small]
        [--num-workers 1] [--cpus-per-worker 1] [--use-gpu [--gpus-per-worker 1]]
        [--bn-mode per-worker|sync] [--address auto] [--max-failures 2] [--resume]
        [--set loss.tau=0.2 ...]

Without --address (and without RAY_ADDRESS) a local Ray sized to this machine is started;
`--address auto` joins a running cluster, as does `ray job submit ... -- python tune/train.py`.
Ray Train checkpoints go to --storage-path (default OUT/ray; on several nodes use a path every
node reaches). The run folder OUT then holds what `python -m mcc pretrain` writes
(config.json, metrics.jsonl, checkpoint.pt, result.json) plus the evaluation in OUT/eval-*.

--use-gpu gives each worker --gpus-per-worker GPUs (default 1) and the NCCL backend; without
it the workers train on CPUs over gloo. A worker trains on its device at the precision
`auto` means there (mcc/device.py: bf16, or fp16 with a gradient scaler, on a GPU; fp32 on a
CPU); result.json records the device and precision. --bn-mode sync (SyncBatchNorm) needs
--use-gpu. The evaluation afterwards runs in this process, on its GPU when it has one.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

if __package__ in (None, ""):  # `python tune/train.py` from a checkout or a job's working dir
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mcc import files, presets
from mcc.checkpoint import CheckpointError, load_checkpoint
from mcc.cli import SET_HELP
from mcc.config import ConfigError, PretrainConfig, apply_overrides, parse_set_args
from mcc.runs import RunDir
from mcc.shards import read_manifest

if TYPE_CHECKING:
    from tune.worker import WorkerRun

RUN_NAME = "pretrain"
SAMPLING = {
    "ray-data": "Ray Data, streamed",
    "worker": "in the workers, streamed from the shards",
    "exact": "exact (materialized and sorted into the single-process batches; small data)",
}


def _storage(storage_path: str | None, out: str) -> str:
    """Ray Train's storage: --storage-path, else OUT/ray (a URI when OUT is one)."""
    if storage_path is None:
        return files.join(out, "ray")
    if "://" in storage_path:
        return storage_path
    return str(Path(storage_path).expanduser().resolve())


def _check_request(storage: str, name: str, resume: bool, bn_mode: str, use_gpu: bool) -> None:
    """Refuse, before anything starts, a run that would overwrite another or cannot run."""
    from tune.worker import checkpoint_dirs

    if checkpoint_dirs(storage, name)[1] and not resume:
        raise ConfigError(
            f"{storage}/{name} already holds a run; pass --resume to continue it or choose "
            f"another --out / --storage-path"
        )
    if bn_mode not in ("per-worker", "sync"):
        raise ConfigError(f"--bn-mode={bn_mode!r}: choose per-worker or sync")
    if bn_mode == "sync" and not use_gpu:
        raise ConfigError(
            "--bn-mode=sync needs --use-gpu: torch's SyncBatchNorm runs on GPUs only; on CPU "
            "workers use --bn-mode=per-worker"
        )


def data_config():
    """Split the "train" dataset over the workers in equal parts (DDP: the same step count
    everywhere, with drop_last) and keep its block order, so the same seed and worker count
    give the same batches."""
    import ray.train
    from ray.data import ExecutionOptions

    return ray.train.DataConfig(
        datasets_to_split=["train"], execution_options=ExecutionOptions(preserve_order=True)
    )


def _trainer(
    run: WorkerRun,
    num_workers: int,
    cpus_per_worker: float,
    gpus_per_worker: float,
    placement: str,
    max_failures: int,
    callbacks: list | None,
    dataset=None,
):
    """The TorchTrainer of `run` (with sampling=ray-data, `dataset` is its "train" dataset,
    split over the workers): its workers (`gpus_per_worker` GPUs each, 0: CPU workers),
    failure policy, checkpoints and logs. The process-group backend is named, not left to
    Ray's guess: NCCL on GPUs, gloo on CPUs."""
    import ray.train
    from ray.train.torch import TorchConfig, TorchTrainer

    from tune.worker import train_loop, worker_env

    storage, name = run.storage
    data = {}
    if run.sampling == "ray-data":
        data = {"datasets": {"train": dataset}, "dataset_config": data_config()}
    use_gpu = gpus_per_worker > 0
    resources = {"CPU": cpus_per_worker, **({"GPU": gpus_per_worker} if use_gpu else {})}
    return TorchTrainer(
        train_loop,
        train_loop_config={"run": run},
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        scaling_config=ray.train.ScalingConfig(
            num_workers=num_workers,
            use_gpu=use_gpu,
            resources_per_worker=resources,
            placement_strategy=placement,
        ),
        run_config=ray.train.RunConfig(
            name=name,
            storage_path=storage,
            failure_config=ray.train.FailureConfig(max_failures=max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=2),
            callbacks=callbacks,
            worker_runtime_env=worker_env(),
            # Train's INFO lines ("Reporting training result ...", two long ones per epoch)
            # stay in its log files; the console gets warnings and our epoch lines
            logging_config=ray.train.LoggingConfig(log_level="WARNING"),
        ),
        **data,
    )


def _final_checkpoint(result, storage: str, name: str):
    """The run's last checkpoint: the result's, or (Ray Train's record can miss one a kill
    interrupted) the newest one in the storage."""
    from tune.worker import latest_checkpoint

    final = result.checkpoint
    if final is None:
        found = latest_checkpoint(storage, name)
        final = found[0] if found else None
    if final is None:
        raise CheckpointError(f"the run in {storage}/{name} ended without a checkpoint")
    return final


def _fill_run_folder(run: RunDir, final) -> tuple[list[dict], dict]:
    """Copy the final checkpoint into the run folder and write metrics.jsonl from the history
    it carries (every epoch's, resumed ones included); returns that history and the
    checkpoint's training state."""
    from tune.worker import CHECKPOINT_FILE

    with final.as_directory() as d:
        shutil.copyfile(Path(d) / CHECKPOINT_FILE, run.checkpoint)
    run.publish(run.checkpoint)
    state = load_checkpoint(run.checkpoint)
    run.truncate_metrics(0)
    for m in state.get("history", []):
        run.log(m)
    return run.metrics(), state


def run_pretraining(
    cfg: PretrainConfig,
    out: str | Path,
    *,
    num_workers: int = 1,
    cpus_per_worker: float = 1,
    use_gpu: bool = False,
    gpus_per_worker: float | None = None,
    storage_path: str | None = None,
    bn_mode: str = "per-worker",
    max_failures: int = 2,
    resume: bool = False,
    sampling: str = "auto",
    placement: str = "PACK",
    threads: int | None = None,
    name: str = RUN_NAME,
    callbacks: list | None = None,
    objective: str | None = None,
    eval_overrides: dict | None = None,
) -> dict:
    """Pretrain on the connected Ray cluster; writes the run folder `out` (mcc's format).

    A Ray Train checkpoint is written every epoch; a worker that dies is restarted from the
    latest one (up to max_failures times), and resume=True continues a run whose whole job
    was killed. use_gpu puts `gpus_per_worker` GPUs (default 1) in each worker and trains on
    them over NCCL. `name` is the Ray Train run's name in the storage; `callbacks` go to its
    RunConfig (a sweep passes TuneReportCallback); objective='val_knn' adds the validation
    kNN top-1 to every epoch's metrics.
    """
    from mcc.config import to_dict
    from mcc.train import epoch_plan
    from tune.cluster import check_storage, plan_resources, worker_gpus
    from tune.data import read_train, split_keys, stream_train
    from tune.worker import WorkerRun, latest_checkpoint

    out = str(out) if files.is_uri(out) else str(Path(out).resolve())
    storage = _storage(storage_path, out)
    _check_request(storage, name, resume, bn_mode, use_gpu)
    gpus = worker_gpus(use_gpu, gpus_per_worker)
    sampling, data_cpus = plan_resources(num_workers, cpus_per_worker, use_gpu, sampling,
                                         gpus_per_worker)  # fmt: skip
    check_storage(storage)
    manifest = read_manifest(cfg.data.path)
    found = latest_checkpoint(storage, name) if resume else None
    if found is not None:
        print(f"resuming after epoch {found[1]['epoch'] + 1}/{cfg.optim.epochs}", flush=True)
    run = RunDir(out)
    run.write_config(to_dict(cfg))
    t0 = time.time()
    keys = split_keys(cfg.data)  # metadata columns only
    n = len(keys.train)
    epoch_plan(n, cfg, 0, num_workers)  # too few samples for one step: the error, here
    raw = dataset = None
    if sampling == "exact":
        raw, n = read_train(cfg)
    elif sampling == "ray-data":
        dataset = stream_train(cfg, keys.carved)
    print(
        f"{n} training samples; {num_workers} worker(s) x {cpus_per_worker:g} CPU"
        f"{f' + {gpus:g} GPU' if gpus else ''}; sampling: {SAMPLING[sampling]}; "
        f"checkpoints in {storage}/{name}",
        flush=True,
    )
    worker_run = WorkerRun(
        cfg=cfg,
        layout=manifest.layout,
        bodies=manifest.max_bodies,
        raw=raw,
        keys=keys.train if sampling == "worker" else None,
        num_samples=n,
        storage=(storage, name),
        sampling=sampling,
        data_cpus=data_cpus,
        bn_mode=bn_mode,
        threads=threads or cfg.threads or max(1, int(cpus_per_worker)),
        objective=objective,
        eval_overrides=eval_overrides or {},
        # Under Tune (callbacks given) tune/progress.py prints the epochs in the driver
        epoch_lines=not callbacks,
    )
    trainer = _trainer(worker_run, num_workers, cpus_per_worker, gpus, placement,
                       max_failures, callbacks, dataset)  # fmt: skip
    final = _final_checkpoint(trainer.fit(), storage, name)
    history, state = _fill_run_folder(run, final)
    summary = {
        "kind": "pretrain",
        "runner": "ray-train",
        "dataset": manifest.name,
        "train_samples": n,
        "epochs": cfg.optim.epochs,
        "workers": num_workers,
        "cpus_per_worker": cpus_per_worker,
        "use_gpu": use_gpu,
        "gpus_per_worker": gpus,
        # what the workers computed on (rank 0's device) and at, as the checkpoint records
        "device": state.get("device"),
        "precision": state.get("precision"),
        "sampling": sampling,
        "bn_mode": bn_mode,
        "final": history[-1] if history else {},
        "first_loss": history[0].get("loss") if history else None,
        "checkpoint": files.join(run.location, run.checkpoint.name),
        "ray_checkpoint": final.path,
        "storage": f"{storage}/{name}",
    }
    return run.write_result(summary, cfg.seed, wall_time=round(time.time() - t0, 3))


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python tune/train.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--data", required=True, help="prepared dataset folder (on a cluster: a "
                   "path every node reaches)")  # fmt: skip
    p.add_argument("--out", required=True, help="run folder: a local folder (absolute under "
                   "ray job submit) or a URI such as s3://bucket/runs/x")  # fmt: skip
    p.add_argument("--preset", choices=sorted(presets.PRETRAIN), default="small")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[], help=SET_HELP)
    p.add_argument("--num-workers", type=int, default=1)
    p.add_argument("--cpus-per-worker", type=float, default=1)
    p.add_argument("--use-gpu", action="store_true", help="train on GPUs (NCCL): each "
                   "worker holds --gpus-per-worker of them")  # fmt: skip
    p.add_argument("--gpus-per-worker", type=float, default=None, metavar="G",
                   help="GPUs per worker with --use-gpu (default 1; a fraction only for "
                   "one worker: workers of a run may not share a GPU)")  # fmt: skip
    p.add_argument("--bn-mode", choices=["per-worker", "sync"], default="per-worker",
                   help="batch-norm statistics per worker, or synced (GPU only)")  # fmt: skip
    p.add_argument("--sampling", choices=["auto", "ray-data", "worker", "exact"],
                   default="auto", help="how clips reach the workers; auto: streamed by Ray "
                   "Data when a CPU is left after the workers, else streamed by each worker "
                   "from the shards; exact: the batches of `python -m mcc pretrain` with the "
                   "same seed (materializes the split: small data only)")  # fmt: skip
    p.add_argument("--spread", action="store_true", help="place workers on different nodes")
    p.add_argument("--storage-path", help="Ray Train checkpoints (default OUT/ray); a shared "
                   "folder or a URI such as s3://bucket/runs on several nodes")  # fmt: skip
    p.add_argument("--max-failures", type=int, default=2, help="worker restarts from the "
                   "latest checkpoint before the run fails")  # fmt: skip
    p.add_argument("--resume", action="store_true", help="continue the run in --storage-path")
    p.add_argument("--eval", choices=["knn", "linear", "finetune", "none"], default="knn",
                   help="evaluation of the pretrained encoder afterwards (test split)")  # fmt: skip
    p.add_argument("--address", help="Ray cluster address ('auto' for a running one); default: "
                   "RAY_ADDRESS if set, else a local Ray")  # fmt: skip
    p.add_argument("--no-progress", action="store_true")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        pre = apply_overrides(
            PretrainConfig(),
            {**presets.PRETRAIN[args.preset], "data.path": args.data, **parse_set_args(args.set)},
        )
        from tune.cluster import connect, warn_if_relative_in_job

        warn_if_relative_in_job(args.out)

        print(f"using {connect(args.address)}", flush=True)
        res = run_pretraining(
            pre,
            args.out,
            num_workers=args.num_workers,
            cpus_per_worker=args.cpus_per_worker,
            use_gpu=args.use_gpu,
            gpus_per_worker=args.gpus_per_worker,
            storage_path=args.storage_path,
            bn_mode=args.bn_mode,
            max_failures=args.max_failures,
            resume=args.resume,
            sampling=args.sampling,
            placement="SPREAD" if args.spread else "PACK",
        )
        final = res["final"]
        print(f"pretrained {final.get('epoch', -1) + 1} epochs, final loss "
              f"{final.get('loss', float('nan')):.4f}; run folder {args.out}")  # fmt: skip
        if args.eval != "none":
            from mcc.evaluate import evaluate

            ev = presets.evaluation(pre, args.preset, {"protocol": args.eval})
            out = files.join(args.out, f"eval-{args.eval}")
            r = evaluate(ev, res["checkpoint"], out, progress=not args.no_progress)
            print(f"{args.eval} top-1 {r['top1']:.2f}  top-5 {r['top5']:.2f}  ({out})")
            print(json.dumps({"top1": r["top1"], "top5": r["top5"]}))
    except (ConfigError, CheckpointError, FileNotFoundError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except Exception as e:  # a failed Ray Train run: its cause in one line, details above
        import ray.train

        if not isinstance(e, ray.train.TrainingFailedError):
            raise
        cause = str(e).strip().splitlines()[-1][:300] if str(e).strip() else type(e).__name__
        print(f"error: training failed after its retries ({cause}); the workers' "
              f"tracebacks are above, checkpoints stay in the storage for --resume",
              file=sys.stderr)  # fmt: skip
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
