"""The HTML model report written on every training run: metrics, ROC, gains and lift, calibration, feature
importance, drift and fairness per model, with the charts embedded as PNG images (one self-contained file)."""

from __future__ import annotations

import base64
import html
import io
import json
from datetime import datetime
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display on servers and workers
import matplotlib.pyplot as plt  # noqa: E402

TITLES = {"lead_score": "Lead conversion (30 days)", "churn": "Churn of past buyers (90 days)",
          "ltv": "Lifetime value (12-month revenue)"}


def _png(fig) -> str:
    """A figure as an <img> tag with the PNG inline."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return f'<img alt="chart" src="data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}">'


def _table(rows: list[dict], columns: list[str] | None = None) -> str:
    """A list of dicts as an HTML table."""
    if not rows:
        return "<p><em>none</em></p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in columns)

    def cell(v) -> str:
        if isinstance(v, float):
            v = f"{v:,.4f}"
        cls = ' class="bad"' if v in ("alert", True) else ' class="warn"' if v == "warn" else ""
        return f"<td{cls}>{html.escape(str(v))}</td>"

    body = "".join("<tr>" + "".join(cell(r.get(c)) for c in columns) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def _charts(m: dict) -> str:
    """ROC (classifiers), gains and lift, calibration and feature importance for one model."""
    out = []
    hold = m.get("holdout", {})
    if m["kind"] == "binary" and hold.get("roc_curve"):
        fig, ax = plt.subplots(figsize=(4, 4))
        ax.plot(hold["roc_curve"]["fpr"], hold["roc_curve"]["tpr"], label=f"AUC {m['metrics'].get('roc_auc')}")
        ax.plot([0, 1], [0, 1], "--", color="grey")
        ax.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC curve (holdout)")
        ax.legend(loc="lower right")
        out.append(_png(fig))
    gains = hold.get("gains") or []
    if gains:
        fig, ax = plt.subplots(figsize=(5, 4))
        x = [g["decile"] for g in gains]
        ax.bar(x, [g["lift"] or 0 for g in gains], color="#8fb3d9", label="lift")
        ax.set(xlabel="score decile (1 = highest)", ylabel="lift over average", title="Gains and lift (holdout)")
        ax2 = ax.twinx()
        ax2.plot(x, [g["cumulative_gain"] or 0 for g in gains], "o-", color="#d9534f", label="cumulative gain")
        ax2.plot(x, [k / 10 for k in x], "--", color="grey")
        ax2.set(ylabel="cumulative share captured", ylim=(0, 1.05))
        out.append(_png(fig))
    cal = hold.get("calibration") or []
    if cal:
        fig, ax = plt.subplots(figsize=(4, 4))
        pred, obs = [c["predicted"] for c in cal], [c["observed"] for c in cal]
        ax.plot(pred, obs, "o-")
        hi = max(pred + obs) if pred else 1
        ax.plot([0, hi], [0, hi], "--", color="grey")
        unit = "rate" if m["kind"] == "binary" else "revenue"
        ax.set(xlabel=f"mean predicted {unit}", ylabel=f"observed {unit}", title="Calibration (holdout)")
        out.append(_png(fig))
    imp = sorted((m.get("importance_gain") or {}).items(), key=lambda kv: kv[1])[-15:]
    if imp:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.barh([k for k, _ in imp], [v for _, v in imp], color="#5cb85c")
        ax.set(xlabel="total gain", title="Feature importance")
        out.append(_png(fig))
    return "".join(out)


def _section(m: dict) -> str:
    """One model's part of the report."""
    d = m.get("decision", {})
    status = "promoted to champion" if d.get("promote") else "registered as challenger (champion kept)"
    if d.get("promote") is False and d.get("champion_before") == m["version"]:
        status = "unchanged champion"
    summary = {"version": m["version"], "champion now": m.get("champion"), "decision": f"{status}: {d.get('reason')}",
               "target": m["target"], "population": m["population"],
               "training window": json.dumps(m["training_window"]), "holdout window": json.dumps(m["holdout_window"]),
               "label days": f"{m['label_days']}" + (" (annualized to 12 months)" if m.get("annualized") else ""),
               "train rows": m["train_rows"], "holdout rows": m["valid_rows"],
               "rounds (early stopping)": m["best_iteration"], "calibration": json.dumps(m["calibration"]),
               "data fingerprint": m["data_fingerprint"][:16], "libraries": json.dumps(m["libraries"])}
    parts = [f"<h2>{html.escape(TITLES.get(m['model'], m['model']))} <small>{html.escape(m['model'])}</small></h2>",
             _table([{"what": k, "value": v} for k, v in summary.items()]),
             "<h3>Holdout metrics</h3>", _table([m["metrics"]]),
             "<h3>Gains and lift by decile</h3>",
             _table(m.get("holdout", {}).get("gains") or [],
                    ["decile", "n", "mean_score", "actual_mean", "lift", "cumulative_gain"]),
             "<div class='charts'>", _charts(m), "</div>"]
    if "drift" in m:
        parts += [f"<h3>Drift: today's population against training (score PSI {m.get('score_psi')})</h3>",
                  _table(m["drift"], ["name", "psi", "state"])]
    fair = m.get("fairness")
    if fair:
        parts.append(f"<h3>Fairness: selection = {html.escape(fair['selected'])}; {html.escape(fair['rule'])}</h3>")
        for attr, a in fair["attributes"].items():
            parts += [f"<h4>{html.escape(attr)} — flagged: {html.escape(', '.join(a['flagged']) or 'none')}</h4>",
                      _table(a["groups"])]
    return "\n".join(parts)


def render(results: list[dict], as_of, failed: dict | None = None) -> str:
    """The report as one HTML document."""
    style = ("body{font-family:sans-serif;margin:2em;max-width:1200px}table{border-collapse:collapse;margin:.5em 0}"
             "td,th{border:1px solid #ccc;padding:2px 6px;font-size:13px;text-align:left}.bad{background:#f2dede}"
             ".warn{background:#fcf8e3}.charts img{margin:4px;border:1px solid #eee}")
    failed_html = "".join(f"<p class='bad'>{html.escape(k)} not trained: {html.escape(v)}</p>"
                          for k, v in (failed or {}).items())
    body = "\n".join(_section(m) for m in results)
    return (f"<!doctype html><html><head><meta charset='utf-8'><title>Beacon model report {as_of}</title>"
            f"<style>{style}</style></head><body><h1>Beacon model report</h1><p>Warehouse as of {html.escape(str(as_of))}"
            f"; models trained: {len(results)}.</p>{failed_html}{body}</body></html>")


def write_report(results: list[dict], folder: Path, as_of, failed: dict | None = None) -> Path:
    """Write report-<as_of>-<versions>.html and latest.html into `folder`; return the run's file."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    text = render(results, as_of, failed)
    stamp = as_of.strftime("%Y%m%d") if isinstance(as_of, datetime) else str(as_of)[:10].replace("-", "")
    tag = "-".join(m["version"].split("-")[-1] for m in results) or "none"
    path = folder / f"report-{stamp}-{tag}.html"
    path.write_text(text)
    (folder / "latest.html").write_text(text)
    return path
