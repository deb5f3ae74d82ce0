"""Results table, paired statistics, plots and the report, on synthetic results.json files."""

from __future__ import annotations

import base64
import csv
import dataclasses
import json
import math
import random
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PIL import Image

from geodistill.analysis.format import (
    format_mean_std,
    format_points,
    format_value,
    write_csv,
    write_markdown,
    write_rows_json,
)
from geodistill.analysis.intervals import image_variance, pair_stats, t_cdf, t_quantile
from geodistill.analysis.plots import plot_alpha, plot_compression, plot_confusion, plot_curves
from geodistill.analysis.stats import paired_difference
from geodistill.analysis.table import aggregate, run_rows
from geodistill.analysis.verdict import verdict
from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.report.build import write_report
from geodistill.results import RunResult, collect

CLASSES = ["farm", "forest", "urban"]
STUDENT_ACC = [0.80, 0.82, 0.81]  # seeds 0, 1, 2
KLCOS_03_ACC = [0.83, 0.84, 0.84]  # kl+cos, α=0.3: d = 0.03, 0.02, 0.03 -> clear win
KL_01_ACC = [0.81, 0.81, 0.82]  # kl, α=0.1: d = 0.01, -0.01, 0.01 -> inconclusive
ALPHAS = (0.1, 0.2, 0.3, 0.4, 0.5)
OBJECTIVES = ("kl", "kl+cos", "thesis")


def _result(run_id, role, obj, acc, seed, alpha=None, beta=None, T=None, model="cnn3", status="ok"):
    metrics = None
    if status == "ok":
        metrics = {
            "accuracy": acc,
            "precision_macro": acc - 0.01,
            "recall_macro": acc - 0.005,
            "f1_macro": acc - 0.02,
            "per_class_f1": {c: acc - 0.01 * i for i, c in enumerate(CLASSES)},
            "confusion_matrix": [[8, 1, 1], [0, 9, 1], [2, 0, 8]],
            "classes": CLASSES,
        }
    big = model == "cnn4"
    if role == "distilled":  # what the engine writes: no val_loss, extra keys
        history = [
            {
                "epoch": e + 1,
                "train_loss": 1 / (e + 1),
                "train_acc": 0.5 + 0.1 * e,
                "val_acc": 0.45 + 0.1 * e,
                "val_f1": 0.4 + 0.1 * e,
                "lr": 0.01,
                "train_time_s": 3.0,
                "time_s": 4.0,
            }
            for e in range(3)
        ]
    else:  # the full contract
        history = [
            {
                "epoch": e,
                "train_loss": 1 / (e + 1),
                "train_acc": 0.5 + 0.1 * e,
                "val_loss": 1.1 / (e + 1),
                "val_acc": 0.45 + 0.1 * e,
                "time_s": 4.0,
            }
            for e in range(3)
        ]
    cost = {"params": 50000 if big else 1000, "flops": 900000 if big else 20000, "size_bytes": 200000 if big else 4000}
    if role != "distilled":
        cost["latency_ms"] = 3.0 if big else 0.5
    return {
        "run_id": run_id,
        "role": role,
        "dataset": "aid",
        "model": model,
        "teacher": "cnn4" if role == "distilled" else None,
        "objective": f"L = {1 - alpha if alpha else 1:g}·CE + … ({obj})",
        "objective_name": obj,
        "alpha": alpha,
        "beta": beta,
        "T": T,
        "seed": seed,
        "size": 32,
        "metrics": metrics,
        "cost": cost,
        "epochs": 3,
        "wall_time_s": 12.5,
        "history": history,
        "machine": {"platform": "Linux-test", "python": "3.11.7", "torch": "2.14.1", "cpus": 2, "threads": 2},
        "status": status,
        "error": None if status == "ok" else "out of memory <boom> & co",
    }


def _all_results() -> list[dict]:
    rng = random.Random(1234)
    runs = [_result("teacher", "teacher", "teacher", 0.90, 0, model="cnn4")]
    runs += [_result(f"student-s{s}", "student", "student", a, s) for s, a in enumerate(STUDENT_ACC)]
    for obj in OBJECTIVES:
        for alpha in ALPHAS:
            for s in range(3):
                if (obj, alpha) == ("kl+cos", 0.3):
                    acc = KLCOS_03_ACC[s]
                elif (obj, alpha) == ("kl", 0.1):
                    acc = KL_01_ACC[s]
                else:  # random but fixed, kept below the kl+cos α=0.3 gain on average
                    acc = round(rng.uniform(0.79, 0.825), 4)
                runs.append(
                    _result(
                        f"{obj}-a{alpha}-s{s}", "distilled", obj, acc, s, alpha, 0.01 if obj == "thesis" else None, 4.0
                    )
                )
    runs.append(_result("kl-a0.5-s3", "distilled", "kl", None, 3, 0.5, None, 4.0, status="failed"))
    return runs


# teacher, students, distilled, a failed results.json, a crashed point's failed.json
N_RUNS = 1 + 3 + len(OBJECTIVES) * len(ALPHAS) * 3 + 1 + 1
CRASHED = {
    "run_id": "thesis-a0.5-s3",
    "status": "failed",
    "error": "RuntimeError: boom",
    "objective_name": "thesis",
    "seed": 3,
    "dataset": "aid",
    "model": "cnn3",
    "traceback": "...",
}  # what sweep.py writes


@pytest.fixture(scope="module")
def sweep_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("sweep")
    points = []
    for r in _all_results():
        d = root / r["role"] / r["objective_name"] / r["run_id"]  # nested at different depths
        d.mkdir(parents=True)
        (d / "results.json").write_text(json.dumps(r), encoding="utf-8")
        points.append(d.relative_to(root).as_posix())
    crashed = root / "distilled" / "thesis" / CRASHED["run_id"]
    crashed.mkdir()
    (crashed / "failed.json").write_text(json.dumps(CRASHED))
    # a point that crashed once and then finished on resume: the stale failed.json is ignored
    (root / "distilled" / "kl" / "kl-a0.1-s0" / "failed.json").write_text(
        json.dumps(dict(CRASHED, run_id="kl-a0.1-s0"))
    )
    points += [crashed.relative_to(root).as_posix(), "distilled/kl/kl-a0.9-s0"]  # the last is still pending
    (root / "sweep.json").write_text(
        json.dumps(
            {
                "sweep": {"name": "alpha-sweep", "alphas": list(ALPHAS), "seeds": [0, 1, 2], "train": {"epochs": 3}},
                "points": points,
            }
        )
    )
    return root


@pytest.fixture(scope="module")
def results(sweep_dir) -> list[RunResult]:
    return collect(sweep_dir)


@pytest.fixture(scope="module")
def rows(results) -> list[dict]:
    return run_rows(results)


def _pick(pairings, obj, alpha):
    return next(p for p in pairings if p.setting.objective == obj and p.setting.alpha == alpha)


def _acc(r: RunResult, acc: float) -> RunResult:
    return dataclasses.replace(r, metrics=dataclasses.replace(r.metrics, accuracy=acc))


def _flat(results) -> list[dict]:
    return [g.flat() for g in aggregate(results)]


# ---------------------------------------------------------------- table


def test_collect_and_tidy_rows(rows):
    assert len(rows) == N_RUNS == 51
    student = [r for r in rows if r["objective_name"] == "student"]
    assert sorted(r["accuracy"] for r in student) == sorted(STUDENT_ACC)
    r = next(r for r in rows if r["run_id"] == "kl+cos-a0.3-s1")
    assert r["f1[farm]"] == pytest.approx(0.84) and r["f1[urban]"] == pytest.approx(0.82)
    assert (r["dataset"], r["model"], r["role"], r["alpha"], r["T"], r["seed"]) == (
        "aid",
        "cnn3",
        "distilled",
        0.3,
        4.0,
        1,
    )
    assert r["params"] == 1000 and r["latency_ms"] is None and r["epochs"] == 3
    assert next(r for r in rows if r["run_id"] == "student-s0")["latency_ms"] == 0.5
    failed = {r["run_id"]: r for r in rows if r["status"] == "failed"}
    assert sorted(failed) == ["kl-a0.5-s3", "thesis-a0.5-s3"]  # the stale failed.json of kl-a0.1-s0 is ignored
    assert failed["kl-a0.5-s3"]["accuracy"] is None and "boom" in failed["kl-a0.5-s3"]["error"]
    assert failed["thesis-a0.5-s3"]["error"] == "RuntimeError: boom"
    assert next(r for r in rows if r["run_id"] == "kl-a0.1-s0")["status"] == "ok"


def test_collect_errors(tmp_path):
    with pytest.raises(GeodistillError, match="No results.json"):
        collect(tmp_path)
    with pytest.raises(GeodistillError, match="not a folder"):
        collect(tmp_path / "nope")
    bad = tmp_path / "run1" / "results.json"
    bad.parent.mkdir()
    bad.write_text("{not json")
    with pytest.raises(GeodistillError, match=re.escape(str(bad))):
        collect(tmp_path)
    bad.write_text(json.dumps({"run_id": "x", "dataset": "aid", "model": "cnn3", "seed": 0}))
    with pytest.raises(GeodistillError, match="objective_name"):
        collect(tmp_path)
    bad.write_text(
        json.dumps(
            {
                "run_id": "x",
                "dataset": "aid",
                "model": "cnn3",
                "seed": 0,
                "objective_name": "kl",
                "status": "ok",
                "metrics": {},
            }
        )
    )
    with pytest.raises(GeodistillError, match="metrics.accuracy"):
        collect(tmp_path)


def test_aggregate_mean_std(results):
    agg = _flat(results)
    # teacher, student, settings, and the crashed point (its failed.json has no α/β/T)
    assert len(agg) == 1 + 1 + len(OBJECTIVES) * len(ALPHAS) + 1
    crashed = next(a for a in agg if a["objective_name"] == "thesis" and a["alpha"] is None)
    assert (crashed["n"], crashed["n_failed"]) == (0, 1) and math.isnan(crashed["accuracy_mean"])
    student = next(a for a in agg if a["objective_name"] == "student")
    assert student["n"] == 3
    assert student["accuracy_mean"] == pytest.approx(0.81)
    assert student["accuracy_std"] == pytest.approx(0.01)  # sqrt((0.01² + 0.01² + 0) / 2)
    assert student["f1_macro_mean"] == pytest.approx(0.79)
    klcos = next(a for a in agg if a["objective_name"] == "kl+cos" and a["alpha"] == 0.3)
    assert klcos["accuracy_mean"] == pytest.approx(0.8366667, abs=1e-7)
    assert klcos["accuracy_std"] == pytest.approx(0.0057735, abs=1e-7)  # sqrt((2·(1/300)² + (2/300)²)/2)
    teacher = next(a for a in agg if a["objective_name"] == "teacher")
    assert teacher["n"] == 1 and math.isnan(teacher["accuracy_std"])
    kl05 = next(a for a in agg if a["objective_name"] == "kl" and a["alpha"] == 0.5)
    assert (kl05["n"], kl05["n_failed"]) == (3, 1)
    # an empty test split gives accuracy nan: left out of the mean, not poisoning it
    with_nan = [_acc(r, math.nan) if r.run_id == "student-s2" else r for r in results]
    s2 = next(a for a in _flat(with_nan) if a["objective_name"] == "student")
    assert s2["accuracy_mean"] == pytest.approx(0.81) and s2["accuracy_std"] == pytest.approx(0.0141421, abs=1e-7)


def test_unknown_metrics_are_named(results):
    with pytest.raises(GeodistillError, match="'acc' asked of paired_difference is not a metric"):
        paired_difference(results, metric="acc")


def test_writers(rows, results, tmp_path):
    agg = _flat(results)
    with open(write_csv(rows, tmp_path / "t.csv"), newline="", encoding="utf-8") as fh:
        back = list(csv.DictReader(fh))
    assert len(back) == N_RUNS and "f1[forest]" in back[0]
    assert {b["accuracy"] for b in back if b["status"] == "failed"} == {""}
    data = json.loads(write_rows_json(agg, tmp_path / "a.json").read_text(encoding="utf-8"))
    assert next(d for d in data if d["objective_name"] == "teacher")["accuracy_std"] is None  # nan -> null
    md = write_markdown(agg, tmp_path / "a.md").read_text(encoding="utf-8").splitlines()
    assert md[0].startswith("| dataset | model | objective_name | alpha |") and "| accuracy | f1_macro |" in md[0]
    assert re.fullmatch(r"\|(:---|---:)(\|(:---|---:))+\|", md[1])
    student = next(line for line in md if "| student |" in line)
    assert "| 81.00 ± 1.00 % |" in student and "| 79.00 ± 1.00 % |" in student  # accuracy, macro F1
    assert "| 90.00 % |" in next(line for line in md if "| teacher |" in line)  # one seed: no ±
    odd = write_markdown([{"name": "a|b*c", "x": 0.123456, "accuracy": 0.5, "alpha": 0.1}], tmp_path / "o.md")
    assert odd.read_text(encoding="utf-8").splitlines()[2] == "| a\\|b\\*c | 0.1235 | 50.00 % | 0.1 |"
    assert not list(tmp_path.glob(".*.tmp"))  # temp files renamed away


def test_one_number_format_for_every_table():
    # every quality metric in percent with 2 decimals, per-class F1 included
    assert format_value("f1_macro", 0.614) == "61.40 %" and format_value("f1[forest]", 0.5) == "50.00 %"
    assert format_value("precision_macro_mean", 0.85237) == "85.24 %"
    assert format_value("accuracy_std", 0.08866) == "8.87 %"
    # ± only where there is a standard deviation (n > 1); standard deviations with 2 decimals
    assert format_mean_std("accuracy", 0.6294, 0.08866) == "62.94 ± 8.87 %"
    assert format_mean_std("f1_macro", 0.6140, 0.09667) == "61.40 ± 9.67 %"
    assert format_mean_std("accuracy", 0.8524, math.nan) == "85.24 %"
    assert format_mean_std("accuracy", 0.8524, 0.01, unit=False) == "85.24 ± 1.00"
    assert format_mean_std("latency_ms", 0.31208, 0.0123) == "0.3121 ± 0.01"
    assert format_value("latency_ms_std", 0.0123) == "0.01" and format_value("latency_ms", 0.31208) == "0.3121"
    assert format_points(1.2666, 0.6311) == "+1.27 ± 0.63" and format_points(-0.5) == "-0.50"
    assert format_points(0.3, math.nan) == "+0.30" and format_points(None) == "–"


# ---------------------------------------------------------------- statistics


@pytest.mark.parametrize(
    "df,expected", [(1, 12.706), (2, 4.303), (3, 3.182), (4, 2.776), (10, 2.228), (30, 2.042), (120, 1.980)]
)
def test_t_quantile_against_tables(df, expected):
    assert t_quantile(0.975, df) == pytest.approx(expected, abs=5e-4)
    assert t_quantile(0.025, df) == pytest.approx(-expected, abs=5e-4)


def test_t_cdf_closed_forms():
    assert t_cdf(0.0, 7) == 0.5
    assert t_cdf(1.0, 1) == pytest.approx(0.75)  # Cauchy: 1/2 + atan(1)/π
    assert t_cdf(2.0, 2) == pytest.approx(0.5 + 2 / (2 * math.sqrt(6)))  # 1/2 + t/(2√(t²+2))
    assert t_quantile(0.5, 5) == 0.0


def test_paired_difference_clear_win(results):
    diffs = paired_difference(results)
    assert len(diffs) == len(OBJECTIVES) * len(ALPHAS)  # teacher and the baseline itself excluded
    d = _pick(diffs, "kl+cos", 0.3)
    assert (d.n, d.wins, d.losses) == (3, 3, 0)
    assert d.mean_diff == pytest.approx(0.0266667, abs=1e-7)
    assert d.sd_diff == pytest.approx(0.0057735, abs=1e-7)
    half = 4.302653 * 0.0057735 / math.sqrt(3)  # t_{0.975,2}·sd/√n = 0.014343
    assert d.ci_low == pytest.approx(0.0266667 - half, abs=1e-6)  # 0.012324
    assert d.ci_high == pytest.approx(0.0266667 + half, abs=1e-6)  # 0.041010
    assert d.baseline_mean == pytest.approx(0.81) and d.mean == pytest.approx(0.8366667, abs=1e-7)


def test_paired_difference_inconclusive_and_failed(results):
    diffs = paired_difference(results)
    d = _pick(diffs, "kl", 0.1)
    assert (d.n, d.wins, d.losses) == (3, 2, 1)
    assert d.mean_diff == pytest.approx(0.0033333, abs=1e-7)
    assert d.sd_diff == pytest.approx(0.0115470, abs=1e-7)
    assert d.ci_low == pytest.approx(-0.0253519, abs=1e-6)
    assert d.ci_high == pytest.approx(0.0320186, abs=1e-6)
    kl05 = _pick(diffs, "kl", 0.5)
    assert kl05.n == 3 and kl05.seeds_without_baseline == []  # the failed seed-3 run is left out


def test_paired_difference_duplicate_baseline_is_averaged_with_warning(results):
    extra = dataclasses.replace(_acc(next(r for r in results if r.run_id == "student-s0"), 0.78), run_id="again")
    with pytest.warns(GeodistillWarning, match="2 student-alone runs for dataset aid, model cnn3, seed 0"):
        diffs = paired_difference([*results, extra])
    d = _pick(diffs, "kl+cos", 0.3)
    # seed-0 baseline becomes (0.80 + 0.78)/2 = 0.79, so d = 0.04, 0.02, 0.03
    assert d.mean_diff == pytest.approx(0.03) and d.sd_diff == pytest.approx(0.01)


def test_image_variance_hand_computed():
    # the same gain image by image under every seed: all of it is which images were drawn.
    # c = (1, 0, 0, 0), mean 0.25: MS_img = 3·(0.75² + 3·0.25²)/3 = 0.75, MS_res = 0, σ² = 0.75/3, /m = 4
    assert image_variance([[1, 0, 0, 0]] * 3) == pytest.approx(0.0625)
    # d = (0.5, 0.25), c = (1, 0.5, 0, 0): MS_img = 1.375/3, MS_res = 0.375/3, σ² = (0.4583 − 0.125)/2
    assert image_variance([[1, 1, 0, 0], [1, 0, 0, 0]]) == pytest.approx((1.375 / 3 - 0.125) / 2 / 4)
    # more seed × image noise than image effect: clipped at 0
    assert image_variance([[0, 1, 0, 0], [1, 0, 1, 0]]) == 0.0
    assert image_variance([[1, 0]]) is None and image_variance([[1, 0], None]) is None
    assert image_variance([[1, 0], [1, 0, 0]]) is None
    # the widened interval: d = (0.5, 0.25), sd² = 0.03125, so √(0.03125/2 + 0.0416667) = 0.239357
    p = pair_stats([(0, 0.5, 0.0), (1, 0.25, 0.0)], (1.375 / 3 - 0.125) / 2 / 4)
    assert p["ci_high"] == pytest.approx(0.375 + 12.706205 * 0.239357, abs=1e-5)
    assert p["ci_over"] == "seeds and test images" and pair_stats([(0, 0.5, 0.0)], 0.04)["ci_over"] == "seeds"


def test_paired_interval_counts_the_test_images_when_runs_record_them(tmp_path):
    def run(run_id, obj, acc, seed, correct=None):
        r = _result(
            run_id, "distilled" if obj == "kl" else "student", obj, acc, seed, alpha=0.5 if obj == "kl" else None
        )
        if correct is not None:
            r["metrics"]["correct"] = correct
        return r

    # every seed: the student alone gets images 2-3 right (0.50), KL images 1-3 (0.75)
    raw = [
        run(f"{o}-s{s}", o, a, s, c) for s in range(3) for o, a, c in (("student", 0.5, "0110"), ("kl", 0.75, "1110"))
    ]
    results = [RunResult.from_dict(r) for r in raw]
    d = paired_difference(results)[0]
    half = 4.302653 * math.sqrt(0 / 3 + 0.0625)  # sd over seeds 0; the image term of the test above
    assert (d.mean_diff, d.ci_over) == (pytest.approx(0.25), "seeds and test images")
    assert d.ci_low == pytest.approx(0.25 - half, abs=1e-6) and d.ci_high == pytest.approx(0.25 + half, abs=1e-6)
    assert "(mean ± sd over 3 seeds; the 95% CI −82.6 to 132.6 over seeds and test images contains 0)" in verdict([d])
    # without the per-image record (older results), or for macro F1: the interval over seeds only
    older = [dataclasses.replace(r, metrics=dataclasses.replace(r.metrics, correct=None)) for r in results]
    for d in (paired_difference(older)[0], paired_difference(results, metric="f1_macro")[0]):
        assert d.ci_over == "seeds" and d.ci_low == pytest.approx(d.ci_high)
    assert "over seeds and test images" not in verdict([paired_difference(older)[0]])
    moved = [
        dataclasses.replace(r, metrics=dataclasses.replace(r.metrics, correct_of="a" if r.seed else "b"))
        for r in results
    ]
    assert paired_difference(moved)[0].ci_over == "seeds"  # scored on other images: not paired by image
    for r in raw:  # the report says which interval each row has
        (tmp_path / r["run_id"]).mkdir()
        (tmp_path / r["run_id"] / "results.json").write_text(json.dumps(r))
    md = write_report(tmp_path, out_dir=tmp_path / "report")[1].read_text(encoding="utf-8")
    assert "| 3 | 75.00 % | 50.00 % | +25.00 | 0.00 | -82.57 to +132.57 | seeds and test images | 3/3 |" in md
    assert "over seeds and test images contains 0" in md


def test_verdict_clear_win(results):
    d = [_pick(paired_difference(results), "kl+cos", 0.3)]
    assert verdict(d) == (
        "KL+cosine (α=0.3, T=4) beats the student alone in accuracy by 2.7 ± 0.6 points "
        "(mean ± sd over 3 seeds; 95% CI 1.2 to 4.1), better in 3/3 seeds."
    )


def test_verdict_inconclusive(results):
    d = [_pick(paired_difference(results), "kl", 0.1)]
    assert verdict(d) == (
        "KL (α=0.1, T=4) does not clearly differ from the student alone in accuracy: "
        "0.3 ± 1.2 points (mean ± sd over 3 seeds; the 95% CI −2.5 to 3.2 contains 0), "
        "better in 2/3 seeds."
    )


def test_verdict_whole_sweep(results):
    text = verdict(paired_difference(results))
    assert text.startswith("The best setting, KL+cosine (α=0.3, T=4), beats the student alone")
    assert "Of the 15 settings tried, 1 clearly beats the student alone, 13 do not clearly differ from it" in text


def test_verdict_worse_single_seed_and_missing_baseline(results):
    worse = [_acc(r, r.value("accuracy") - 0.05) if r.objective_name == "kl+cos" and r.ok else r for r in results]
    d = [_pick(paired_difference(worse), "kl+cos", 0.3)]
    assert verdict(d).startswith("KL+cosine (α=0.3, T=4) is worse than the student alone in accuracy by 2.3")
    assert "worse in 3/3 seeds" in verdict(d)

    one_seed = [r for r in results if r.seed == 0]
    d1 = [_pick(paired_difference(one_seed), "kl+cos", 0.3)]
    assert d1[0].n == 1 and math.isnan(d1[0].ci_low)
    assert verdict(d1) == (
        "KL+cosine (α=0.3, T=4) is 3.0 points above the student alone in accuracy on a "
        "single seed; with one seed there is no confidence interval, so this is one "
        "observation, not evidence."
    )

    no_base = [r for r in results if r.objective_name != "student"]
    d0 = paired_difference(no_base)
    assert all(p.n == 0 and p.seeds_without_baseline for p in d0)
    assert verdict(d0) == (
        "No setting could be compared: there is no 'student' run (role 'student') of the "
        "same dataset, model and seed to pair with."
    )

    orphan = dataclasses.replace(next(r for r in results if r.objective_name == "kl"), alpha=0.9, seed=7)
    mixed = paired_difference([*results, orphan])
    assert next(p for p in mixed if p.setting.alpha == 0.9).seeds_without_baseline == [7]
    assert verdict(mixed).endswith(
        "Of the 16 settings tried, 1 clearly beats the student alone, 13 do not clearly differ from it, 1 is "
        "clearly worse and 1 has no baseline run to pair with (a setting counts as clear when its 95% CI excludes 0)."
    )
    assert "nothing to compare" in verdict([])


# ---------------------------------------------------------------- plots


def _assert_png_svg(paths, stem: Path):
    assert [p.name for p in paths] == [stem.name + ".png", stem.name + ".svg"]
    with Image.open(paths[0]) as im:
        im.verify()
    with Image.open(paths[0]) as im:
        assert im.size[0] > 200 and im.size[1] > 200
        assert len(im.convert("RGB").getcolors(1 << 20) or []) > 20  # not a blank canvas
    assert ET.parse(paths[1]).getroot().tag.endswith("svg")


def test_plots_write_valid_png_and_svg(results, tmp_path):
    _assert_png_svg(plot_alpha(results, tmp_path / "alpha"), tmp_path / "alpha")
    _assert_png_svg(plot_compression(results, tmp_path / "cost"), tmp_path / "cost")
    _assert_png_svg(plot_confusion([[8, 1, 1], [0, 9, 1], [2, 0, 8]], CLASSES, tmp_path / "cm"), tmp_path / "cm")
    _assert_png_svg(
        plot_curves(RunResult.from_dict(_all_results()[0]).history, tmp_path / "curves"), tmp_path / "curves"
    )
    svg = (tmp_path / "cm.svg").read_text(encoding="utf-8")
    assert "forest" in svg or "glyph" in svg  # class names are drawn (as text or glyph paths)


def test_plot_input_errors(results, tmp_path):
    with pytest.raises(GeodistillError, match="3 x 3"):
        plot_confusion([[1, 2], [3, 4]], CLASSES, tmp_path / "cm")
    with pytest.raises(GeodistillError, match="α"):
        plot_alpha([r for r in results if r.alpha is None], tmp_path / "a")
    with pytest.raises(GeodistillError, match="history"):
        plot_curves([], tmp_path / "c")
    assert not list(tmp_path.iterdir())  # nothing half-written


# ---------------------------------------------------------------- report


@pytest.fixture(scope="module")
def report(sweep_dir):
    html_path, md_path = write_report(sweep_dir)
    return html_path, md_path


def test_report_html_sections_and_embedded_plots(report, sweep_dir, results):
    html_path, _ = report
    assert html_path == sweep_dir / "report" / "report.html"
    text = html_path.read_text(encoding="utf-8")
    for marker in (
        '<table class="results">',
        '<table class="aggregate">',
        '<table class="paired"',
        '<p class="verdict">',
        'id="what-was-run"',
        "Machine",
        "CPU count",
        "torch",
        "alpha-sweep",
        "Failed runs",
        "RuntimeError: boom",
        "<th>not finished (no result yet)</th><td>1: distilled/kl/kl-a0.9-s0</td>",
        "<th>machine 1 (50 runs)</th><td>platform: Linux-test, python: 3.11.7, torch: 2.14.1, cpus: 2",
    ):
        assert marker in text, marker
    assert "<script" not in text and "http://" not in text and "https://" not in text
    assert "out of memory &lt;boom&gt; &amp; co" in text and "<boom>" not in text  # escaped
    assert "The best setting, KL+cosine (α=0.3, T=4), beats the student alone" in text
    # one results row per run, one aggregate row per setting
    results_table = re.search(r'<table class="results">(.*?)</table>', text, re.S).group(1)
    assert results_table.count("<tr>") == N_RUNS + 1
    aggregate_table = re.search(r'<table class="aggregate">(.*?)</table>', text, re.S).group(1)
    assert aggregate_table.count("<tr>") == len(aggregate(results)) + 1
    # every PNG written is embedded, byte for byte, with alt text
    pngs = sorted((html_path.parent / "figures").glob("*.png"))
    assert len(pngs) == 2 + 3 * 2  # alpha, compression, confusion + curves for teacher/student/distilled
    imgs = re.findall(r'<img class="plot" alt="([^"]+)" src="data:image/png;base64,([^"]+)">', text)
    assert len(imgs) == len(pngs)
    embedded = sorted(base64.b64decode(src) for _, src in imgs)
    assert embedded == sorted(p.read_bytes() for p in pngs)
    assert all(alt.strip() for alt, _ in imgs)
    assert all(p.with_suffix(".svg").is_file() for p in pngs)
    # a report inside the sweep folder must not be mistaken for runs the next time
    assert len(collect(sweep_dir)) == N_RUNS


def test_report_markdown_twin(report):
    _, md_path = report
    md = md_path.read_text(encoding="utf-8")
    for heading in (
        "## Verdict",
        "## What was run",
        "## Mean ± sd over seeds",
        "## Paired differences against the student alone",
        "## Figures",
        "## All runs",
    ):
        assert heading in md
    images = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", md)
    assert len(images) == len(list((md_path.parent / "figures").glob("*.png")))
    links = re.findall(r"\]\(([^)]+)\)", md)
    assert links and all((md_path.parent / link).is_file() for link in links)
    assert "| 81.00 ± 1.00 % |" in md


def test_report_bad_sweep_json_writes_nothing(tmp_path):
    run = tmp_path / "sw" / "run"
    run.mkdir(parents=True)
    (run / "results.json").write_text(json.dumps(_result("only", "student", "student", 0.8, 0)))
    (tmp_path / "sw" / "sweep.json").write_text("[1, 2")
    with pytest.raises(GeodistillError, match="sweep.json"):
        write_report(tmp_path / "sw")
    assert not (tmp_path / "sw" / "report").exists()


def test_report_of_single_run(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "results.json").write_text(json.dumps(_result("only", "student", "student", 0.8, 0)))
    html_path, md_path = write_report(run, out_dir=tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    assert '<p class="verdict">There is nothing to compare' in text
    assert text.count('<img class="plot"') == 3  # compression, confusion, curves; no α plot
    assert md_path.is_file()


def _folder(root: Path, runs: list[dict]) -> Path:
    for r in runs:
        (root / r["run_id"]).mkdir(parents=True)
        (root / r["run_id"] / "results.json").write_text(json.dumps(r))
    return root


def test_report_of_a_recipe_folder_draws_no_alpha_plot_for_one_alpha(tmp_path):
    """A `run` folder: the student alone, KL and KL+cosine, each at one α: no α sweep to plot."""
    runs = [_result("teacher-s0", "teacher", "teacher", 0.9, 0, model="cnn4")]
    for s in range(2):
        runs.append(_result(f"student-s{s}", "student", "student", 0.8, s))
        runs.append(_result(f"kl-a0.7-T4-s{s}", "distilled", "kl", 0.82, s, 0.7, None, 4.0))
        runs.append(_result(f"kl_cos-a0.7-b0.1-T4-s{s}", "distilled", "kl+cos", 0.83, s, 0.7, 0.1, 4.0))
    html_path, _ = write_report(_folder(tmp_path / "run", runs), out_dir=tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    assert "against alpha" not in text and not list((tmp_path / "out" / "figures").glob("alpha*"))
    assert "<th>β values</th><td>0.1</td>" in text  # kl does not use β; nothing is tied


def test_report_says_when_a_preset_ties_beta_to_alpha(tmp_path):
    """`sweep --grid alpha=[0.3,0.7]` runs the thesis preset with β = α: the report says so."""
    runs = [_result(f"student-s{s}", "student", "student", 0.8, s) for s in range(2)]
    runs += [
        _result(f"thesis-a{a}-s{s}", "distilled", "thesis", 0.81, s, a, None, 4.0) for a in (0.3, 0.7) for s in range(2)
    ]
    html_path, _ = write_report(_folder(tmp_path / "sweep", runs), out_dir=tmp_path / "out")
    text = html_path.read_text(encoding="utf-8")
    assert "<th>β values</th><td>β = α (tied, thesis)</td>" in text and "against alpha" in text


# ---------------------------------------------------------------- rendered in a browser

CHROMIUM = Path("/usr/bin/chromium")
_PROBE = """<script>
window.addEventListener('load', function () {
  var imgs = document.querySelectorAll('img.plot');
  for (var i = 0; i < imgs.length; i++) {
    imgs[i].setAttribute('data-probe', imgs[i].complete && imgs[i].naturalWidth > 0 ? 'ok' : 'broken');
  }
  document.body.setAttribute('data-probe-done', String(imgs.length));
});
</script>"""


def _chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    cmd = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chrome-profile'}",
        "--virtual-time-budget=10000",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_report_renders_in_headless_chromium(report, tmp_path):
    html_path, _ = report
    # The report itself carries no script; a copy with a probe marks each image as decoded or not.
    probe = tmp_path / "probe.html"
    probe.write_text(html_path.read_text(encoding="utf-8").replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    n_png = len(list((html_path.parent / "figures").glob("*.png")))

    dom = _chromium(tmp_path, "--dump-dom", probe.as_uri()).stdout
    assert f'data-probe-done="{n_png}"' in dom, dom[-2000:]
    assert dom.count('data-probe="ok"') == n_png and 'data-probe="broken"' not in dom
    for cls in ("results", "aggregate", "paired"):
        assert f'<table class="{cls}"' in dom
    assert '<p class="verdict">' in dom

    shot = tmp_path / "shot.png"
    _chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,3000", html_path.as_uri())
    with Image.open(shot) as im:
        assert im.size == (1200, 3000)
        rgb = im.convert("RGB")
        colours = rgb.getcolors(1 << 22)
        assert colours is not None and len(colours) > 200  # text, tables, shading: not a blank page
        # the verdict box's green border (#2ca02c) is on screen
        assert any(abs(r - 0x2C) < 12 and abs(g - 0xA0) < 12 and abs(b - 0x2C) < 12 for _, (r, g, b) in colours)
    shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)


_WIDTH_PROBE = """<script>
window.addEventListener('load', function () {
  var boxes = document.querySelectorAll('div.table-box'), scrolling = 0;
  for (var i = 0; i < boxes.length; i++) { if (boxes[i].scrollWidth > boxes[i].clientWidth) scrolling++; }
  document.body.setAttribute('data-page-width', String(document.documentElement.scrollWidth));
  document.body.setAttribute('data-window-width', String(window.innerWidth));
  document.body.setAttribute('data-scrolling-boxes', String(scrolling));
});
</script>"""


@pytest.mark.skipif(not CHROMIUM.exists(), reason="/usr/bin/chromium is absent (apt-get install chromium)")
def test_report_page_is_no_wider_than_a_1280px_window(report, tmp_path):
    html_path, _ = report
    probe = tmp_path / "width.html"
    probe.write_text(
        html_path.read_text(encoding="utf-8").replace("</body>", _WIDTH_PROBE + "</body>"), encoding="utf-8"
    )
    dom = _chromium(tmp_path, "--window-size=1280,2000", "--dump-dom", probe.as_uri()).stdout
    found = {k: int(v) for k, v in re.findall(r'data-(page-width|window-width|scrolling-boxes)="(\d+)"', dom)}
    assert found.get("window-width") == 1280, dom[-2000:]
    assert found["scrolling-boxes"] >= 1  # some table is wider than the page and scrolls inside its own box
    assert found["page-width"] <= found["window-width"]  # the page itself never scrolls sideways
    shutil.rmtree(tmp_path / "chrome-profile", ignore_errors=True)
