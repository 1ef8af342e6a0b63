"""Experiment tracking: runs with parameters, metrics, tags, artifacts, inputs, environment
and resource use, written off the training thread; queries, comparisons and plots over them.
"""

from __future__ import annotations

from plinth.tracking.run import RUN_ID_ENV, Run, attach_run, current_run, start_run, tag_run

__all__ = ["RUN_ID_ENV", "Run", "attach_run", "current_run", "start_run", "tag_run"]
