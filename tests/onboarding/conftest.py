"""The vendor-like plant server as a separate process, secured or anonymous-only."""

from __future__ import annotations

import asyncio
import shutil
import sys
from pathlib import Path

import pytest

from live.opcua_server import ensure_certificate
from live.procs import Service
from onboarding.opcua_access import CLIENT_URI

VENDOR_SERVER = Path(__file__).resolve().parent / "vendor_server.py"
USER, PASSWORD = "operator", "linz-7f3a"


def start_vendor(folder: Path, secure: bool) -> Service:
    """Start the vendor server; when secure, the onboarding client's certificate (generated where discover
    and onboard look for it: next to ``plant.yaml``) is put in the vendor's trusted folder, as the plant's
    IT would do."""
    args = ["--pki", str(folder / "vendor-pki"), "--tick", "0.1"]
    if secure:
        cert, _ = asyncio.run(ensure_certificate(folder / "plant.pki", "onboarding-client", CLIENT_URI, server=False))
        (folder / "vendor-pki" / "trusted").mkdir(parents=True, exist_ok=True)
        shutil.copyfile(cert, folder / "vendor-pki" / "trusted" / cert.name)
        args += ["--user", USER, "--password", PASSWORD]
    else:
        args += ["--anonymous"]
    service = Service("vendor-opcua", [sys.executable, str(VENDOR_SERVER), *args], folder / "logs", ready_timeout=90)
    service.start()
    return service


@pytest.fixture(scope="module")
def secure_vendor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vendor-secure")
    service = start_vendor(folder, secure=True)
    yield service.url, folder
    service.stop()


@pytest.fixture(scope="module")
def anonymous_vendor(tmp_path_factory):
    folder = tmp_path_factory.mktemp("vendor-anonymous")
    service = start_vendor(folder, secure=False)
    yield service.url, folder
    service.stop()
