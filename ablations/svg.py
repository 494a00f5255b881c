"""Small SVG figures drawn by hand (no plotting library): grouped bars with error bars,
lines, scatter panels (t-SNE) and skeleton frames. Each returns one `<svg>` element as text,
to inline in the HTML report."""

from __future__ import annotations

import math
from html import escape

import numpy as np

# Colour-blind-safe (Okabe-Ito).
PALETTE = ["#0072B2", "#E69F00", "#009E73", "#D55E00", "#CC79A7", "#56B4E9", "#F0E442", "#000000"]


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    if hi <= lo:
        hi = lo + 1
    step = 10 ** math.floor(math.log10((hi - lo) / n))
    for m in (1, 2, 5, 10):
        if (hi - lo) / (step * m) <= n:
            step *= m
            break
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v - round(v)) < 1e-9 else f"{v:.3g}"


def _frame(w: int, h: int, title: str) -> list[str]:
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" '
        f'viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="11" role="img">',
        f"<title>{escape(title)}</title>",
        f'<text x="{w / 2}" y="16" text-anchor="middle" font-size="13">{escape(title)}</text>',
    ]


def _legend(names: list[str], x: float, y: float) -> list[str]:
    out = []
    for i, name in enumerate(names):
        c = PALETTE[i % len(PALETTE)]
        yy = y + 15 * i
        out += [
            f'<rect x="{x}" y="{yy - 9}" width="10" height="10" fill="{c}"/>',
            f'<text x="{x + 14}" y="{yy}">{escape(name)}</text>',
        ]
    return out


def _y_axis(
    x0: float, x1: float, y_of, ticks: list[float], label: str, top: float, bottom: float
) -> list[str]:
    out = [f'<line x1="{x0}" y1="{top}" x2="{x0}" y2="{bottom}" stroke="#333"/>']
    for t in ticks:
        y = y_of(t)
        out += [
            f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#ddd"/>',
            f'<text x="{x0 - 4}" y="{y + 4:.1f}" text-anchor="end">{_fmt(t)}</text>',
        ]
    mid = (top + bottom) / 2
    out.append(
        f'<text x="12" y="{mid}" transform="rotate(-90 12 {mid})" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return out


def bar_chart(
    title: str,
    groups: list[str],
    series: list[str],
    values: dict[tuple[str, str], tuple[float, float] | None],
    xlabel: str = "top-1 (%)",
) -> str:
    """Horizontal bars: a band per group (its label on the left), a bar per series
    (colour); values[(group, series)] = (mean, std) or None, drawn as a grey 'missing' mark,
    never as a zero bar. Error bars span mean ± std."""
    bar = 12
    band = bar * max(1, len(series)) + 10
    left = max([len(g) for g in groups] + [4]) * 6.5 + 14
    legend_w = max([len(s) for s in series] + [0]) * 7 + 30
    plot_w = 360
    top = 30
    bottom = top + band * max(1, len(groups))
    w, h = int(left + plot_w + legend_w + 10), int(bottom + 40)
    right = left + plot_w
    found = [v for v in values.values() if v is not None]
    hi = max([m + (sd or 0) for m, sd in found] + [1.0]) * 1.05
    ticks = _ticks(0, hi)
    hi = max(hi, ticks[-1])

    def x_of(v: float) -> float:
        return left + plot_w * v / hi

    out = _frame(w, h, title)
    for t in ticks:
        x = x_of(t)
        out += [
            f'<line x1="{x:.1f}" y1="{top}" x2="{x:.1f}" y2="{bottom}" stroke="#ddd"/>',
            f'<text x="{x:.1f}" y="{bottom + 14}" text-anchor="middle">{_fmt(t)}</text>',
        ]
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{bottom}" stroke="#333"/>')
    out.append(
        f'<text x="{(left + right) / 2}" y="{bottom + 30}" '
        f'text-anchor="middle">{escape(xlabel)}</text>'
    )
    for gi, g in enumerate(groups):
        y0 = top + gi * band + 5
        out.append(
            f'<text x="{left - 6}" y="{y0 + band / 2:.1f}" text-anchor="end">{escape(g)}</text>'
        )
        for si, s in enumerate(series):
            y = y0 + si * bar
            v = values.get((g, s))
            if v is None:
                out.append(f'<text x="{left + 4}" y="{y + bar - 2}" fill="#999">— missing</text>')
                continue
            m, sd = v
            c = PALETTE[si % len(PALETTE)]
            out.append(
                f'<rect x="{left}" y="{y}" width="{x_of(m) - left:.1f}" height="{bar - 2}" '
                f'fill="{c}"><title>{escape(g)}, {escape(s)}: {m:.2f} ± {sd:.2f}</title></rect>'
            )
            if sd:
                cy = y + (bar - 2) / 2
                out.append(
                    f'<line x1="{x_of(max(0.0, m - sd)):.1f}" y1="{cy}" '
                    f'x2="{x_of(m + sd):.1f}" y2="{cy}" stroke="#000"/>'
                )
    out += _legend(series, right + 12, top + 10)
    out.append("</svg>")
    return "\n".join(out)


def line_chart(
    title: str,
    lines: list[tuple[str, list[float], list[float]]],
    xlabel: str = "epoch",
    ylabel: str = "loss",
) -> str:
    """Lines (label, xs, ys); lines with the same label share a colour (e.g. seeds)."""
    names = list(dict.fromkeys(label for label, _, _ in lines))
    legend_w = max([len(s) for s in names] + [0]) * 7 + 30
    w, h, top, bottom, left = 420 + legend_w, 260, 30, 220, 50
    right = w - legend_w
    xs = [x for _, lx, _ in lines for x in lx] or [0.0, 1.0]
    ys = [y for _, _, ly in lines for y in ly if math.isfinite(y)] or [0.0, 1.0]
    x_lo, x_hi = min(xs), max(xs)
    x_hi = x_hi if x_hi > x_lo else x_lo + 1
    y_lo, y_hi = min(ys), max(ys)
    pad = (y_hi - y_lo) * 0.05 or abs(y_hi) * 0.05 or 1.0
    y_lo, y_hi = y_lo - pad, y_hi + pad
    ticks = [t for t in _ticks(y_lo, y_hi) if y_lo <= t <= y_hi]

    def x_of(v: float) -> float:
        return left + (right - left) * (v - x_lo) / (x_hi - x_lo)

    def y_of(v: float) -> float:
        return bottom - (bottom - top) * (v - y_lo) / (y_hi - y_lo)

    out = _frame(w, h, title) + _y_axis(left, right, y_of, ticks, ylabel, top, bottom)
    out.append(f'<line x1="{left}" y1="{bottom}" x2="{right}" y2="{bottom}" stroke="#333"/>')
    for t in _ticks(x_lo, x_hi):
        if x_lo <= t <= x_hi:
            out.append(
                f'<text x="{x_of(t):.1f}" y="{bottom + 14}" text-anchor="middle">{_fmt(t)}</text>'
            )
    out.append(
        f'<text x="{(left + right) / 2}" y="{bottom + 30}" '
        f'text-anchor="middle">{escape(xlabel)}</text>'
    )
    for label, lx, ly in lines:
        c = PALETTE[names.index(label) % len(PALETTE)]
        pts = " ".join(f"{x_of(x):.1f},{y_of(y):.1f}" for x, y in zip(lx, ly) if math.isfinite(y))
        if len(lx) == 1:
            out.append(f'<circle cx="{x_of(lx[0]):.1f}" cy="{y_of(ly[0]):.1f}" r="3" fill="{c}"/>')
        else:
            out.append(f'<polyline points="{pts}" fill="none" stroke="{c}" stroke-width="1.5"/>')
    out += _legend(names, right + 12, top + 10)
    out.append("</svg>")
    return "\n".join(out)


# Ten distinguishable class colours for scatter plots (Tableau 10).
CLASS_PALETTE = ["#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F", "#EDC948", "#B07AA1",
                 "#FF9DA7", "#9C755F", "#BAB0AC"]  # fmt: skip


def _fit(points, x0: float, y0: float, size: float, pad: float = 6.0):
    """(N, 2) points (y up) -> their pixel x and y in the square [x0, x0 + size] x
    [y0, y0 + size] (y down), keeping the aspect ratio."""
    pts = np.asarray(points, dtype=float).reshape(-1, 2)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    scale = (size - 2 * pad) / max(float((hi - lo).max()), 1e-9)
    mid = (lo + hi) / 2
    return (x0 + size / 2 + (pts[:, 0] - mid[0]) * scale,
            y0 + size / 2 - (pts[:, 1] - mid[1]) * scale)  # fmt: skip


def scatter_panels(title: str, panels: list) -> str:
    """Panels side by side, each (name, xy (N, 2), labels (N,)): points coloured by label."""
    size, top, gap = 300, 40, 20
    labels = sorted({int(v) for _, _, lab in panels for v in lab})
    w, h = len(panels) * (size + gap) + gap + 90, top + size + 20
    out = _frame(w, h, title)
    for i, (name, xy, lab) in enumerate(panels):
        x0 = gap + i * (size + gap)
        out += [
            f'<rect x="{x0}" y="{top}" width="{size}" height="{size}" fill="none" stroke="#ccc"/>',
            f'<text x="{x0 + size / 2}" y="{top - 6}" text-anchor="middle">{escape(name)}</text>',
        ]
        px, py = _fit(xy, x0, top, size)
        for x, y, v in zip(px, py, lab):
            c = CLASS_PALETTE[labels.index(int(v)) % len(CLASS_PALETTE)]
            out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{c}"/>')
    lx = gap + len(panels) * (size + gap)
    for k, v in enumerate(labels):
        c, yy = CLASS_PALETTE[k % len(CLASS_PALETTE)], top + 10 + 15 * k
        out += [f'<circle cx="{lx + 5}" cy="{yy - 4}" r="4" fill="{c}"/>',
                f'<text x="{lx + 14}" y="{yy}">class {v}</text>']  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)


def skeleton_panels(title: str, rows: list, edges, joint_sizes: list | None = None) -> str:
    """Rows of stick figures, each (name, frames (T, V, 2), y up), one figure per frame, on
    one scale for the whole drawing; `joint_sizes` (one (V,) array in [0, 1] per row) draws
    every joint as a circle of that relative radius."""
    cell, top, label_w = 110, 30, 150
    cols = max(len(f) for _, f in rows)
    w, h = label_w + cols * cell + 10, top + len(rows) * cell + 10
    out = _frame(w, h, title)
    every = np.concatenate([np.asarray(f, dtype=float).reshape(-1, 2) for _, f in rows])
    span = max(float((every.max(axis=0) - every.min(axis=0)).max()), 1e-9)
    for r, (name, frames) in enumerate(rows):
        y0 = top + r * cell
        out.append(f'<text x="6" y="{y0 + cell / 2:.0f}">{escape(name)}</text>')
        for k, pose in enumerate(np.asarray(frames, dtype=float)):
            x0 = label_w + k * cell
            mid = (pose.max(axis=0) + pose.min(axis=0)) / 2
            px = x0 + cell / 2 + (pose[:, 0] - mid[0]) * (cell - 12) / span
            py = y0 + cell / 2 - (pose[:, 1] - mid[1]) * (cell - 12) / span
            for i, j in edges:
                out.append(f'<line x1="{px[i]:.1f}" y1="{py[i]:.1f}" x2="{px[j]:.1f}" '
                           f'y2="{py[j]:.1f}" stroke="{PALETTE[r % len(PALETTE)]}" '
                           f'stroke-width="1.5"/>')  # fmt: skip
            if joint_sizes is not None:
                for x, y, m in zip(px, py, joint_sizes[r]):
                    out.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{1 + 7 * float(m):.1f}" '
                               f'fill="#D55E00" fill-opacity="0.55"/>')  # fmt: skip
    out.append("</svg>")
    return "\n".join(out)
