"""Matplotlib figures of data, predictions, latent paths, intensities and training curves.

Every function returns a :class:`matplotlib.figure.Figure` built with the object API:
nothing here calls ``plt.show`` or touches the global backend, so the figures work in
scripts (``fig.savefig("out.png")``), in notebooks (the figure displays itself) and in
tests with the Agg backend. Figures draw only from the estimators' public outputs
(``predict``, ``latent``, ``intensity``, ``history_``).

Layout: series are rows and channels are columns; by default the first 4 series and
at most 6 channels (the most observed ones) are shown. ``series=n`` (an int) shows the
first ``n`` series, ``series=[id, ...]`` those ids.

Modules, one kind of figure each:

- ``series``: the raw data (:func:`plot_series`) and its sampling (:func:`plot_sampling`);
- ``predictions``: predictions with uncertainty bands (:func:`plot_predictions`);
- ``latent``: latent trajectories (:func:`plot_latent`);
- ``intensity``: the Poisson observation rate (:func:`plot_intensity`);
- ``training``: training curves (:func:`plot_training`);
- ``inputs`` (what is drawn: frames, series and channels, time grids, truth) and
  ``style`` (panels, colours, labels, legend), shared by the figures.
"""

from latentode.plotting.intensity import plot_intensity
from latentode.plotting.latent import plot_latent
from latentode.plotting.predictions import plot_predictions
from latentode.plotting.series import plot_sampling, plot_series
from latentode.plotting.training import plot_training

__all__ = [
    "plot_intensity",
    "plot_latent",
    "plot_predictions",
    "plot_sampling",
    "plot_series",
    "plot_training",
]
