"""The plant definition file: what ``synctwin discover`` found, completed by the onboarding team.

Unknown keys are errors and every error names its YAML path, so a typo cannot pass silently.
``schema_version`` and the unit/item codes are free text on purpose: an unsupported value is a
readiness finding (a row of ``synctwin onboard``), not an unreadable file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from scenarios.loader import explain_validation_error
from scenarios.units import Duration

SIGNALS = ("state", "good", "scrap", "cycle_time", "speed", "temperature", "alarm", "product")
COUNTERS = ("good", "scrap")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PlantInfo(_Strict):
    id: str = Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]*$", description="plant id the gateway and ERP know")
    name: str = ""


class ServerCertificate(_Strict):
    """The server certificate pinned at discovery: trusted only if the server still presents it."""

    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    file: str = ""
    subject: str = ""
    not_after: str = ""


class Endpoint(_Strict):
    url: str = Field(pattern=r"^opc\.tcp://")
    policy: str = Field("None", description="security policy, e.g. Basic256Sha256 or None")
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    user: str | None = None
    password: str | None = Field(None, description="prefer password_env; a literal password stays in the file")
    password_env: str | None = Field(None, description="environment variable holding the password")
    certificate: str | None = Field(None, description="client certificate (DER) the plant's server trusts")
    private_key: str | None = None
    server_certificate: ServerCertificate | None = None
    publishing_interval: Duration = Field(0.5, gt=0, description="subscription publishing interval")

    def resolved_password(self) -> str | None:
        """The password from ``password`` or the ``password_env`` variable (None if neither is set)."""
        if self.password is not None:
            return self.password
        return os.environ.get(self.password_env) if self.password_env else None


class UnitConversion(_Strict):
    to: str = Field(min_length=1)
    factor: float = Field(gt=0)


class MasterData(_Strict):
    version: str = Field("", description="ERP item-master version this mapping was checked against")
    items: dict[str, str] = Field(default_factory=dict, description="plant item code -> ERP item code")
    units: dict[str, UnitConversion] = Field(default_factory=dict, description="plant unit -> ERP unit")


class GatewayAccess(_Strict):
    """Only for ``--gateway URL``: the plant's key there and a plant whose data it must not reach."""

    api_key: str | None = None
    api_key_env: str | None = None
    other_plant: str | None = None

    def resolved_key(self) -> str | None:
        if self.api_key is not None:
            return self.api_key
        return os.environ.get(self.api_key_env) if self.api_key_env else None


class Binding(_Strict):
    node: str = Field(min_length=1, description="node id, e.g. ns=2;s=Filler01.Counter")
    path: str = ""
    datatype: str = ""
    unit: str = ""


class Unbound(_Strict):
    signal: str
    reason: str


class Machine(_Strict):
    name: str = Field(min_length=1)
    line: str = ""
    structure: Literal["machinery", "packml", "folder"] = "folder"
    identification: dict[str, str] = Field(default_factory=dict)
    product: str | None = Field(None, description="plant item code this machine makes")
    cycle_time: float | None = Field(None, gt=0, description="seconds, read at discovery")
    signals: dict[str, Binding] = Field(default_factory=dict)
    unbound: list[Unbound] = Field(default_factory=list)

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, value: dict[str, Binding]) -> dict[str, Binding]:
        unknown = sorted(set(value) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signal(s) {', '.join(unknown)}; use {', '.join(SIGNALS)}")
        return value


class PlantFile(_Strict):
    plant: PlantInfo
    endpoint: Endpoint
    schema_version: str = Field("v2", description="payload version the plant's MES posts, e.g. v1 or v2")
    erp: Literal["legacy", "cloud"] = "legacy"
    unit: str = Field("EA", min_length=1, description="unit of the machines' counters")
    lot_size: int = Field(50, ge=1, description="good units per goods receipt")
    master_data: MasterData = MasterData()
    gateway: GatewayAccess = GatewayAccess()
    machines: list[Machine] = Field(min_length=1)
    discovered_at: str = ""

    @model_validator(mode="after")
    def _unique_machines(self) -> PlantFile:
        names = [m.name for m in self.machines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"machines: names must be unique; repeated: {', '.join(dupes)}")
        return self

    def products(self) -> list[str]:
        """Distinct plant item codes, in machine order."""
        return list(dict.fromkeys(m.product for m in self.machines if m.product))


class PlantFileError(ValueError):
    """A plant file that cannot be read; ``problems`` holds one line per fault, each naming its path."""

    def __init__(self, source: str, problems: list[str]):
        self.source, self.problems = source, problems
        super().__init__(f"{source}: unreadable plant file\n" + "\n".join(f"  - {p}" for p in problems))


def parse_plant(data: Any, source: str = "<plant>") -> PlantFile:
    """Validate parsed YAML; raise :class:`PlantFileError` listing every problem."""
    if not isinstance(data, dict):
        raise PlantFileError(source, ["(top level): expected a mapping with plant, endpoint, machines"])
    try:
        return PlantFile.model_validate(data)
    except ValidationError as exc:
        raise PlantFileError(source, [explain_validation_error(e) for e in exc.errors()]) from None


def load_plant(path: str | Path) -> PlantFile:
    """Read and validate a plant file."""
    path = Path(path)
    if not path.is_file():
        raise PlantFileError(str(path), ["file not found; write one with `synctwin discover opc.tcp://... -o FILE`"])
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise PlantFileError(str(path), [f"not valid YAML: {exc}"]) from None
    return parse_plant(data, str(path))


HEADER = """\
# Plant definition written by `synctwin discover` at {when}.
# Review before `synctwin onboard`: fill in master_data (plant item codes and units -> ERP), the
# schema_version the plant's MES posts, and check every machine's bindings and `unbound` reasons.
"""


def dump_plant(plant: PlantFile, when: str = "") -> str:
    """YAML text of ``plant`` with the review header."""
    body = yaml.safe_dump(plant.model_dump(mode="json", exclude_none=True), sort_keys=False, width=110)
    return HEADER.format(when=when or plant.discovered_at or "an unknown time") + body
