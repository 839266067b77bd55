"""Paper Figure 4: MOS per aspect and system with error bars, as an interactive plotly figure.

Up to three panels, top to bottom: generation, retrieval (every stimulus of
a system, group 'all'), and top vs bottom stimuli per system (lighter bars:
top, darker: bottom); only the panels of the tasks analysed are drawn (a
generation-only study has no retrieval panel; top vs bottom exists only in
the generation design). Error bars are the MOS table's confidence interval.
Written as a self-contained ``figure4.html`` (plotly.js embedded, so it
opens offline), as ``figure4.json`` (the plotly figure, which the analysis
page draws inline), and as PNG/SVG where the kaleido package is installed.
Every file is written atomically.

No Django here.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
from plotly.colors import qualitative
from plotly.subplots import make_subplots

from analysis.errors import FigureError
from analysis.exports import write_atomic
from analysis.ratings import ASPECTS

PANELS: tuple[tuple[str, str], ...] = (
    ("generation", "Generation task"),
    ("retrieval", "Retrieval task"),
    ("top_vs_bottom", "Top (lighter) vs bottom (darker) stimuli"),
)


def kaleido_available() -> bool:
    """Whether static image export (PNG/SVG) is possible: plotly needs the kaleido package."""
    return importlib.util.find_spec("kaleido") is not None


def _shade(hex_colour: str, *, factor: float) -> str:
    """Lighten (factor > 0, towards white) or darken (factor < 0, towards black) an #rrggbb colour."""
    rgb = np.array([int(hex_colour[i:i + 2], 16) for i in (1, 3, 5)], dtype=float)
    target = 255.0 if factor > 0 else 0.0
    mixed = rgb + (target - rgb) * abs(factor)
    return "#" + "".join(f"{int(round(c)):02x}" for c in mixed)


def _bars(part: pd.DataFrame, *, name: str, colour: str, show_legend: bool, legend_group: str) -> go.Bar:
    part = part.set_index("aspect").reindex([a for a in ASPECTS if a in set(part["aspect"])])
    mos = part["mos"].to_numpy(dtype=float)
    return go.Bar(
        x=[a.capitalize() for a in part.index],
        y=mos,
        name=name,
        legendgroup=legend_group,
        showlegend=show_legend,
        marker_color=colour,
        error_y={
            "type": "data",
            "symmetric": False,
            "array": np.nan_to_num(part["ci_high"].to_numpy(dtype=float) - mos),
            "arrayminus": np.nan_to_num(mos - part["ci_low"].to_numpy(dtype=float)),
        },
        customdata=np.stack([part["n_stimuli"].to_numpy(), part["ci_low"], part["ci_high"]], axis=1),
        hovertemplate=(name + "<br>%{x}: MOS %{y:.2f}<br>CI [%{customdata[1]:.2f}, "
                       "%{customdata[2]:.2f}]<br>n = %{customdata[0]}<extra></extra>"),
    )


def panels_for(mos: pd.DataFrame, tasks: Iterable[str] | None = None) -> list[tuple[str, str]]:
    """The (panel, title) pairs to draw: one per task (default: the tasks in ``mos``), then top vs bottom.

    Top vs bottom is drawn when generation is among the tasks or the table
    has top/bottom rows, since only the generation design has those groups.
    """
    wanted = set(mos["task"]) if tasks is None else set(tasks)
    has_groups = bool(mos["group"].isin(["top", "bottom"]).any()) if len(mos) else False
    return [(panel, title) for panel, title in PANELS
            if panel in wanted or (panel == "top_vs_bottom" and ("generation" in wanted or has_groups))]


def figure4(mos: pd.DataFrame, *, original_system: str = "original",
            tasks: Iterable[str] | None = None) -> go.Figure:
    """Build the MOS bar chart from a MOS table (analysis.tables.MOS_COLUMNS), one panel per task.

    ``tasks``: the tasks to draw (default: those in ``mos``); see
    :func:`panels_for`. Systems keep one colour across panels, the original
    first. A panel with no data says so instead of staying blank.
    """
    needed = {"task", "system", "group", "aspect", "mos", "ci_low", "ci_high", "n_stimuli"}
    missing = needed - set(mos.columns)
    if missing:
        raise FigureError(f"the MOS table lacks column(s) {', '.join(sorted(missing))}.")
    panels = panels_for(mos, tasks)
    if not panels:
        raise FigureError("no task to draw: the MOS table is empty and no task was given.")
    systems = sorted(mos["system"].unique(), key=lambda s: (s != original_system, s))
    palette = qualitative.Plotly + qualitative.D3
    colour = {s: palette[i % len(palette)] for i, s in enumerate(systems)}
    fig = make_subplots(rows=len(panels), cols=1, subplot_titles=[t for _, t in panels],
                        vertical_spacing=0.24 / len(panels))
    shown: set[str] = set()
    for row, (panel, _) in enumerate(panels, start=1):
        if panel == "top_vs_bottom":
            data = mos[mos["group"].isin(["top", "bottom"])]
        else:
            data = mos[(mos["task"] == panel) & (mos["group"] == "all")]
        if data.empty:
            fig.add_annotation(text="no ratings for this panel", showarrow=False, row=row, col=1,
                               xref="x domain", yref="y domain", x=0.5, y=0.5)
            continue
        for system in [s for s in systems if s in set(data["system"])]:
            mine = data[data["system"] == system]
            if panel == "top_vs_bottom":
                for group, factor in (("top", 0.45), ("bottom", -0.25)):
                    part = mine[mine["group"] == group]
                    if part.empty:
                        continue
                    label = f"{system} ({part['task'].iloc[0]}, {group})"
                    fig.add_trace(_bars(part, name=label, colour=_shade(colour[system], factor=factor),
                                        show_legend=False, legend_group=system), row=row, col=1)
            else:
                fig.add_trace(_bars(mine, name=system, colour=colour[system],
                                    show_legend=system not in shown, legend_group=system), row=row, col=1)
                shown.add(system)
        fig.update_yaxes(title_text="MOS", range=[1, 5.2], row=row, col=1)
    fig.update_layout(
        barmode="group",
        height=150 + 270 * len(panels),
        title_text="MOS per aspect and system (mean of per-stimulus medians, 95 % Student-t CI)",
        legend_title_text="System",
        template="plotly_white",
    )
    return fig


def write_figure(
    fig: go.Figure, out_dir: Path, *, stem: str = "figure4", static: bool = True
) -> tuple[list[Path], list[str]]:
    """Write ``stem``.html (plotly.js embedded), ``stem``.json (the figure) and, with kaleido, .png and .svg.

    Returns the paths written and the problems met on the way: a static
    export that kaleido cannot do is reported, not fatal, since the HTML
    figure carries the same content. Each file appears whole or not at all.
    """
    out_dir = Path(out_dir)
    html = write_atomic(out_dir / f"{stem}.html", fig.to_html(include_plotlyjs=True, full_html=True))
    spec = write_atomic(out_dir / f"{stem}.json", fig.to_json())
    written, problems = [html, spec], []
    if static and kaleido_available():
        for ext in ("png", "svg"):
            path = out_dir / f"{stem}.{ext}"
            tmp = out_dir / f".{stem}.tmp.{ext}"
            try:
                fig.write_image(tmp, format=ext)
                os.replace(tmp, path)
            except Exception as exc:  # kaleido may lack its browser engine; any failure is only reported
                tmp.unlink(missing_ok=True)
                problems.append(f"kaleido is installed but could not write {path.name}: {exc}")
            else:
                written.append(path)
    return written, problems

