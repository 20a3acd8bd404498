"""The table printed at the end of a sweep: the report's per-configuration table, as text.

The sweep calls the results layer for it (``ntkmtl.results.text``: ``summarize`` builds the
report's table with ``ntkmtl.results.table.build_reports``, ``format_summary`` prints it), so the
sweep's last screen and ``python -m ntkmtl.report`` use one selection rule and never disagree.
"""

from __future__ import annotations

from ntkmtl.results.text import format_summary, summarize

__all__ = ["format_summary", "summarize"]
