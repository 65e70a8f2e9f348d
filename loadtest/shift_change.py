"""Locustfile: v2 ingest users under the shift-change shape (see :mod:`loadtest.shapes`)."""

from loadtest.locustfile import IngestUser  # noqa: F401 - Locust discovers the user class here
from loadtest.shapes import ShiftChangeShape  # noqa: F401 - and the shape
