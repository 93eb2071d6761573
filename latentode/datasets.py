"""Data sets to try latentode on: seeded synthetic generators and the PhysioNet 2012 reader.

Every generator takes ``seed`` (the same seed gives the same data) and returns a
:class:`~latentode.SeriesDataset` whose ``truth`` holds the ground truth: one dict of
numpy arrays per series id (noiseless values on a dense grid and at the observed
times, and the generator's hidden variables) plus dataset-level entries under string
keys. Nothing here downloads anything.

- :func:`spiral`: 2-D spirals turning clockwise or counter-clockwise (Chen et al. 2018).
- :func:`periodic`: 1-D sinusoids on irregular times (Rubanova et al. 2019).
- :func:`clinical`: ICU-style stays with 34 channels, informative sampling and a
  mortality label, driven by a latent physiological state (PhysioNet 2012 look-alike).
- :func:`read_physionet2012`: the challenge's own raw files, from a folder or archive.
"""

from latentode.data.clinical import clinical
from latentode.data.periodic import periodic
from latentode.data.physionet import read_physionet2012
from latentode.data.spiral import spiral

__all__ = ["clinical", "periodic", "read_physionet2012", "spiral"]
