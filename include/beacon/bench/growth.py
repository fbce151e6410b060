"""Does a day's cost follow that day's data or the history? (issue 28, "Growth").

From the JSON of `beacon bench pipeline --days D`: per day the new rows, the rows accumulated so far, the seconds and
CPU seconds; two least-squares slopes over days 2..D (day 1 is the initial load, not a normal day): seconds per
million NEW rows of the day, and seconds per million rows of HISTORY. A run whose cost tracks the history shows a
history slope that explains the days' differences; a flat run shows a slope near zero (scipy's linregress gives the
slope's standard error, so "near zero" is judged against its own noise). And a chart: the stages' seconds stacked
per day beside the history, an SVG for docs/benchmarks.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from beacon.bench.pipeline_days import STAGES


def growth_rows(d: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per day: new rows (generated that day), history (generated up to and including it), cost."""
    rows, history = [], 0
    for x in d["per_day"]:
        history += int(x.get("generated_rows") or 0)
        rows.append({"day": x["day"], "new_rows": int(x.get("generated_rows") or 0), "history_rows": history,
                     "seconds": x["seconds"], "cpu_seconds": x["cpu_seconds"],
                     "trained": bool(x.get("trained"))})
    return rows


def _slope(xs: list[float], ys: list[float]) -> dict[str, float] | None:
    from scipy.stats import linregress

    if len(xs) < 3 or len(set(xs)) < 2:  # a slope through two points has no error to judge it by
        return None
    fit = linregress(xs, ys)
    return {"per_million": round(fit.slope * 1e6, 3), "stderr_per_million": round(fit.stderr * 1e6, 3),
            "r": round(float(fit.rvalue), 3)}


def growth_summary(d: dict[str, Any]) -> dict[str, Any]:
    """The slopes of a normal day's cost (days 2..D, excluding days that trained models) against the day's new
    rows and against the history; None where fewer than three such days exist."""
    normal = [r for r in growth_rows(d)[1:] if not r["trained"]]
    return {"days": [r["day"] for r in normal],
            "seconds_vs_new_rows": _slope([r["new_rows"] for r in normal], [r["seconds"] for r in normal]),
            "seconds_vs_history_rows": _slope([r["history_rows"] for r in normal], [r["seconds"] for r in normal]),
            "cpu_vs_history_rows": _slope([r["history_rows"] for r in normal], [r["cpu_seconds"] for r in normal])}


def write_chart(d: dict[str, Any], path: Path) -> Path:
    """Stacked seconds per stage for each day, and the history's rows on a second axis (SVG, no timestamps in
    the file so a redraw of the same figures is byte-identical)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    days = d["per_day"]
    labels = [f"day {x['day']}" + (" (trained)" if x.get("trained") else "") for x in days]
    fig, ax = plt.subplots(figsize=(8, 4.8))
    bottom = [0.0] * len(days)
    for name in STAGES:
        sec = [next((s["seconds"] for s in x["stages"] if s["stage"] == name), 0.0) or 0.0 for x in days]
        if any(sec):
            ax.bar(labels, sec, bottom=bottom, label=name)
            bottom = [b + v for b, v in zip(bottom, sec, strict=True)]
    ax.set_ylabel("seconds")
    ax.set_title(f"Daily run, {d['people']:,} people: seconds per stage, and the history")
    ax.tick_params(axis="x", labelrotation=30)
    history = ax.twinx()
    history.plot(labels, [r["history_rows"] / 1e6 for r in growth_rows(d)], color="black", marker="o",
                 label="rows so far (M)")
    history.set_ylabel("rows generated so far (millions)")
    history.set_ylim(0, max(r["history_rows"] for r in growth_rows(d)) / 1e6 * 1.15)
    ax.set_ylim(0, max(bottom) * 1.15)
    handles = ax.get_legend_handles_labels()[0] + history.get_legend_handles_labels()[0]
    fig.legend(handles=handles, fontsize=7, loc="lower center", ncol=5, frameon=False)
    fig.subplots_adjust(bottom=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    with plt.rc_context({"svg.hashsalt": "beacon"}):  # fixed ids in the SVG, without changing the process's rc
        fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)
    return path
