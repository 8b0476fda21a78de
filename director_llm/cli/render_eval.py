"""Rich tables and the matplotlib plot of ``director-llm eval`` (see ``director_llm.evalrun``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table


def _pct(v: float | None) -> str:
    return "-" if v is None else f"{v:.1%}"


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def render_report(console: Console, out: dict[str, Any]) -> None:
    """The headline table, one row per tier (and cascade), the confusions and suggestions."""
    sim = " [yellow](SIMULATED remote tiers)[/]" if out.get("simulated") else ""
    for note in out.get("notes", []):
        console.print(f"[dim]note: {note}[/]", highlight=False)
    table = Table(title=f"director-llm eval: {out['n']} messages, mode {out['mode']}{sim}")
    for col in (
        "tier",
        "threshold",
        "accuracy",
        "in-scope acc",
        "OOS recall",
        "macro-F1",
        "escalated",
        "p50 ms",
        "p99 ms",
        "$ / 1k req",
    ):
        table.add_column(col, justify="left" if col == "tier" else "right")
    if "local" in out:
        lo = out["local"]
        table.add_row(
            "local",
            f"{lo['threshold']:.2f}",
            _pct(lo["accuracy"]),
            _pct(lo["in_scope_accuracy"]),
            _pct(lo["oos_recall"]),
            f"{lo['macro_f1']:.3f}",
            _pct(lo["escalation_rate"]),
            _ms(lo["p50_ms"]),
            _ms(lo["p99_ms"]),
            "$0.0000",
        )
    for group, t in out["tiers"].items():
        table.add_row(
            group,
            "-",
            _pct(t["accuracy"]),
            _pct(t["in_scope_accuracy"]),
            _pct(t["oos_recall"]),
            f"{t['macro_f1']:.3f}",
            "-",
            _ms(t["p50_ms"]),
            _ms(t["p99_ms"]),
            f"${t['cost_per_1k']:.4f}",
        )
    h = out["headline"]
    for group, c in (out.get("cascade_at_threshold") or {}).items():
        f1 = f"{h['macro_f1']:.3f}" if group == h.get("group") else "-"
        table.add_row(
            f"[bold]cascade -> {group}[/]",
            f"{c['threshold']:.2f}",
            _pct(c["accuracy"]),
            _pct(c["in_scope_accuracy"]),
            _pct(c["oos_recall"]),
            f1,
            _pct(c["escalation_rate"]),
            _ms(c["p50_ms"]),
            _ms(c["p99_ms"]),
            f"${c['cost_per_1k']:.4f}",
        )
    console.print(table)
    confusions = h.get("top_confusions") or []
    if confusions:
        ct = Table(title=f"top confusions ({out['mode']})")
        for col in ("gold", "predicted", "count"):
            ct.add_column(col, justify="right" if col == "count" else "left")
        for gold, pred, n in confusions[:8]:
            ct.add_row(gold, pred, str(n))
        console.print(ct)
    render_suggestions(console, out)


def render_suggestions(console: Console, out: dict[str, Any]) -> None:
    s = out.get("suggestions") or {}
    v = out.get("validation")
    if not v:
        console.print(
            "no thresholds recommended: there is no validation part (--validation-share 0), and a "
            "threshold is never chosen on the messages it is reported on",
            highlight=False,
        )
        return
    console.print(
        f"recommended from the validation part ({v['n']} messages, {v['oos']} out of scope; none of "
        f"them in the numbers above):",
        highlight=False,
    )
    if s.get("local_confidence_threshold") is not None:
        console.print(
            f"  intents.confidence_threshold = [bold]{s['local_confidence_threshold']:.2f}[/] "
            "(best in-scope accuracy at out-of-scope recall >= 0.90 when the set has out-of-scope "
            "messages, else best accuracy)",
            highlight=False,
        )
    for key, v in s.items():
        if not key.startswith("escalate_below:"):
            continue
        group = key.split(":", 1)[1]
        if v["threshold"] is None:
            console.print(
                f"  cascade -> {group}: no threshold matches always-{group}'s accuracy ({_pct(v['always_accuracy'])})",
                highlight=False,
            )
            continue
        cut = "-" if v["cost_cut"] is None else f"{v['cost_cut']:.0%}"
        console.print(
            f"  cascade -> {group}: intents.tier_thresholds.local = [bold]{v['threshold']:.2f}[/] costs "
            f"${v['cascade_cost_per_1k']:.4f}/1k vs ${v['always_cost_per_1k']:.4f}/1k always ({cut} less) "
            f"at accuracy {_pct(v['cascade_accuracy'])} vs {_pct(v['always_accuracy'])}",
            highlight=False,
        )


def plot(out: dict[str, Any], path: Path) -> tuple[Path | None, str | None]:
    """Accuracy vs cost per 1,000 requests across thresholds (cascade curves, always-remote
    points) or, without remote tiers, accuracy / in-scope / OOS recall vs the local threshold.
    Returns (path, None), or (None, why) when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None, "matplotlib is not installed (pip install 'director-llm[test]' or matplotlib) - no plot written"
    fig, ax = plt.subplots(figsize=(7, 4.5), dpi=110)
    sim = " (simulated remote tiers)" if out.get("simulated") else ""
    if out.get("cascade"):
        for group, points in out["cascade"].items():
            xs = [p["cost_per_1k"] for p in points]
            ys = [p["accuracy"] for p in points]
            ax.plot(xs, ys, marker="o", markersize=3, label=f"cascade local -> {group}")
            for p in points[::4]:
                ax.annotate(
                    f"{p['threshold']:.2f}",
                    (p["cost_per_1k"], p["accuracy"]),
                    fontsize=7,
                    textcoords="offset points",
                    xytext=(3, -9),
                )
            t = out["tiers"][group]
            ax.scatter([t["cost_per_1k"]], [t["accuracy"]], marker="*", s=120, zorder=3, label=f"always {group}")
        ax.set_xlabel("USD per 1,000 classifications")
        ax.set_ylabel("accuracy")
        ax.set_title(f"Accuracy vs cost across escalation thresholds{sim}")
    elif "local" in out:
        sweep = out["local"]["sweep"]
        xs = [r["threshold"] for r in sweep]
        ax.plot(xs, [r["accuracy"] for r in sweep], label="accuracy")
        ax.plot(xs, [r["in_scope_accuracy"] for r in sweep], label="in-scope accuracy")
        if sweep and sweep[0]["oos_recall"] is not None:
            ax.plot(xs, [r["oos_recall"] for r in sweep], label="out-of-scope recall")
        ax.axvline(out["local"]["threshold"], color="grey", linestyle=":", label="threshold")
        ax.set_xlabel("local confidence threshold (cost: $0)")
        ax.set_ylabel("share")
        ax.set_title("Local tier across thresholds")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path, None
