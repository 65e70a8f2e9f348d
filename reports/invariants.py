"""The four invariants checked on every run: lost, duplicates posted, held lots shipped, ledger variance.

Each returns ``{"name", "label", "count", "passed", "ids" (first 50), ...details}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from reports.prep import Prepared, map_text, member

MAX_IDS = 50
QTY_TOL = 1e-6


def _ids(frame: pd.DataFrame, col: str = "txn_id", n_reps: int = 1) -> list[str]:
    head = frame.head(MAX_IDS)
    ids = head[col].astype(str).tolist()
    if n_reps > 1:
        ids = [f"{i} (rep {r})" for i, r in zip(ids, head["replication"].tolist(), strict=True)]
    return ids


def erp_name(erp: str) -> str:
    """``legacy`` → ``erp-legacy``; names already prefixed stay as they are."""
    erp = str(erp)
    return erp if erp.lower().startswith("erp") else f"erp-{erp}"


def lost(prep: Prepared) -> dict[str, Any]:
    """ERP-posting source transactions neither posted, dead-lettered with a reason, in flight, nor
    rejected for a stated reason; plus delivered ones the ledger never saw."""
    p = prep.postings
    accounted = p["in_ledger"] | p["dead_lettered"] | p["in_flight"] | p["rejected"]
    delivered_unposted = p["delivered"] & ~p["in_ledger"]
    mask = (~accounted | delivered_unposted).to_numpy()
    bad = p[mask].sort_values(["replication", "t_created"])
    return {
        "name": "lost", "label": "Lost transactions", "count": int(mask.sum()), "passed": not mask.any(),
        "ids": _ids(bad, n_reps=prep.n_reps),
        "edge_dropped": int((p["edge_dropped"] & ~accounted).sum()),
        "delivered_not_posted": int(delivered_unposted.sum()),
        "unaccounted": int((~accounted & ~p["edge_dropped"]).sum()),
        "per_replication": np.bincount(bad["replication"].to_numpy(np.int64), minlength=prep.n_reps).tolist(),
    }


def duplicates(prep: Prepared) -> dict[str, Any]:
    """Ledger postings beyond the first per transaction (count = extra postings)."""
    ledger = prep.ledger
    counts = ledger["key"].value_counts()
    dup_keys = counts[counts > 1]
    rows = ledger[ledger["key"].isin(dup_keys.index)].drop_duplicates("key").sort_values(["replication", "t_posted"])
    extra = (dup_keys - 1).reindex(rows["key"].to_numpy()).to_numpy()
    by_erp: dict[str, int] = {}
    if len(rows):
        per = pd.Series(extra, index=map_text(rows["erp"], erp_name)).groupby(level=0).sum()
        by_erp = {str(k): int(v) for k, v in per.items()}
    return {
        "name": "duplicates_posted", "label": "Duplicates posted", "count": int(extra.sum()) if len(rows) else 0,
        "transactions": len(rows), "passed": len(rows) == 0, "ids": _ids(rows, n_reps=prep.n_reps),
        "by_erp": by_erp, "max_copies": int(dup_keys.max()) if len(dup_keys) else 1,
    }


def held_lots_shipped(prep: Prepared) -> dict[str, Any]:
    """Lots shipped while on quality hold."""
    lots = prep.run.lots
    mask = lots["shipped_while_held"].fillna(False).to_numpy(bool)
    bad = lots[mask].sort_values(["replication", "t_shipped"])
    return {"name": "held_lots_shipped", "label": "Held lots shipped", "count": int(mask.sum()),
            "passed": not mask.any(), "ids": _ids(bad, "lot", prep.n_reps)}


def ledger_variance(prep: Prepared) -> dict[str, Any]:
    """Per replication/plant/item: quantity of delivered ERP-posting transactions in the trace (each
    once) minus the ledger's quantity over its unique transactions. Zero when every delivered
    transaction is posted exactly once with the same quantity; repeated postings are not counted
    here (they are the duplicates invariant)."""
    p = prep.postings
    delivered = p["delivered"].to_numpy()
    t_keys = p["key"].to_numpy()[delivered]  # sorted, unique
    t_qty = p["qty"].to_numpy()[delivered]
    led = prep.ledger
    l_keys_all = led["key"].to_numpy()
    l_keys, l_first = np.unique(l_keys_all, return_index=True)  # first posting per transaction
    l_qty = led["qty"].to_numpy()[l_first]
    # Match the two sorted key lists with a binary search instead of a string/object merge.
    pos = np.clip(np.searchsorted(l_keys, t_keys), 0, max(l_keys.size - 1, 0))
    in_both = (l_keys[pos] == t_keys) if l_keys.size else np.zeros(t_keys.size, dtype=bool)
    t_ledger_qty = np.where(in_both, l_qty[pos] if l_keys.size else 0.0, 0.0)
    ledger_only = ~member(l_keys, t_keys) if l_keys.size else np.zeros(0, dtype=bool)
    t_rows = p.loc[delivered, ["replication", "txn_id", "plant", "item"]].reset_index(drop=True)
    l_rows = led.iloc[l_first[ledger_only]][["replication", "txn_id", "plant", "item"]].reset_index(drop=True)
    qt = np.concatenate([np.nan_to_num(t_qty), np.zeros(len(l_rows))])
    ql = np.concatenate([np.nan_to_num(t_ledger_qty), np.nan_to_num(l_qty[ledger_only])])
    # Plants and items as codes into their sorted names: grouping integers instead of text (the same
    # groups in the same order, the same sums).
    plant_codes, plant_names = text_codes([t_rows["plant"], l_rows["plant"]])
    item_codes, item_names = text_codes([t_rows["item"], l_rows["item"]])
    m = pd.DataFrame({
        "replication": np.concatenate([t_rows["replication"].to_numpy(np.int64),
                                       l_rows["replication"].to_numpy(np.int64)]),
        "plant": plant_codes, "item": item_codes, "qty_t": qt, "qty_l": ql,
    })
    mismatch = np.abs(qt - ql) > QTY_TOL * (1.0 + np.abs(qt))
    groups = m.groupby(["replication", "plant", "item"], sort=True)[["qty_t", "qty_l"]].sum()
    groups["variance"] = groups["qty_t"] - groups["qty_l"]
    off = groups[np.abs(groups["variance"].to_numpy()) > QTY_TOL * (1.0 + groups["qty_t"].abs().to_numpy())]
    idx = np.nonzero(mismatch)[0]
    bad_t, bad_l = idx[idx < len(t_rows)], idx[idx >= len(t_rows)] - len(t_rows)
    bad = pd.concat([t_rows.iloc[bad_t][["replication", "txn_id"]], l_rows.iloc[bad_l][["replication", "txn_id"]]])
    bad = bad.astype({"txn_id": str}).sort_values(["replication", "txn_id"])
    return {
        "name": "ledger_variance", "label": "Ledger variance", "count": len(off), "passed": len(off) == 0,
        "ids": _ids(bad, n_reps=prep.n_reps), "mismatched_txns": int(mismatch.sum()),
        "abs_variance": float(np.abs(groups["variance"]).sum()),
        "groups": [
            {"replication": int(r), "plant": plant_names[pl], "item": item_names[it], "trace_qty": float(row.qty_t),
             "ledger_qty": float(row.qty_l), "variance": float(row.variance)}
            for (r, pl, it), row in off.head(MAX_IDS).iterrows()
        ],
    }


def text_codes(columns: list[pd.Series]) -> tuple[np.ndarray, list[str]]:
    """The text of ``columns`` (missing as "") as one array of codes into the sorted distinct texts, so
    that codes order as the texts do (once per category for categoricals)."""
    parts = []
    for col in columns:
        if isinstance(col.dtype, pd.CategoricalDtype):
            codes = col.cat.codes.to_numpy()
            parts.append((np.where(codes < 0, len(col.cat.categories), codes),
                          [str(c) for c in col.cat.categories] + [""]))
        else:
            codes, uniques = pd.factorize(np.asarray(map_text(col, str), dtype=object))
            parts.append((codes, [str(u) for u in uniques]))
    names = sorted({name for _, texts in parts for name in texts})
    where = {name: i for i, name in enumerate(names)}
    out = [np.asarray([where[t] for t in texts], dtype=np.int64)[codes] if len(codes) else np.zeros(0, np.int64)
           for codes, texts in parts]
    return np.concatenate(out) if out else np.zeros(0, np.int64), names


def check_invariants(prep: Prepared) -> dict[str, dict[str, Any]]:
    """All invariants, keyed by name."""
    return {f["name"]: f for f in (lost(prep), duplicates(prep), held_lots_shipped(prep), ledger_variance(prep))}
