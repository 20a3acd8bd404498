"""The error every results module raises for bad input (a path, a data set, an option)."""

from __future__ import annotations


class ReportError(ValueError):
    """Bad input to the report; the CLI prints it as one line and exits with code 2."""
