"""Every benchmark's quick mode runs (seconds, the synthetic set) and writes only under its
``--out``: a benchmark that breaks fails here, not months later."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from benchmarks import frontier as fb
from benchmarks.__main__ import ORDER, main, replace_section

from geodistill.frontier.pareto import Frontier
from geodistill.results import finished, write_result
from results_helpers import cand, result

ROOT = Path(__file__).resolve().parents[1]


def _tracked() -> dict[str, str]:
    files = [ROOT / "BENCHMARKS.md", *sorted((ROOT / "benchmarks" / "results").glob("*"))]
    return {str(p): hashlib.sha1(p.read_bytes()).hexdigest() for p in files if p.is_file()}


HEADINGS = {
    "speed": "## Training speed",
    "precision": "## bf16 autocast",
    "compression": "## Compression",
    "aid": "## AID:",
    "thesis": "## `geodistill run --recipe thesis`",
    "converged": "## Converged distillation on AID",
    "peers": "## Peers:",
    "paper_gpu": "## The paper's setting on a GPU",
    "frontier": "## The accuracy-latency frontier on AID",
}


@pytest.mark.parametrize("name", ORDER)
def test_each_quick_mode_runs_and_writes_only_under_its_out(name, tmp_path, monkeypatch):
    monkeypatch.setenv("GEODISTILL_CACHE", str(tmp_path / "cache"))
    before = _tracked()
    main([name, "--quick", "--out", str(tmp_path)])
    section = (tmp_path / f"{name}.md").read_text()
    assert section.startswith(HEADINGS[name]) and "_Measured " in section and "--quick" in section
    assert _tracked() == before  # BENCHMARKS.md and benchmarks/results untouched


def test_unknown_benchmark_is_named():
    with pytest.raises(SystemExit, match="unknown benchmark 'spede'"):
        main(["spede", "--quick"])


def test_the_frontier_benchmark_keeps_its_finished_runs_for_a_later_session(tmp_path):
    """`keep` writes finished runs to one file; `restore` puts them back in a fresh folder, but
    not the first-seed runs whose checkpoint the frontier still needs (latency, the export)."""
    spec = fb.aid_spec(("efficientnet_lite0", 128), [0, 1], ["kl"])
    old = tmp_path / "old"
    names = ["teacher-split0-s0", "cnn3@32-student-s0", "cnn3@32-student-s1", "cnn3@32-kl-a0.9-T4-s0",
             "cnn3@32-kl-a0.9-T4-s1", "cnn3x2@32-student-s0"]  # fmt: skip
    for i, name in enumerate(names):
        write_result(old / name, result(seed=i, run_id=name))
    (old / fb.COST_FILE).write_text('{"cnn3x2@32": {"int8_latency_ms": 0.1}}')
    kept = tmp_path / "kept.jsonl"
    assert fb.keep(old, kept) == len(names)
    new = tmp_path / "new"
    assert fb.restore(new, spec, kept) == 4
    back = {n for n in names if finished(new / n)}
    assert back == {"teacher-split0-s0", "cnn3@32-student-s1", "cnn3@32-kl-a0.9-T4-s1", "cnn3x2@32-student-s0"}
    assert (new / fb.COST_FILE).read_text().startswith("{")
    assert fb.restore(new, spec, kept) == 0  # nothing twice


def test_a_full_run_replaces_its_own_section_and_keeps_the_others(tmp_path):
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("# b\n\n## A\nold a\n\n## B\nold b\nnote by hand\n\n## C\nc\n")
    replace_section(doc, "## B\nnew b\n")
    assert doc.read_text() == "# b\n\n## A\nold a\n\n## B\nnew b\n\n## C\nc\n"
    replace_section(doc, "## D\nd\n")  # a new section goes at the end
    assert doc.read_text().endswith("## C\nc\n\n## D\nd\n")


def test_the_aid_section_says_each_goal_with_its_numbers(tmp_path):
    """+3 points with the interval above 0 (met by one of two), the best student under 1 ms
    against the teacher (alone beats distilled here), and the teacher's own latency."""
    a, b = cand("a", 0.05, 0.60, 0.64), cand("b", 0.5, 0.80, 0.79)
    f = Frontier([a, b], teacher_acc=0.90, pick=b, best_alone=b)
    (tmp_path / fb.COST_FILE).write_text('{"t@128": {"int8_latency_ms": 0.84, "size_kb": 3500}}')
    text = fb.goals_text(f, tmp_path, "t@128")
    assert "interval above 0: met by 1 of 2 (a); the largest mean gain is +4.00 points" in text
    assert "b alone, 80.00%, 10.00 points below it (missed by 5.00 points)" in text
    assert "The teacher itself (t@128) runs in 0.840 ms int8 here" in text
    assert "validation chose **efficientnet_lite0@128**" in fb.selection_text()
