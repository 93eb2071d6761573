"""latentode: latent ODE models for irregularly-sampled multivariate time series."""

from latentode.data.dataset import Series, SeriesDataset
from latentode.data.io import from_dataframe, read_csv
from latentode.errors import LatentODEError

__version__ = "0.1.0"

__all__ = [
    "LatentODEError",
    "Series",
    "SeriesDataset",
    "__version__",
    "from_dataframe",
    "read_csv",
]
