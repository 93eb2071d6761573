"""Training checkpoints: atomic writes, loading that never unpickles code, resume checks.

Lightning writes a run's checkpoints (``best.ckpt``, ``last.ckpt``) through a
``CheckpointIO`` plugin; :class:`AtomicCheckpointIO` writes each one to a temporary
file in the same folder, flushes it to disk and renames it over the target, so a
kill or power loss mid-write leaves the previous checkpoint intact. Checkpoints are
read with ``torch.load(weights_only=True)``: tensors, numbers, strings and containers
only, so a crafted file cannot run code while it is read.
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO

from latentode.errors import LatentODEError

LAST = "last.ckpt"
BEST = "best.ckpt"


class CheckpointError(LatentODEError):
    """A training checkpoint is missing, unreadable, unsafe, or from another run."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning checkpoint I/O with atomic local writes and weights-only reads."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path, storage_options=None) -> None:
        write_atomically(checkpoint, Path(path))

    def load_checkpoint(self, path, map_location=None, weights_only=None) -> dict[str, Any]:
        return read_checkpoint(Path(path), map_location=map_location)


def write_atomically(checkpoint: dict[str, Any], path: Path) -> None:
    """``torch.save`` to a temporary file beside ``path``, fsync, then rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as f:
            torch.save(checkpoint, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _fsync_dir(folder: Path) -> None:
    """Make a rename in ``folder`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_checkpoint(path: Path, map_location=None) -> dict[str, Any]:
    """Load a training checkpoint without unpickling arbitrary objects.

    Raises:
        CheckpointError: the file is missing, truncated or corrupt, or holds objects
            other than tensors and plain Python values (it is refused unread).
    """
    if not path.is_file():
        raise CheckpointError(f"no training checkpoint at {path}.")
    try:
        checkpoint = torch.load(path, map_location=map_location or "cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        raise CheckpointError(
            f"{path} holds objects other than tensors and plain values, so it was refused "
            f"without loading it (a checkpoint written by latentode never does): "
            f"{str(err).splitlines()[0]}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as err:
        raise CheckpointError(
            f"{path} is not a readable training checkpoint (truncated or corrupt?): {err}. "
            "Delete it to start training afresh, or resume from another copy."
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path} is not a Lightning training checkpoint.")
    return checkpoint


def check_resumable(checkpoint: dict[str, Any], path: Path, expected: dict[str, Any]) -> None:
    """Refuse to resume from a checkpoint of a differently configured run.

    ``expected`` is the ``TrainingModule`` hyper-parameters the new fit would use
    (``kind``, ``config``, ``optim``, ``seed``, ``data``); every one must match.
    """
    saved = checkpoint.get("hyper_parameters")
    if not isinstance(saved, dict):
        raise CheckpointError(f"{path} has no latentode hyper-parameters; it cannot be resumed.")
    differ = [k for k in expected if _plain(saved.get(k)) != _plain(expected[k])]
    if not differ:
        return
    details = []
    for key in differ:
        old, new = saved.get(key), expected[key]
        if isinstance(old, dict) and isinstance(new, dict):
            fields = sorted(
                k for k in old.keys() | new.keys() if _plain(old.get(k)) != _plain(new.get(k))
            )
            details += [f"{key}.{f}: {old.get(f)!r} then, {new.get(f)!r} now" for f in fields]
        elif key == "data":
            details.append("the training data (or its split into train and val) differ")
        else:
            details.append(f"{key}: {old!r} then, {new!r} now")
    raise CheckpointError(
        f"cannot resume from {path}: it was trained with other settings ("
        + "; ".join(details[:6])
        + "). Resume with the same data and parameters, or start a new run in another log_dir."
    )


def _plain(value: Any) -> Any:
    """JSON-normal form, so tuples and lists (and int/float) compare equal."""
    return json.loads(json.dumps(value, default=str))
