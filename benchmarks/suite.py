"""The benchmark suite's registry: sizes per mode, the run context, and how sections register.

A section is a function ``(sizes, ctx) -> Result``: ``sizes`` is its entry of the mode's
table in ``MODES`` (``{}`` when it has none), ``ctx`` the device, threads and machine
header; it returns what goes to ``latest.json``, the tables it printed as text and its
headline figures. A section that needs another's work asks ``ctx.fixture`` for it, so
``--only`` runs any section alone. The sections themselves live in ``sections.py`` (speed,
memory and quality of the model) and ``speed_sections.py`` (issue 14's figures); importing
those modules, in that order, registers them in run order.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import busy
import step_speed
import torch

# Sizes per mode and section. Training throughput: (rounds, our batches per round) -- each
# round times one union-grid batch; spiral_to_target: spiral until the validation MSE
# reaches TARGET_MSE (shared by the quality and tolerance sections).
MODES: dict[str, dict[str, dict]] = {
    "quick": {
        "training": {"spiral": (3, 2), "periodic": (2, 2), "clinical": (1, 3)},
        "spiral_to_target": {"n_train": 200, "n_val": 48, "max_epochs": 40, "max_seconds": 30.0},
        "quality": {"equal_epochs": {}},
        "memory": {"horizons": [1, 10], "repeats": 1},
        "prediction": {"samples": [32, 100], "repeats": 3, "fit_epochs": 5},
        "tolerance": {"repeats": 1},
        "busy": busy.SIZES["quick"],
        "step_speed": step_speed.SIZES["quick"],
        "read_csv": {"argv": ["--repeats", "3"]},
    },
    "full": {
        "training": {"spiral": (5, 3), "periodic": (5, 2), "clinical": (3, 3)},
        "spiral_to_target": {
            "n_train": 200,
            "n_val": 48,
            "max_epochs": 150,
            "max_seconds": 300.0,
        },
        "quality": {
            "equal_epochs": {
                "periodic": {"n_train": 160, "n_val": 48, "epochs": 5},
                "clinical": {"n_train": 100, "n_val": 50, "epochs": 2},
            }
        },
        "memory": {"horizons": [1, 2, 5, 10], "repeats": 3},
        "prediction": {"samples": [32, 100], "repeats": 5, "fit_epochs": 5},
        "tolerance": {"repeats": 3},
        "busy": busy.SIZES["full"],
        "step_speed": step_speed.SIZES["full"],
        "read_csv": {"argv": ["--repeats", "5"]},
    },
}

Figures = dict[str, float | bool | None]


@dataclass
class Context:
    """What every section runs with: mode, device, torch threads, the machine header."""

    mode: str
    device: torch.device
    threads: int
    info: dict
    _shared: dict = field(default_factory=dict)

    @property
    def sizes(self) -> dict[str, dict]:
        return MODES[self.mode]

    def fixture(self, fn: Callable[[Context], object]) -> object:
        """``fn(self)``, computed once per run and shared by the sections that ask for it."""
        if fn.__name__ not in self._shared:
            self._shared[fn.__name__] = fn(self)
        return self._shared[fn.__name__]


@dataclass
class Result:
    """A section's output: ``data`` for latest.json, printed ``tables``, headline figures."""

    data: object
    tables: list[str] = field(default_factory=list)
    figures: Figures = field(default_factory=dict)


@dataclass(frozen=True)
class Section:
    name: str
    run: Callable[[dict, Context], Result]
    quick: bool  # part of a --quick run without --only


SECTIONS: dict[str, Section] = {}  # in run order


def section(name: str, quick: bool = True):
    """Register the decorated function as the section ``name`` (run in definition order)."""

    def register(fn: Callable[[dict, Context], Result]) -> Callable[[dict, Context], Result]:
        SECTIONS[name] = Section(name, fn, quick)
        return fn

    return register
