"""Transparency reports (filled in below)."""

from fastapi import APIRouter

__all__ = ["router"]

router = APIRouter(tags=["transparency"])
