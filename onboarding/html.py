"""``onboarding.html``: one self-contained page; the verdict and the failing rows fill the first screen.

No scripts, no external assets: it opens the same from a mail attachment as from the run folder.
"""

from __future__ import annotations

from html import escape

from onboarding.verdict import CHECKS, FAIL, NOT_READY, PASS, READY, WARN, Result, Row

COLOURS = {READY: "#1b7f3b", "ready with warnings": "#b26a00", NOT_READY: "#b3261e"}
BADGE = {FAIL: ("#b3261e", "FAIL"), WARN: ("#b26a00", "WARN"), PASS: ("#1b7f3b", "PASS")}
STYLE = """
body{font:15px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;color:#1d1d1f;background:#fafafa}
main{max-width:1180px;margin:0 auto;padding:20px 24px}
#verdict{color:#fff;border-radius:10px;padding:18px 24px;margin-bottom:14px}
#verdict h1{margin:0;font-size:30px;letter-spacing:.2px}
#verdict p{margin:6px 0 0;font-size:15px;opacity:.95}
table{border-collapse:collapse;width:100%;background:#fff;margin-bottom:18px;font-size:14px}
th,td{text-align:left;vertical-align:top;padding:6px 9px;border-bottom:1px solid #e3e3e6}
th{background:#f0f0f3;font-weight:600}
.badge{display:inline-block;color:#fff;border-radius:4px;padding:1px 7px;font-size:12px;font-weight:700}
.checks{display:flex;gap:8px;flex-wrap:wrap;margin-bottom:14px}
.check{background:#fff;border:1px solid #e3e3e6;border-radius:8px;padding:6px 12px;font-size:14px}
h2{font-size:18px;margin:16px 0 8px}
td.fix{color:#5b2c00}
"""


def _badge(verdict: str) -> str:
    colour, text = BADGE.get(verdict, ("#555", verdict.upper()))
    return f'<span class="badge" style="background:{colour}">{text}</span>'


def _table(rows: list[Row], table_id: str) -> str:
    body = "".join(
        f"<tr class='row-{r.verdict}'><td>{_badge(r.verdict)}</td><td>{escape(r.check)}</td><td>{escape(r.name)}</td>"
        f"<td>{escape(r.evidence)}</td><td class='fix'>{escape(r.fix)}</td></tr>" for r in rows)
    return (f"<table id='{table_id}'><thead><tr><th></th><th>check</th><th>item</th><th>evidence</th><th>fix</th>"
            f"</tr></thead><tbody>{body}</tbody></table>")


def _check_tiles(result: Result) -> str:
    tiles = []
    for check in CHECKS:
        rows = [r for r in result.rows if r.check == check]
        if not rows:
            continue
        worst = FAIL if any(r.verdict == FAIL for r in rows) else WARN if any(r.verdict == WARN for r in rows) else PASS
        tiles.append(f"<div class='check'>{_badge(worst)} {escape(check)} <small>({len(rows)} rows)</small></div>")
    return f"<div class='checks'>{''.join(tiles)}</div>"


def _details(result: Result) -> str:
    """The pilot's per-item reconciliation and where the capacity run's own report is."""
    parts = []
    pilot = result.figures.get("pilot") or {}
    if pilot.get("items"):
        body = "".join(f"<tr><td>{escape(x['flow'])}</td><td>{escape(x['item'])}</td><td>{x['counters']:g}</td>"
                       f"<td>{x['ledger']:g}</td></tr>" for x in pilot["items"])
        parts.append("<h2>Pilot: plant counters against the ERP ledger</h2><table id='reconciliation'><thead><tr>"
                     "<th>flow</th><th>ERP item</th><th>counters (ERP unit)</th><th>ledger</th></tr></thead>"
                     f"<tbody>{body}</tbody></table>")
    capacity = result.figures.get("capacity") or {}
    if capacity.get("run_dir"):
        parts.append(f"<h2>Capacity</h2><p>The fleet with the plant, {capacity.get('replications')} replications: "
                     f"<a href='capacity/with-plant/report.html'>report</a> and sla.json in "
                     f"<code>{escape(str(capacity['run_dir']))}</code>.</p>")
    return f"<section id='details'>{''.join(parts)}</section>" if parts else ""


def render(result: Result) -> str:
    """The page for ``result``: verdict banner, per-check tiles, failing and warning rows, then all rows."""
    counts = result.counts()
    verdict = result.verdict
    attention = [r for r in result.ordered() if r.verdict != PASS]
    summary = (f"{counts[FAIL]} failing, {counts[WARN]} warnings, {counts[PASS]} passing checks. "
               + ("Fix every failing row, then run onboard again." if verdict == NOT_READY else
                  "Read the warnings before go-live." if attention else "Every check passed."))
    first = (_table(attention, "attention") if attention else "<p>No failing or warning rows.</p>")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Onboarding {escape(result.plant)}: {escape(verdict)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{STYLE}</style></head>
<body><main>
<section id="verdict" style="background:{COLOURS.get(verdict, '#555')}">
<h1>Plant {escape(result.plant)}: {escape(verdict)}</h1><p>{escape(summary)}</p></section>
{_check_tiles(result)}
<section id="attention-rows"><h2>Failing rows and warnings</h2>{first}</section>
<section id="all-rows"><h2>Every check</h2>{_table(result.ordered(), "checklist")}</section>
{_details(result)}
</main></body></html>
"""
