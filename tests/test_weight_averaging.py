"""Weight averaging: the fitted weights are the exponential moving average of the weights
after each optimiser step, taken at the best validation epoch, computed here by hand from
the weights a callback records."""

from __future__ import annotations

import lightning as L
import numpy as np
import pytest
import torch

import latentode as lo
from latentode import LatentODEError
from latentode.data import Series

EPOCHS = 4


class _Recorder(L.Callback):
    """The network's parameters after every optimiser step, with the step's epoch."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, dict[str, torch.Tensor]]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        weights = {k: v.detach().clone() for k, v in pl_module.net.named_parameters()}
        self.steps.append((trainer.current_epoch, weights))


def _data() -> lo.SeriesDataset:
    rng = np.random.default_rng(0)
    out = []
    for k in range(30):
        times = np.sort(rng.uniform(0, 5, 10))
        values = np.sin(times + k)[:, None] + 0.1 * rng.normal(size=(10, 1))
        out.append(Series(k, times, values, np.ones((10, 1), bool)))
    return lo.SeriesDataset(out, ["x"])


@pytest.mark.parametrize("decay", [0.0, 0.5])
def test_fitted_weights_are_the_moving_average_at_the_best_epoch(decay, tmp_path) -> None:
    torch.set_num_threads(1)
    recorder = _Recorder()
    model = lo.LatentODE(
        latent_dim=3, hidden=8, encoder_hidden=8, batch_size=8, residual=False, ema_decay=decay
    )
    model.fit(
        _data(), max_epochs=EPOCHS, progress_bar=False, log_dir=tmp_path, callbacks=[recorder]
    )
    val = model.history_["val_mse"].to_numpy()
    best = int(np.argmin(val))  # the checkpoint keeps the first of equal minima
    assert len({e for e, _ in recorder.steps}) == EPOCHS
    average = None
    for epoch, weights in recorder.steps:
        if epoch > best:
            break
        if average is None:  # the first update copies the weights
            average = dict(weights)
        else:
            average = {k: decay * average[k] + (1 - decay) * w for k, w in weights.items()}
    fitted = dict(model.network_.named_parameters())
    assert fitted.keys() == average.keys()
    for name, value in average.items():
        torch.testing.assert_close(fitted[name].detach(), value, rtol=1e-5, atol=1e-6)
    if decay > 0:  # and not the raw weights of that step
        last = [w for e, w in recorder.steps if e == best][-1]
        assert any(not torch.allclose(fitted[k], last[k]) for k in last)


@pytest.mark.parametrize("bad", [-0.1, 1.0, True, "0.9", float("nan")])
def test_ema_decay_outside_zero_one_is_refused(bad) -> None:
    with pytest.raises(LatentODEError, match="ema_decay"):
        lo.LatentODE(ema_decay=bad).fit(_data(), max_epochs=1, progress_bar=False)
