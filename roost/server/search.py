"""The search surface (being written)."""

from fastapi import APIRouter

router = APIRouter()


def load(state) -> None:
    pass
