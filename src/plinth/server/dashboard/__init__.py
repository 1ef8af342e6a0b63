"""The web dashboard, served by the control-plane server."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter()
