"""One machine-bank construction and one seed per plant: both engines build the same bank."""

from __future__ import annotations

import numpy as np

from live.plant_host import build_bank
from scenarios.generator import plant_seed, seeds
from scenarios.spec import Scenario
from twins.machines import MachineBank
from virtual.hosts import PlantHost

SCENARIO = Scenario.model_validate({
    "name": "seeds", "run": {"seed": 11},
    "landscape": {"plants": [{"id": "P01", "lines": 2, "machines_per_line": 3, "mtbf": "2h"},
                             {"id": "P02", "lines": 3, "machines_per_line": 2, "mtbf": "3h"}]},
})


def test_for_plant_lays_machines_out_line_by_line():
    plant = SCENARIO.landscape.all_plants[1]
    bank = MachineBank.for_plant(plant, np.random.default_rng(0), t0=50.0)
    assert bank.n == 6 and bank.line_of.tolist() == [0, 0, 1, 1, 2, 2] and bank.t == 50.0
    assert bank.cycle_time == plant.cycle_time and bank.mtbf == plant.mtbf


def test_the_virtual_twin_and_the_live_host_draw_the_same_bank():
    virtual = PlantHost(SCENARIO, [0, 1], replications=1)
    for index, plant in enumerate(SCENARIO.landscape.all_plants):
        live_bank, _ = build_bank(SCENARIO, plant.id)
        virtual_bank = virtual.twins[(0, index)].bank
        assert np.array_equal(live_bank.next_failure, virtual_bank.next_failure)
        assert np.array_equal(live_bank.line_of, virtual_bank.line_of)


def test_plant_seeds_are_the_spawned_children_of_the_run_seed():
    root = np.random.SeedSequence(SCENARIO.run.seed)
    for rep, rep_seq in enumerate(root.spawn(2)):
        enterprise, *per_plant = rep_seq.spawn(3)
        assert np.array_equal(seeds(SCENARIO, 2)[rep][0].generate_state(4), enterprise.generate_state(4))
        for i, seq in enumerate(per_plant):
            assert np.array_equal(plant_seed(SCENARIO, i, rep).generate_state(4), seq.generate_state(4))
    streams = {tuple(plant_seed(SCENARIO, 0, stream=s).generate_state(2)) for s in (None, 1, 2)}
    assert len(streams) == 3
