"""Config validation, overrides and recipes; quality metrics pinned against hand counts."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from geodistill.config import load_recipe, recipe_names, role_spec
from geodistill.config.merge import load_yaml, parse_overrides
from geodistill.config.run import build_config
from geodistill.core.errors import GeodistillError
from geodistill.core.metrics import classification_metrics
from geodistill.study.plan import plan


def test_overrides_parse_to_nested_typed_values():
    d = parse_overrides(["train.lr=0.01", "data.size=64", "distill.loss=kl+cos", "train.patience=null"])
    assert d == {"train": {"lr": 0.01, "patience": None}, "data": {"size": 64}, "distill": {"loss": "kl+cos"}}
    cfg = build_config(d)
    assert cfg.train.lr == 0.01 and cfg.data.size == 64 and cfg.distill.loss == "kl+cos"


def test_bad_field_is_named():
    with pytest.raises(GeodistillError, match=r"'train.lr'"):
        build_config({"train": {"lr": -1}})
    with pytest.raises(GeodistillError, match=r"'data.fractions'"):
        build_config({"data": {"fractions": [0.5, 0.5, 0.5]}})
    with pytest.raises(GeodistillError, match=r"'train.lrr'"):
        build_config({"train": {"lrr": 0.1}})
    with pytest.raises(GeodistillError, match="section.key=value"):
        parse_overrides(["train.lr"])


def test_yaml_errors_name_the_file(tmp_path):
    with pytest.raises(GeodistillError, match="does not exist"):
        load_yaml(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("train: [1, 2\n")
    with pytest.raises(GeodistillError, match=str(bad)):
        load_yaml(bad)


def test_recipes_validate_and_unknown_is_explained():
    assert recipe_names() == ["demo", "paper", "thesis"]
    for name in recipe_names():
        r = load_recipe(name)
        for role in ("teacher", "student"):
            build_config(role_spec(r, role))
        plan(r, Path("/out"))  # every run of every shipped recipe validates
    with pytest.raises(GeodistillError, match="demo, paper, thesis"):
        load_recipe("nope")


def test_metrics_match_hand_counts():
    # true:  0 0 1 1 1 2 ; pred: 0 1 1 1 2 2
    m = classification_metrics(torch.tensor([0, 1, 1, 1, 2, 2]), torch.tensor([0, 0, 1, 1, 1, 2]), ["a", "b", "c"])
    assert m["confusion_matrix"] == [[1, 1, 0], [0, 2, 1], [0, 0, 1]]
    assert m["accuracy"] == pytest.approx(4 / 6)
    # precision: a 1/1, b 2/3, c 1/2 ; recall: a 1/2, b 2/3, c 1/1
    assert m["precision_macro"] == pytest.approx((1 + 2 / 3 + 1 / 2) / 3)
    assert m["recall_macro"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3)
    f1 = [2 * 1 * 0.5 / 1.5, 2 / 3, 2 * 0.5 * 1 / 1.5]
    assert m["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert m["per_class_f1"]["a"] == pytest.approx(2 / 3)


def test_never_predicted_class_has_zero_precision_not_nan():
    m = classification_metrics(torch.tensor([0, 0]), torch.tensor([0, 1]), ["a", "b"])
    assert m["precision_macro"] == pytest.approx(0.25) and m["per_class_f1"]["b"] == 0.0


def test_the_paper_recipe_is_the_papers_setting_and_says_how_to_give_weights(monkeypatch, tmp_path):
    import urllib.error

    import torch

    p = plan(load_recipe("paper"), tmp_path)
    t = build_config(p.teachers[0].spec)
    s = build_config(next(j for j in p.runs if "kl_cos" in j.name).spec)
    assert (t.train.model, t.train.weights, t.data.size) == ("vgg16", "imagenet", 224)
    assert (s.train.model, s.train.weights, s.data.size, s.distill.loss) == ("mobilenet_v2", "imagenet", 224, "kl+cos")

    def offline(*args, **kwargs):
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(torch.hub, "download_url_to_file", offline)
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    from geodistill.study.recipe import run

    tiny = {"data": {"dataset": "synthetic", "n_per_class": 3, "size": 32}, "train": {"epochs": 1}}
    with pytest.raises(GeodistillError, match=r"ImageNet weights for model 'vgg16' could not be downloaded .*"
                                              r"--set teacher.train.weights=PATH"):  # fmt: skip
        run("paper", overrides=tiny, seeds=[0], out=tmp_path / "paper")
    assert not list((tmp_path / "paper").glob("*/results.json"))  # nothing trained
