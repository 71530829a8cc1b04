"""The benchmark's planning, ratios and report (its timings are not tested)."""
import argparse
import json
import subprocess
import sys

import pytest

from grukit import bench

from conftest import REPO, once


def _args(**kw):
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    bench.add_parser(sub)
    argv = ["bench"]
    for k, v in kw.items():
        argv += [f"--{k.replace('_', '-')}"] + ([str(x) for x in v] if isinstance(v, list) else [str(v)])
    return parser.parse_args(argv)


def test_plan_covers_the_matrix():
    configs = bench.plan(_args(steps=[100, 1000], mingru_steps=[4096]))
    keys = {(c["variant"], c["impl"], c["backend"], c["T"]) for c in configs}
    for v in ("gru", "mgu2", "ligru", "mingru"):
        for b in ("tensorflow", "jax", "torch"):
            for T in (100, 1000):
                assert (v, "grukit", b, T) in keys and (v, "keras_rnn", b, T) in keys
    assert ("gru", "keras_gru", "jax", 100) in keys
    assert ("gru", "torch_gru", "torch-native", 1000) in keys
    assert ("mingru", "grukit", "jax", 4096) in keys and ("mingru", "grukit_par", "torch", 4096) in keys
    assert not any(c["impl"] == "keras_gru" and c["variant"] != "gru" for c in configs)


def test_plan_options_and_their_ratios():
    impls = ["grukit", "grukit_layer", "grukit_weight_drop"]
    configs = bench.plan(_args(variants=["gru", "mingru"], backends=["jax"], impls=impls,
                               steps=[100], mingru_steps=[]))
    keys = {(c["variant"], c["impl"]) for c in configs}
    assert keys == {("gru", "grukit"), ("gru", "grukit_layer"), ("gru", "grukit_weight_drop"),
                    ("mingru", "grukit"), ("mingru", "grukit_layer")}  # minGRU: no recurrent kernel
    assert not any(c["impl"] in bench.OPTION_IMPLS for c in bench.plan(_args(variants=["gru"])))
    results = [{"variant": "gru", "impl": impl, "backend": "jax", "T": 100,
                "result": {"train": {"median": rate, "all": [rate]}}}
               for impl, rate in (("grukit", 40.0), ("grukit_layer", 30.0))]
    assert bench.ratios(results) == {"train T=100 jax: grukit gru norm='layer' / grukit gru": 0.75}


def test_reset_after_form_is_planned_where_it_is_not_the_default():
    """``grukit_reset_after``: only variants with a reset gate whose default is reset-before
    (not the GRU, whose default it is, nor Li-GRU and minGRU, which have no reset gate);
    reported against the same variant and against the GRU."""
    configs = bench.plan(_args(variants=["gru", "gru2", "mgu", "mgu3", "ligru", "mingru"],
                               backends=["tensorflow"], impls=["grukit", "grukit_reset_after"],
                               steps=[100], mingru_steps=[]))
    fused = {c["variant"] for c in configs if c["impl"] == "grukit_reset_after"}
    assert fused == {"gru2", "mgu", "mgu3"}
    results = [{"variant": v, "impl": impl, "backend": "tensorflow", "T": 100,
                "result": {"train": {"median": rate, "all": [rate]}}}
               for v, impl, rate in (("gru", "grukit", 20.0), ("mgu", "grukit", 25.0),
                                     ("mgu", "grukit_reset_after", 32.0))]
    r = bench.ratios(results)
    assert r["train T=100 tensorflow: grukit mgu / grukit gru"] == pytest.approx(1.25)
    assert r["train T=100 tensorflow: grukit mgu reset_after=True / grukit mgu"] == \
        pytest.approx(1.28)
    assert r["train T=100 tensorflow: grukit mgu reset_after=True / grukit gru"] == \
        pytest.approx(1.6)


def test_plan_rejects_unknown_variant():
    with pytest.raises(ValueError, match="Unknown variant"):
        bench.plan(_args(variants=["gru9"]))


def test_ratios_and_report(tmp_path):
    def row(variant, impl, backend, train):
        return {"variant": variant, "impl": impl, "backend": backend, "T": 100,
                "result": {"train": {"median": train, "all": [train]}}}
    results = [row("gru", "grukit", "jax", 30.0), row("gru", "keras_gru", "jax", 20.0),
               row("gru", "keras_rnn", "jax", 15.0), row("gru", "torch_gru", "torch-native", 25.0),
               row("mgu", "grukit", "jax", 45.0), row("mgu", "keras_rnn", "jax", 5.0),
               {**row("mingru", "grukit", "jax", 1), "result": {"error": "boom"}}]
    r = bench.ratios(results)
    assert r["train T=100 jax: grukit gru / keras.layers.GRU"] == pytest.approx(1.5)
    assert r["train T=100 jax: grukit gru / torch.nn.GRU"] == pytest.approx(1.2)
    assert r["train T=100 jax: grukit mgu / grukit gru"] == pytest.approx(1.5)
    report = {"date": "d", "machine": "m", "versions": {}, "command": "c", "repeats": 1,
              "shape": {"batch": 1, "features": 1, "units": 1}, "results": results, "ratios": r}
    bench.write_report(report, str(tmp_path))
    md = (tmp_path / "results.md").read_text()
    assert "| gru | 100 | grukit | jax | 30.00 |" in md and "error: boom" in md
    assert json.loads((tmp_path / "results.json").read_text())["ratios"] == r


@once  # spawns its own processes
def test_bench_command_end_to_end(tmp_path):
    out = tmp_path / "b"
    cmd = [sys.executable, "-m", "grukit", "bench", "--variants", "gru", "--backends", "jax",
           "--impls", "grukit", "keras_gru", "--steps", "6", "--mingru-steps", "--batch", "2",
           "--features", "3", "--units", "4", "--repeats", "1", "--steps-per-repeat", "1",
           "--warmup", "1", "--sgemm-size", "64", "--limit-min-time", "0.001", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads((out / "results.json").read_text())
    assert len(report["results"]) == 2 and all("train" in r["result"] for r in report["results"])
    assert "train T=6 jax: grukit gru / keras.layers.GRU" in report["ratios"]
    assert (out / "results.md").exists()
    assert {"python", "keras", "jax"} <= set(report["versions"])
    # the machine's limit, measured in the same run, and each row as a fraction of it
    limit = report["limit"]
    assert set(limit["recurrent"]) == {"3"} and limit["sgemm"] > 0
    fracs = {f["impl"]: f for f in report["fractions"]}
    assert set(fracs) == {"grukit", "keras_gru"}
    for f, r in zip([fracs[r["impl"]] for r in report["results"]], report["results"]):
        expected = bench.train_flops("gru", 2, 6, 3, 4) * r["result"]["train"]["median"] / 1e9
        assert f["gflops"] == pytest.approx(expected)
        assert f["of_recurrent"] == pytest.approx(expected / limit["recurrent"]["3"])
    assert "fraction of the machine's limit" in (out / "results.md").read_text()


def test_train_flops_by_hand():
    # forward x W and h U, backward dW, dU and dh: five matmuls, counted by hand.
    B, T, m, n = 64, 100, 32, 128

    def by_hand(kx, kh):
        xw, hu = 2 * B * T * m * kx * n, 2 * B * T * n * kh * n
        return xw + hu + xw + hu + hu

    assert bench.train_flops("gru", B, T, m, n) == by_hand(3, 3) == 2_202_009_600
    assert bench.train_flops("mgu2", B, T, m, n) == by_hand(1, 2)
    assert bench.train_flops("gru3", B, T, m, n) == by_hand(1, 1)
    assert bench.train_flops("ligru", B, T, m, n) == by_hand(2, 2)
    assert bench.train_flops("mingru", B, T, m, n) == by_hand(2, 0)
    assert bench.matmul_blocks("mgu") == (2, 2)


@once  # NumPy and PyTorch matmuls: the same in every pass
def test_machine_limit_reports_the_best_library():
    limit = bench.machine_limit(2, 4, [1, 3], size=16, chain=3, min_time=0.001,
                                libraries=("numpy", "torch"))
    assert set(limit["recurrent"]) == {"1", "3"}
    assert set(limit["by_library"]) == {"numpy", "torch"}
    for kh in ("1", "3"):
        assert limit["recurrent"][kh] == max(v["recurrent"][kh] for v in limit["by_library"].values())
        assert limit["recurrent"][kh] > 0
    assert limit["sgemm"] == max(v["sgemm"] for v in limit["by_library"].values()) > 0


def test_fractions_of_the_limit(tmp_path):
    def row(variant, impl, train):
        return {"variant": variant, "impl": impl, "backend": "jax", "T": 100, "batch": 64,
                "features": 32, "units": 128, "result": {"train": {"median": train, "all": [train]}}}
    results = [row("gru", "grukit", 20.0), row("mingru", "grukit", 100.0),
               {**row("mgu", "grukit", 1.0), "result": {"error": "boom"}}]
    limit = {"recurrent": {"3": 88.080384}, "sgemm": 176.160768, "by_library": {"numpy": {}}}
    f = bench.fractions(results, limit)
    assert set(f) == {("gru", "grukit", "jax", 100), ("mingru", "grukit", "jax", 100)}
    gru = f[("gru", "grukit", "jax", 100)]
    assert gru["gflops"] == pytest.approx(2.2020096 * 20)
    assert gru["of_recurrent"] == pytest.approx(0.5) and gru["of_sgemm"] == pytest.approx(0.25)
    assert "of_recurrent" not in f[("mingru", "grukit", "jax", 100)]  # no recurrent matmul
    report = {"date": "d", "machine": "m", "versions": {}, "command": "c", "repeats": 1,
              "shape": {"batch": 64, "features": 32, "units": 128}, "results": results,
              "ratios": {}, "limit": limit,
              "fractions": [{"variant": k[0], "impl": k[1], "backend": k[2], "T": k[3], **v}
                            for k, v in f.items()]}
    bench.write_report(report, str(tmp_path))
    md = (tmp_path / "results.md").read_text()
    assert "| gru | 100 | grukit | jax | 44.0 | 0.50 | 0.25 |" in md
    assert "| mingru | 100 | grukit | jax | " in md and "recurrent chain" in md
