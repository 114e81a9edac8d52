"""The benchmark's report: targets judged from the figures, one table, reports/bench.json and a PNG.

Kept apart from the measuring (omt.bench.bench) so that it can be tested on a small run, and
so that a target is judged in one place from the same numbers that the JSON holds.
A target whose figure was not measured (no reference, a quick run's short conversation)
is reported as "n/a", never as a pass.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any, Sequence

WEBHOOK_P50_MS = 30.0
MIN_REPLIES_PER_S = 60.0
MAX_P95_MS = 300.0
MAX_LONG_RATIO = 1.5
MIN_REFERENCE_RATIO = 0.7


def level_line(level: dict[str, Any]) -> str:
    """`replies/s, p50, p95, errors` of one level, for progress lines and the table."""
    rate, p50, p95 = level["replies_per_s"], _ms(level["p50_ms"]), _ms(level["p95_ms"])
    return f"{rate:7.1f}/s  p50 {p50}  p95 {p95}  errors {level['errors']}"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} ms"


def long_figures(long: dict[str, Any]) -> dict[str, Any]:
    """Turn 1 and the last turn of the long conversation, each also as the median of a window of ten turns.

    The windows make the ratio robust to one slow request on a busy machine; turn 1 alone
    also pays for starting the session.
    """
    lat: list[float] = long.get("latencies_ms") or []
    if not lat:
        return {}
    window = max(1, min(10, len(lat) // 4))
    first, last = statistics.median(lat[:window]), statistics.median(lat[-window:])
    return {
        "turn_first_ms": lat[0],
        "turn_last_ms": lat[-1],
        "window": window,
        "first_window_p50_ms": round(first, 2),
        "last_window_p50_ms": round(last, 2),
        "last_over_first": round(last / first, 3) if first else None,
    }


def peak_level(levels: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The level with the most replies per second."""
    return max(levels, key=lambda lv: lv["replies_per_s"], default=None)


def best_level(levels: Sequence[dict[str, Any]]) -> dict[str, Any] | None:
    """The level with the most replies/s among those with p95 within the target; else the most loaded level."""
    within = [lv for lv in levels if lv["p95_ms"] is not None and lv["p95_ms"] <= MAX_P95_MS]
    return peak_level(within) if within else (levels[-1] if levels else None)


def total_errors(results: dict[str, Any]) -> int:
    """Errors over every run of every system (single-user, levels, long conversation, cluster)."""
    total = 0
    for name in ("ours", "reference"):
        system = results.get(name) or {}
        for key in ("single_webhook", "single_parse"):
            total += (system.get(key) or {}).get("errors", 0)
        total += sum(lv["errors"] for lv in system.get("levels") or [])
        total += (system.get("long") or {}).get("errors", 0)
    total += ((results.get("cluster") or {}).get("level") or {}).get("errors", 0)
    return total


def _target(key: str, name: str, figure: str, target: str, passed: bool | None) -> dict[str, Any]:
    return {"id": key, "name": name, "figure": figure, "target": target, "pass": passed}


def targets(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with its figure and PASS (True), FAIL (False) or n/a (None: not measured)."""
    ours, ref = results["ours"], results.get("reference") or {}
    out = []
    p50 = ours["single_webhook"]["p50_ms"]
    ok = p50 is not None and p50 <= WEBHOOK_P50_MS
    out.append(_target("webhook_p50", "single-user webhook p50", _ms(p50), f"<= {WEBHOOK_P50_MS:.0f} ms", ok))
    best = best_level(ours["levels"])
    if best is not None:
        ok = best["replies_per_s"] >= MIN_REPLIES_PER_S and best["p95_ms"] is not None and best["p95_ms"] <= MAX_P95_MS
        figure = f"{best['replies_per_s']:.1f}/s, p95 {_ms(best['p95_ms'])} at {best['users']} users"
        goal = f">= {MIN_REPLIES_PER_S:.0f}/s, p95 <= {MAX_P95_MS:.0f} ms"
        out.append(_target("throughput", "best level, single stack", figure, goal, ok))
    long = long_figures(ours.get("long") or {})
    if long:
        turns, ratio = ours["long"]["turns"], long["last_over_first"]
        figure = f"x{ratio} ({long['first_window_p50_ms']:.1f} -> {long['last_window_p50_ms']:.1f} ms)"
        passed = None if turns < 100 or ratio is None else ratio <= MAX_LONG_RATIO
        name = f"turn {turns} vs turn 1 (p50 of {long['window']} turns)"
        out.append(_target("long_conversation", name, figure, f"<= x{MAX_LONG_RATIO}", passed))
    ours_peak, ref_peak = peak_level(ours["levels"]), peak_level(ref.get("levels") or [])
    name, goal = "peak replies/s vs reference bot", f">= x{MIN_REFERENCE_RATIO}"
    if ours_peak and ref_peak and ref_peak["replies_per_s"]:
        ratio = ours_peak["replies_per_s"] / ref_peak["replies_per_s"]
        figure = f"x{ratio:.2f} ({ours_peak['replies_per_s']:.1f} vs {ref_peak['replies_per_s']:.1f}/s)"
        out.append(_target("vs_reference", name, figure, goal, ratio >= MIN_REFERENCE_RATIO))
    else:
        out.append(_target("vs_reference", name, "not measured", goal, None))
    errors = total_errors(results)
    out.append(_target("errors", "errors, all runs", str(errors), "0", errors == 0))
    return out


def _pair(level: dict[str, Any] | None) -> str:
    if not level:
        return "-"
    return f"{level['replies_per_s']:.1f}/s p95 {_ms(level['p95_ms'])} e{level['errors']}"


def _ratio(a: float | None, b: float | None) -> str:
    return f"x{a / b:.2f}" if a is not None and b else "-"


def _rss(system: dict[str, Any], key: str) -> str:
    rss = system.get(key) or {}
    return " / ".join(f"{rss[p]:.0f}" for p in ("rasa", "actions") if p in rss) or "-"


def _p50_p95(run: dict[str, Any] | None) -> str:
    return f"{_ms(run.get('p50_ms'))} / {_ms(run.get('p95_ms'))}" if run else "-"


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str, str]]:
    """(what, ours, reference, ratio, target id) for every line of the table."""
    ours, ref, cluster = results["ours"], results.get("reference") or {}, results.get("cluster") or {}
    rows = [
        ("train from scratch (s)", str(ours.get("train_s", "-")), str(ref.get("train_s") or "-"),
         _ratio(ours.get("train_s"), ref.get("train_s")), ""),
        ("start-up to first answer (s)", str(ours["startup_s"]), str(ref.get("startup_s", "-")),
         _ratio(ours["startup_s"], ref.get("startup_s")), ""),
        ("RSS rasa / actions, start (MB)", _rss(ours, "rss_start_mb"), _rss(ref, "rss_start_mb"), "", ""),
        ("RSS rasa / actions, after load (MB)", _rss(ours, "rss_end_mb"), _rss(ref, "rss_end_mb"), "", ""),
    ]  # fmt: skip
    for key, label, target in (("single_webhook", "webhook", "webhook_p50"), ("single_parse", "/model/parse", "")):
        a, b = ours.get(key) or {}, ref.get(key) or {}
        rows.append(
            (f"1 user {label} p50 / p95", _p50_p95(a), _p50_p95(b), _ratio(a.get("p50_ms"), b.get("p50_ms")), target)
        )
    hook, parse = ours["single_webhook"].get("p50_ms"), (ours.get("single_parse") or {}).get("p50_ms")
    ref_hook, ref_parse = (ref.get("single_webhook") or {}).get("p50_ms"), (ref.get("single_parse") or {}).get("p50_ms")
    rows.append(("webhook p50 / parse p50", _ratio(hook, parse), _ratio(ref_hook, ref_parse), "", ""))
    ref_levels = {lv["users"]: lv for lv in ref.get("levels") or []}
    for level in ours["levels"]:
        other = ref_levels.get(level["users"])
        ratio = _ratio(level["replies_per_s"], (other or {}).get("replies_per_s"))
        rows.append((f"{level['users']} users: replies/s, p95, errors", _pair(level), _pair(other), ratio, ""))
    rows.append(("  best level, single stack", "", "", "", "throughput"))
    rows.append(("  peak replies/s vs reference", "", "", "", "vs_reference"))
    rows.append(("long conversation", "", "", "", "long_conversation"))
    if "level" in cluster:
        level = cluster["level"]
        single = next((lv for lv in ours["levels"] if lv["users"] == level["users"]), None)
        ratio = _ratio(level["replies_per_s"], (single or {}).get("replies_per_s"))
        what = f"cluster ({cluster.get('replicas', '?')} replicas, nginx), {level['users']} users"
        rows.append((what, _pair(level), "", f"{ratio} vs single", ""))
    else:
        rows.append(("cluster", f"skipped: {cluster.get('skipped', '-')}", "", "", ""))
    rows.append(("errors, all runs", "", "", "", "errors"))
    return rows


def table(results: dict[str, Any]) -> str:
    """One table: what, ours, reference, ratio, target, result (PASS, FAIL or n/a)."""
    verdicts = {t["id"]: t for t in results.get("targets") or targets(results)}
    lines: list[tuple[str, ...]] = [("what", "ours", "reference", "ratio", "target", "result")]
    for what, ours, ref, ratio, key in _rows(results):
        t = verdicts.get(key)
        if t is None:
            lines.append((what, ours, ref, ratio, "", ""))
            continue
        result = {True: "PASS", False: "FAIL", None: "n/a"}[t["pass"]]
        if key == "webhook_p50":
            lines.append((what, ours, ref, ratio, t["target"], result))
        elif key == "vs_reference":
            lines.append((what, "", "", t["figure"], t["target"], result))
        else:
            lines.append((t["name"] if key == "long_conversation" else what, t["figure"], "", "", t["target"], result))
    widths = [max(len(line[i]) for line in lines) for i in range(6)]
    out = ["  ".join(cell.ljust(w) for cell, w in zip(lines[0], widths, strict=True))]
    out.append("  ".join("-" * w for w in widths))
    out += ["  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip() for line in lines[1:]]
    return "\n".join(out)


def plot(results: dict[str, Any], path: Path) -> None:
    """Latency (p50, p95) and replies/s against users, ours and reference (and the cluster); latency per long turn."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_lat, ax_rps, ax_long) = plt.subplots(1, 3, figsize=(15, 4.5))
    series = [
        ("ours", results["ours"], "tab:blue"),
        ("reference (rasa init)", results.get("reference") or {}, "tab:gray"),
    ]
    for label, system, color in series:
        levels = system.get("levels") or []
        if not levels:
            continue
        users = [lv["users"] for lv in levels]
        ax_lat.plot(users, [lv["p50_ms"] for lv in levels], "o-", color=color, label=f"{label} p50")
        ax_lat.plot(users, [lv["p95_ms"] for lv in levels], "s--", color=color, label=f"{label} p95")
        ax_rps.plot(users, [lv["replies_per_s"] for lv in levels], "o-", color=color, label=label)
    cluster = (results.get("cluster") or {}).get("level")
    if cluster:
        ax_lat.plot([cluster["users"]], [cluster["p95_ms"]], "r^", label="cluster p95")
        ax_rps.plot([cluster["users"]], [cluster["replies_per_s"]], "r^", label="cluster")
    ax_lat.axhline(MAX_P95_MS, color="tab:red", lw=0.8, ls=":", label=f"p95 target {MAX_P95_MS:.0f} ms")
    ax_rps.axhline(MIN_REPLIES_PER_S, color="tab:red", lw=0.8, ls=":", label=f"target {MIN_REPLIES_PER_S:.0f}/s")
    ticks = sorted({lv["users"] for _, system, _ in series for lv in system.get("levels") or []})
    ax_lat.set_yscale("log")
    ax_rps.set_ylim(bottom=0)
    for ax, ylabel in ((ax_lat, "latency (ms, log scale)"), (ax_rps, "replies per second")):
        ax.set_xscale("log", base=2)
        ax.set_xticks(ticks, [str(t) for t in ticks])
        ax.minorticks_off()
        ax.set_xlabel("concurrent users (closed loop)")
        ax.set_ylabel(ylabel)
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
    lat = (results["ours"].get("long") or {}).get("latencies_ms") or []
    ax_long.plot(range(1, len(lat) + 1), lat, ".", color="tab:blue", ms=3)
    ax_long.set_xlabel("turn of one long conversation")
    ax_long.set_ylabel("latency (ms)")
    ax_long.grid(True, alpha=0.3)
    title = "make bench" + (" --quick (smoke run, not figures)" if results.get("quick") else "")
    fig.suptitle(f"{title}, {results.get('started', '')}, {results.get('machine', {}).get('cores', '?')} cores")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def write(results: dict[str, Any], json_path: Path, png_path: Path) -> None:
    """reports/bench.json (every figure, the long conversation's per-turn latencies, the targets) and the plot."""
    results.setdefault("targets", targets(results))
    results.setdefault("long_summary", long_figures(results["ours"].get("long") or {}))
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_text(json.dumps(results, indent=2), encoding="utf-8")
    plot(results, png_path)
