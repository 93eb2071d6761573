"""Distributed data parallel on CPU (gloo): two ranks train and end with identical weights.

Lightning's DDP launcher re-runs the command line for rank 1, so the training runs in
a subprocess (``tests/ddp_train.py``) rather than inside pytest.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).with_name("ddp_train.py")


@pytest.mark.slow
def test_two_rank_ddp_ends_with_identical_weights(tmp_path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("LOCAL_RANK", "NODE_RANK")}
    env.update(OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    done = subprocess.run(
        [sys.executable, str(SCRIPT), str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    # each rank trained on its own share of the series, so equal weights need gradient sync
    seen = [json.loads((tmp_path / f"rank{r}_ids.json").read_text()) for r in (0, 1)]
    assert len(seen[0]) == len(seen[1]) > 0
    for epoch in (0, 1):
        n = len(seen[0]) // 2
        ids = [{i for b in s[epoch * n : (epoch + 1) * n] for i in b} for s in seen]
        assert ids[0] and ids[1] and not ids[0] & ids[1]
    weights = {
        name: torch.load(tmp_path / f"{name}.pt", weights_only=True)
        for name in ("rank0_init", "rank1_init", "rank0", "rank1")
    }
    assert weights["rank0"].keys() == weights["rank1"].keys()
    for key in weights["rank0"]:
        assert torch.equal(weights["rank0_init"][key], weights["rank1_init"][key]), key
        assert torch.equal(weights["rank0"][key], weights["rank1"][key]), key
    changed = [
        k
        for k in weights["rank0"]
        if not torch.equal(weights["rank0"][k], weights["rank0_init"][k])
    ]
    assert len(changed) > len(weights["rank0"]) // 2, f"training changed only {changed}"
