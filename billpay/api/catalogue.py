"""Catalogue and account routes: bill types, billers and products, validate, stats."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(prefix="/api/bills", tags=["catalogue"])
