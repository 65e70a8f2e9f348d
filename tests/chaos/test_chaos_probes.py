"""The probes that read a run folder while the stack runs, on a run folder written by the real edge store and
delivery log: lost so far (sent but unfinished, and edge-buffer drops), posting-delay percentiles over a
window, dead letters."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path

import pytest

from integration.delivery_log import DeliveryLog
from live.edge_store import EdgeStore, OutboxEvent
from synctwin.chaos import probes
from synctwin.chaos.probes import EffectNotSeen

SPEED = 60.0


def _event(txn: str, t: float, flow: str = "goods_receipt") -> OutboxEvent:
    return OutboxEvent(txn_id=txn, correlation_id=txn, flow=flow, plant="P01", line="L1", item="FG-100", lot="",
                       qty=1.0, unit="EA", schema_version="v2", t_created=t)


@pytest.fixture()
def run_dir(tmp_path: Path) -> Path:
    """A run folder 'now' at scenario second 3,000: four events sent, two of them finished by a worker."""
    state = tmp_path / "state"
    state.mkdir()
    (state / "chaos.json").write_text(json.dumps({"epoch": time.time() - 3000 / SPEED, "speed": SPEED,
                                                  "plants": ["P01"], "urls": {}}))
    store = EdgeStore(state / "edge-P01.sqlite", capacity=2, overflow="drop_oldest")
    store.add([_event("old-done", 100), _event("old-open", 200)], 200)
    store.mark_sent(["old-done", "old-open"], 250)
    store.add([_event("new-open", 2950), _event("issue", 2960, "material_issue")], 2960)
    store.mark_sent(["new-open", "issue"], 2990)
    store.add([_event("dropped", 2994), _event("kept-1", 2995), _event("kept-2", 2996)], 2996)  # room for 2
    log = DeliveryLog(state / "deliveries.sqlite")
    log.record(txn_id="old-done", flow="goods_receipt", outcome="delivered", t_created=100.0, t_delivered=400.0)
    log.record(txn_id="issue", flow="material_issue", outcome="delivered", t_created=2960.0, t_delivered=2970.0)
    log.record(txn_id="bad", flow="goods_receipt", outcome="dead_lettered", reason="unmapped_item")
    log.close()
    return tmp_path


def test_lost_so_far_counts_old_unfinished_sends_and_edge_drops(run_dir: Path):
    cfg = {"synctwin_run_dir": str(run_dir)}
    lost = probes.lost_ids(older_than_s=300, configuration=cfg)
    assert "old-open" in lost and "new-open" not in lost and "old-done" not in lost  # recent: still in flight
    assert lost == ["dropped", "old-open"]  # plus the event the full buffer dropped
    assert probes.lost_so_far(older_than_s=300, configuration=cfg) == 2


def test_posting_delay_percentiles_per_flow_over_a_window(run_dir: Path):
    cfg = {"synctwin_run_dir": str(run_dir)}
    assert probes.posting_delay("material_issue", 0.99, window_s=600, configuration=cfg) == pytest.approx(10.0)
    assert probes.posting_delay("all", 0.5, window_s=5000, configuration=cfg) == pytest.approx(155.0)
    assert math.isinf(probes.posting_delay("goods_receipt", 0.99, window_s=600, configuration=cfg))  # none lately


def test_dead_letters_fail_the_activity_when_too_few(run_dir: Path):
    cfg = {"synctwin_run_dir": str(run_dir)}
    assert probes.dead_letters("unmapped_item", at_least=1, configuration=cfg) == 1
    with pytest.raises(EffectNotSeen, match="1 dead letters \\(unmapped_item\\), expected at least 2"):
        probes.dead_letters("unmapped_item", at_least=2, configuration=cfg)
