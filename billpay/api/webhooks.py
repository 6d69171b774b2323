"""Provider webhooks in: hints that make a bill's requery due now; the requery decides."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/webhooks", tags=["provider webhooks"])
