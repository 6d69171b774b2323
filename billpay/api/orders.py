"""Order routes: create (idempotent), read one, history."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/bills", tags=["orders"])
