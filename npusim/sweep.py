"""Design-space sweeps, the public face of :mod:`npusim.dse`.

>>> import npusim
>>> callable(npusim.sweep.load) and callable(npusim.sweep.run)
True

- :func:`run` (``npusim sweep SPEC --out DIR``): run a spec file into ``DIR/sweep.sqlite``,
  resuming what an earlier run stored; local worker processes or a Dask cluster.
- :func:`load` (``path``: the store or its folder): the results as flat records, or a pandas
  DataFrame with ``as_="dataframe"``.
- :func:`export`: CSV or Parquet.
- :func:`load_spec`: read and check a spec without running it.
- :func:`report` (``npusim sweep report DIR``): the Pareto, parallel-coordinates and tornado
  plots and ``summary.md`` from a store.
"""
from __future__ import annotations

from .dse.run import Summary, run_sweep as run
from .dse.spec import load_spec
from .dse.store import export, load


def report(path, out_dir=None):
    """Draw a sweep's plots and summary from its store (needs matplotlib)."""
    from .report.sweep import write_report
    return write_report(path, out_dir)


__all__ = ["run", "load", "export", "load_spec", "report", "Summary"]
