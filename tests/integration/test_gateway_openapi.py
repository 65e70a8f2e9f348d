"""The gateway's OpenAPI document describes the API as it behaves: checked by reading it, and by schemathesis
(every check, fixed seed) against a real uvicorn gateway on a real broker."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from integration.broker import EmbeddedNats
from live.procs import Service
from tests.integration.gateway_support import start_gateway

pytestmark = pytest.mark.slow

# The plant and named parameters take the key's own plant half of the time and random values otherwise;
# admin routes are called with the admin key. A refused oversized batch answers 413, a rejection as well.
CONFIG = """
headers = { "X-Api-Key" = "key-p01" }

[dictionaries.own_plant]
values = ["P01"]

[parameters]
"path.named" = { dictionary = "own_plant", probability = 0.5 }
"query.plant" = { dictionary = "own_plant", probability = 0.5 }

[checks.negative_data_rejection]
expected-statuses = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]

[[operations]]
include-path-regex = "^/admin/"
headers = { "X-Api-Key" = "admin-key" }
"""
OPERATIONS = {("post", "/v1/events"), ("post", "/v2/events"), ("post", "/v2/plants/{named}/events"),
              ("get", "/v2/plants/{named}/events/{txn_id}"), ("get", "/health"), ("get", "/metrics"),
              ("get", "/admin/dlq"), ("post", "/admin/replay"), ("get", "/admin/sources")}


@pytest.fixture(scope="module")
def fuzzed_gateway(broker: EmbeddedNats, credentials_file: Path) -> Service:
    """A gateway whose limits stay out of the fuzzer's way (batches of 50 keep boundary cases small)."""
    env = {"SYNCTWIN_GATEWAY_STATUS_RATE_LIMIT": "1000000/s"}
    proc = start_gateway(broker, credentials_file, "--rate-limit", "1000000/s", "--max-batch", "50", env=env)
    yield proc
    proc.stop()


def test_the_document_states_auth_statuses_and_media_types(fuzzed_gateway):
    doc = httpx.get(f"{fuzzed_gateway.url}/openapi.json").json()
    assert doc["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey", "in": "header", "name": "X-Api-Key",
        "description": "the key issued for your plant (admin routes: the admin key)"}
    assert {(m, p) for p, ops in doc["paths"].items() for m in ops} == OPERATIONS
    codes = {(m, p): set(op["responses"]) for p, ops in doc["paths"].items() for m, op in ops.items()}
    assert {"401", "403", "404", "429", "503"} <= codes["get", "/v2/plants/{named}/events/{txn_id}"]
    for route in ("/v2/events", "/v1/events", "/v2/plants/{named}/events"):
        assert {"202", "401", "403", "413", "422", "429", "503"} <= codes["post", route]
    assert {"401", "503"} <= codes["get", "/admin/dlq"] and {"401", "503"} <= codes["post", "/admin/replay"]
    for path, ops in doc["paths"].items():
        for op in ops.values():
            assert ("security" in op) == (path not in ("/health", "/metrics")), path
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert httpx.get(f"{fuzzed_gateway.url}/metrics").headers["content-type"].startswith("text/plain")


def test_schemathesis_finds_no_server_error_and_no_response_off_the_document(fuzzed_gateway, tmp_path):
    config = tmp_path / "schemathesis.toml"
    config.write_text(CONFIG)
    # One worker: hypothesis describes its filters with ast.parse, which on CPython 3.11 is not safe from two
    # threads at once ("AST constructor recursion depth mismatch", an error of the runner, not of the gateway).
    command = [str(Path(sys.executable).parent / "schemathesis"), "--config-file", str(config), "run",
               f"{fuzzed_gateway.url}/openapi.json", "--checks", "all", "--seed", "1", "-n", "150", "-w", "1"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=240, cwd=tmp_path)
    summary = run.stdout[-6000:]
    assert run.returncode == 0, summary
    assert "Selected: 9/9" in summary and "Tested: 9" in summary, summary  # every operation of the document
    assert "no issues found" in summary.lower(), summary
