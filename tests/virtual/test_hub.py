"""The virtual-time integration hub on hand-made batches: mapping, outages, breaker, idempotency."""

from __future__ import annotations

import numpy as np
import pytest

from kernel import trace
from scenarios.generator import FaultPlan, Vocabulary
from scenarios.loader import parse_scenario
from virtual import batch as B
from virtual.hub import IntegrationHub

OUT = B.OUTCOME_CODE
REASON = B.REASON_CODE


def _scenario(integration: dict | None = None, faults: list | None = None, plant: dict | None = None,
              **extra):
    data = {
        "name": "hub",
        "run": {"duration": "6h", "window": "1h"},
        "landscape": {
            "erp": {"service": {"mean": "10ms", "distribution": "constant"}, "network_latency": 0},
            "integration": integration or {},
            "plants": [{"id": "P1", **(plant or {})}, {"id": "P2"}],
        },
        "faults": faults or [],
        **extra,
    }
    return parse_scenario(data)


def _hub(scenario, seed: int = 0) -> tuple[IntegrationHub, Vocabulary]:
    vocab = Vocabulary.of(scenario)
    return IntegrationHub(scenario, vocab, FaultPlan.of(scenario), np.random.default_rng(seed)), vocab


def _outbound(vocab: Vocabulary, t_broker, item: str = "FG-100", unit: str = "EA", qty: float = 10.0,
              flow: str = trace.OPERATION_CONFIRMATION, first_seq: int = 0) -> B.Batch:
    t = np.sort(np.asarray(t_broker, dtype=float))
    seq = np.arange(first_seq, first_seq + t.size)
    return B.make(t.size, B.SOURCE_COLUMNS, seq=seq, flow=B.FLOW_CODE[flow],
                  line=0, item=vocab.item(item), qty=qty, unit=vocab.unit(unit), t_created=t, t_edge=t,
                  t_broker=t)


def _run(hub: IntegrationHub, incoming: list[tuple[int, B.Batch]], window: float = 3600.0,
         end: float = 6 * 3600.0) -> tuple[B.Batch, B.Batch]:
    """Feed each batch in the window its records belong to; then drain the hub."""
    rows = []
    for w_end in np.arange(window, end + window / 2, window):
        part = [(p, B.take(b, (b["t_created"] >= w_end - window) & (b["t_created"] < w_end)))
                for p, b in incoming]
        rows.append(hub.step(float(w_end), part))
    rows.append(hub.finish())
    finished = B.concat(rows)
    return finished, B.postings(finished)


def _by_seq(rows: B.Batch, outcome: str) -> B.Batch:
    sel = rows["outcome"] == OUT[outcome]
    part = B.take(rows, sel)
    return B.take(part, np.argsort(part["seq"], kind="stable"))


def test_clean_run_delivers_everything_once_in_fifo_order():
    hub, vocab = _hub(_scenario())
    t = np.linspace(10.0, 20000.0, 300)
    rows, ledger = _run(hub, [(0, _outbound(vocab, t))])
    assert B.size(rows) == 300 and B.size(ledger) == 300
    assert np.all(rows["outcome"] == OUT[trace.DELIVERED])
    done = _by_seq(rows, trace.DELIVERED)
    np.testing.assert_allclose(done["t_delivered"], t + 0.01, atol=1e-9)  # network 0 + constant 10 ms
    assert np.all(done["attempts"] == 1)
    assert np.all(done["target"] == B.TARGET_CODE["erp-legacy"])


def test_unmapped_item_and_unknown_unit_are_dead_lettered_with_reason():
    scenario = _scenario(plant={"products": ["LOC-A"], "mapping": {"items": {"LOC-B": "FG-100"}}})
    hub, vocab = _hub(scenario)
    unmapped = _outbound(vocab, [100.0, 200.0], item="LOC-A")
    wrong_unit = _outbound(vocab, [300.0], item="FG-100", unit="KG", first_seq=10)
    fine = _outbound(vocab, [400.0], item="LOC-B", first_seq=20)
    rows, ledger = _run(hub, [(0, B.concat([unmapped, wrong_unit, fine]))])
    dead = _by_seq(rows, trace.DEAD_LETTERED)
    assert dead["seq"].tolist() == [0, 1, 10]
    assert [B.REASONS[r] for r in dead["reason"]] == ["unmapped_item", "unmapped_item", "unknown_unit"]
    assert ledger["seq"].tolist() == [20]
    assert Vocabulary.of(scenario).items[ledger["item"][0]] == "FG-100"


def test_unit_conversion_factor_reaches_the_ledger():
    scenario = _scenario(plant={"unit": "LB", "mapping": {"units": {"LB": {"to": "KG", "factor": 0.5}}}})
    hub, vocab = _hub(scenario)
    rows, ledger = _run(hub, [(0, _outbound(vocab, [50.0], item="RM-10", unit="LB", qty=8.0))])
    assert ledger["qty"].tolist() == [4.0]
    assert vocab.units[ledger["unit"][0]] == "KG"


def test_postings_during_an_erp_outage_wait_until_after_it():
    scenario = _scenario(faults=[{"kind": "erp_outage", "at": 3000, "duration": 2400, "erp": "legacy"}])
    hub, vocab = _hub(scenario)
    t = np.linspace(100.0, 9000.0, 400)
    rows, ledger = _run(hub, [(0, _outbound(vocab, t))])
    assert B.size(ledger) == 400 and np.all(rows["outcome"] == OUT[trace.DELIVERED])
    done = _by_seq(rows, trace.DELIVERED)
    during = (t >= 3000.0) & (t < 5400.0)
    assert np.all(done["t_delivered"][during] >= 5400.0)
    assert np.all(done["attempts"][during] >= 1)
    assert np.all(done["t_delivered"][t < 3000.0] < 3000.0)
    assert np.all(done["attempts"][t < 3000.0] == 1)
    # Nobody posts inside the outage.
    assert not np.any((ledger["t_delivered"] >= 3000.0) & (ledger["t_delivered"] < 5400.0))


def test_the_breaker_opens_during_the_outage_and_closes_after_it():
    integration = {"circuit_breaker": {"failure_threshold": 3, "cooldown": "5m"}}
    scenario = _scenario(integration, faults=[{"kind": "erp_outage", "at": 3000, "duration": 2400}])
    hub, vocab = _hub(scenario)
    t = np.concatenate([[100.0], np.arange(3010.0, 3100.0, 10.0), [8000.0]])
    _run(hub, [(0, _outbound(vocab, t))])
    log = [e for e in hub.breaker_log() if e["target"] == "erp-legacy"]
    states = [e["state"] for e in log]
    assert states == ["open", "half_open", "closed"]
    t_open, t_close = log[0]["t"], log[-1]["t"]
    # The third failed request: the worker's two lanes start with the messages of 3010 and 3020, the first
    # lane retrying after its backoff (1 s, then 2 s, at the mean jitter: 0.9 s and 1.8 s).
    assert t_open == pytest.approx(3010.0 + 0.9 + 1.8)
    assert 5400.0 <= t_close < 5400.0 + 300.0
    # The closing probe reaches the ERP a grid point later plus the first waiting lane's jitter (the first of
    # two lanes waiting 1 s x U(0, 1): 1/3 s on average; no request hop in this scenario).
    assert (t_close - t_open) % 300.0 == pytest.approx(1.0 / 3.0, abs=1e-6)
    assert not [e for e in hub.breaker_log() if e["target"] == "erp-cloud"]


def test_a_calibrated_breaker_opens_where_the_live_one_did_and_probes_as_late():
    integration = {"circuit_breaker": {"failure_threshold": 3, "cooldown": "5m", "replay_openings": {"legacy": [40.0]}},
                   "hops": {"breaker_probe": {"mean": 2.0}}}
    scenario = _scenario(integration, faults=[{"kind": "erp_outage", "at": 3000, "duration": 2400}])
    hub, vocab = _hub(scenario)
    _run(hub, [(0, _outbound(vocab, np.concatenate([[100.0], np.arange(3010.0, 3100.0, 10.0), [8000.0]])))])
    log = [e for e in hub.breaker_log() if e["target"] == "erp-legacy"]
    assert [e["state"] for e in log] == ["open", "half_open", "closed"]
    assert log[0]["t"] == 3040.0  # replayed, not the model's 3012.7
    assert (log[-1]["t"] - log[0]["t"]) % 300.0 == pytest.approx(1.0 / 3.0 + 2.0, abs=1e-6)


def test_idempotency_on_suppresses_redelivered_copies():
    integration = {"idempotency": True, "broker": {"redelivery_rate": 1.0, "ack_wait": "30s"}}
    hub, vocab = _hub(_scenario(integration))
    rows, ledger = _run(hub, [(0, _outbound(vocab, np.linspace(10, 10000, 50))),
                              (1, _outbound(vocab, np.linspace(20, 10000, 30)))])
    copies = _by_seq(rows, trace.DUPLICATE_SUPPRESSED)
    assert B.size(copies) == 80
    assert np.all(copies["reason"] == REASON[trace.REASON_REDELIVERY])
    keys = list(zip(ledger["plant"].tolist(), ledger["seq"].tolist(), strict=True))
    assert len(keys) == 80 and len(set(keys)) == 80


def test_idempotency_off_posts_duplicates():
    integration = {"idempotency": False, "broker": {"redelivery_rate": 1.0}}
    hub, vocab = _hub(_scenario(integration))
    rows, ledger = _run(hub, [(0, _outbound(vocab, np.linspace(10, 10000, 50)))])
    assert not np.any(rows["outcome"] == OUT[trace.DUPLICATE_SUPPRESSED])
    assert B.size(ledger) == 100
    assert np.all(np.bincount(ledger["seq"]) == 2)


def test_redelivery_window_only_copies_messages_inside_it():
    integration = {"idempotency": False}
    faults = [{"kind": "broker_redelivery", "at": 5000, "duration": 1000, "rate": 1.0}]
    hub, vocab = _hub(_scenario(integration, faults))
    t = np.linspace(10, 10000, 200)
    _, ledger = _run(hub, [(0, _outbound(vocab, t))])
    twice = np.bincount(ledger["seq"], minlength=200) == 2
    assert np.array_equal(twice, (t >= 5000) & (t < 6000))


def test_retries_exhausted_are_dead_lettered():
    integration = {"retry": {"initial": "1s", "max_attempts": 3, "jitter": 0},
                   "circuit_breaker": {"failure_threshold": 1000}}
    scenario = _scenario(integration, faults=[{"kind": "erp_outage", "at": 1000, "duration": "2h"}])
    hub, vocab = _hub(scenario)
    t = np.array([500.0, 2000.0, 2500.0, 9000.0])
    rows, ledger = _run(hub, [(0, _outbound(vocab, t))])
    dead = _by_seq(rows, trace.DEAD_LETTERED)
    assert dead["seq"].tolist() == [1, 2]
    assert all(B.REASONS[r] == trace.REASON_RETRIES_EXHAUSTED for r in dead["reason"])
    assert dead["attempts"].tolist() == [3, 3]
    assert ledger["seq"].tolist() == [0, 3]


def test_rollout_wave_moves_postings_to_the_cloud_erp():
    scenario = parse_scenario({
        "name": "wave", "run": {"duration": "6h"},
        "landscape": {"cloud_erp": {"kind": "cloud", "rate_limit": "50/s"}, "plants": [{"id": "P1"}]},
        "rollout": {"waves": [{"name": "w1", "at": 7200, "plants": ["P1"]}]},
    })
    hub, vocab = _hub(scenario)
    t = np.array([100.0, 7199.0, 7200.0, 9000.0])
    _, ledger = _run(hub, [(0, _outbound(vocab, t))])
    order = np.argsort(ledger["seq"])
    targets = [B.TARGETS[c] for c in ledger["target"][order]]
    assert targets == ["erp-legacy", "erp-legacy", "erp-cloud", "erp-cloud"]


def test_quality_gate_sets_the_ack_after_the_release():
    hub, vocab = _hub(_scenario())
    rows = _outbound(vocab, [100.0, 200.0], flow=trace.GOODS_RECEIPT)
    rows["t_gate"] = np.array([5000.0, np.nan])
    done, _ = _run(hub, [(0, rows)])
    done = _by_seq(done, trace.DELIVERED)
    assert done["t_acked"].tolist() == [5000.0, done["t_delivered"][1]]


def _outage_with_breaker(messages: int, outage: float, max_attempts: int) -> tuple[B.Batch, B.Batch]:
    integration = {"retry": {"initial": "1s", "max_delay": "60s", "max_attempts": max_attempts},
                   "circuit_breaker": {"failure_threshold": 3, "cooldown": "30s"}}
    scenario = _scenario(integration, faults=[{"kind": "erp_outage", "at": 0, "duration": outage}])
    hub, vocab = _hub(scenario, seed=4)
    return _run(hub, [(0, _outbound(vocab, np.arange(10.0, 10.0 + messages)))])


def test_with_the_breaker_an_outage_charges_only_its_failed_probes_to_the_waiting_messages():
    """Same policy as the live workers' sans-IO core (tests/integration/test_delivery_outage_policy.py):
    waiting for the breaker is no attempt; every failed probe is one, of a waiting message."""
    rows, ledger = _outage_with_breaker(messages=50, outage=1800.0, max_attempts=10)
    assert B.size(ledger) == 50 and np.all(rows["outcome"] == OUT[trace.DELIVERED])
    failed = int(rows["attempts"].sum()) - 50  # one successful attempt each
    assert 3 + 55 <= failed <= 3 + 62  # the first failures, then one probe per 30 s cooldown
    assert np.all(ledger["t_delivered"] >= 1800.0)


def test_with_the_breaker_an_outage_longer_than_the_attempts_cover_dead_letters_them():
    rows, ledger = _outage_with_breaker(messages=5, outage=3 * 3600.0, max_attempts=6)
    assert B.size(ledger) == 0
    dead = _by_seq(rows, trace.DEAD_LETTERED)
    assert dead["seq"].tolist() == list(range(5))
    assert all(B.REASONS[r] == trace.REASON_RETRIES_EXHAUSTED for r in dead["reason"])
    assert dead["attempts"].tolist() == [6] * 5
    assert np.all(dead["t_acked"] < 3 * 3600.0)  # given up at a failed probe inside the outage


def test_the_trace_shows_erp_arrival_and_service_start_so_queueing_can_be_read():
    hub, vocab = _hub(_scenario())  # constant 10 ms service, no network latency
    rows, _ = _run(hub, [(0, _outbound(vocab, [100.0, 100.0, 100.0, 100.005, 500.0]))])
    done = _by_seq(rows, trace.DELIVERED)
    np.testing.assert_allclose(done["t_erp_arrival"], [100.0, 100.0, 100.0, 100.005, 500.0])
    np.testing.assert_allclose(done["t_service_start"], [100.0, 100.01, 100.02, 100.03, 500.0])
    # The three arriving at one instant travel as the worker's two lane batches (two postings, then one),
    # each accepted when its last posting is served; the others are accepted 10 ms after their start.
    np.testing.assert_allclose(done["t_delivered"], [100.02, 100.02, 100.03, 100.04, 500.01])


def test_a_broker_to_erp_hop_delays_the_arrival_at_the_erp():
    hops = {"broker_to_erp": {"mean": "250ms", "distribution": "constant"}}
    hub, vocab = _hub(_scenario({"hops": hops}))
    rows, _ = _run(hub, [(0, _outbound(vocab, [100.0, 200.0]))])
    done = _by_seq(rows, trace.DELIVERED)
    np.testing.assert_allclose(done["t_erp_arrival"], [100.25, 200.25])
    np.testing.assert_allclose(done["t_delivered"], [100.26, 200.26])


def test_after_an_outage_every_waiting_message_goes_at_the_closing_probe_whatever_its_attempts():
    """The breaker paces retries during an outage and its closing releases everyone at once (the policy of
    integration/delivery.py, tests/integration/test_delivery_wake.py for the live lanes): four messages
    that shared sixty failed probes do not sleep out a grown backoff."""
    rows, ledger = _outage_with_breaker(messages=4, outage=1800.0, max_attempts=100)
    assert B.size(ledger) == 4 and int(rows["attempts"].max()) > 10
    # The breaker opened at the third failed request (t = 11 s: the lanes' first messages at 10 and 11 s,
    # the first one's retry at 10.9 s) and closes at its first probe after the outage.
    close = 11.0 + 30.0 * np.ceil((1800.0 - 11.0) / 30.0)
    assert np.all((ledger["t_delivered"] >= close) & (ledger["t_delivered"] < close + 1.0))


def test_the_hub_models_as_many_lanes_as_the_live_worker_has():
    from integration.workers.config import WorkerConfig
    from virtual.hub import LANES

    assert WorkerConfig.__dataclass_fields__["lanes"].default == LANES


def test_messages_released_together_are_accepted_as_the_lanes_batches():
    """What a closing breaker releases reaches the ERP at one instant and travels as the worker's two lane
    batches: each is accepted when its last posting is served; messages arriving alone keep their times."""
    from virtual.hub import lane_batches

    t = np.array([1.0, 2.0, 2.0, 2.0, 2.0, 2.0, 3.0])
    posted = np.array([1.1, 2.1, 2.2, 2.3, 2.4, 2.5, 3.1])
    assert lane_batches(t, posted).tolist() == [1.1, 2.3, 2.3, 2.3, 2.5, 2.5, 3.1]
    rows, ledger = _outage_with_breaker(messages=40, outage=600.0, max_attempts=100)
    after = np.sort(ledger["t_delivered"])
    assert np.unique(after[-30:]).size <= 4  # the backlog lands as a few batches, not one by one


def test_the_lane_batches_a_closing_probe_releases_take_their_calibrated_cost_per_posting():
    faults = [{"kind": "erp_outage", "at": 3000, "duration": 2400}]
    t = np.concatenate([np.arange(3010.0, 3500.0, 5.0)])  # 98 postings wait for the breaker
    first = {}
    for cost in (0.0, 0.05):
        integration = {"circuit_breaker": {"failure_threshold": 3, "cooldown": "5m"},
                       "hops": {"lane_batch": {"mean": cost, "distribution": "constant"}}}
        hub, vocab = _hub(_scenario(integration, faults=faults))
        _, ledger = _run(hub, [(0, _outbound(vocab, t))])
        first[cost] = float(np.min(ledger["t_delivered"]))
    # Released at the closing probe plus the batches' building and handling: 0.05 s for each of ~98 postings.
    assert first[0.05] - first[0.0] == pytest.approx(0.05 * t.size, rel=0.1)
