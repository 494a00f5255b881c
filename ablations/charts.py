"""The report's charts, drawn with matplotlib (the `report` extra) and returned as SVG text
to inline in report.html (one self-contained file) and to save beside report.md.

- `bar_chart`: a table's rows as horizontal bars, one colour per backbone, mean ± std.
- `line_chart`: loss per epoch, one colour per row (its seeds share it); runs of one epoch
  have no curve, so they are drawn as a dot per run instead.
- `tsne_panels`, `skeleton_rows`, `joint_response`: Figs. 4-6 (ablations/figures.py).

Colours: Okabe-Ito (colour-blind safe) up to 8 series, Tableau 20 up to 20, then evenly
spaced hues: never a colour twice. Legends sit outside the axes and the figure is cropped
to what it draws (bbox_inches="tight"), so long row names are not clipped.
"""

from __future__ import annotations

import io
import math
import textwrap

import numpy as np

OKABE_ITO = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442",
             "#000000"]  # fmt: skip
MISSING_EXTRA = "pip install 'mcc[report]' (matplotlib, scikit-learn)"


class NoPlotting(RuntimeError):
    """matplotlib (the `report` extra) is not installed."""


def _mpl():
    try:
        import matplotlib
        from matplotlib.figure import Figure
    except ImportError:
        raise NoPlotting(f"the figures need matplotlib: {MISSING_EXTRA}") from None
    return matplotlib, Figure


def available() -> bool:
    try:
        _mpl()
    except NoPlotting:
        return False
    return True


def colours(n: int) -> list[str]:
    """n distinct colours (hex)."""
    if n <= len(OKABE_ITO):
        return OKABE_ITO[:n]
    matplotlib, _ = _mpl()
    from matplotlib.colors import to_hex

    if n <= 20:  # the saturated half of Tableau 20 first, then the light half
        tab = [to_hex(c) for c in matplotlib.colormaps["tab20"].colors]
        return (tab[0::2] + tab[1::2])[:n]
    return [to_hex(matplotlib.colormaps["turbo"](0.05 + 0.9 * i / (n - 1))) for i in range(n)]


def figure(width: float, height: float):
    _, Figure = _mpl()
    return Figure(figsize=(width, height), layout="constrained")


def to_svg(fig, stem: str) -> str:
    """The figure as one `<svg>` element: text kept as text, ids salted by `stem` so that
    several figures inlined in one HTML page do not share ids, no XML prolog, no date."""
    matplotlib, _ = _mpl()
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": stem}):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.08,
                    metadata={"Date": None})  # fmt: skip
    text = buf.getvalue()
    return text[text.index("<svg") :]


def wrap(title: str, width: int = 90) -> str:
    return "\n".join(textwrap.wrap(title, width))


LEGEND_ROWS = 18  # entries per legend column


def legend_size(labels: list[str]) -> tuple[float, float]:
    """(width, height) in inches that a legend of `labels` (font size 8) needs: the figure
    grows by that much, so many or long labels do not squeeze the axes."""
    if not labels:
        return 0.0, 0.0
    ncol = 1 + (len(labels) - 1) // LEGEND_ROWS
    rows = math.ceil(len(labels) / ncol)
    return ncol * (0.45 + 0.058 * max(len(x) for x in labels)), 0.5 + 0.17 * rows


def _legend(fig, ax, handles_labels=None, title: str | None = None) -> None:
    handles, labels = handles_labels or ax.get_legend_handles_labels()
    if not labels:
        return
    ncol = 1 + (len(labels) - 1) // LEGEND_ROWS
    ax.legend(handles, labels, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False,
              fontsize=8, ncol=ncol, title=title, title_fontsize=8)  # fmt: skip


# ---- tables ---------------------------------------------------------------------------------


def bar_chart(
    title: str,
    groups: list[str],
    series: list[str],
    values: dict[tuple[str, str], tuple[float, float] | None],
    stem: str,
    xlabel: str = "top-1 (%)",
) -> str:
    """Horizontal bars: a band per group (the table's rows, top to bottom), a bar per series
    (a colour each); values[(group, series)] = (mean, std), or None: marked "missing",
    never drawn as a zero bar. Error bars span mean ± std."""
    k = max(1, len(series))
    bar = 0.8 / k
    lw, lh = legend_size(series)
    fig = figure(5.5 + lw, max(lh, 0.6 + (0.22 * k + 0.25) * max(1, len(groups))))
    ax = fig.add_subplot()
    cols = colours(k)
    for si, s in enumerate(series):
        ys, ms, sds = [], [], []
        for gi, g in enumerate(groups):
            y = gi + (si - (k - 1) / 2) * bar
            v = values.get((g, s))
            if v is None:
                ax.text(0.5, y, "missing", va="center", fontsize=7, color="#888")
                continue
            ys.append(y)
            ms.append(v[0])
            sds.append(v[1] or 0.0)
        ax.barh(ys, ms, height=bar * 0.9, color=cols[si], label=s,
                xerr=sds if any(sds) else None,
                error_kw={"elinewidth": 1, "capsize": 2})  # fmt: skip
    ax.set_yticks(range(len(groups)), groups, fontsize=8)
    ax.set_ylim(len(groups) - 0.5, -0.5)  # the table's first row on top
    ax.set_xlim(left=0)
    ax.set_xlabel(xlabel)
    ax.grid(axis="x", color="#ddd", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.set_title(wrap(title, 80), fontsize=10)
    _legend(fig, ax)
    return to_svg(fig, stem)


def line_chart(
    title: str,
    lines: list[tuple[str, list[float], list[float]]],
    stem: str,
    xlabel: str = "epoch",
    ylabel: str = "loss",
) -> str:
    """Lines (label, xs, ys); lines with the same label share a colour (e.g. seeds). When no
    line has two points (1-epoch runs) there is no curve to draw: one dot per run, a row per
    label, the value on the x axis."""
    names = list(dict.fromkeys(label for label, _, _ in lines))
    cols = dict(zip(names, colours(len(names))))
    ys_all = [y for _, _, ly in lines for y in ly if math.isfinite(y)]
    dots = max((len(lx) for _, lx, _ in lines), default=0) < 2
    if dots:
        fig = figure(7.0, 0.9 + 0.28 * len(names))
        ax = fig.add_subplot()
        for i, name in enumerate(names):
            vals = [y for label, _, ly in lines if label == name for y in ly]
            ax.plot(vals, [i] * len(vals), "o", color=cols[name], markersize=6)
        ax.set_yticks(range(len(names)), names, fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.set_xlabel(f"{ylabel} after epoch {int(lines[0][1][0]) if lines and lines[0][1] else 1}"
                      f" (one run per dot: a single epoch has no curve)")  # fmt: skip
        ax.grid(axis="x", color="#ddd", linewidth=0.6)
    else:
        lw, lh = legend_size(names)
        fig = figure(5.5 + lw, max(3.2, lh))
        ax = fig.add_subplot()
        seen = set()
        for label, lx, ly in lines:
            ax.plot(lx, ly, "-o", color=cols[label], markersize=3, linewidth=1.3,
                    label=None if label in seen else label)  # fmt: skip
            seen.add(label)
        positive = [y for y in ys_all if y > 0]
        if positive and len(positive) == len(ys_all) and max(positive) / min(positive) > 20:
            from matplotlib.ticker import FuncFormatter

            ax.set_yscale("log")  # the loss terms differ by orders of magnitude
            ax.yaxis.set_major_formatter(FuncFormatter(_plain))  # 0.3, not 3 x 10^-1
            ax.yaxis.set_minor_formatter(FuncFormatter(_plain))
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.grid(color="#eee", linewidth=0.6)
        _legend(fig, ax)
    ax.set_title(wrap(title, 80), fontsize=10)
    return to_svg(fig, stem)


def _plain(v: float, _pos=None) -> str:
    """A log axis' tick label: 1, 2, 3 and 5 times a power of ten, as plain numbers."""
    if v <= 0:
        return ""
    mantissa = round(v / 10 ** math.floor(math.log10(v)), 6)
    return f"{v:g}" if mantissa in (1, 2, 3, 5) else ""


# ---- Figs. 4-6 ------------------------------------------------------------------------------


def robust_limits(xy: np.ndarray, k: float = 3.0, pad: float = 0.06):
    """Square axis limits ((x0, x1), (y0, y1)) that hold the bulk of the points: per axis,
    the range of the points within k interquartile ranges of the quartiles (Tukey's fences,
    wide), padded; one far point cannot squeeze the rest into a corner. Returns the limits
    and a mask of the points outside them."""
    xy = np.asarray(xy, dtype=float).reshape(-1, 2)
    q1, q3 = np.percentile(xy, [25, 75], axis=0)
    iqr = np.maximum(q3 - q1, 1e-12)
    inside = np.all((xy >= q1 - k * iqr) & (xy <= q3 + k * iqr), axis=1)
    bulk = xy[inside] if inside.any() else xy
    lo, hi = bulk.min(axis=0), bulk.max(axis=0)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()) / 2, 1e-9) * (1 + pad)
    lims = ((mid[0] - half, mid[0] + half), (mid[1] - half, mid[1] + half))
    out = ~np.all((xy >= [lims[0][0], lims[1][0]]) & (xy <= [lims[0][1], lims[1][1]]), axis=1)
    return lims, out


def tsne_panels(title: str, panels: list, class_names: list[str], stem: str) -> str:
    """Panels side by side, each (name, xy (N, 2), labels (N,)): a dot per sample coloured by
    class, on limits that hold the bulk (`robust_limits`); points beyond them are drawn on
    the border as open triangles and counted in the panel's title."""
    labels = sorted({int(v) for _, _, lab in panels for v in lab})
    cols = dict(zip(labels, colours(len(labels))))
    lw, lh = legend_size([class_names[c] if c < len(class_names) else "" for c in labels])
    fig = figure(3.4 * len(panels) + lw + 0.3, max(3.9, lh))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, xy, lab) in zip(axes, panels):
        xy, lab = np.asarray(xy, dtype=float), np.asarray(lab)
        lims, out = robust_limits(xy)
        (x0, x1), (y0, y1) = lims
        for c in labels:
            m = (lab == c) & ~out
            ax.scatter(xy[m, 0], xy[m, 1], s=9, color=cols[c], linewidths=0,
                       label=class_names[c] if c < len(class_names) else f"class {c}")  # fmt: skip
            m = (lab == c) & out
            if m.any():
                ax.scatter(np.clip(xy[m, 0], x0, x1), np.clip(xy[m, 1], y0, y1), s=22,
                           marker="^", facecolors="none", edgecolors=cols[c],
                           linewidths=0.8)  # fmt: skip
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.set_aspect("equal")
        ax.set_xticks([])
        ax.set_yticks([])
        extra = f"\n{int(out.sum())} outlying point(s) on the border" if out.any() else ""
        ax.set_title(name + extra, fontsize=9)
    _legend(fig, axes[-1], title="class")
    fig.suptitle(wrap(title, 100), fontsize=10)
    return to_svg(fig, stem)


def _pose_axes(ax, lims) -> None:
    ax.set_xlim(*lims[0])
    ax.set_ylim(*lims[1])
    ax.set_aspect("equal")
    ax.axis("off")


def skeleton_rows(
    title: str,
    rows: list,
    edges,
    stem: str,
    behind: dict[int, int] | None = None,
    trajectories: tuple[np.ndarray, np.ndarray] | None = None,
) -> str:
    """Rows of stick figures, each (name, frames (T, V, 2), y up), one per frame, every
    figure on one scale (so a collapsed pose looks collapsed, not blown up). `behind`: {row:
    reference row}, the reference row's figures drawn in grey behind that row's (the ground
    truth behind the decoder's output), each frame centred on the reference.
    `trajectories` (decoded, truth), each (T', V, 2): a panel below with x and y over all T'
    frames of the two joints that move most in the truth."""
    cols = max(len(f) for _, f in rows)
    every = np.concatenate([np.asarray(f, dtype=float).reshape(-1, 2) for _, f in rows])
    span = max(float((every.max(axis=0) - every.min(axis=0)).max()), 1e-9) * 0.55
    n = len(rows) + (trajectories is not None)
    fig = figure(1.15 * cols + 1.2, 1.35 * len(rows) + 0.5 + 2.2 * (trajectories is not None))
    gs = fig.add_gridspec(n, cols, height_ratios=[1] * len(rows) + [1.7] * (n - len(rows)))
    palette = colours(len(rows))
    behind = behind or {}
    for r, (name, frames) in enumerate(rows):
        frames = np.asarray(frames, dtype=float)
        ref_frames = np.asarray(rows[behind[r]][1], dtype=float) if r in behind else None
        for k in range(cols):
            ax = fig.add_subplot(gs[r, k])
            if k == 0:
                ax.set_title("\n".join(textwrap.wrap(name, 22)), fontsize=8, loc="left")
            if k >= len(frames):
                ax.axis("off")
                continue
            pose = frames[k]
            centre = (pose if ref_frames is None else ref_frames[k]).mean(axis=0)
            if ref_frames is not None:
                for i, j in edges:
                    ax.plot(ref_frames[k][[i, j], 0], ref_frames[k][[i, j], 1], color="#c4c4c4",
                            linewidth=2.4, solid_capstyle="round")  # fmt: skip
            for i, j in edges:
                ax.plot(pose[[i, j], 0], pose[[i, j], 1], color=palette[r], linewidth=1.4,
                        solid_capstyle="round")  # fmt: skip
            ax.plot(pose[:, 0], pose[:, 1], "o", color=palette[r], markersize=1.8)
            _pose_axes(ax, ((centre[0] - span, centre[0] + span),
                            (centre[1] - span, centre[1] + span)))  # fmt: skip
    if trajectories is not None:
        decoded, truth = (np.asarray(a, dtype=float) for a in trajectories)
        ax = fig.add_subplot(gs[len(rows), :])
        moving = np.argsort(-truth.std(axis=0).sum(axis=-1))[:2]
        t = np.arange(len(truth))
        for c, (v, axis) in zip(colours(4), [(v, a) for v in moving for a in (0, 1)]):
            label = f"joint {v} {'xy'[axis]}"
            ax.plot(t, truth[:, v, axis], color=c, linewidth=1.6, label=f"{label}, truth")
            ax.plot(t, decoded[:, v, axis], color=c, linewidth=1.2, linestyle="--",
                    label=f"{label}, decoded")  # fmt: skip
        ax.set_xlabel("target frame")
        ax.set_ylabel("coordinate")
        ax.set_title("the two joints that move most: truth (solid) and decoded (dashed)",
                     fontsize=9)  # fmt: skip
        ax.grid(color="#eee", linewidth=0.6)
        _legend(fig, ax)
    fig.suptitle(wrap(title, 110), fontsize=10)
    return to_svg(fig, stem)


def joint_response(title: str, pose: np.ndarray, edges, panels: list, stem: str) -> str:
    """Fig. 5: the mean pose (V, 2) in grey, a circle per joint whose area and colour give
    its response; panels (name, (V,) magnitudes), each scaled to its own largest joint."""
    matplotlib, _ = _mpl()
    fig = figure(3.0 * len(panels) + 1.0, 4.2)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    pose = np.asarray(pose, dtype=float)
    lo, hi = pose.min(axis=0), pose.max(axis=0)
    mid, half = (lo + hi) / 2, max(float((hi - lo).max()), 1e-9) * 0.6
    lims = ((mid[0] - half, mid[0] + half), (mid[1] - half, mid[1] + half))
    cmap = matplotlib.colormaps["viridis"]
    sc = None
    for ax, (name, mag) in zip(axes, panels):
        rel = np.asarray(mag, dtype=float) / (float(np.max(mag)) + 1e-12)
        for i, j in edges:
            ax.plot(pose[[i, j], 0], pose[[i, j], 1], color="#9a9a9a", linewidth=1.6, zorder=1)
        sc = ax.scatter(pose[:, 0], pose[:, 1], s=20 + 260 * rel**2, c=rel, cmap=cmap,
                        vmin=0, vmax=1, edgecolors="white", linewidths=0.5, zorder=2)  # fmt: skip
        top = np.argsort(-rel)[:3]
        ax.set_title(f"{name}\nstrongest joints {', '.join(map(str, top))}", fontsize=9)
        _pose_axes(ax, lims)
    if sc is not None:
        fig.colorbar(sc, ax=list(axes), shrink=0.8, label="response / the panel's largest")
    fig.suptitle(wrap(title, 80), fontsize=10)
    return to_svg(fig, stem)
