"""Monitoring tests reuse the serving fixtures: a workspace with the 'risk' model."""

from __future__ import annotations

from tests.serving.conftest import served_home, ws

__all__ = ["served_home", "ws"]
