"""The gateway's settings: one pydantic-settings object (environment prefix ``SYNCTWIN_GATEWAY_``)."""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from scenarios.units import Rate


class GatewaySettings(BaseSettings):
    """Everything the gateway needs; ``credentials_file`` fills ``plant_keys``/``admin_key`` if given."""

    model_config = SettingsConfigDict(env_prefix="SYNCTWIN_GATEWAY_", extra="forbid")

    nats_url: str = "nats://127.0.0.1:4222"
    plant_keys: dict[str, str] = Field(default_factory=dict, description="plant id -> API key")
    admin_key: str = ""
    credentials_file: Path | None = None
    rate_limit: Rate = Field(2000.0, gt=0, description="events per second per plant (token bucket)")
    burst_seconds: float = Field(1.0, gt=0, description="bucket capacity in seconds of rate")
    status_rate_limit: Rate = Field(200.0, gt=0, description="status reads per second per plant (token bucket)")
    max_batch: int = Field(5000, ge=1, description="most events in one request")
    max_body_bytes: int = Field(16 * 1024 * 1024, ge=1024, description="largest request body accepted")
    publish_timeout: float = Field(10.0, gt=0, description="seconds to wait for every PubAck")
    connect_timeout: float = Field(30.0, gt=0, description="seconds to keep trying the broker at startup")
    scan_limit: int = Field(200_000, ge=0, description="most stream messages one status/DLQ scan reads")
    clock_skew_bound: float = Field(120.0, gt=0, description="scenario seconds an edge's clock may be off before "
                                    "the gateway flags the plant and corrects its events' t_created")
    source_window: float = Field(600.0, gt=0, description="scenario seconds an edge instance counts as active "
                                 "(two active for one plant: a second source with the same credentials)")
    epoch: float = Field(default_factory=time.time, description="Unix time of scenario second 0")
    speed: float = Field(60.0, gt=0, description="scenario seconds per wall second")

    @model_validator(mode="after")
    def _read_credentials(self) -> GatewaySettings:
        if self.credentials_file is not None:
            creds = load_credentials(self.credentials_file)
            self.plant_keys = {**creds["plants"], **self.plant_keys}
            self.admin_key = self.admin_key or creds["admin"]
        keys = list(self.plant_keys.values())
        if len(set(keys)) != len(keys):
            raise ValueError("plant_keys: every plant needs its own API key; two plants share one")
        if self.admin_key and self.admin_key in keys:
            raise ValueError("admin_key: must differ from every plant key")
        return self


def load_credentials(path: Path | str) -> dict[str, Any]:
    """Read ``{"admin": key, "plants": {"P01": key, ...}}``; raise ValueError naming what is wrong."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise ValueError(
            f"credentials_file: {path} does not exist; `synctwin up` writes it to RUN_DIR/state/"
        ) from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"credentials_file: {path} is not JSON ({exc})") from None
    well_formed = isinstance(data, dict) and isinstance(data.get("plants"), dict)
    if not (well_formed and isinstance(data.get("admin"), str)):
        layout = '{"admin": "<key>", "plants": {"P01": "<key>", ...}}'
        raise ValueError(f"credentials_file: {path} needs {layout}")
    return data


def generate_credentials(plants: list[str]) -> dict[str, Any]:
    """Fresh random keys for the admin and each plant, in the credentials-file layout."""
    return {"admin": secrets.token_urlsafe(24), "plants": {p: secrets.token_urlsafe(24) for p in plants}}
