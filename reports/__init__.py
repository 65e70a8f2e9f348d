"""SLA evaluation, invariants and reports, read only from a run folder.

Entry points: :func:`reports.evaluate.evaluate_run` (the ``sla.json`` content),
:func:`reports.finalize.finalize_run` (writes ``sla.json``, ``report.html`` and optionally
``report.pdf``; returns a :class:`reports.finalize.RunVerdict`) and
:func:`reports.compare.compare_runs` (``compare.html``).

Pipeline: ``runfolder`` (read + validate) → ``prep`` (integer keys, per-transaction tables) →
``slas`` / ``invariants`` / ``kpis`` / ``backlog`` (figures) → ``narrative`` / ``view`` (words and
tables) → ``charts`` (matplotlib Figures) → ``html`` / ``pdf``.
"""
