"""Results: the Parquet schema and everything computed from a sweep's rows.

Modules, bottom first (each imports only those before it; nothing here imports ``ntkmtl.sweep``):

- ``schema``: statuses, identity columns and every per-epoch column (name, Arrow type, meaning;
  the trainer's declared next to its code, collected here): what the exporter, docs/SWEEP.md's
  generated table and the report use
- ``errors``, ``read``: ReportError; reading and checking a data set
- ``select``: each trial's epoch (best validation value, no test-set peeking), which trials count
- ``labels``, ``baseline``, ``stats``, ``table``: configuration names, the baseline, comparison
  statistics, the per-configuration table (mean ± std over seeds, order, best marks)
- ``compare_text``, ``markdown``, ``text``, ``write``, ``plots``, ``wandb``: rendering (the
  comparison cells, the Markdown page, the sweep's final text table, CSV files, PNG plots, W&B)
- ``pipeline``: the whole report for ``python -m ntkmtl.report`` (``ntkmtl/report.py`` parses)

The rules are in docs/REPORT.md. Importing this package loads none of its modules; ``plots``
(matplotlib) is imported only to draw.
"""
