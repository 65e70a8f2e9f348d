"""Former name of :mod:`live.faultproxy` (the WAN relay grew into the fault proxy); kept for importers."""

from live.faultproxy import FaultProxies, FaultProxy, Relays, TcpRelay

__all__ = ["FaultProxies", "FaultProxy", "Relays", "TcpRelay"]
