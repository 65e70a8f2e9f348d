"""The plant-facing HTTP gateway: authenticates plants, validates payloads, stores events durably.

Build it with :func:`create_app` from one :class:`GatewaySettings`; serve it with :func:`serve`.
"""

from integration.gateway.app import create_app
from integration.gateway.settings import GatewaySettings, load_credentials

__all__ = ["GatewaySettings", "create_app", "load_credentials"]
