"""Property: under random fault schedules, with idempotency on, no posting is lost or duplicated.

Plants and hub run through the plain host classes (no Ray) window by window, then the hub drains.
Every source transaction that reached the hub must end exactly once as delivered (one ledger row)
or dead-lettered with a reason; redelivered copies may only be suppressed.
"""

from __future__ import annotations

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from kernel import trace
from scenarios.loader import parse_scenario
from virtual import batch as B
from virtual.hosts import HubHost, PlantHost

HOUR = 3600.0
DURATION = 4 * HOUR
POSTING_FLOWS = [B.FLOW_CODE[f] for f in trace.ERP_POSTING_FLOWS]
OUT = B.OUTCOME_CODE


def _window(kind: str, **extra):
    return st.builds(lambda at, length, more: {"kind": kind, "at": at, "duration": length, **more},
                     st.floats(0, DURATION), st.floats(30, 5400), st.fixed_dictionaries(extra))


_fault = st.one_of(
    _window("erp_outage", erp=st.sampled_from(["legacy", "cloud", "all"])),
    _window("erp_slow", erp=st.sampled_from(["legacy", "all"]), factor=st.floats(1, 50)),
    _window("wan_outage", plants=st.sampled_from(["all", ["P01"], ["P02"]])),
    _window("gateway_down", plants=st.sampled_from(["all", ["P02"]])),
    _window("broker_redelivery", rate=st.floats(0, 1)),
)


@st.composite
def scenarios(draw):
    wave = {"name": "w1", "at": draw(st.floats(0, DURATION)), "plants": ["P02"]}
    waves = draw(st.sampled_from([[], [wave]]))
    data = {
        "name": "prop",
        "run": {"duration": DURATION, "window": draw(st.sampled_from([HOUR, 1800.0])),
                "seed": draw(st.integers(0, 2**16))},
        "landscape": {
            "erp": {"service": {"mean": draw(st.sampled_from([0.05, 2.0, 20.0]))}},
            "cloud_erp": {"kind": "cloud", "rate_limit": draw(st.sampled_from([0.5, 5.0, 100.0]))},
            "items": {"FG-100": {"unit": "EA", "inspection": True, "hold_rate": 0.3},
                      "FG-200": {"unit": "EA"}, "RM-10": {"unit": "KG"}},
            "integration": {
                "idempotency": True,
                "retry": {"initial": draw(st.sampled_from([1, 10])), "max_attempts": draw(st.integers(1, 12)),
                          "max_delay": draw(st.sampled_from([60, 600]))},
                "circuit_breaker": {"failure_threshold": draw(st.integers(1, 20)),
                                    "cooldown": draw(st.sampled_from([10, 120, 900]))},
                "broker": {"redelivery_rate": draw(st.floats(0, 0.5)),
                           "ack_wait": draw(st.sampled_from([5, 60]))},
            },
            "plants": [{"id": "P", "count": 2, "lines": 3, "machines_per_line": 2, "cycle_time": 40,
                        "products": ["FG-100", "FG-200", "LOC-X"],  # LOC-X has no mapping: dead letters
                        "edge": {"buffer": draw(st.sampled_from([1_000_000, 25])),
                                 "overflow": draw(st.sampled_from(["block", "drop_newest", "drop_oldest"])),
                                 "drain_rate": draw(st.sampled_from([0.2, 5.0]))}}],
        },
        "load": {"lot_size": 15, "confirmation_interval": 600, "ship_delay": 600},
        "faults": draw(st.lists(_fault, max_size=5)),
        "rollout": {"waves": waves},
    }
    return parse_scenario(data)


def _keys(batch: B.Batch) -> np.ndarray:
    return batch["replication"].astype(np.int64) << 48 | batch["plant"].astype(np.int64) << 32 | batch["seq"]


def _simulate(scenario):
    plants = PlantHost(scenario, [0, 1], 2)
    hub = HubHost(scenario, [0, 1], 2)
    sent, rows = [], []
    for t_end in np.append(np.arange(scenario.run.window, DURATION, scenario.run.window), DURATION):
        result = plants.step(float(t_end))
        sent += [B.with_results(w.outbound, replication=rep, plant=p) for (rep, p), w in result.items()]
        finished, _ = hub.step(float(t_end), result)
        rows.append(finished)
    rows.append(hub.finish()[0])
    finished = B.concat(rows)
    return B.concat(sent), finished, B.postings(finished)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(scenarios())
def test_no_posting_is_lost_or_duplicated_with_idempotency_on(scenario):
    sent, rows, ledger = _simulate(scenario)
    source = _keys(sent)
    assert np.unique(source).size == source.size  # a source record reaches the hub once

    hub_rows = B.take(rows, np.isin(rows["flow"], POSTING_FLOWS) & (rows["outcome"] != OUT[trace.REJECTED]))
    copies = hub_rows["outcome"] == OUT[trace.DUPLICATE_SUPPRESSED]
    final = B.take(hub_rows, ~copies)
    final_keys = _keys(final)

    # Exactly one final row per source transaction, and nothing the plants did not send.
    assert np.array_equal(np.sort(final_keys), np.sort(source))
    outcome = final["outcome"]
    assert set(np.unique(outcome).tolist()) <= {OUT[trace.DELIVERED], OUT[trace.DEAD_LETTERED]}
    dead = outcome == OUT[trace.DEAD_LETTERED]
    assert np.all(final["reason"][dead] != 0), "every dead letter names its reason"

    # Copies are only ever suppressed, and only of transactions that exist.
    copy_rows = B.take(hub_rows, copies)
    assert np.all(np.isin(_keys(copy_rows), source))
    assert np.all(copy_rows["reason"] == B.REASON_CODE[trace.REASON_REDELIVERY])

    # t_acked (kernel/trace.py): every copy the hub finished is acked, at or after it reached the broker;
    # a suppressed copy or a dead letter was delivered nowhere.
    finished = B.take(hub_rows, hub_rows["outcome"] != OUT[trace.IN_FLIGHT])
    assert not np.any(np.isnan(finished["t_acked"]))
    assert np.all(finished["t_acked"] >= finished["t_broker"])
    undelivered = finished["outcome"] != OUT[trace.DELIVERED]
    assert np.all(np.isnan(finished["t_delivered"][undelivered]))

    # The ledger holds one posting per delivered transaction and nothing else.
    ledger_keys = _keys(ledger)
    assert np.unique(ledger_keys).size == ledger_keys.size
    assert np.array_equal(np.sort(ledger_keys), np.sort(final_keys[~dead]))

    # Hops are in order for everything delivered.
    done = B.take(final, ~dead)
    assert np.all(done["t_delivered"] >= done["t_broker"])
    assert np.all(done["t_broker"] >= done["t_created"])
    assert np.all(done["t_acked"] >= done["t_delivered"])
