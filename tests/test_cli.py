"""The ``latentode`` command line, run as a subprocess on tiny data."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

from latentode import cli
from latentode.cli.reporting import in_cli_words
from latentode.cli.times import parse_times

CLI = [sys.executable, "-m", "latentode.cli"]
N_SERIES, N_POINTS = 12, 8
TINY_FIT = ["--epochs", "2", "--latent-dim", "4", "--hidden", "16", "--batch-size", "12"]


def run(*args) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, *map(str, args)], capture_output=True, text=True, timeout=180, check=False
    )


@pytest.fixture(scope="module")
def data_csv(tmp_path_factory):
    """12 short two-channel series with their own ids/times column names."""
    rng = np.random.default_rng(0)
    rows = []
    for i in range(N_SERIES):
        t = np.sort(rng.uniform(0.0, 3.0, N_POINTS)).round(3)
        phase = rng.uniform(0, 2 * np.pi)
        rows.append(pd.DataFrame({"sid": f"s{i}", "t": t, "u": np.sin(t + phase), "v": t}))
    path = tmp_path_factory.mktemp("data") / "train.csv"
    pd.concat(rows).to_csv(path, index=False)
    return path


@pytest.fixture(scope="module")
def model_dir(data_csv, tmp_path_factory):
    out = tmp_path_factory.mktemp("fit")
    result = run("fit", data_csv, "--id-col", "sid", "--time-col", "t", *TINY_FIT, "--out", out)
    assert result.returncode == 0, result.stderr
    assert "model:" in result.stdout
    return out


def test_help_imports_nothing_heavy():
    """``--help`` must not import torch or Lightning (seconds of imports: what makes it
    quick; no wall-clock bound here, which a busy machine would break)."""
    code = (
        "import sys\n"
        "from latentode.cli import main\n"
        "for command in ('fit', 'predict', 'evaluate', 'demo'):\n"
        "    try:\n"
        "        main([command, '--help'])\n"
        "    except SystemExit as exit:\n"
        "        assert exit.code == 0, exit.code\n"
        "heavy = [m for m in ('torch', 'lightning') if m in sys.modules]\n"
        "print('RESULT', ','.join(heavy) or '-')\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    for command in ("fit", "predict", "evaluate", "demo"):
        assert f"usage: latentode {command}" in result.stdout
    heavy = result.stdout.strip().splitlines()[-1].split()[1]
    assert heavy == "-", f"--help imported {heavy}"


def test_cli_sample_default_is_the_estimators():
    import inspect

    from latentode.cli.flags import PREDICT_SAMPLES
    from latentode.estimator import base

    assert PREDICT_SAMPLES == base.PREDICT_SAMPLES
    for method in ("predict", "predict_stream", "evaluate", "score"):
        default = inspect.signature(getattr(base.SeriesEstimator, method)).parameters["n_samples"]
        assert default.default == base.PREDICT_SAMPLES, method


def test_fit_writes_model_and_logs(model_dir):
    assert (model_dir / "model.safetensors").is_file()
    assert list((model_dir / "logs").rglob("metrics.csv"))


def test_fit_passes_the_weight_averaging_decay(data_csv, tmp_path):
    import latentode as lo

    argv = ["fit", data_csv, "--id-col", "sid", "--time-col", "t", *TINY_FIT]
    assert cli.main([str(a) for a in [*argv, "--ema-decay", "0.5", "--out", tmp_path]]) == 0
    assert lo.LatentODE.load(tmp_path / "model.safetensors").ema_decay == 0.5
    assert lo.LatentODE().ema_decay == 0.95  # the default when the flag is left out


def test_fit_models_the_named_channels_on_the_log_scale(data_csv, tmp_path):
    import latentode as lo

    frame = pd.read_csv(data_csv)
    positive = data_csv.parent / "positive.csv"
    frame.assign(v=frame["v"] + 0.5).to_csv(positive, index=False)
    argv = ["fit", positive, "--id-col", "sid", "--time-col", "t", *TINY_FIT]
    assert cli.main([str(a) for a in [*argv, "--log-scale", "v", "--out", tmp_path]]) == 0
    model = lo.LatentODE.load(tmp_path / "model.safetensors")
    assert list(model.log_scale) == ["v"] and model.scaler_.log == (False, True)
    # the scaler standardises log(v) over the training series (val_frac holds some out)
    logged = np.log(frame["v"] + 0.5)
    assert logged.min() < model.scaler_.mean[1] < logged.max()
    assert model.scaler_.std[1] == pytest.approx(logged.std(ddof=0), rel=0.2)


def test_predict_on_a_range_of_times(model_dir, data_csv, tmp_path):
    out = tmp_path / "pred.csv"
    # column names come from the model (sid, t)
    result = run(
        "predict", model_dir / "model.safetensors", data_csv, "--times", "0:2:0.5", "--out", out
    )
    assert result.returncode == 0, result.stderr
    pred = pd.read_csv(out)
    columns = ["sid", "t"] + [f"{c}{s}" for c in "uv" for s in ("", "_std", "_q5", "_q95")]
    assert list(pred.columns) == columns
    assert len(pred) == N_SERIES * 5  # 0, 0.5, 1, 1.5, 2 for every series
    assert np.isfinite(pred.drop(columns="sid").to_numpy()).all()
    assert not list(tmp_path.glob(".pred.csv.tmp*"))


def test_predict_times_from_csv(model_dir, data_csv, tmp_path, capsys):
    times = tmp_path / "times.csv"
    pd.DataFrame({"sid": ["s0", "s0", "s3"], "t": [0.1, 4.0, 2.5]}).to_csv(times, index=False)
    out = tmp_path / "pred.csv"
    model = str(model_dir / "model.safetensors")
    argv = ["predict", model, str(data_csv), "--times", str(times), "--quantiles", "0.1,0.9"]
    assert cli.main([*argv, "--n-samples", "10", "--out", str(out)]) == 0
    assert "wrote 3 rows" in capsys.readouterr().out
    pred = pd.read_csv(out)
    assert pred["sid"].tolist() == ["s0", "s0", "s3"]
    assert {"u_q10", "u_q90"} <= set(pred.columns)


def test_predict_horizon_refuses_far_times_unless_raised(model_dir, data_csv, tmp_path, capsys):
    """Training series span up to 3 time units: t = 40 lies over 10 spans past them."""
    out = tmp_path / "far.csv"
    argv = ["predict", str(model_dir / "model.safetensors"), str(data_csv), "--times", "40"]
    argv += ["--n-samples", "5", "--out", str(out)]
    assert cli.main(argv) == 2
    err = capsys.readouterr().err
    assert "training spans" in err and "--horizon" in err and "horizon=" not in err
    assert not out.exists()
    assert cli.main([*argv, "--horizon", "20"]) == 0
    assert pd.read_csv(out)["t"].unique().tolist() == [40.0]


def test_evaluate_json(model_dir, data_csv):
    model = model_dir / "model.safetensors"
    result = run("evaluate", model, data_csv, "--task", "extrap", "--json", "--n-samples", "10")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"mse", "mae", "nll", "coverage_90", "n_values", "nfe"} <= set(metrics)
    assert np.isfinite(metrics["mse"]) and metrics["n_values"] > 0


def test_evaluate_prints_a_table(model_dir, data_csv, capsys):
    code = cli.main(["evaluate", str(model_dir / "model.safetensors"), str(data_csv)])
    assert code == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[1].split() == ["metric", "value"]
    assert any(line.split()[0] == "coverage_90" for line in lines[2:])


def test_corrupt_model_exits_2_with_one_line(data_csv, tmp_path):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00not a model" * 10)
    result = run("predict", junk, data_csv, "--out", tmp_path / "p.csv")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("latentode: error: ") and "junk.safetensors" in lines[0]
    assert not (tmp_path / "p.csv").exists()


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("missing data", "file not found"),
        ("unknown column", "'nope'"),
        ("bad csv", "bad.csv"),
        ("log scale of a sign-changing channel", "channel 'u' has the value"),
        ("bad times", "'soon'"),
        ("unknown times id", "['s99']"),
    ],
)
def test_bad_input_exits_2_with_one_line(case, expected, model_dir, data_csv, tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("sid,t,u\ns0,0.0,1.0\ns0,zero,2.0\n")
    times = tmp_path / "times.csv"
    times.write_text("sid,t\ns99,1.0\n")
    model = model_dir / "model.safetensors"
    out = tmp_path / "out"
    argv = {
        "missing data": ["fit", tmp_path / "nothing.csv", "--out", out],
        "unknown column": ["fit", data_csv, "--id-col", "nope", "--out", out],
        "bad csv": ["fit", bad, "--id-col", "sid", "--time-col", "t", "--out", out],
        "log scale of a sign-changing channel": [
            *["fit", data_csv, "--id-col", "sid", "--time-col", "t"],
            *["--log-scale", "u", "--out", out],
        ],
        "bad times": ["predict", model, data_csv, "--times", "1,soon", "--out", out / "p.csv"],
        "unknown times id": ["predict", model, data_csv, "--times", times, "--out", out / "p.csv"],
    }[case]
    assert cli.main([str(a) for a in argv]) == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("latentode: error: ")
    assert expected in lines[0]
    assert not (out / "p.csv").exists()


def test_ctrl_c_exits_130(monkeypatch, capsys):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.fit, "run", interrupted)
    assert cli.main(["fit", "data.csv", "--out", "somewhere"]) == 130
    assert "interrupted" in capsys.readouterr().err


def test_times_spec_parsing():
    axis_free = {"id_col": "id", "time_col": "time"}
    assert parse_times(None, False, axis_free) is None
    np.testing.assert_allclose(parse_times("0:1:0.25", False, axis_free), [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_allclose(parse_times("0, 0.5,1.5", False, axis_free), [0, 0.5, 1.5])
    with pytest.raises(ValueError, match="step > 0"):
        parse_times("1:0:0.5", False, axis_free)


def test_demo_quick(tmp_path, capsys):
    assert cli.main(["demo", "--quick", "--no-progress-bar", "--out", str(tmp_path)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    table = next(i for i, line in enumerate(lines) if line.startswith("task"))
    assert lines[table + 1].startswith("interpolation") and lines[table + 2].startswith("forecast")
    assert lines[-1].startswith("figure: ") and lines[-1].endswith("spiral_forecast.png")
    assert (tmp_path / "spiral_forecast.png").stat().st_size > 10_000


def test_errors_speak_in_flags():
    message = "column(s) ['nope'] not found; name the right ones with id_col=. Or drop_empty=True"
    assert in_cli_words(message).endswith("with --id-col. Or --drop-empty")
