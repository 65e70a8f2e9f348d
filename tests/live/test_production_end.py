"""The end of production the orchestrator hands to the edges when a run is interrupted."""

from __future__ import annotations

import math

from live.production_end import (
    ProductionEnd,
    clear_production_end,
    production_end_file,
    write_production_end,
)


def test_the_edges_read_the_end_when_it_is_written_and_none_once_cleared(tmp_path):
    end = ProductionEnd(production_end_file(tmp_path))
    assert end.refresh() == math.inf
    write_production_end(tmp_path, 1234.5)
    assert end.refresh() == 1234.5
    clear_production_end(tmp_path)
    assert end.refresh() == math.inf
    clear_production_end(tmp_path)  # nothing to clear: no error


def test_an_unreadable_file_means_no_end_yet(tmp_path):
    path = production_end_file(tmp_path)
    path.parent.mkdir(parents=True)
    path.write_text("{not json")
    assert ProductionEnd(path).refresh() == math.inf
