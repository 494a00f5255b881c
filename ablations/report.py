"""The report: our numbers beside the paper's, from the result files and Table 1's models.

Reads a `python -m ablations run` folder: ablations.json (preset, datasets, hardware),
tables/TABLE.json (which runs make which cell), each evaluation's result.json and
metrics.jsonl, and the grid's cells/NAME.json and trials/NAME/metrics.jsonl; for Figs. 4-6
(ablations/figures.py), Table 1's model checkpoints and the evaluated dataset's test split. Writes
report.md and one self-contained report.html (inline SVG drawn with matplotlib, no
external files), plus the figures as .svg files beside report.md. Without matplotlib (the
`report` extra) the tables are written and the figures are listed as not done.

Each table keeps the paper's layout (its rows; a column per backbone): our mean ± sample
standard deviation over seeds, the difference to the table's "w/o pre-training" row, and the
published numbers with the paper's own difference to its baseline. A difference is marked
"not resolved" unless it is larger than twice the larger of the two standard deviations
(`mcc.stats.resolved`, the rule of every verdict the project publishes; fewer than 2 seeds on
either side: not resolved). Missing cells are shown as "—", never as 0.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from html import escape
from pathlib import Path

from ablations import charts
from ablations.cells import Plan
from ablations.figures import model_figures
from ablations.specs import BACKBONE_NAMES, PAPER_COLUMN_OF, TABLES, Table
from mcc.stats import mean_std, resolved
from mcc.tables import markdown_table

MISSING = "—"
NOT_RESOLVED = "not resolved"



@dataclass
class Stat:
    values: list[float]
    expected: int

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float:
        return mean_std(self.values)[0]

    @property
    def std(self) -> float:
        """The sample standard deviation; 0 with one value (shown without one)."""
        return mean_std(self.values)[1] or 0.0


def difference(a: Stat, b: Stat) -> tuple[float, bool]:
    """(mean a - mean b, whether it is resolved: `mcc.stats.resolved`)."""
    return a.mean - b.mean, resolved(a.values, b.values)


def read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def read_metrics(path: Path) -> list[dict]:
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def load(runs: Path) -> tuple[dict, dict[str, Plan]]:
    meta = read_json(runs / "ablations.json") or {}
    plans = {}
    for f in sorted((runs / "tables").glob("*.json")):
        d = read_json(f)
        if d is not None:
            plans[d["table"]] = Plan.from_json(d)
    return meta, plans


def cell_stats(plan: Plan, table: Table, runs: Path) -> dict[tuple, Stat]:
    """(row label, column, backbone) -> the metric over the plan's seeds that have a result."""
    stats: dict[tuple, Stat] = {}
    for c in plan.cells:
        st = stats.setdefault((c.row, c.column, c.backbone), Stat([], 0))
        st.expected += 1
        res = read_json(runs / c.evaluation.dir / "result.json")
        v = res.get(table.metric) if res else None
        if isinstance(v, (int, float)) and math.isfinite(v):
            st.values.append(float(v))
    return stats


# ---- table cells as text -------------------------------------------------------------------


def ours_text(st: Stat | None) -> str:
    if st is None or st.n == 0:
        return MISSING
    text = f"{st.mean:.1f} ± {st.std:.1f}" if st.n > 1 else f"{st.mean:.1f}"
    if st.n < st.expected:
        text += f" ({st.n} of {st.expected} seeds)"
    return text


def delta_text(st: Stat | None, base: Stat | None, is_base: bool) -> str:
    if is_base:
        return "baseline"
    if st is None or base is None or st.n == 0 or base.n == 0:
        return MISSING
    d, resolved = difference(st, base)
    return f"{d:+.1f}" + ("" if resolved else f" ({NOT_RESOLVED})")


def paper_text(table: Table, row, backbone: str) -> str:
    vals = row.paper.get(backbone)
    if not vals or all(v is None for v in vals):
        return "n/a"
    base = table.baseline(row.column)
    bvals = base.paper.get(backbone) if base is not None and base is not row else None
    parts = []
    for i, v in enumerate(vals):
        if v is None:
            parts.append("n/a")
        elif bvals and i < len(bvals) and bvals[i] is not None:
            parts.append(f"{v:.1f} ({v - bvals[i]:+.1f})")
        else:
            parts.append(f"{v:.1f}")
    return " / ".join(parts)


@dataclass
class Rendered:
    table: Table
    plan: Plan | None
    header: list[str]
    rows: list[list[str]]
    notes: list[str]
    figures: list[tuple[str, str]]  # (file stem, svg text)


def render(table: Table, plan: Plan, runs: Path) -> Rendered:
    stats = cell_stats(plan, table, runs)
    columns = table.columns()
    bbs = plan.backbones
    header = ["Row"]
    for b in bbs:
        for col in columns:
            name = BACKBONE_NAMES.get(b, b) + (f" {col}" if col else "")
            header += [f"{name} ours", f"{name} Δ", f"{name} paper"]
    rows = []
    for label in table.labels():
        line = [label]
        for b in bbs:
            for col in columns:
                try:
                    row = table.row(label, col)
                except KeyError:
                    line += [MISSING, MISSING, "n/a"]
                    continue
                st = stats.get((label, col, b))
                base_row = table.baseline(col)
                base = stats.get((base_row.label, col, b)) if base_row is not None else None
                line += [
                    ours_text(st),
                    delta_text(st, base, row is base_row),
                    paper_text(table, row, b),
                ]
        rows.append(line)
    notes = table_notes(table, plan, runs)
    return Rendered(table, plan, header, rows, notes, figures(table, plan, runs, stats))


def table_notes(table: Table, plan: Plan, runs: Path) -> list[str]:
    paper_cols = " / ".join(table.paper_columns)
    notes = [
        f"Protocol `{table.protocol}`, metric {table.metric} (%) on the test split; "
        f"seeds {' '.join(map(str, plan.seeds))}; preset `{plan.preset}`. "
        f"The paper ran it on {', '.join(table.datasets)}. "
        f"Paper columns: {paper_cols} (in brackets: the paper's difference to its "
        f"w/o pre-training row)."
    ]
    ds = [d["key"] for d in plan.datasets.values()]
    if plan.cells:
        ev = plan.cells[0].evaluation
        same = PAPER_COLUMN_OF.get((ev.dataset, ev.overrides.get("data.benchmark", "")))
        if same in table.paper_columns:
            notes.append(f"Our evaluated dataset ({ev.dataset}) is the paper's {same} column.")
    if table.base:
        notes.append(
            "Every pretraining row: " + ", ".join(f"`{k}={v}`" for k, v in table.base.items())
        )
    for r in table.rows:
        if r.note:
            notes.append(f"{r.label}{' [' + r.column + ']' if r.column else ''}: {r.note}.")
    if table.note:
        notes.append(table.note)
    for s in plan.skipped:
        notes.append(f"Not run: {s['row']} {s['column']}: {s['reason']}.")
    pre = [read_json(p.cell_file(runs)) for p in plan.pretrainings()]
    evs = [read_json(runs / e.dir / "result.json") for e in plan.evaluations()]
    pre_s = sum((c or {}).get("wall_time_s") or 0 for c in pre)
    ev_s = sum((r or {}).get("wall_time_s") or 0 for r in evs)
    notes.append(
        f"Runs: {sum(c is not None for c in pre)} of {len(pre)} pretrainings "
        f"({pre_s / 60:.1f} min), {sum(r is not None for r in evs)} of {len(evs)} "
        f"evaluations ({ev_s / 60:.1f} min); shared runs are counted in every table "
        f"that uses them. Datasets: {', '.join(ds)}."
    )
    return notes


def figures(table: Table, plan: Plan, runs: Path, stats: dict) -> list[tuple[str, str]]:
    out = []
    if not charts.available():
        return out
    groups, values = [], {}
    series = [BACKBONE_NAMES.get(b, b) for b in plan.backbones]
    for label in table.labels():
        for col in table.columns():
            if not any(r.label == label and r.column == col for r in table.rows):
                continue
            g = label + (f" [{col}]" if col else "")
            groups.append(g)
            for b, s in zip(plan.backbones, series):
                st = stats.get((label, col, b))
                values[(g, s)] = (st.mean, st.std) if st and st.n else None
    stem = f"{table.name}-top1"
    title = f"{table.name}: ours, mean ± std over seeds"
    out.append((stem, charts.bar_chart(title, groups, series, values, stem)))
    pre_lines, ft_lines = [], []
    seen = set()
    for c in plan.cells:
        label = c.row + (f" [{c.column}]" if c.column else "")
        if len(plan.backbones) > 1:
            label += f" {BACKBONE_NAMES.get(c.backbone, c.backbone)}"
        if c.pretrain is not None and (c.pretrain.dataset, c.pretrain.name) not in seen:
            seen.add((c.pretrain.dataset, c.pretrain.name))
            pre_lines += curve(label, c.pretrain.trial_dir(runs) / "metrics.jsonl")
        if c.evaluation.dir not in seen:
            seen.add(c.evaluation.dir)
            ft_lines += curve(label, runs / c.evaluation.dir / "metrics.jsonl")
    for lines, stem, what in ((pre_lines, "pretrain-loss", "pretraining loss"),
                              (ft_lines, "finetune-loss", "downstream training loss")):  # fmt: skip
        if lines:
            stem = f"{table.name}-{stem}"
            title = f"{table.name}: {what} per epoch (a colour per row, shared by its seeds)"
            out.append((stem, charts.line_chart(title, lines, stem)))
    return out


def curve(label: str, path: Path) -> list[tuple[str, list[float], list[float]]]:
    pts = [
        (m["epoch"] + 1, m["loss"])
        for m in read_metrics(path)
        if isinstance(m.get("loss"), (int, float)) and "epoch" in m
    ]
    return [(label, [p[0] for p in pts], [p[1] for p in pts])] if pts else []


# ---- the report's first lines --------------------------------------------------------------


def provenance(meta: dict, plans: dict[str, Plan], runs: Path) -> list[str]:
    """What produced these numbers: dataset, preset, widths, hardware."""
    preset = meta.get("preset") or ", ".join(sorted({p.preset for p in plans.values()}))
    datasets, widths, torch_versions = {}, set(), set()
    for plan in plans.values():
        for c in plan.cells:
            folder = runs / c.evaluation.dir
            res = read_json(folder / "result.json")
            if res is None:
                continue
            tr, te = datasets.get(res.get("dataset"), (0, 0))
            datasets[res.get("dataset")] = (
                max(tr, res.get("train_samples") or 0),  # semi runs see a fraction
                max(te, res.get("test_samples") or 0),
            )
            cfg = read_json(folder / "config.json") or {}
            model = cfg.get("model") or {}
            if model:
                widths.add(
                    (
                        BACKBONE_NAMES.get(model.get("backbone"), model.get("backbone")),
                        model.get("width"),
                    )
                )
            torch_versions.add((res.get("versions") or {}).get("torch"))
    paths = meta.get("datasets") or {}
    ds_text = (
        "; ".join(
            f"**{k}** ({paths.get(k, '?')}; {tr} train / {te} test samples)"
            for k, (tr, te) in datasets.items()
            if k
        )
        or "no results yet"
    )
    hw = []
    for r in meta.get("runs", []):
        h = r.get("hardware") or {}
        text = (
            f"{h.get('cpu')}, {h.get('cores')} cores, {h.get('gpu') or 'no GPU'}, "
            f"torch {h.get('torch')}"
        )
        if text not in hw:
            hw.append(text)
    torch_versions.discard(None)
    pre = {**(meta.get("preset_pretrain") or {}), **(meta.get("set") or {})}
    width_text = ", ".join(f"{b} width {w}" for b, w in sorted(widths, key=str)) or (
        f"width {pre.get('model.width', 1.0)}"
    )
    lines = [
        f"Produced by preset **{preset}** on {ds_text}.",
        f"Backbones: {width_text} (1.0 is the published size). Pretraining overrides: "
        + (", ".join(f"`{k}={v}`" for k, v in pre.items()) or "none (the paper's recipe)")
        + ".",
        f"Hardware: {'; '.join(hw) or 'not recorded'}"
        + (
            f"; results written with torch {', '.join(sorted(torch_versions))}"
            if torch_versions
            else ""
        )
        + ".",
    ]
    if preset == "smoke":
        lines.append("**This is a smoke run: its numbers check the plumbing and mean nothing.**")
    elif preset != "paper":
        lines.append(
            f"**A scaled-down recipe ({preset}): compare the direction of effects "
            f"with the paper, not the values.**"
        )
    return lines


# ---- output --------------------------------------------------------------------------------


def references_rows(table: Table) -> tuple[list[str], list[list[str]]]:
    header = ["Method (paper only)", "Architecture", *table.paper_columns]
    rows = [
        [r.label, r.architecture, *("n/a" if v is None else f"{v:.1f}" for v in r.paper)]
        for r in table.references
    ]
    return header, rows


def build(runs: Path) -> tuple[dict, list[str], list[Rendered], list[str]]:
    meta, plans = load(runs)
    rendered = [render(TABLES[name], plans[name], runs) for name in TABLES if name in plans]
    not_done = [f"{name} ({t.title}): not run" for name, t in TABLES.items() if name not in plans]
    if rendered and not charts.available():
        not_done.append(f"Charts (bars, loss curves): {charts.MISSING_EXTRA}")
    backbones = {b for p in plans.values() for b in p.backbones}
    if "agcn" in backbones:
        not_done.append(
            "2s-AGCN is its joint stream only; the paper's numbers fuse the joint "
            "and bone streams (mcc.fusion.fuse; not wired into the tables)"
        )
    if "table1" in plans:  # Figs. 4-6 are drawn from Table 1's models (ablations/figures.py)
        figs, missing = model_figures(plans["table1"], runs)
        next(r for r in rendered if r.table.name == "table1").figures.extend(figs)
        not_done += missing
    else:
        not_done.append("Figs. 4-6 (interpolated clip, per-joint response, t-SNE): they are "
                        "drawn from Table 1's models, and Table 1 was not run")  # fmt: skip
    return meta, provenance(meta, plans, runs), rendered, not_done


def write_report(runs: str | Path, out: str | Path) -> tuple[Path, Path]:
    """report.md, report.html and the figures (.svg) of the runs folder `runs` into `out`."""
    runs, out = Path(runs), Path(out)
    meta, head, rendered, not_done = build(runs)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    title = "MCC ablations: our numbers beside the paper's"
    md = [
        f"# {title}",
        "",
        *head,
        "",
        f"Report written {stamp} from `{runs}`.",
        "",
        f"Cells: mean ± sample std over seeds; Δ: difference to the w/o pre-training row, "
        f"'{NOT_RESOLVED}' unless larger than twice the larger of the two standard deviations "
        f"(or with one seed); "
        f"{MISSING}: no result; n/a: not in the paper.",
        "",
    ]
    html = [
        f"<h1>{escape(title)}</h1>",
        *(f"<p>{_md_inline(x)}</p>" for x in head),
        f"<p>Report written {stamp} from <code>{escape(str(runs))}</code>.</p>",
        f"<p>{escape(md[-2])}</p>",
    ]
    for r in rendered:
        md += [f"## {r.table.title}", "", markdown_table(r.header, r.rows), ""]
        md += [f"- {n}" for n in r.notes] + [""]
        html += [f"<h2>{escape(r.table.title)}</h2>", html_table(r.header, r.rows)]
        html += ["<ul>", *(f"<li>{_md_inline(n)}</li>" for n in r.notes), "</ul>"]
        if r.table.references:
            h, rows = references_rows(r.table)
            md += [
                "Published rows of other methods (not reproduced):",
                "",
                markdown_table(h, rows),
                "",
            ]
            html += [
                "<p>Published rows of other methods (not reproduced):</p>",
                html_table(h, rows),
            ]
        for stem, svg in r.figures:
            (out / f"{stem}.svg").write_text(svg)
            md += [f"![{stem}]({stem}.svg)", ""]
            html += [f"<figure>{svg}</figure>"]
    md += ["## Not done", "", *(f"- {x}" for x in not_done), ""]
    html += ["<h2>Not done</h2>", "<ul>", *(f"<li>{escape(x)}</li>" for x in not_done), "</ul>"]
    md_path, html_path = out / "report.md", out / "report.html"
    md_path.write_text("\n".join(md))
    html_path.write_text(HTML.format(title=escape(title), body="\n".join(html)))
    return md_path, html_path


def _md_inline(text: str) -> str:
    """The little Markdown the notes use (**bold**, `code`) as HTML."""
    out, parts = [], escape(text).split("**")
    for i, p in enumerate(parts):
        out.append(f"<b>{p}</b>" if i % 2 else p)
    code = "".join(out).split("`")
    return "".join(f"<code>{c}</code>" if i % 2 else c for i, c in enumerate(code))


def html_table(header: list[str], rows: list[list[str]]) -> str:
    def td(c: str) -> str:
        cls = ' class="nr"' if NOT_RESOLVED in c else (' class="na"' if c == MISSING else "")
        return f"<td{cls}>{escape(c)}</td>"

    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(td(c) for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


HTML = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 2em; max-width: 1400px; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 13px; }}
th, td {{ border: 1px solid #ccc; padding: 3px 7px; text-align: right; }}
th:first-child, td:first-child {{ text-align: left; }}
td.nr {{ color: #888; font-style: italic; }}
td.na {{ color: #aaa; }}
figure {{ display: inline-block; margin: 0.5em; vertical-align: top; }}
figure svg {{ max-width: 100%; height: auto; }}
</style></head>
<body>
{body}
</body></html>
"""
