"""How many brokers, gateway processes and workers a run starts, and what each is told (no process runs)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from integration.workers.config import WorkerConfig, partition_subjects
from live.stack_plan import Scale, ServiceCommands
from scenarios.loader import ScenarioError, parse_scenario

SPEC = """
name: scale
landscape:
  integration: {brokers: BROKERS}
  plants: [{id: P03}, {id: P01}, {id: P02}]
"""


def scenario(brokers: str):
    return parse_scenario(yaml.safe_load(SPEC.replace("BROKERS", brokers)))


def test_the_scenario_names_a_broker_count_that_keeps_a_quorum():
    assert scenario("3").landscape.integration.brokers == 3
    assert scenario("1").landscape.integration.brokers == 1
    with pytest.raises(ScenarioError, match=r"landscape\.integration\.brokers: 2 brokers .* e\.g\. brokers: 3"):
        scenario("2")


@pytest.mark.parametrize(("brokers", "gateways", "workers", "fix"), [
    (2, 1, 1, "--brokers: 2 brokers"), (4, 1, 1, "odd number"), (1, 0, 1, "--gateways"), (1, 1, 4, "use 1 to 3"),
])
def test_scale_refuses_what_cannot_work_naming_the_option(brokers, gateways, workers, fix):
    with pytest.raises(ValueError, match=fix):
        Scale.plan(brokers, gateways, workers, plants=3)


def test_a_cluster_node_gets_its_planned_ports_and_every_route(tmp_path: Path):
    scale = Scale.plan(3, 2, 2, plants=3)
    plan = ServiceCommands(tmp_path / "s.yaml", tmp_path, tmp_path / "c.json", ("legacy",), {}, 0.0, 60.0,
                           scale=scale)
    assert scale.broker_names == ["broker-1", "broker-2", "broker-3"]
    ports = [p for pair in scale.broker_ports for p in pair]
    assert len(set(ports)) == 6
    node = plan.command("broker-2", {}, port=0)
    routes = ",".join(str(c) for _, c in scale.broker_ports)
    assert node[node.index("--port") + 1] == str(scale.broker_ports[1][0])
    assert node[node.index("--cluster-port") + 1] == str(scale.broker_ports[1][1])
    assert node[node.index("--routes") + 1] == routes and node[node.index("--node") + 1] == "broker-2"
    assert plan.command("broker-2", {}, port=0) == node  # a restart comes back on the same ports
    urls = {"broker-1": "nats://a", "broker-2": "nats://b", "broker-3": "nats://c", "erp-legacy": "http://e"}
    urls["broker"] = scale.broker_url(urls)
    assert urls["broker"] == "nats://a,nats://b,nats://c"
    gateway = plan.command("gateway", urls)
    assert gateway[gateway.index("--workers") + 1] == "2" and gateway[gateway.index("--nats") + 1] == urls["broker"]
    second = plan.command("worker-2", urls)
    assert second[second.index("--partition") + 1] == "2" and second[second.index("--partitions") + 1] == "2"
    assert scale.expand(("worker", "broker", "gateway")) == ["worker-1", "worker-2", "broker-1", "broker-2",
                                                             "broker-3", "gateway"]


def test_one_of_each_keeps_the_single_service_names():
    scale = Scale.plan(1, 1, 1, plants=1)
    assert scale.broker_names == ["broker"] and scale.worker_names == ["worker"] and scale.broker_ports == ()


def test_worker_partitions_deal_out_whole_plants_and_cover_each_once(tmp_path: Path):
    plants = ["P03", "P01", "P02"]
    parts = [partition_subjects(plants, i, 2) for i in (1, 2)]
    assert parts == [["events.P01.>", "events.P03.>"], ["events.P02.>"]]
    spec = scenario("1")
    cfg = WorkerConfig("nats://x", spec, {"legacy": "http://e"}, tmp_path, 0.0, 60.0, partition=2, partitions=2)
    assert cfg.consumer_name == "erp-workers-2" and cfg.filter_subjects == ["events.P02.>"]
    single = WorkerConfig("nats://x", spec, {"legacy": "http://e"}, tmp_path, 0.0, 60.0)
    assert single.consumer_name == "erp-workers" and single.filter_subjects == ["events.>"]
    with pytest.raises(ValueError, match="use at most --partitions 3"):
        WorkerConfig("nats://x", spec, {"legacy": "http://e"}, tmp_path, 0.0, 60.0, partition=1, partitions=4)
