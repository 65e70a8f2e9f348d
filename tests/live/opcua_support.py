"""Plain helpers shared by the OPC UA server tests: a small one-plant scenario and a secured client."""

from __future__ import annotations

from pathlib import Path

from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256

from live.opcua_server import ensure_certificate
from scenarios.spec import Scenario

LINES, PER_LINE = 2, 3


def scenario(mtbf: str = "1000h") -> Scenario:
    """A one-plant scenario small enough to start in a second."""
    return Scenario.model_validate(
        {
            "name": "opcua-test",
            "landscape": {
                "plants": [
                    {"id": "P01", "lines": LINES, "machines_per_line": PER_LINE, "cycle_time": "10s", "mtbf": mtbf}
                ]
            },
        }
    )


async def secure_client(url: str, run_dir: Path, user: str | None, password: str | None) -> Client:
    """A client over Basic256Sha256 SignAndEncrypt with its own certificate, logging in as ``user``."""
    client = Client(url, timeout=5)
    client.application_uri = "urn:synctwin:test-client"
    cert, key = await ensure_certificate(run_dir / "state" / "pki", "test-client", client.application_uri, server=False)
    await client.set_security(
        SecurityPolicyBasic256Sha256, str(cert), str(key), mode=ua.MessageSecurityMode.SignAndEncrypt
    )
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    return client
