"""Capped exponential backoff for components that wait out an outage instead of ending."""

import asyncio
import random


class Backoff:
    """Delays of first, first*factor, ... up to `cap`, each with up to 20 % jitter (so the services
    of a fleet do not all knock on a restarted server at the same instant); `reset()` after a success."""

    def __init__(self, first: float = 0.2, cap: float = 5.0, factor: float = 2.0) -> None:
        self._first, self._cap, self._factor = first, cap, factor
        self.attempt = 0

    def next_delay(self) -> float:
        delay = min(self._first * self._factor**self.attempt, self._cap)
        self.attempt += 1
        return delay * random.uniform(0.8, 1.0)

    async def wait(self) -> None:
        await asyncio.sleep(self.next_delay())

    def reset(self) -> None:
        self.attempt = 0
