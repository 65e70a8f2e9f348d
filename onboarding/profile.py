"""The mapping profile of discovery: name patterns per signal, required signals, state vocabulary.

``onboarding/profiles/default.yaml`` is the default; a user's copy is passed with ``--profile``.
"""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from onboarding.plant_file import SIGNALS, PlantFileError

DEFAULT_PROFILE = Path(__file__).resolve().parent / "profiles" / "default.yaml"
TWIN_STATES = ("running", "idle", "down", "changeover")


class Profile(BaseModel):
    """Patterns (regular expressions, whole browse name, case-insensitive) per signal."""

    model_config = ConfigDict(extra="forbid")

    signals: dict[str, list[str]]
    required: list[str] = Field(default_factory=lambda: ["state", "good"])
    recommended: list[str] = Field(default_factory=list)
    states: dict[str, list[str]] = Field(default_factory=dict)
    skip: list[str] = Field(default_factory=list)

    @field_validator("signals")
    @classmethod
    def _known(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(SIGNALS))
        if unknown:
            raise ValueError(f"unknown signal(s) {', '.join(unknown)}; use {', '.join(SIGNALS)}")
        for signal, patterns in value.items():
            for pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as exc:
                    raise ValueError(f"{signal}: pattern {pattern!r} is not a regular expression ({exc})") from None
        return value

    @field_validator("states")
    @classmethod
    def _twin_states(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        unknown = sorted(set(value) - set(TWIN_STATES))
        if unknown:
            raise ValueError(f"unknown twin state(s) {', '.join(unknown)}; use {', '.join(TWIN_STATES)}")
        return value

    def matchers(self, signal: str) -> list[re.Pattern[str]]:
        return [re.compile(p, re.IGNORECASE) for p in self.signals.get(signal, [])]

    def twin_state(self, value: object) -> str | None:
        """The twin's state for a plant state value (``Executing`` -> ``running``), None if unknown."""
        text = getattr(value, "Text", value)
        text = str(text or "").strip().lower().replace(" ", "").replace("-", "")
        for state, names in self.states.items():
            if text in {n.lower().replace(" ", "").replace("-", "") for n in names}:
                return state
        return None


def load_profile(path: str | Path | None = None) -> Profile:
    """Read a profile (default: the shipped one); errors name the key."""
    path = Path(path) if path else DEFAULT_PROFILE
    if not path.is_file():
        raise PlantFileError(str(path), ["profile not found; copy onboarding/profiles/default.yaml and edit it"])
    try:
        return Profile.model_validate(yaml.safe_load(path.read_text()))
    except (yaml.YAMLError, ValidationError) as exc:
        raise PlantFileError(str(path), [f"invalid profile: {exc}"]) from None
