"""Cost metrics: hand-counted FLOPs and parameters, timing logic, compression ratios, profiles."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from geodistill.core.errors import GeodistillError, GeodistillWarning
from geodistill.deploy.profile import compression, format_compression, format_profile, profile_models
from geodistill.models.card import count_flops
from geodistill.models.cost import JOB_TIMING, clear_latency_memo, count_params, job_cost, time_calls, torch_cost


@pytest.mark.parametrize("bias", [True, False])
def test_conv_flops_equal_the_hand_count(bias):
    conv = nn.Conv2d(3, 8, 3, padding=1, bias=bias)
    # 2 FLOPs per multiply-accumulate: 8 output maps x 16 x 16 positions x (3 x 3 x 3) taps; bias not counted
    assert count_flops(conv, 16, in_channels=3) == 2 * 8 * 16 * 16 * 3 * 3 * 3 == 110_592
    assert count_params(conv) == 8 * 3 * 3 * 3 + (8 if bias else 0)


def test_small_network_flops_and_params():
    net = nn.Sequential(nn.Conv2d(2, 4, 3, stride=2, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 5))
    conv = 2 * 4 * 4 * 4 * (2 * 3 * 3)  # 8x8 input, stride 2 -> 4x4 outputs
    fc = 2 * 64 * 5
    assert count_flops(net, 8) == conv + fc  # in_channels read from the first conv
    assert count_params(net) == (4 * 2 * 9 + 4) + (64 * 5 + 5)
    net[0].weight.requires_grad_(False)
    assert count_params(net, trainable_only=True) == 4 + 64 * 5 + 5


def test_time_calls_warms_up_then_times_with_a_budget():
    calls = []
    ticks = iter(range(1000))
    clock = lambda: float(next(ticks))  # noqa: E731 - every call of fn "takes" 1 s
    times = time_calls(lambda: calls.append(1), warmup=2, repeats=5, clock=clock)
    assert len(calls) == 7 and times == [1.0] * 5
    calls.clear()
    times = time_calls(lambda: calls.append(1), warmup=0, repeats=50, max_seconds=1.5, clock=clock)
    assert len(times) == 3 and len(calls) == 3  # stops once 1.5 s are spent, but never before 3 runs
    times = time_calls(lambda: None, warmup=0, repeats=50, max_seconds=1.5, min_repeats=20, clock=clock)
    assert len(times) == 20


class _Counting(nn.Module):
    """A tiny classifier that counts its forward calls."""

    def __init__(self, width: int = 4) -> None:
        super().__init__()
        self.conv, self.fc, self.calls = nn.Conv2d(3, width, 3), nn.Linear(width, 5), 0

    def forward(self, x):
        self.calls += 1
        return self.fc(self.conv(x).mean((2, 3)))


def test_job_cost_measures_once_per_architecture_and_reuses_it(tmp_path):
    clear_latency_memo()
    cache = tmp_path / "latency.json"
    a, b = _Counting(), _Counting()
    first = job_cost(a, 8, arch="counting", num_classes=5, cache_file=cache)
    # the median of at least 20 timed calls after warm-up, at each of the two batch sizes
    assert a.calls >= 2 * (JOB_TIMING["warmup"] + 20) and JOB_TIMING["min_repeats"] >= 20
    second = job_cost(b, 8, arch="counting", num_classes=5, cache_file=cache)
    assert b.calls == 1 and second["latency_ms"] == first["latency_ms"]  # one pass counts FLOPs; none timed
    assert second["params"] == count_params(b) and second["latency_key"] == first["latency_key"]
    stored = json.loads(cache.read_text())
    assert stored[first["latency_key"]]["latency_ms"] == first["latency_ms"]

    clear_latency_memo()  # a later process (a resumed job) reads the file
    c = _Counting()
    assert job_cost(c, 8, arch="counting", num_classes=5, cache_file=cache)["latency_ms"] == first["latency_ms"]
    assert c.calls == 1
    d = _Counting()  # another input size is another measurement
    other = job_cost(d, 12, arch="counting", num_classes=5, cache_file=cache)
    assert d.calls > 1 and other["latency_key"] != first["latency_key"] and len(json.loads(cache.read_text())) == 2
    clear_latency_memo()


def test_compression_ratios_on_hand_made_rows():
    teacher = {
        "name": "vgg16",
        "runtime": "onnx",
        "params": 1000,
        "flops": 5000,
        "size_bytes": 4000,
        "latency_ms": 10.0,
        "throughput": 100.0,
    }
    student = {
        "name": "mnv2",
        "runtime": "onnx",
        "params": 100,
        "flops": 1000,
        "size_bytes": 500,
        "latency_ms": 2.0,
        "throughput": 400.0,
    }
    r = compression(teacher, student)
    assert (r["params"], r["flops"], r["size_bytes"], r["latency_ms"], r["throughput"]) == (10.0, 5.0, 8.0, 5.0, 4.0)
    assert r["teacher"] == "vgg16" and r["student"] == "mnv2"
    broken = compression(dict(teacher, latency_ms=None), dict(student, throughput=0, params=0))
    assert broken["latency_ms"] is None and broken["params"] is None
    assert broken["throughput"] == 0.0
    table = format_compression([r])
    assert "vgg16 -> mnv2" in table and "10.0x" in table and "8.0x" in table


def _tiny() -> nn.Module:
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1),
        nn.BatchNorm2d(16),
        nn.ReLU(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(16, 4),
    ).eval()


def test_profile_models_rows_for_every_runtime():
    pytest.importorskip("onnxruntime")
    model = _tiny()
    with pytest.warns(GeodistillWarning, match="random pixels"):
        rows = profile_models([("tiny", model)], size=16, batches=(1, 4), warmup=1, repeats=2)
    assert [r["runtime"] for r in rows] == ["torch", "onnx", "onnx-int8"]
    flops = 2 * 16 * 16 * 16 * 27 + 2 * 16 * 4
    params = 16 * 27 + 16 + 2 * 16 + 16 * 4 + 4
    for r in rows:
        assert r["name"] == "tiny" and r["size"] == 16
        assert r["flops"] == flops and r["params"] == params
        assert r["latency_ms"] > 0 and r["throughput"] > 0
        assert r["latency_batch"] == 1 and r["throughput_batch"] == 4
        assert r["size_bytes"] > 0
    assert rows[0]["size_bytes"] == 4 * (params + 2 * 16) + 8  # fp32 weights + BN stats + int64 counter
    assert rows[2]["calibration"] == "random" and rows[1]["calibration"] is None
    json.dumps(rows)  # JSON-able
    table = format_profile(rows)
    assert table.count("\n") == 4 and "onnx-int8 (random calib.)" in table and "tiny" in table


def test_profile_rejects_unknown_runtime_and_torch_cost_keys():
    with pytest.raises(GeodistillError, match="Unknown runtime"):
        profile_models([_tiny()], runtimes=("tensorrt",))
    cost = torch_cost(_tiny(), 16, batches=(1, 2), warmup=0, repeats=1)
    assert set(cost) == {
        "params",
        "flops",
        "size_bytes",
        "latency_ms",
        "latency_batch",
        "throughput",
        "throughput_batch",
    }
    assert cost["flops"] == 2 * 16 * 16 * 16 * 27 + 2 * 16 * 4
    assert torch_cost(_tiny(), 16, timing=False).keys() == {"params", "flops", "size_bytes"}
    # models keep their mode after counting
    model = _tiny().train()
    count_flops(model, 8)
    torch_cost(model, 8, batches=(1, 2), warmup=0, repeats=1)
    assert model.training
    assert torch.is_grad_enabled()
