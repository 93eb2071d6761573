"""What every benchmark table shares: the machine header, device sync, timers, text tables
and a quiet CPU fit."""

from __future__ import annotations

import ast
import io
import os
import platform
import shlex
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable, Sequence
from contextlib import contextmanager, redirect_stdout
from datetime import datetime, timezone
from pathlib import Path

import torch


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (Linux), else ``platform.processor()``."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info(device: torch.device, argv: Sequence[str] | None = None) -> dict:
    """Machine, device, versions, torch threads, the command line and today's date (UTC)."""
    import torchdiffeq

    argv = sys.argv if argv is None else argv
    info = {
        "machine": f"{cpu_model()}, {os.cpu_count()} cores, {platform.system()}",
        "device": str(device),
        "torch": torch.__version__,
        "torchdiffeq": torchdiffeq.__version__,
        "python": platform.python_version(),
        "threads": torch.get_num_threads(),
        "command": shlex.join(["python", *argv]),
        "date": datetime.now(timezone.utc).date().isoformat(),  # of the run, for the record
    }
    if device.type == "cuda":
        info["device"] = f"{device} ({torch.cuda.get_device_name(device)})"
    return info


def header(title: str, info: dict) -> str:
    """A table's title and the machine line under it."""
    line = (
        f"machine: {info['machine']} | device: {info['device']} | torch {info['torch']} | "
        f"threads {info['threads']} | command: {info['command']}"
    )
    return f"\n## {title}\n{line}\n"


def table(rows: Sequence[dict], columns: Sequence[tuple[str, str, str]]) -> str:
    """Rows as an aligned text table; ``columns`` are (key, heading, format spec)."""
    cells = [[heading for _, heading, _ in columns]]
    for row in rows:
        cells.append(
            ["-" if row.get(key) is None else format(row[key], spec) for key, _, spec in columns]
        )
    widths = [max(len(r[j]) for r in cells) for j in range(len(columns))]
    lines = ["  ".join(c.rjust(w) for c, w in zip(r, widths)) for r in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def sync(device: torch.device) -> None:
    """Wait for queued GPU work, so a timer sees it."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> tuple[object, float]:
    """(fn's result, wall seconds), synchronising the device before and after."""
    sync(device)
    start = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - start


def median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def fit_quietly(model, data, **fit_kwargs):
    """``model.fit(data, **fit_kwargs)`` on CPU without a progress bar, logging to a
    temporary folder, with Lightning's printing and warnings silenced; returns the model."""
    import logging

    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    with (
        tempfile.TemporaryDirectory() as log_dir,
        warnings.catch_warnings(),
        redirect_stdout(io.StringIO()),
    ):
        warnings.simplefilter("ignore")
        return model.fit(
            data, accelerator="cpu", devices=1, log_dir=log_dir, progress_bar=False, **fit_kwargs
        )


def parse_set_params(items: Sequence[str], example: str) -> dict:
    """``--set KEY=VALUE`` strings to a dict of estimator parameters; values via
    ``ast.literal_eval``, else the text itself. ``example`` is shown when one is malformed."""
    params = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects KEY=VALUE (e.g. {example}), got {item!r}")
        try:
            params[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            params[key] = text
    return params


@contextmanager
def quiet_stderr():
    """Silence file descriptor 2 (the profiler's C++ start/stop lines) for the block."""
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


class Tee(io.TextIOBase):
    """Writes to ``stream`` and keeps a copy (``text()``), to save what a run printed."""

    def __init__(self, stream) -> None:
        self.stream, self.copy = stream, io.StringIO()

    def write(self, s: str) -> int:
        self.copy.write(s)
        return self.stream.write(s)

    def flush(self) -> None:
        self.stream.flush()

    def text(self) -> str:
        return self.copy.getvalue()
