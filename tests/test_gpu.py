"""The CUDA path: ``fit`` on one GPU, the network's prediction draws on the GPU, and the
model file a GPU fit writes, read back on a CPU-only process.

- ``fit(accelerator="gpu", devices=1)`` trains on the GPU (the module and every training
  batch on CUDA, seen by a callback) and leaves a fitted model on the CPU;
- the network's posterior draws (``sample``, which ``predict`` runs, residual process
  included) on CUDA equal the CPU's for the same batches and per-series seeds: within
  float32 rounding with a fixed-step solver, within the solver's tolerance with the
  adaptive default;
- the saved file loads in a process that cannot see a GPU
  (``CUDA_VISIBLE_DEVICES=""``) and predicts exactly what the fitted model predicts.

Every test is skipped when ``torch.cuda.is_available()`` is False.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
import torch
from lightning.pytorch.callbacks import Callback

import latentode as lo
from latentode.estimator import FittedState
from latentode.estimator.prediction import batches
from latentode.estimator.queries import query_targets
from latentode.estimator.seeding import SeriesRandom
from latentode.models import SolverConfig

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="needs a CUDA GPU: torch.cuda.is_available() is False on this machine",
    ),
]

SMALL = {"latent_dim": 4, "hidden": 16, "encoder_hidden": 8, "batch_size": 8, "seed": 0}
TIMES = np.linspace(0.0, 6.0, 13)


class DevicesAtBatch(Callback):
    """Records the module's and each training batch's device type."""

    def __init__(self) -> None:
        self.module: list[str] = []
        self.batch: list[str] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx) -> None:
        self.module.append(pl_module.device.type)
        self.batch.append(batch.values.device.type)


@pytest.fixture(scope="module")
def data():
    return lo.datasets.spiral(n_series=40, n_points=30, n_observed=15, seed=0)


@pytest.fixture(scope="module")
def gpu_fit(data, tmp_path_factory):
    """A small LatentODE (residual process included) fitted on the GPU, and what it saw."""
    seen = DevicesAtBatch()
    model = lo.LatentODE(**SMALL).fit(
        data[:32],
        max_epochs=2,
        accelerator="gpu",
        devices=1,
        log_dir=tmp_path_factory.mktemp("gpu_fit"),
        progress_bar=False,
        callbacks=[seen],
    )
    path = model.save(tmp_path_factory.mktemp("model") / "gpu.safetensors")
    return model, seen, path


@pytest.fixture
def exact_float32():
    """No TF32 in matmuls or cuDNN for the test, so CUDA and CPU round alike."""
    saved = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    yield
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def test_fit_trains_on_the_gpu_and_ends_on_the_cpu(gpu_fit) -> None:
    model, seen, _ = gpu_fit
    assert seen.module and set(seen.module) == {"cuda"} and set(seen.batch) == {"cuda"}
    assert len(model.history_) == 2 and np.isfinite(model.history_["train_loss"]).all()
    assert {p.device.type for p in model.network_.parameters()} == {"cpu"}
    assert model.residual_ is not None


def _draws(state: FittedState, context, device: str, solver: SolverConfig | None):
    """The network's draws at TIMES for ``context`` on ``device``, as ``predict`` makes
    them (same batches, per-series z0 streams, residual process): [S, N, T', C] means."""
    ds = state.schema.conform(context)
    targets = query_targets(
        ds, TIMES, state.schema.id_name, state.schema.time_name, state.scaler, 10.0
    )
    net = copy.deepcopy(state.network).to(device)
    random = SeriesRandom(5)
    means = []
    with torch.no_grad():
        for part, batch in batches(state, ds, targets, 4):
            gens = random.generators([t.id for t in part], "z0")
            out = net.sample(
                batch.to(device), 7, generator=gens, solver=solver, residual=state.residual
            )
            means.append(out["mean"].cpu())
    return torch.cat(means, dim=1)


@pytest.mark.parametrize(
    ("solver", "atol"),
    [(SolverConfig("rk4", step_size=0.02), 1e-4), (None, 5e-3)],  # None: the model's dopri5
    ids=["rk4", "dopri5"],
)
def test_gpu_draws_equal_cpu_draws_of_the_saved_model(
    gpu_fit, data, exact_float32, solver, atol
) -> None:
    state = FittedState.of(lo.load(gpu_fit[2]))
    context = data[32:]
    on_cpu = _draws(state, context, "cpu", solver)
    on_gpu = _draws(state, context, "cuda", solver)
    assert on_cpu.shape == on_gpu.shape == (7, 8, len(TIMES), 2)
    assert on_cpu.std() > 0.1  # the draws differ across samples and series: a real test
    torch.testing.assert_close(on_gpu, on_cpu, atol=atol, rtol=0.0)


def test_the_file_of_a_gpu_fit_loads_and_predicts_on_a_cpu_only_process(
    gpu_fit, data, tmp_path
) -> None:
    model, _, path = gpu_fit
    context = data[32:].to_dataframe()
    context_csv, out_csv = tmp_path / "context.csv", tmp_path / "pred.csv"
    context.to_csv(context_csv, index=False)
    script = textwrap.dedent(
        f"""
        import numpy as np, pandas as pd, torch
        import latentode as lo
        assert not torch.cuda.is_available()
        model = lo.load({str(path)!r})
        assert {{p.device.type for p in model.network_.parameters()}} == {{"cpu"}}
        context = pd.read_csv({str(context_csv)!r})
        times = np.linspace(0.0, 6.0, 13)
        model.predict(context, times, n_samples=20, seed=3).to_csv({str(out_csv)!r}, index=False)
        """
    )
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    there = pd.read_csv(out_csv)
    here = model.predict(pd.read_csv(context_csv), TIMES, n_samples=20, seed=3)
    assert list(there.columns) == list(here.columns) and len(there) == len(here) == 8 * len(TIMES)
    for column in ("x", "x_std", "y", "y_std"):
        np.testing.assert_allclose(there[column], here[column], rtol=1e-5, atol=1e-6)
