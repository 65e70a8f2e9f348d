"""Locustfile: v2 ingest users under a step ramp (see :mod:`loadtest.shapes`)."""

from loadtest.locustfile import IngestUser  # noqa: F401 - Locust discovers the user class here
from loadtest.shapes import StepShape  # noqa: F401 - and the shape
