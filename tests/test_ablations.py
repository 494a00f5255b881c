"""ablations/: spec expansion, the report on a hand-made results folder, caching of the
evaluation stage, bad input, and one end-to-end table on the shared Ray session."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from ablations import charts, cli, figures, run
from ablations.cells import Dataset, Plan, available_backbones, expand, placeholder_datasets
from ablations.presets import PAPER, PRESETS, SMALL, SMOKE
from ablations.report import MISSING, NOT_RESOLVED, write_report
from ablations.specs import TABLE1, TABLE2, TABLE3, TABLE5, TABLE6, TABLE7, TABLES
from mcc.config import ConfigError, PretrainConfig, apply_overrides
from mcc.evaluate import evaluate
from mcc.train import pretrain

ST = ["stgcn"]


def plan_of(table, preset=SMOKE, **kw):
    kw.setdefault("backbones", ST)
    return expand(table, preset, placeholder_datasets(table), **kw)


# ---- specs and expansion -------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, preset, cells, pretrainings, evaluations",
    [
        ("table1", SMOKE, 6, 5, 6),
        ("table1", SMALL, 18, 15, 18),
        ("table2", SMOKE, 5, 4, 5),
        ("table3", SMOKE, 3, 2, 3),
        ("table3", PAPER, 9, 6, 9),
        ("table4", SMOKE, 5, 4, 5),
        ("table5", SMOKE, 4, 1, 4),  # one MCC pretraining serves 5 % and 10 %
        ("table6", SMOKE, 6, 5, 6),
        ("table7", SMOKE, 3, 1, 4),  # + the supervised run on the source
    ],
)
def test_cell_counts(name, preset, cells, pretrainings, evaluations):
    plan = plan_of(TABLES[name], preset)
    assert len(plan.cells) == cells
    assert len(plan.pretrainings()) == pretrainings
    assert len(plan.evaluations()) == evaluations
    assert plan.seeds == list(preset.seeds) and not plan.skipped


@pytest.mark.parametrize("name", list(TABLES))
@pytest.mark.parametrize("preset", list(PRESETS.values()), ids=list(PRESETS))
def test_names_unique_and_configurations_not_duplicated(name, preset):
    table = TABLES[name]
    plan = expand(table, preset, placeholder_datasets(table))
    keys = [(c.row, c.column, c.backbone, c.seed) for c in plan.cells]
    assert len(keys) == len(set(keys))
    by_name: dict[str, dict] = {}
    for c in plan.cells:  # a name is one configuration, and a configuration has one name
        if c.pretrain is not None:
            assert by_name.setdefault(c.pretrain.name, c.pretrain.params) == c.pretrain.params
    params = [(p.dataset, json.dumps(p.params, sort_keys=True)) for p in plan.pretrainings()]
    assert len(params) == len(set(params))
    dirs = {}
    for e in plan.evaluations():
        assert dirs.setdefault(e.dir, e.overrides) == e.overrides
    # every cell of a row has its own evaluation, every row its own runs
    assert len({c.evaluation.dir for c in plan.cells}) == len(plan.cells)


def test_rows_with_one_configuration_share_runs_across_tables():
    t1, t2, t3 = (plan_of(t, SMALL) for t in (TABLE1, TABLE2, TABLE3))

    def runs(plan, row):
        return {(c.seed, c.pretrain.name if c.pretrain else None, c.evaluation.dir)
                for c in plan.cells if c.row == row}  # fmt: skip

    assert runs(t2, "S-changed / M-shuffled") == runs(t1, "L_triplet only")
    assert runs(t3, "Specific rate interpolation") == runs(t1, "L_Itep only")
    assert runs(t3, "w/o pre-training") == runs(t1, "w/o pre-training")
    direct = {c.pretrain.name for c in t3.cells if c.row == "Direct reconstruction"}
    assert all("loss.interp_target=reconstruct" in n for n in direct)
    assert all(c.pretrain is None for c in t1.cells if c.row == "w/o pre-training")


def test_configurations_behind_the_rows():
    plan = plan_of(TABLE2)
    params = {c.row: c.pretrain.params for c in plan.cells if c.pretrain}
    assert params["S-changed / M-jittered"]["sampling.negative"] == "jitter"
    assert params["- / M-shuffled"]["sampling.positive"] == "none"
    for p in params.values():  # Table 2 is the triplet loss alone
        assert p["loss.nce"] == 0 and p["loss.interp"] == 0 and "loss.triplet" not in p
    t5 = plan_of(TABLE5)
    fractions = {(c.row, c.column): c.evaluation.overrides["label_fraction"] for c in t5.cells}
    assert fractions[("+MCC", "5 %")] == 0.05 and fractions[("w/o pre-training", "10 %")] == 0.1
    assert {c.evaluation.overrides["protocol"] for c in t5.cells} == {"semi"}
    t7 = plan_of(TABLE7)
    sup = next(c for c in t7.cells if c.row == "Fully supervised")
    assert sup.supervised.dataset == "ntu120" and sup.supervised.overrides["protocol"] == "finetune"
    assert sup.supervised.overrides["data.benchmark"] == "xsub"
    assert sup.evaluation.overrides["protocol"] == "transfer" and sup.evaluation.dataset == "target"
    scratch = next(c for c in t7.cells if c.row == "w/o pre-training")
    assert scratch.evaluation.overrides["protocol"] == "finetune"  # no checkpoint to transfer
    t6 = plan_of(TABLE6)
    own = next(c for c in t6.cells if c.row == "PKU-MMD")
    assert own.pretrain.dataset == "target" and own.evaluation.overrides["protocol"] == "finetune"
    x = next(c for c in t6.cells if c.row == "NTU60 X-view")
    assert x.pretrain.params["data.benchmark"] == "xview" and x.pretrain.dataset == "ntu60"


def test_backbones_follow_the_config_and_the_table():
    have = available_backbones()
    plan = expand(TABLE1, SMOKE, placeholder_datasets(TABLE1))
    assert plan.backbones == list(have) and len(plan.cells) == 6 * len(have)
    assert expand(TABLE2, SMOKE, placeholder_datasets(TABLE2)).backbones == ["stgcn"]
    assert expand(TABLE1, SMALL, placeholder_datasets(TABLE1)).backbones == ["stgcn"]
    with pytest.raises(ConfigError, match="not available"):
        plan_of(TABLE1, backbones=["resnet"])


def test_transfer_rows_without_their_source_are_skipped():
    plan = expand(TABLE6, SMOKE, {"target": Dataset("pkummd", "/d/pku"),
                                  "ntu60": Dataset("ntu60", "/d/ntu60")})  # fmt: skip
    assert {s["row"] for s in plan.skipped} == {"NTU120 X-setup", "NTU120 X-sub"}
    assert "--source ntu120=DIR" in plan.skipped[0]["reason"]
    assert len(plan.cells) == 4


def test_published_numbers():
    for t in TABLES.values():
        for r in t.rows:
            for b, vals in r.paper.items():
                assert b in ("stgcn", "agcn", "asgcn") and len(vals) == len(t.paper_columns)
        for ref in t.references:
            assert len(ref.paper) == len(t.paper_columns)
        assert t.baseline(t.columns()[0]) is not None
    assert TABLE1.row("L_triplet only").paper["stgcn"] == (82.3, 89.2)
    assert TABLE7.row("MCC (ours)").paper == {"stgcn": (54.5,), "agcn": (60.8,),
                                               "asgcn": (58.4,)}  # fmt: skip
    assert TABLE7.row("Fully supervised").paper["asgcn"] == (65.4,)
    assert TABLE5.row("+MCC", "10 %").paper["agcn"] == (60.8, 65.8, 47.0, 51.8, 21.3, 37.9)
    assert TABLE6.backbones == TABLE2.backbones == TABLE3.backbones == ("stgcn",)


def test_plan_round_trips_through_json():
    plan = plan_of(TABLE7)
    again = Plan.from_json(json.loads(json.dumps(plan.to_json())))
    assert again == plan


# ---- the report ----------------------------------------------------------------------------


def md_tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table of a document as rows of cells (header first, rule dropped)."""
    tables, cur = [], []
    for line in text.splitlines() + [""]:
        if line.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
            if not all(set(c) <= {"-"} for c in cells):
                cur.append(cells)
        elif cur:
            tables.append(cur)
            cur = []
    return tables


# top-1 per (row, seed) of the hand-made Table 1: None = no result
HAND = {
    "w/o pre-training": [80.0, 81.0, 82.0],
    "L_triplet only": [85.0, 86.0, 87.0],  # +5.0, resolved
    "L_NCE only": [80.5, 82.5, 81.0],  # +0.33: within 2 standard errors
    "L_Itep only": [84.0, None, None],  # one seed: no error estimate
    "L_triplet + L_NCE": [None, None, None],  # missing
    "L_triplet + L_NCE + L_Itep (MCC)": [90.0, 90.0, 90.0],
}


def hand_made_runs(root: Path) -> Path:
    plan = expand(TABLE1, SMALL, {"data": Dataset("ntu60", "/data/ntu60")}, backbones=ST)
    run.write_json(root / "tables" / "table1.json", plan.to_json())
    hw = {"cpu": "Test CPU 9000", "cores": 2, "gpu": None, "torch": "2.13.0+cpu"}
    run.write_json(root / run.META, {"preset": "small", "preset_pretrain": SMALL.pretrain,
                                     "set": {}, "datasets": {"ntu60": "/data/ntu60"},
                                     "runs": [{"tables": ["table1"], "hardware": hw}]})  # fmt: skip
    for c in plan.cells:
        v = HAND[c.row][c.seed]
        folder = root / c.evaluation.dir
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.json").write_text(json.dumps({"model": {"backbone": "stgcn",
                                                                  "width": 0.125}}))  # fmt: skip
        (folder / "metrics.jsonl").write_text("".join(
            json.dumps({"epoch": e, "loss": 2.0 / (e + 1)}) + "\n" for e in range(3)))  # fmt: skip
        if v is not None:
            res = {"top1": v, "dataset": "ntu60", "train_samples": 40, "test_samples": 20,
                   "wall_time_s": 3.0, "versions": {"torch": "2.13.0+cpu"}}  # fmt: skip
            (folder / "result.json").write_text(json.dumps(res))
        if c.pretrain is not None:
            f = c.pretrain.cell_file(root)
            f.parent.mkdir(parents=True, exist_ok=True)
            f.write_text(json.dumps({"params": c.pretrain.params, "wall_time_s": 10.0}))
            t = c.pretrain.trial_dir(root)
            t.mkdir(parents=True, exist_ok=True)
            (t / "metrics.jsonl").write_text("".join(
                json.dumps({"epoch": e, "loss": 5.0 - e}) + "\n" for e in range(3)))  # fmt: skip
    return root


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v or "") for k, v in attrs]


def test_report_on_a_hand_made_results_folder(tmp_path):
    runs = hand_made_runs(tmp_path / "runs")
    md_path, html_path = write_report(runs, tmp_path / "report")
    md = md_path.read_text()
    head = "\n".join(md.splitlines()[:6])  # the first lines say what produced the numbers
    for text in ("small", "ntu60", "width 0.125", "Test CPU 9000", "2 cores", "torch 2.13.0"):
        assert text in head
    table = md_tables(md)[0]
    assert table[0] == ["Row", "ST-GCN ours", "ST-GCN Δ", "ST-GCN paper"]
    rows = {r[0]: r[1:] for r in table[1:]}
    assert list(rows) == TABLE1.labels()  # the paper's rows, in its order
    assert rows["w/o pre-training"] == ["81.0 ± 1.0", "baseline", "81.5 / 88.3"]
    assert rows["L_triplet only"][:2] == ["86.0 ± 1.0", "+5.0"]
    assert rows["L_triplet only"][2] == "82.3 (+0.8) / 89.2 (+0.9)"
    assert rows["L_NCE only"][1] == f"+0.3 ({NOT_RESOLVED})"
    assert rows["L_Itep only"][:2] == ["84.0 (1 of 3 seeds)", f"+3.0 ({NOT_RESOLVED})"]
    assert rows["L_triplet + L_NCE"][:2] == [MISSING, MISSING]  # missing, never 0
    assert rows["L_triplet + L_NCE"][2] == "82.6 (+1.1) / 89.5 (+1.2)"
    assert rows["L_triplet + L_NCE + L_Itep (MCC)"][:2] == ["90.0 ± 0.0", "+9.0"]
    assert "NTU60 X-sub column" in md  # ntu60's default benchmark is the paper's X-sub
    not_done = md.split("## Not done")[1]
    assert "table2" in not_done
    assert "Fig. 4 (interpolated clip): Table 1's MCC pretraining has no checkpoint" in not_done
    assert (
        "Fig. 6 (t-SNE): Table 1 has no fine-tuned from scratch or fine-tuned from MCC run"
        in not_done
    )

    html = html_path.read_text()
    p = _Tags()
    p.feed(html)
    assert p.tags.count("svg") >= 3  # bars, pretraining and fine-tuning loss curves
    for tag, k, v in p.attrs:  # self-contained: nothing is fetched
        if k in ("src", "href") or k.endswith(":href"):  # matplotlib's <use xlink:href="#m..">
            assert v.startswith(("#", "data:")), (tag, k, v)
    assert "<script" not in html and "<link" not in html and "url(http" not in html
    assert "<?xml" not in html and "<!DOCTYPE svg" not in html  # inline <svg> elements only
    for svg in re.findall(r"<svg.*?</svg>", html, flags=re.S):
        ET.fromstring(svg)  # well-formed
    assert "86.0 ± 1.0" in html and "Test CPU 9000" in html


def test_report_draws_figures_4_to_6_from_table1_models(tiny_data, tmp_path):
    """Figs. 4-6 from real (tiny) models placed where a Table 1 run puts them."""
    root = tmp_path / "runs"
    plan = expand(TABLE1, SMOKE, {"data": Dataset("synthetic", tiny_data)}, backbones=ST)
    run.write_json(root / "tables" / "table1.json", plan.to_json())
    run.write_json(root / run.META, {"preset": "smoke", "set": {},
                                     "datasets": {"synthetic": tiny_data}, "runs": []})  # fmt: skip
    mcc_cell = next(c for c in plan.cells if c.row == figures.MCC_ROW)
    scratch = next(c for c in plan.cells if c.row == figures.SCRATCH_ROW)
    pre = apply_overrides(PretrainConfig(), {**SMOKE.pretrain, **mcc_cell.pretrain.params,
                                             "data.path": tiny_data, "threads": "1"})  # fmt: skip
    pretrain(pre, mcc_cell.pretrain.trial_dir(root), progress=False)
    mcc_cell.pretrain.cell_file(root).parent.mkdir(parents=True)
    mcc_cell.pretrain.cell_file(root).write_text(json.dumps({"params": {}}))
    for cell, ckpt in ((scratch, None), (mcc_cell, mcc_cell.pretrain.trial_dir(root))):
        cfg = apply_overrides(cell.evaluation.config(), {"threads": "1"})
        evaluate(cfg, ckpt and str(ckpt), root / cell.evaluation.dir, progress=False)

    md_path, html_path = write_report(root, tmp_path / "report")
    for stem in ("fig4-interpolation", "fig5-joint-response"):
        svg = ET.fromstring((tmp_path / "report" / f"{stem}.svg").read_text())
        assert len(svg.findall(".//{http://www.w3.org/2000/svg}path")) > 20  # skeleton bones
    fig4 = (tmp_path / "report" / "fig4-interpolation.svg").read_text()
    assert "of the true ones" in fig4 and "truth (solid) and decoded (dashed)" in fig4
    tsne_svg = (tmp_path / "report" / "fig6-tsne.svg").read_text()
    assert tsne_svg.count("<use ") >= 2 * 16  # both panels: every test sample (16) drawn
    assert tsne_svg.count("trustworthiness 0.") == 2
    assert "Fig. " not in md_path.read_text().split("## Not done")[1]
    assert html_path.read_text().count("<svg") >= 6


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.1, (20, 8)), rng.normal(3, 0.1, (20, 8))])
    y, trust = figures.tsne(x, perplexity=10)
    a, b = y[:20], y[20:]
    gap = np.linalg.norm(a.mean(0) - b.mean(0))
    assert gap > 3 * max(a.std(0).max(), b.std(0).max())
    assert trust > 0.9  # the map keeps the neighbours (0.96 measured; 1 is perfect)
    with pytest.raises(ValueError, match="at least 3 points"):
        figures.tsne(x[:2])


def test_tsne_scale_is_set_by_the_bulk_not_an_outlier():
    rng = np.random.default_rng(0)
    xy = np.concatenate([rng.normal(0, 1, (200, 2)), [[400.0, -300.0]]])
    lims, out = charts.robust_limits(xy)
    (x0, x1), (y0, y1) = lims
    assert x1 - x0 < 12 and y1 - y0 < 12 and x1 - x0 == pytest.approx(y1 - y0)  # square
    assert out.tolist() == [False] * 200 + [True]  # only the outlier is off the axes
    svg = charts.tsne_panels("t", [("a", xy, np.arange(201) % 3)], ["x", "y", "z"], "t")
    assert "1 outlying point(s) on the border" in svg
    # two real clusters both stay in view
    two = np.concatenate([rng.normal(0, 1, (100, 2)), rng.normal(30, 1, (40, 2))])
    assert not charts.robust_limits(two)[1].any()


@pytest.mark.parametrize("n", [1, 8, 9, 12, 20, 21, 40])
def test_more_than_8_series_get_distinct_colours(n):
    assert len(set(charts.colours(n))) == n


def test_charts_legend_every_series_in_its_own_colour():
    names = [f"row {i} with a long name, L_triplet + L_NCE + L_Itep" for i in range(12)]
    lines = [(name, [1, 2, 3], [3.0 - i * 0.1, 2.0, 1.0]) for i, name in enumerate(names)]
    svg = charts.line_chart("losses", lines, "t").lower()
    for c in charts.colours(12):
        assert f"stroke: {c.lower()}" in svg
    for name in names:  # every legend entry is drawn whole (text, not clipped glyphs)
        assert name.lower() in svg
    groups = [f"group {i}" for i in range(3)]
    series = [f"backbone {i}" for i in range(10)]
    values = {(g, s): (50.0, 1.0) for g in groups for s in series}
    values[("group 1", "backbone 3")] = None
    bars = charts.bar_chart("bars", groups, series, values, "b").lower()
    assert all(f"fill: {c.lower()}" in bars for c in charts.colours(10))
    assert "missing" in bars


def test_a_one_epoch_loss_chart_is_a_dot_per_run():
    one = charts.line_chart("l", [("a", [1], [2.0]), ("b", [1], [3.0])], "one")
    assert "a single epoch has no curve" in one
    two = charts.line_chart("l", [("a", [1, 2], [2.0, 1.0])], "two")
    assert "a single epoch has no curve" not in two


def test_report_without_matplotlib_keeps_its_tables(tmp_path, monkeypatch):
    monkeypatch.setattr(charts, "available", lambda: False)
    md_path, html_path = write_report(hand_made_runs(tmp_path / "runs"), tmp_path / "report")
    md = md_path.read_text()
    assert md_tables(md)[0][1][1] == "81.0 ± 1.0"
    assert "<svg" not in html_path.read_text()
    assert "pip install 'mcc[report]'" in md.split("## Not done")[1]


def test_report_of_an_empty_or_missing_folder_is_refused(tmp_path, capsys):
    assert cli.main(["report", "--runs", str(tmp_path / "nothing")]) == 2
    assert capsys.readouterr().err.startswith("error: ")


# ---- caching of the evaluation stage -------------------------------------------------------


def test_evaluation_stage_caches_and_resumes(tmp_path, monkeypatch):
    import mcc.evaluate
    import tune.sweep
    from mcc.config import to_dict

    out = tmp_path / "out"
    plan = plan_of(TABLE3)
    for p in plan.pretrainings():  # finished grid cells
        p.cell_file(out).parent.mkdir(parents=True, exist_ok=True)
        p.cell_file(out).write_text(json.dumps({"params": p.params}))
        p.trial_dir(out).mkdir(parents=True)
        (p.trial_dir(out) / "checkpoint.pt").write_bytes(b"x")
    calls = []

    def fake_evaluate(cfg, checkpoint, folder, progress=True):
        calls.append((cfg.protocol, checkpoint))
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "config.json").write_text(json.dumps({**to_dict(cfg),
                                                              "checkpoint": checkpoint}))
        (Path(folder) / "result.json").write_text(json.dumps({"top1": 50.0}))
        return {"top1": 50.0, "protocol": cfg.protocol}

    def no_grid(argv):
        raise AssertionError("every pretraining cell is cached: no grid, no Ray")

    monkeypatch.setattr(mcc.evaluate, "evaluate", fake_evaluate)
    monkeypatch.setattr(tune.sweep, "run_grid", no_grid)
    assert run.pretrain_stage(plan, out, SMOKE, {}) == 0
    assert run.evaluation_stage(plan, out, progress=False) == (3, 0, 0)
    assert sorted(c[1] is None for c in calls) == [False, False, True]  # one from scratch
    assert run.evaluation_stage(plan, out, progress=False) == (0, 3, 0)  # nothing again
    assert len(calls) == 3
    (out / plan.cells[1].evaluation.dir / "result.json").unlink()  # an interrupted one
    assert run.evaluation_stage(plan, out, progress=False) == (1, 2, 0)
    # a pretraining without a result: its evaluation is skipped and counted, not run
    plan.cells[2].pretrain.cell_file(out).unlink()
    (out / plan.cells[2].evaluation.dir / "result.json").unlink()
    assert run.evaluation_stage(plan, out, progress=False) == (0, 2, 1)
    assert len(calls) == 4
    # a finished evaluation made with other settings is neither reused nor overwritten
    done = out / plan.cells[0].evaluation.dir / "config.json"
    done.write_text(json.dumps({**json.loads(done.read_text()), "knn_k": 7}))
    with pytest.raises(ConfigError, match=r"other settings \(knn_k: 7 -> .*another --out"):
        run.evaluation_stage(plan, out, progress=False)
    assert len(calls) == 4


# ---- bad input -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["run", "table9"], "unknown table 'table9'"),
        (["run", "table1", "--preset", "huge"], "unknown preset 'huge'"),
        (["run", "table1", "--data", "{missing}"], "is not a prepared dataset"),
        (["run", "table6", "--preset", "smoke"], "needs --target DIR and --source"),
        (["run", "table1", "--backbones", "resnet"], "not available"),
        (["run", "table1", "--set", "loss.temperature=1"], "unknown config key"),
        (["run", "table1", "--set", "data.path=/x"], "data.path comes from"),
        (["run", "table1", "--target", "{data}"], "--target / --source are for"),
        (["run", "table1", "--gpus-per-worker", "1"], "--gpus-per-worker=1: add --use-gpu"),
    ],
)
def test_bad_input_is_one_error_line_before_ray(tiny_data, tmp_path, capsys, args, message):
    out = tmp_path / "out"
    args = [a.format(missing=tmp_path / "nope", data=tiny_data) for a in args]
    if "--data" not in args and "table6" not in args:
        args += ["--data", tiny_data]
    assert cli.main([*args, "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1
    assert not out.exists()  # nothing written, nothing started


def test_a_folder_of_another_preset_is_refused(tiny_data, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["run", "table3", "--data", tiny_data, "--out", str(out), "--dry-run"]
    assert cli.main([*args, "--preset", "smoke"]) == 0
    meta = run.check_out(out, SMOKE, {}, {}, {})
    run.write_json(out / run.META, meta)
    assert cli.main([*args, "--preset", "small"]) == 2
    assert "choose another --out" in capsys.readouterr().err


# ---- Ctrl-C ----------------------------------------------------------------------------------


def _interrupt_by_returning_130(argv):  # Tune caught the Ctrl-C; tune/sweep.py returns 130
    return 130


def _interrupt_by_raising(argv):  # a Ctrl-C outside Tune's loop, or a second one
    raise KeyboardInterrupt


@pytest.mark.parametrize("grid", [_interrupt_by_returning_130, _interrupt_by_raising])
def test_ctrl_c_in_pretraining_stops_the_run(tiny_data, tmp_path, monkeypatch, capsys, grid):
    import mcc.evaluate
    import tune.sweep

    def no_evaluation(*a, **kw):
        raise AssertionError("an evaluation ran after the Ctrl-C")

    monkeypatch.setattr(tune.sweep, "run_grid", grid)
    monkeypatch.setattr(mcc.evaluate, "evaluate", no_evaluation)
    out = tmp_path / "out"
    args = ["run", "table3", "--preset", "smoke", "--data", tiny_data, "--out", str(out)]
    assert cli.main(args) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again to continue" in err
    assert "--resume" not in err and "Traceback" not in err
    assert not (out / "report").exists()  # no report of half a table


def test_use_gpu_reaches_the_pretraining_grid(tiny_data, tmp_path, monkeypatch):
    import tune.sweep

    seen = []
    monkeypatch.setattr(tune.sweep, "run_grid", lambda argv: seen.append(argv) or 130)
    args = ["run", "table3", "--preset", "smoke", "--data", tiny_data, "--out",
            str(tmp_path / "out"), "--use-gpu", "--gpus-per-worker", "0.5"]  # fmt: skip
    assert cli.main(args) == 130
    (argv,) = seen
    assert "--use-gpu" in argv and argv[argv.index("--gpus-per-worker") + 1] == "0.5"
    seen.clear()
    args = args[: args.index("--use-gpu")]
    assert cli.main(args) == 130
    assert "--use-gpu" not in seen[0] and "--gpus-per-worker" not in seen[0]


def test_ctrl_c_in_an_evaluation_stops_the_run(tiny_data, tmp_path, monkeypatch, capsys):
    import mcc.evaluate
    import tune.sweep

    calls = []

    def interrupted_evaluation(*a, **kw):
        calls.append(a)
        raise KeyboardInterrupt

    monkeypatch.setattr(tune.sweep, "run_grid", lambda argv: 0)
    monkeypatch.setattr(mcc.evaluate, "evaluate", interrupted_evaluation)
    args = ["run", "table3", "--preset", "smoke", "--data", tiny_data, "--out", str(tmp_path)]
    assert cli.main(args) == 130
    assert len(calls) == 1  # the next evaluations did not start
    assert "interrupted; run the same command again" in capsys.readouterr().err


def test_a_second_ctrl_c_while_exiting_prints_no_traceback(tiny_data, tmp_path):
    """`python -m ablations run` after a Ctrl-C: a second one during the interpreter's exit
    (Ray's atexit shutdown) ends the process with 130, without a traceback."""
    import subprocess
    import sys

    code = (
        "import atexit, os, runpy, signal, sys, time\n"
        "import tune.sweep\n"
        "def grid(argv):\n"
        "    raise KeyboardInterrupt\n"
        "tune.sweep.run_grid = grid\n"
        "def second_ctrl_c():\n"
        "    os.kill(os.getpid(), signal.SIGINT)\n"
        "    time.sleep(5)\n"
        "atexit.register(second_ctrl_c)\n"
        f"sys.argv = ['ablations', 'run', 'table3', '--preset', 'smoke', '--data', "
        f"{tiny_data!r}, '--out', {str(tmp_path)!r}]\n"
        "runpy.run_module('ablations', run_name='__main__')\n"
    )
    repo = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", code], cwd=repo, capture_output=True,
                          text=True, timeout=120)  # fmt: skip
    assert proc.returncode == 130, proc.stderr[-2000:]
    assert "interrupted; run the same command again" in proc.stderr
    assert "Traceback" not in proc.stderr and "KeyboardInterrupt" not in proc.stderr


def test_list_shows_tables_rows_and_costs(capsys):
    assert cli.main(["list"]) == 0
    text = capsys.readouterr().out
    for name in TABLES:
        assert name in text
    assert "S-changed / M-jittered" in text and "sampling.negative=jitter" in text
    assert "table1 + table3: 18 pretrainings + 21 evaluations (about " in text  # small
    assert "estimates for 720 training samples" in text  # what they are based on
    assert "seconds per sample and epoch measured on" in text


def test_cost_estimates_follow_the_measured_rates():
    import dataclasses

    from ablations import costs

    # the run the rates were calibrated on: table1, smoke, ST-GCN, 720 synthetic training
    # samples took 449 s (ablations/costs.py); the old figures said about 4 min for it
    smoke_st = dataclasses.replace(SMOKE, backbones=("stgcn",))
    est = costs.estimate([TABLE1], smoke_st, (720, 300))
    assert (est.pretrainings, est.evaluations) == (5, 6)
    assert 0.75 * 449 < est.seconds < 1.25 * 449
    st, ag, asg = (costs.rate(b, 0.125) for b in ("stgcn", "agcn", "asgcn"))
    assert st[0] < ag[0] < asg[0]
    # the measured ST-GCN rates (s per sample and epoch) at widths 0.125 and 1.0 ...
    assert st == pytest.approx((0.029, 0.013))
    assert costs.rate("stgcn", 1.0) == pytest.approx((1.01, 0.54))
    # ... and a power law between and beyond them: the same factor for every doubling
    pre = [costs.rate("stgcn", w)[0] for w in (0.125, 0.25, 0.5, 1.0, 2.0)]
    steps = [b / a for a, b in zip(pre, pre[1:])]
    assert steps == pytest.approx([steps[0]] * 4) and steps[0] == pytest.approx(3.266, abs=1e-3)
    bigger = costs.estimate([TABLE1], smoke_st, (7200, 3000))
    assert bigger.seconds > 5 * est.seconds  # the data's size counts


def test_cost_estimates_scale_to_finished_runs(tmp_path, capsys):
    """Finished runs in the preset's folder: the rates are scaled by what those took."""
    from ablations import costs
    from mcc.config import EvalConfig, to_dict

    runs = tmp_path / "runs"
    pre = apply_overrides(PretrainConfig(), {**SMOKE.pretrain})
    trial = runs / "pretrain" / "synthetic" / "trials" / "a"
    trial.mkdir(parents=True)
    (trial / "config.json").write_text(json.dumps(to_dict(pre)))
    # the rates predict 45 s (the cell's start) + 1 epoch of 540 samples x 2.1 x 0.029 s + the
    # validation kNN over 720 = 81.0 s; this one took three times as long
    assert costs.pretraining_seconds(pre, 720) == pytest.approx(81.006)
    (trial / "result.json").write_text(json.dumps({"wall_time_s": 243.018,
                                                   "train_samples": 540}))  # fmt: skip
    ev = apply_overrides(EvalConfig(), {**SMOKE.evaluate})
    folder = runs / "eval" / "synthetic" / "scratch" / "b"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps({**to_dict(ev), "checkpoint": None}))
    assert costs.evaluation_seconds(ev, (720, 300)) == pytest.approx(8.89)  # it took twice that
    (folder / "result.json").write_text(json.dumps({"wall_time_s": 17.78, "train_samples": 720,
                                                    "test_samples": 300}))  # fmt: skip
    plain = costs.estimate([TABLE3], SMOKE, (720, 300))
    scaled = costs.estimate([TABLE3], SMOKE, (720, 300), runs)
    assert "x3.00 and x2.00" in scaled.basis
    # table3 smoke: 2 pretrainings and 3 evaluations, each kind scaled by its own factor
    assert plain.seconds == pytest.approx(2 * 81.006 + 3 * 8.89)
    assert scaled.seconds == pytest.approx(3 * 2 * 81.006 + 2 * 3 * 8.89)
    assert cli.main(["list", "--preset", "smoke", "--runs", str(runs)]) == 0
    out = capsys.readouterr().out
    assert "min*)" in out and f"* smoke: from the rates measured on {costs.MACHINE}" in out


# ---- end to end ----------------------------------------------------------------------------


def test_table3_smoke_end_to_end_then_report(ray_cluster, tiny_data, tmp_path, capsys):
    out = tmp_path / "abl"
    args = ["run", "table3", "--preset", "smoke", "--data", tiny_data, "--out", str(out),
            "--address", ray_cluster.address, "--no-progress"]  # fmt: skip
    assert cli.main(args) == 0
    screen = capsys.readouterr().out  # one line per trial per epoch, not Tune's status table
    assert screen.count("epoch 1/1: val_knn_top1") == 2 and "== Status ==" not in screen
    assert len(list((out / "pretrain" / "synthetic" / "cells").glob("*.json"))) == 2
    results = sorted(out.glob("eval/**/result.json"))
    assert len(results) == 3
    stamps = {p: p.stat().st_mtime for p in results}
    assert cli.main(["report", "--runs", str(out), "--out", str(tmp_path / "rep")]) == 0
    table = md_tables((tmp_path / "rep" / "report.md").read_text())[0]
    assert [r[0] for r in table[1:]] == TABLE3.labels()
    # every cell is its row's evaluation (one seed), as that run's result.json has it
    plan = Plan.from_json(json.loads((out / "tables" / "table3.json").read_text()))
    for c in plan.cells:
        top1 = json.loads((out / c.evaluation.dir / "result.json").read_text())["top1"]
        assert {r[0]: r[1] for r in table[1:]}[c.row] == f"{top1:.1f}", c.row
    assert "<svg" in (tmp_path / "rep" / "report.html").read_text()
    assert cli.main(args) == 0  # the same table again: everything cached, nothing re-run
    assert {p: p.stat().st_mtime for p in sorted(out.glob("eval/**/result.json"))} == stamps


def test_fully_supervised_row_fine_tunes_the_supervised_run(tmp_path, monkeypatch):
    import mcc.evaluate

    out = tmp_path / "out"
    plan = plan_of(TABLE7)
    calls = []

    def fake_evaluate(cfg, checkpoint, folder, progress=True):
        calls.append((cfg.protocol, cfg.data.path, checkpoint))
        Path(folder).mkdir(parents=True, exist_ok=True)
        (Path(folder) / "checkpoint.pt").write_bytes(b"x")
        (Path(folder) / "result.json").write_text(json.dumps({"top1": 50.0}))
        return {"top1": 50.0, "protocol": cfg.protocol}

    monkeypatch.setattr(mcc.evaluate, "evaluate", fake_evaluate)
    # scratch, supervised on the source, its transfer; MCC has no pretraining: skipped
    assert run.evaluation_stage(plan, out, progress=False) == (3, 0, 1)
    sup = next(c for c in plan.cells if c.row == "Fully supervised")
    assert calls[0] == ("finetune", "/datasets/ntu120", None)  # supervised, on the source
    assert (
        "transfer",
        "/datasets/target",
        str(out / sup.supervised.dir / "checkpoint.pt"),
    ) in calls
