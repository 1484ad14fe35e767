"""Example tools for ``python -m pipelines.agent --tools pipelines/examples/tools.py``.

Every public function of this module becomes a tool the model may call: its name, docstring and
type hints are what the model sees. Plain functions run in a thread, ``async def`` ones on the
event loop; what they return is sent back to the model (strings as they are, the rest as JSON).
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime
from typing import Literal

_WEATHER = {
    "london": "foggy, 12 degrees",
    "paris": "sunny, 18 degrees",
    "seattle": "rainy, 9 degrees",
}


def get_time() -> str:
    """Tell the current local time, to the second."""
    return f"The clock says {datetime.now():%H:%M:%S}."


def get_date() -> str:
    """Tell today's date."""
    return f"Today is {datetime.now():%A %d %B %Y}."


async def get_weather(
    city: str, unit: Literal["celsius", "fahrenheit"] = "celsius"
) -> dict[str, str]:
    """Look up the weather for a city (a made-up forecast: London, Paris and Seattle).

    Args:
        city: the city's name, e.g. London.
        unit: the temperature unit.
    """
    await asyncio.sleep(0.05)  # stands in for a web request
    forecast = _WEATHER.get(city.strip().lower())
    if forecast is None:
        raise LookupError(f"no forecast for {city}")
    return {"city": city, "forecast": forecast, "unit": unit}


def roll_dice(sides: int = 6) -> int:
    """Roll a die.

    Args:
        sides: how many sides the die has.
    """
    return random.randint(1, sides)
