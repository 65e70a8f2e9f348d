"""Master-data version skew: postings a plant created while it was still on an old master-data version.

The ERP publishes master-data versions to every plant (``load.master_data_interval``; trace rows of flow
``master_data``, one per version and plant, the version number in ``qty``). From a version's release
(``t_created``) until the plant applied it (the first delivered copy's ``t_delivered``; never applied: until
the run's end) the plant works on an older version than the ERP's, so every ERP posting it creates in that
span (``t_created``) is counted as skewed. Read from the trace alone, so both engines are counted alike.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from kernel.trace import DELIVERED, MASTER_DATA
from reports.prep import Prepared


def _merged(starts: np.ndarray, ends: np.ndarray) -> list[tuple[float, float]]:
    """Union of the intervals [start, end) as disjoint sorted intervals."""
    out: list[tuple[float, float]] = []
    for a, b in sorted(zip(starts.tolist(), ends.tolist(), strict=True)):
        if b <= a:
            continue
        if out and a <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], b))
        else:
            out.append((a, b))
    return out


def version_skew(prep: Prepared) -> dict[str, Any]:
    """``{"versions", "count", "share", "by_plant"}``: master-data versions published (per plant and
    replication), ERP postings created on an old version, their share of all postings, per plant."""
    tr = prep.trace
    md = tr[(tr["flow"] == MASTER_DATA).to_numpy()]
    out: dict[str, Any] = {"name": "version_skew", "label": "Master-data version skew", "versions": 0,
                           "count": 0, "share": None, "by_plant": {}}
    if md.empty:
        return out
    done = md["t_delivered"].where((md["outcome"] == DELIVERED).to_numpy())
    first = done.groupby([md["replication"].to_numpy(), md["txn_id"].astype(str).to_numpy()]).min()
    versions = md.drop_duplicates(["replication", "txn_id"]).copy()
    versions["t_applied"] = first.reindex(list(zip(versions["replication"], versions["txn_id"].astype(str),
                                                   strict=True))).to_numpy()
    versions["t_applied"] = versions["t_applied"].fillna(prep.run.duration)
    out["versions"] = len(versions)
    p = prep.postings
    groups = p.groupby([p["replication"].to_numpy(), p["plant"].astype(str).to_numpy()]).indices
    created = p["t_created"].to_numpy()
    total = 0
    by_plant: dict[str, int] = {}
    for (rep, plant), g in versions.groupby([versions["replication"].to_numpy(),
                                             versions["plant"].astype(str).to_numpy()]):
        idx = groups.get((rep, plant))
        if idx is None:
            continue
        t = np.sort(created[idx])
        n = sum(int(np.searchsorted(t, b) - np.searchsorted(t, a))
                for a, b in _merged(g["t_created"].to_numpy(float), g["t_applied"].to_numpy(float)))
        by_plant[plant] = by_plant.get(plant, 0) + n
        total += n
    out["count"], out["by_plant"] = total, by_plant
    out["share"] = total / len(p) if len(p) else None
    return out


def skew_table_cells(skew: dict[str, Any] | None, replications: int = 1) -> tuple[list[str], list[list[str]], str]:
    """The report's version-skew table as (header, rows, note) of formatted cells from ``sla.json``'s
    ``version_skew``: one row per plant with skewed postings, then the total with its share of all postings."""
    header = ["plant", "postings on an old master-data version", "share of all postings"]
    if not skew or not skew.get("versions"):
        return header, [], "No master-data versions were published in this run."
    rows = [[plant, f"{n:,}", ""] for plant, n in sorted(skew["by_plant"].items())]
    share = skew.get("share")
    rows.append(["all plants", f"{skew['count']:,}", "n/a" if share is None else f"{share * 100:.2f} %"])
    note = (f"{skew['versions']:,} master-data versions published (one per plant each time). A posting counts when "
            "its plant created it after a version's release and before it applied that version.")
    if replications > 1:
        note += " Counts summed over replications."
    return header, rows, note
