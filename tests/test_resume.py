"""Training that survives faults: kills, Ctrl-C, broken or hostile checkpoints, NaN gradients.

The end-to-end tests run ``tests/resume_train.py`` in fresh processes: an uninterrupted
run (twice, for determinism across processes), a run SIGKILLed mid-epoch and then
resumed, and a run stopped by SIGINT (Ctrl-C) and then resumed. Every one must end with
the same weights and predictions.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file

import latentode as lo
from latentode import LatentODEError
from latentode.models.checkpoints import CheckpointError, read_checkpoint, write_atomically
from latentode.models.history import read_history
from latentode.models.training import MAX_SKIPPED_STEPS, NonFiniteLossError

SCRIPT = Path(__file__).with_name("resume_train.py")
EPOCHS = 4  # resume_train.EPOCHS
BATCHES = 4  # 32 training series in batches of 8


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    env["PYTHONPATH"] = os.pathsep.join(
        filter(None, [str(SCRIPT.parents[1]), env.get("PYTHONPATH")])
    )
    return env


def _train(log_dir: Path, out: Path, *options: str, check: bool = True):
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(log_dir), str(out), *options],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check:
        assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done


def _weights(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "model.safetensors"))


def _assert_same_model(a: Path, b: Path) -> None:
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    for key in wa:
        torch.testing.assert_close(wb[key], wa[key], rtol=0, atol=1e-6, msg=key)
    pa, pb = pd.read_csv(a / "pred.csv"), pd.read_csv(b / "pred.csv")
    pd.testing.assert_frame_equal(pa, pb, check_exact=False, rtol=1e-6)


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("uninterrupted")
    _train(root / "logs", root / "out")
    return root


@pytest.mark.slow
def test_same_seed_same_model_in_fresh_processes(uninterrupted, tmp_path) -> None:
    _train(tmp_path / "logs", tmp_path / "out")
    _assert_same_model(uninterrupted / "out", tmp_path / "out")
    # bit for bit, in fact: same weights, same predictions
    for key, value in _weights(uninterrupted / "out").items():
        assert torch.equal(value, _weights(tmp_path / "out")[key]), key
    first = (uninterrupted / "out" / "pred.csv").read_bytes()
    assert first == (tmp_path / "out" / "pred.csv").read_bytes()


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_ends_with_the_uninterrupted_model(
    uninterrupted, tmp_path
) -> None:
    log_dir, out = tmp_path / "logs", tmp_path / "killed"
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), str(log_dir), str(out), "--pause-at", "2:1"],
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 240
        while not (out / "paused").exists():
            assert proc.poll() is None, proc.stderr.read()[-3000:]
            assert time.monotonic() < deadline, "training never reached epoch 2"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)  # in epoch 2, after its first batch's update
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    assert not (out / "model.safetensors").exists()
    last = read_checkpoint(log_dir / "checkpoints" / "last.ckpt")
    assert last["epoch"] == 1  # the last complete epoch before the kill

    _train(log_dir, tmp_path / "resumed", "--resume")
    _assert_same_model(uninterrupted / "out", tmp_path / "resumed")
    fit = json.loads((tmp_path / "resumed" / "fit.json").read_text())
    assert fit == {"epochs": EPOCHS, "interrupted": False}
    # the history spans both attempts and matches the uninterrupted run's
    full, both = read_history(uninterrupted / "logs"), read_history(log_dir)
    assert list(both["epoch"]) == list(range(EPOCHS))
    np.testing.assert_allclose(both["val_mse"], full["val_mse"], rtol=1e-6)
    np.testing.assert_allclose(both["train_loss"], full["train_loss"], rtol=1e-6)


@pytest.mark.slow
def test_ctrl_c_keeps_checkpoints_says_where_and_resumes(uninterrupted, tmp_path) -> None:
    log_dir, out = tmp_path / "logs", tmp_path / "stopped"
    done = _train(log_dir, out, "--interrupt-at", "2:2")
    # history_ holds the two complete epochs and the steps logged in epoch 2 before Ctrl-C
    assert json.loads((out / "fit.json").read_text()) == {"epochs": 3, "interrupted": True}
    assert read_history(log_dir)["val_mse"].notna().tolist() == [True, True, False]
    folder = log_dir / "checkpoints"
    assert "interrupted in epoch 2" in done.stderr
    assert str(folder / "last.ckpt") in done.stderr and "resume=True" in done.stderr
    assert read_checkpoint(folder / "last.ckpt")["epoch"] == 1
    assert read_checkpoint(folder / "best.ckpt")["epoch"] <= 1
    assert not list(folder.glob(".*tmp*"))
    # fit returned with the best weights so far (the script then saved and predicted)
    best = read_checkpoint(folder / "best.ckpt")["state_dict"]
    for key, value in _weights(out).items():
        assert torch.equal(value, best[f"net.{key}"]), key

    _train(log_dir, tmp_path / "resumed", "--resume")
    _assert_same_model(uninterrupted / "out", tmp_path / "resumed")


# ---- in-process checks ---------------------------------------------------------------------
def _tiny(**params) -> lo.LatentODE:
    base = {
        "latent_dim": 2,
        "encoder_hidden": 4,
        "hidden": 8,
        "depth": 1,
        "n_samples": 1,
        "solver": "euler",
        "step_size": 0.25,
        "batch_size": 8,
        "val_frac": 0.0,
        "seed": 0,
    }
    return lo.LatentODE(**{**base, **params})


def _fit(model, data, log_dir, epochs=1, **kwargs):
    return model.fit(
        data,
        max_epochs=epochs,
        accelerator="cpu",
        devices=1,
        progress_bar=False,
        log_dir=log_dir,
        **kwargs,
    )


@pytest.fixture(scope="module")
def data() -> lo.SeriesDataset:
    return lo.datasets.spiral(n_series=16, n_points=10, n_observed=6, seed=0)


@pytest.fixture(scope="module")
def run(data, tmp_path_factory) -> Path:
    log_dir = tmp_path_factory.mktemp("run")
    _fit(_tiny(), data, log_dir)
    return log_dir


def test_a_log_dir_with_a_run_is_not_overwritten(data, run) -> None:
    before = (run / "checkpoints" / "last.ckpt").read_bytes()
    with pytest.raises(LatentODEError, match=r"already holds a training run.*resume=True"):
        _fit(_tiny(), data, run)
    assert (run / "checkpoints" / "last.ckpt").read_bytes() == before


def test_resume_needs_the_log_dir(data) -> None:
    with pytest.raises(LatentODEError, match="log_dir"):
        _tiny().fit(data, max_epochs=1, resume=True)


def test_resume_without_a_checkpoint_starts_afresh(data, tmp_path, caplog) -> None:
    model = _fit(_tiny(), data, tmp_path, resume=True)
    assert "no checkpoint to resume" in caplog.text
    assert len(model.history_) == 1 and not model.interrupted_


def test_resume_with_more_epochs_continues_the_run(data, run, tmp_path) -> None:
    """1 epoch, then resume to 3 == 3 epochs straight (the schedule depends on the epoch)."""
    straight = _fit(_tiny(), data, tmp_path / "straight", epochs=3)
    later = tmp_path / "later"
    _fit(_tiny(), data, later, epochs=1)
    resumed = _fit(_tiny(), data, later, epochs=3, resume=True)
    assert list(resumed.history_["epoch"]) == [0, 1, 2]
    for key, value in straight.network_.state_dict().items():
        torch.testing.assert_close(resumed.network_.state_dict()[key], value, rtol=0, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"latent_dim": 3}, "config.latent_dim: 2 then, 3 now"),
        ({"lr": 0.5}, "optim.lr"),
        ({"seed": 1}, "seed: 0 then, 1 now"),
    ],
)
def test_resume_refuses_other_settings(data, run, change, named) -> None:
    with pytest.raises(CheckpointError, match=named):
        _fit(_tiny(**change), data, run, epochs=2, resume=True)


def test_resume_refuses_other_data(data, run) -> None:
    other = lo.datasets.spiral(n_series=16, n_points=10, n_observed=6, seed=1)
    with pytest.raises(CheckpointError, match="training data"):
        _fit(_tiny(), other, run, epochs=2, resume=True)


def test_resume_never_unpickles_a_crafted_checkpoint(data, tmp_path, write_crafted) -> None:
    (tmp_path / "checkpoints").mkdir()
    marker = write_crafted(tmp_path / "checkpoints" / "last.ckpt")
    with pytest.raises(CheckpointError, match="refused without loading it"):
        _fit(_tiny(), data, tmp_path, epochs=2, resume=True)
    assert not marker.exists()


def test_resume_refuses_truncated_and_foreign_checkpoints(data, run, tmp_path) -> None:
    (tmp_path / "checkpoints").mkdir()
    last = tmp_path / "checkpoints" / "last.ckpt"
    whole = (run / "checkpoints" / "last.ckpt").read_bytes()
    last.write_bytes(whole[: len(whole) // 2])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        _fit(_tiny(), data, tmp_path, epochs=2, resume=True)
    torch.save({"weights": torch.ones(2)}, last)
    with pytest.raises(CheckpointError, match="not a Lightning training checkpoint"):
        _fit(_tiny(), data, tmp_path, epochs=2, resume=True)


def test_checkpoint_write_is_atomic(run, tmp_path, monkeypatch) -> None:
    target = tmp_path / "last.ckpt"
    good = read_checkpoint(run / "checkpoints" / "last.ckpt")
    write_atomically(good, target)
    before = target.read_bytes()

    def dies_halfway(obj, f, *args, **kwargs):
        f.write(before[: len(before) // 3])  # part of a checkpoint reached the disk...
        raise OSError("disk full")  # ...then the write failed

    monkeypatch.setattr(torch, "save", dies_halfway)
    with pytest.raises(OSError, match="disk full"):
        write_atomically({"epoch": 99, **good}, target)
    monkeypatch.undo()
    assert target.read_bytes() == before  # the previous checkpoint is intact
    assert read_checkpoint(target)["epoch"] == good["epoch"]
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]  # no temporary file left


def test_a_killed_writers_temporary_file_does_not_disturb_resume(data, tmp_path) -> None:
    _fit(_tiny(), data, tmp_path, epochs=1)
    stray = tmp_path / "checkpoints" / ".last.ckpt.tmp-99999"
    stray.write_bytes(b"half a checkpoint")  # what SIGKILL mid-write leaves behind
    model = _fit(_tiny(), data, tmp_path, epochs=2, resume=True)
    assert list(model.history_["epoch"]) == [0, 1]


def test_nan_gradient_stops_before_the_weights_change(data, tmp_path) -> None:
    model = _tiny()
    seen = {}

    from lightning.pytorch.callbacks import Callback

    class PoisonGradient(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["before"] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}
            pl_module.net.decoder.weight.register_hook(lambda g: g * math.nan)

        def on_exception(self, trainer, pl_module, exception):
            seen["after"] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}

    with pytest.raises(NonFiniteLossError, match=r"gradient became NaN.*decoder\.weight") as err:
        _fit(model, data, tmp_path, epochs=3, callbacks=[PoisonGradient()])
    assert f"in {MAX_SKIPPED_STEPS} steps in a row" in str(err.value) and "lr=" in str(err.value)
    for key, value in seen["before"].items():  # the skipped steps moved no weight
        assert torch.equal(seen["after"][key], value), key


def test_one_nan_gradient_is_skipped_with_a_warning(data, tmp_path, caplog) -> None:
    model = _tiny()
    seen = {}

    from lightning.pytorch.callbacks import Callback

    class PoisonFirstGradient(Callback):
        def on_train_start(self, trainer, pl_module):
            seen["before"] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}
            poisoned = []

            def once(g):
                if not poisoned:
                    poisoned.append(True)
                    return g * math.nan
                return g

            pl_module.net.decoder.weight.register_hook(once)

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
            if "after_first" not in seen:
                seen["after_first"] = {k: v.clone() for k, v in pl_module.net.state_dict().items()}

    with caplog.at_level(logging.WARNING, logger="latentode"):
        _fit(model, data, tmp_path, epochs=2, callbacks=[PoisonFirstGradient()])
    assert list(model.history_["epoch"]) == [0, 1]  # training went on
    assert any(
        "epoch 0, step 0" in r.getMessage() and "skipped" in r.getMessage() for r in caplog.records
    )
    for key, value in seen["before"].items():  # the poisoned step moved nothing
        assert torch.equal(seen["after_first"][key], value), key
    assert not torch.equal(model.network_.decoder.weight.detach(), seen["before"]["decoder.weight"])


# ---- the command line -------------------------------------------------------------------
def _cli(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "latentode.cli", *map(str, args)],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )


@pytest.mark.slow
def test_cli_resume_continues_a_run_and_refuses_to_overwrite_one(data, tmp_path) -> None:
    csv = tmp_path / "train.csv"
    data.to_dataframe().to_csv(csv, index=False)
    tiny = ["--latent-dim", "2", "--hidden", "8", "--batch-size", "8", "--seed", "0"]
    fit = ["fit", csv, "--id-col", data.id_name, "--time-col", data.time_name, *tiny]

    straight = _cli(*fit, "--epochs", "3", "--out", tmp_path / "straight")
    assert straight.returncode == 0, straight.stderr
    first = _cli(*fit, "--epochs", "1", "--out", tmp_path / "run")
    assert first.returncode == 0, first.stderr

    again = _cli(*fit, "--epochs", "3", "--out", tmp_path / "run")
    assert again.returncode == 2
    assert "already holds a training run" in again.stderr and "--resume" in again.stderr
    assert "Traceback" not in again.stderr

    resumed = _cli(*fit, "--epochs", "3", "--out", tmp_path / "run", "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert "3 epochs" in resumed.stdout
    a = load_file(str(tmp_path / "straight" / "model.safetensors"))
    b = load_file(str(tmp_path / "run" / "model.safetensors"))
    for key, value in a.items():
        torch.testing.assert_close(b[key], value, rtol=0, atol=1e-6, msg=key)
