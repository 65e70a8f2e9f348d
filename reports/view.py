"""The report's content as plain data (verdict lines, tiles, tables), shared by HTML and PDF."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from reports.narrative import breaches, clock, count, dur, fault_line, fault_title, sla_line, time_stretch
from reports.skew import skew_table_cells


@dataclass
class Tile:
    """A KPI tile: label, big value, a small note, and whether it is good news."""

    label: str
    value: str
    note: str = ""
    state: str = "neutral"  # pass / fail / neutral


@dataclass
class Table:
    """A titled table of already formatted cells."""

    title: str
    header: list[str]
    rows: list[list[str]]
    note: str = ""


@dataclass
class ReportView:
    """Everything the report says, in reading order."""

    title: str
    passed: bool
    headline: str
    verdicts: list[tuple[str, str]]  # (state, sentence)
    breaches: list[str]
    tiles: list[Tile]
    sla_table: Table
    invariant_rows: list[dict[str, Any]]
    tables: list[Table]
    fault_table: Table
    run_facts: list[tuple[str, str]]
    problems: list[str] = field(default_factory=list)


def _s(value: Any) -> str:
    return "n/a" if value is None else str(value)


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.2f} %"


def _ci_text(fig: dict[str, Any], fmt: Any) -> str:
    if fig.get("ci_low") is None:
        return ""
    return f"{fmt(fig['ci_low'])} – {fmt(fig['ci_high'])}"


def _fmt_for(sla: dict[str, Any]) -> Any:
    return {"share": _pct, "count": count}.get(sla["kind"], dur)


def build_view(sla: dict[str, Any]) -> ReportView:
    """Turn sla.json content into sentences, tiles and tables."""
    run = sla["run"]
    start = datetime.fromisoformat(str(run["start_clock"]))
    reps = run["replications"]
    inv = sla["invariants"]
    lines: list[tuple[str, str]] = []
    for s in sla["slas"].values():
        text = sla_line(s)
        if text and s["name"] != "recovery_time":
            lines.append(({"pass": "pass", "breach": "fail"}.get(s["status"], "neutral"), text))
    for f in sla["faults"]:
        ok = f.get("recovered_all", False) and inv["lost"]["passed"] and inv["duplicates_posted"]["passed"]
        lines.append(("pass" if ok else "fail", fault_line(f, inv, start)))
    rec_line = sla_line(sla["slas"]["recovery_time"])
    if rec_line:
        lines.append(("pass" if sla["slas"]["recovery_time"]["passed"] else "fail", rec_line))
    failed_inv = [i for i in inv.values() if not i["passed"]]
    if failed_inv:
        lines.append(("fail", "Invariant checks failed: " + "; ".join(
            f"{i['label'].lower()} {count(i['count'])}" for i in failed_inv) + "."))
    else:
        lines.append(("pass", "Nothing was lost, nothing was posted twice, no held lot shipped and the ERP "
                              "ledger matches the plants' records."))
    stretch = time_stretch(run)
    if stretch:
        lines.append(("neutral", stretch))
    br = breaches(sla)
    headline = ("All SLAs and invariants hold." if sla["passed"]
                else f"{len(br)} breach{'es' if len(br) != 1 else ''}: " + "; ".join(b.split(':')[0] for b in br))
    return ReportView(
        title=f"{run.get('scenario') or run['run_id']} — run {run['run_id']}",
        passed=sla["passed"], headline=headline, verdicts=lines, breaches=br,
        tiles=_tiles(sla), sla_table=_sla_table(sla), invariant_rows=list(inv.values()),
        tables=[_plant_table(sla), *_dead_letter_tables(sla), *_wave_tables(sla, start), *_skew_tables(sla)],
        fault_table=_fault_table(sla, start),
        run_facts=[("run id", str(run["run_id"])), ("scenario", _s(run.get("scenario"))),
                   ("engine", _s(run.get("engine"))), ("version", _s(run.get("version"))),
                   ("seed", _s(run.get("seed"))), ("replications", str(reps)),
                   ("duration", dur(run["duration"])), ("start clock", str(run["start_clock"])),
                   ("wall time", dur(run.get("wall_seconds"))), ("created", _s(run.get("created_at")))],
        problems=list(sla.get("problems", [])),
    )


def _tiles(sla: dict[str, Any]) -> list[Tile]:
    k, s = sla["kpis"], sla["slas"]
    recon = s["reconciled_within"]
    rec = s["recovery_time"]
    dlq_age = k["dlq_oldest_age"]["mean"]
    tiles = [
        Tile("Transaction success", _pct(k["success_rate"]["mean"]),
             f"{count(k['transactions']['mean'])} transactions", "pass" if (k["success_rate"]["mean"] or 0) > 0.99
             else "fail"),
        Tile(f"Reconciled within {dur(recon['window'])}", _pct(recon["stats"]["share"]["value"]),
             f"{count(recon['not_reconciled'])} not reconciled",
             "neutral" if recon["status"] == "not_set" else ("pass" if recon["passed"] else "fail")),
        Tile("Worst recovery time",
             "none" if not rec["faults"] else ("not recovered" if rec["unrecovered"]
                                               else dur(rec["stats"]["worst"]["value"])),
             f"{rec['faults']} fault window{'s' if rec['faults'] != 1 else ''}",
             "neutral" if rec["status"] in ("not_set", "no_data") else ("pass" if rec["passed"] else "fail")),
        Tile("Dead-letter queue", count(k["dlq_count"]["mean"]),
             f"oldest {dur(dlq_age)}" if k["dlq_count"]["mean"] else "empty",
             "pass" if not k["dlq_count"]["mean"] else ("fail" if s["dlq"]["status"] == "breach" else "neutral")),
        Tile("Retry volume", count(k["retry_volume"]["mean"]), "attempts beyond the first"),
    ]
    for erp, load in k["erp_load"].items():
        tiles.append(Tile(f"ERP load {erp}", f"{load['mean_per_s']['mean']:.2f}/s",
                          f"peak {load['peak_per_s']['mean']:.2f}/s (busiest minute)"))
    return tiles


def _sla_table(sla: dict[str, Any]) -> Table:
    rows = []
    multi = sla["run"]["replications"] > 1
    for s in sla["slas"].values():
        fmt = _fmt_for(s)
        checks = s["checks"] or [{"stat": k, "threshold": None, **v} for k, v in s["stats"].items()
                                 if k in ("p95", "share", "worst", "count")]
        for c in checks:
            status = {"pass": "pass", "breach": "BREACH", "no_data": "no data", "not_set": "no target"}[s["status"]]
            if s["status"] == "breach" and c.get("passed") is not False:
                status = "pass"
            op = "≥" if s["kind"] == "share" else "≤"
            row = [s["label"], c["stat"], "—" if c.get("threshold") is None else f"{op} {fmt(c['threshold'])}",
                   fmt(c.get("value")), status]
            if multi:
                row.insert(4, _ci_text(c, fmt) or "—")
            rows.append(row)
    header = ["SLA", "statistic", "threshold", "measured"] + (["95 % CI"] if multi else []) + ["verdict"]
    return Table("SLA verdicts", header, rows,
                 "Means over replications with 95 % t-intervals." if multi else "")


def _plant_table(sla: dict[str, Any]) -> Table:
    rows = [[r["plant"], r["erp"], count(r["transactions"]), _pct(r["success_rate"]), dur(r["posting_p50"]),
             dur(r["posting_p95"]), dur(r["posting_max"]), count(r["retries"]), count(r["dlq"]),
             count(r["lost"]), count(r["duplicates_posted"])] for r in sla["per_plant"]]
    return Table("Per plant", ["plant", "ERP", "transactions", "success", "posting p50", "posting p95",
                               "posting max", "retries", "DLQ", "lost", "dup. posted"], rows,
                 "Counts per replication.")


def _dead_letter_tables(sla: dict[str, Any]) -> list[Table]:
    entries = sla.get("dead_letters") or []
    if not entries:
        return []
    rows = [[d["plant"], d["reason"], d["item"], d["unit"], ", ".join(d["flows"]), count(d["count"]),
             dur(d["oldest_age"]), ", ".join(d["examples"])] for d in entries]
    return [Table("Dead letters by reason", ["plant", "reason", "item", "unit", "flows", "count", "oldest",
                                             "examples"], rows,
                  "Nothing here was dropped: each message waits in the DLQ with its reason, for a fix and replay.")]


def _wave_tables(sla: dict[str, Any], start: datetime) -> list[Table]:
    if not sla["per_wave"]:
        return []
    rows = []
    for w in sla["per_wave"]:
        a, b = w["after"], w["before"]
        rows.append([w["wave"], clock(start, w["at"]), w["erp"], ", ".join(w["plants"]), dur(b["posting_p95"]),
                     dur(a["posting_p95"]), count(a["transactions"]), _pct(a["success_rate"]), count(a["dlq"]),
                     count(a["lost"]), count(a["duplicates_posted"])])
    return [Table("Per rollout wave", ["wave", "cutover", "ERP", "plants", "p95 before", "p95 after",
                                       "txns after", "success after", "DLQ", "lost", "dup. posted"], rows,
                  "Before/after: postings of the wave's plants created before/after the cutover time.")]


def _skew_tables(sla: dict[str, Any]) -> list[Table]:
    if "version_skew" not in sla:  # an sla.json written before skew was counted
        return []
    return [Table("Master-data version skew", *skew_table_cells(sla["version_skew"], sla["run"]["replications"]))]


def _fault_table(sla: dict[str, Any], start: datetime) -> Table:
    rows = []
    for f in sla["faults"]:
        rec = f["recovery"]
        recovery = dur(rec["value"]) if f["recovered_all"] else "not recovered"
        if f["recovered_all"] and rec.get("ci_low") is not None:
            recovery += f" (95 % CI {_ci_text(rec, dur)})"
        rows.append([fault_title(f), clock(start, f["start"]), clock(start, f["end"]), count(f["queued"]),
                     dur(f["drained_within"]), count(f["queued_undelivered"]), count(f["peak_backlog"]), recovery])
    note = "Recovery: " + sla.get("recovery_definition", "")
    if sla["run"]["replications"] > 1:
        note += ". Figures are means over replications."
    return Table("Faults", ["fault", "start", "end", "postings queued", "drained within", "undelivered",
                            "peak backlog", "recovery"], rows, note)
