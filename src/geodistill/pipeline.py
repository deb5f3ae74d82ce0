"""``geodistill run``: the main job. Train (or load) the teacher, build its cache once, train the
student alone and under each of the recipe's objectives over several seeds, evaluate all on the
held-out test split and print one comparison table (mean ± std over seeds).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from geodistill.atomic import write_json as write_json_atomic
from geodistill.config import RunConfig, build_config, deep_merge, get_recipe
from geodistill.engine.api import data_for, train


def _mean_std(xs: list[float]) -> tuple[float, float]:
    return statistics.fmean(xs), (statistics.stdev(xs) if len(xs) > 1 else float("nan"))


def _objective_label(o: dict) -> str:
    bits = [o["loss"]] + [f"{k}={o[k]:g}" for k in ("alpha", "beta", "T") if k in o and o["loss"] != "student"]
    return " ".join(bits)


def run(
    recipe: str = "demo",
    *,
    overrides: dict | None = None,
    teacher: str | None = None,
    seeds: list[int] | None = None,
    out: str | Path | None = None,
    resume: bool = True,
    log=print,
) -> dict:
    """Run a recipe end to end; returns the summary (also written to ``summary.json``/``.md``)."""
    r = get_recipe(recipe)
    overrides = overrides or {}
    user = {k: v for k, v in overrides.items() if k not in ("teacher", "student")}

    def spec_for(role: str) -> dict:
        """Recipe base < recipe role < user overrides < user overrides aimed at this role."""
        return deep_merge(deep_merge(deep_merge(r["base"], r[role]), user), overrides.get(role, {}))

    seeds = seeds if seeds is not None else r["seeds"]
    out_dir = Path(out or Path(user.get("out", "runs")) / recipe)
    out_dir.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    timings: dict[str, float] = {}
    datas: dict = {}  # decoded data, shared by every run with the same data config

    # 1. teacher: trained once (seed 0) unless given
    if teacher is None:
        tcfg = build_config(spec_for("teacher"), where=f"recipe {recipe} (teacher)")
        t0 = time.perf_counter()
        data = data_for(tcfg, datas)
        timings["data_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        tres = train(tcfg, out_dir / "teacher", resume=resume, data=data, role="teacher", log=log)
        timings["teacher_s"] = time.perf_counter() - t0
        teacher = str(out_dir / "teacher" / "model.ckpt")
    else:
        tres = None

    # 2. students: alone and distilled, per seed
    rows = []
    for o in r["objectives"]:
        for seed in seeds:
            spec = deep_merge(spec_for("student"), {"train": {"seed": seed}, "distill": dict(o)})
            if o["loss"] != "student":
                spec["distill"]["teacher"] = teacher
            cfg = build_config(spec, where=f"recipe {recipe} ({o['loss']})")
            name = (
                f"{o['loss'].replace('+', '_')}"
                + (f"-a{o['alpha']:g}" if "alpha" in o and o["loss"] != "student" else "")
                + f"-s{seed}"
            )
            t0 = time.perf_counter()
            res = train(cfg, out_dir / name, resume=resume, data=data_for(cfg, datas), log=log)
            timings[name + "_s"] = time.perf_counter() - t0
            rows.append({"label": _objective_label(o), **res})

    summary = summarise(rows, tres)
    summary["verdict"] = _verdict(rows)
    summary.update(
        {
            "recipe": recipe,
            "about": r.get("about", ""),
            "seeds": seeds,
            "teacher_ckpt": teacher,
            "timings_s": timings,
            "wall_time_s": time.perf_counter() - t_start,
        }
    )
    write_json_atomic(out_dir / "summary.json", summary)
    (out_dir / "summary.md").write_text(format_summary(summary))
    log("\n" + format_summary(summary))
    return summary


def _verdict(rows: list[dict]) -> str:
    """The plain-words verdict of the paired statistics (distilled vs alone, per seed)."""
    from geodistill.experiments import paired_difference, tidy_rows, verdict

    return verdict(paired_difference(tidy_rows(rows)))


def summarise(rows: list[dict], teacher: dict | None) -> dict:
    """Group student rows by objective: mean ± std of accuracy and F1, paired gain vs alone."""
    groups: dict[str, list[dict]] = {}
    for row in rows:
        groups.setdefault(row["label"], []).append(row)
    base = {r["seed"]: r["metrics"]["accuracy"] for r in groups.get("student", [])}
    table = []
    if teacher is not None:
        table.append(_line("teacher", [teacher], None))
    for label, rs in groups.items():
        table.append(_line(label, rs, base if label != "student" else None))
    t_cost = teacher["cost"] if teacher else None
    for line in table:
        if t_cost:
            line["compression_params"] = t_cost["params"] / max(line["params"], 1)
            line["compression_flops"] = t_cost["flops"] / max(line["flops"], 1)
            if t_cost.get("latency_ms") and line.get("latency_ms"):
                line["compression_latency"] = t_cost["latency_ms"] / line["latency_ms"]
    return {"table": table}


def _line(label: str, rs: list[dict], base: dict | None) -> dict:
    acc = _mean_std([r["metrics"]["accuracy"] for r in rs])
    f1 = _mean_std([r["metrics"]["f1_macro"] for r in rs])
    line = {
        "label": label,
        "model": rs[0]["model"],
        "n": len(rs),
        "accuracy_mean": acc[0],
        "accuracy_std": acc[1],
        "f1_mean": f1[0],
        "f1_std": f1[1],
        "params": rs[0]["cost"]["params"],
        "flops": rs[0]["cost"]["flops"],
        "size_bytes": rs[0]["cost"]["size_bytes"],
        "latency_ms": rs[0]["cost"].get("latency_ms"),
    }
    if base:
        diffs = [r["metrics"]["accuracy"] - base[r["seed"]] for r in rs if r["seed"] in base]
        if diffs:
            line["gain_mean"], line["gain_std"] = _mean_std(diffs)
            line["wins"] = f"{sum(d > 0 for d in diffs)}/{len(diffs)}"
    return line


def _pm(m: float, s: float, scale: float = 100.0) -> str:
    return f"{m * scale:.2f}" + ("" if s != s else f" ± {s * scale:.2f}")


def format_summary(summary: dict) -> str:
    """The comparison table as Markdown (accuracy and F1 in %, mean ± std over seeds)."""
    head = (
        "| model / objective | n | accuracy % | macro-F1 % | gain vs alone (pts) | wins | params | MFLOPs | size KB "
        "| latency ms | × params | × FLOPs | × latency |"
    )
    lines = [head, "|---|" + "---:|" * 12]
    for t in summary["table"]:
        gain = _pm(t["gain_mean"], t["gain_std"]) if "gain_mean" in t else "–"
        lat = f"{t['latency_ms']:.2f}" if t.get("latency_ms") else "–"
        cp = f"{t['compression_params']:.1f}" if "compression_params" in t else "–"
        cf = f"{t['compression_flops']:.1f}" if "compression_flops" in t else "–"
        cl = f"{t['compression_latency']:.1f}" if "compression_latency" in t else "–"
        lines.append(
            f"| {t['label']} ({t['model']}) | {t['n']} | {_pm(t['accuracy_mean'], t['accuracy_std'])} | "
            f"{_pm(t['f1_mean'], t['f1_std'])} | {gain} | {t.get('wins', '–')} | {t['params']:,} | "
            f"{t['flops'] / 1e6:.1f} | {t['size_bytes'] / 1024:.0f} | {lat} | {cp} | {cf} | {cl} |"
        )
    if summary.get("verdict"):
        lines += ["", summary["verdict"]]
    return "\n".join(lines) + "\n"


def load_summary(path: str | Path) -> dict:
    """Read a run folder's ``summary.json``."""
    return json.loads((Path(path) / "summary.json").read_text())


__all__ = ["RunConfig", "format_summary", "run", "summarise"]
