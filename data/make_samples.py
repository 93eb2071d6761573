"""Regenerate the sample CSVs in this folder, byte for byte, from fixed seeds.

Run ``python data/make_samples.py`` from the repository root. Writes:

- ``spiral.csv``: 100 spirals from :func:`latentode.datasets.spiral` in wide format
  (``series_id,time,x,y``), read with
  ``lo.read_csv("data/spiral.csv", id_col="series_id", time_col="time")``.
- ``clinical_long.csv``: 50 synthetic ICU stays from :func:`latentode.datasets.clinical`
  in long format, one row per measurement: ``id,time,variable,value`` followed by the
  static columns ``Age,Gender,Height,ICUType,Weight`` and the label
  ``In-hospital_death``, repeated on each of a patient's rows (an empty Height is
  unknown). Times are hours at minute resolution, written exactly (shortest
  round-trip decimal).

Numbers are written with fixed formatting and ``\\n`` line ends, so the same seed gives
the same bytes.
"""

from __future__ import annotations

from pathlib import Path

from latentode.datasets import clinical, spiral

SEED = 2012


def make_samples(out_dir: str | Path = Path(__file__).parent, seed: int = SEED) -> list[Path]:
    """Write ``spiral.csv`` and ``clinical_long.csv`` into ``out_dir``; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    spiral_path = out_dir / "spiral.csv"
    spirals = spiral(n_series=100, n_points=100, n_observed=40, seed=seed).to_dataframe("wide")
    spirals.to_csv(spiral_path, index=False, float_format="%.6g", lineterminator="\n")

    clinical_path = out_dir / "clinical_long.csv"
    stays = clinical(n_patients=50, seed=seed).to_dataframe("long")
    # times are whole minutes in hours: write them exactly (shortest round-trip decimal);
    # values are already rounded as charted, so 6 significant digits keep them exact
    stays["time"] = stays["time"].astype(str)
    stays.to_csv(clinical_path, index=False, float_format="%.6g", lineterminator="\n")
    return [spiral_path, clinical_path]


if __name__ == "__main__":
    for path in make_samples():
        print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")
