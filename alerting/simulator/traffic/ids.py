"""Ids shared by the event builders and the population: kept apart so neither imports the other."""

from __future__ import annotations

import random


def oid(rng: random.Random, seconds: int) -> str:
    """A 24-hex ObjectId: 4-byte timestamp then 8 random bytes."""
    return f"{seconds & 0xFFFFFFFF:08x}{rng.getrandbits(64):016x}"
