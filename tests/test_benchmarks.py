"""Every benchmark's quick mode runs (seconds, the synthetic set) and writes only under its
``--out``: a benchmark that breaks fails here, not months later."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from benchmarks.__main__ import ORDER, main

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
