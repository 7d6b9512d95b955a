"""Trainer config schema: defaults, validation messages, overrides, documentation."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from trainer.engine.config import (
    DOCS,
    TrainerConfig,
    apply_overrides,
    load_config,
    normalize_augment,
    schema_docs,
    schema_keys,
    to_dict,
)
from trainer.errors import ConfigError

FIVE_LINES = """\
model: {name: resnet18}
data: {dataset: digits, img_size: 32, batch_size: 64}
optimizer: {name: adamw, lr: 1e-3}
scheduler: {name: cosine}
train: {epochs: 2, device: auto}
"""
REPO = Path(__file__).resolve().parents[2]
CORPORA = REPO.parent / "shared" / "corpora"


def error(raw: object) -> str:
    with pytest.raises(ConfigError) as exc:
        load_config(raw)
    message = str(exc.value)
    assert "\n" not in message
    return message


def test_five_line_config_loads_with_defaults_filled() -> None:
    cfg = load_config(yaml.safe_load(FIVE_LINES))
    assert cfg.model.name == "resnet18"
    assert cfg.optimizer.lr == pytest.approx(1e-3)  # YAML 1.1 reads 1e-3 as a string; the schema knows better
    assert isinstance(cfg.optimizer.lr, float)
    assert cfg.img_hw == (32, 32)
    assert cfg.train.epochs == 2 and cfg.train.device == "auto"
    assert cfg.train.threads == 1 and cfg.train.compile is False
    resolved = to_dict(cfg)
    assert resolved["optimizer"]["weight_decay"] == 0.0
    assert resolved["train"]["early_stopping"]["patience"] is None
    assert load_config(resolved) == cfg  # the resolved form is itself a valid config


def test_model_shorthand_and_non_square_size() -> None:
    cfg = load_config({"model": "convnext_atto", "data": {"img_size": [32, 48]}})
    assert cfg.model.name == "convnext_atto"
    assert cfg.img_hw == (32, 48)


def test_unknown_key_names_it_and_the_nearest_valid_one() -> None:
    msg = error({"model": {"name": "resnet18"}, "optimizer": {"lrr": 0.1}})
    assert "'optimizer.lrr'" in msg and "did you mean 'optimizer.lr'" in msg
    msg = error({"model": {"name": "resnet18"}, "train": {"early_stopping": {"patiense": 2}}})
    assert "did you mean 'train.early_stopping.patience'" in msg
    msg = error({"model": {"name": "resnet18"}, "lr": 0.1})  # right key, wrong section
    assert "did you mean 'optimizer.lr'" in msg
    msg = error({"model": {"name": "resnet18"}, "data": {"augment": {"hflp": 0.5}}})
    assert "hflp" in msg and "did you mean 'hflip'" in msg
    msg = error({"model": {"name": "resnet18"}, "data": {"augment": {"mixup": {"alpha": 0.2, "aplha": 1}}}})
    assert "aplha" in msg and "alpha" in msg


def test_type_error_names_key_value_and_expected_type() -> None:
    msg = error({"model": {"name": "resnet18"}, "optimizer": {"lr": "fast"}})
    assert "optimizer.lr" in msg and "'fast'" in msg and "number" in msg
    msg = error({"model": {"name": "resnet18"}, "train": {"epochs": "ten"}})
    assert "train.epochs" in msg and "'ten'" in msg and "integer" in msg
    msg = error({"model": {"name": "resnet18"}, "train": {"epochs": True}})
    assert "train.epochs" in msg and "True" in msg
    msg = error({"model": {"name": "resnet18"}, "data": {"img_size": "big"}})
    assert "data.img_size" in msg and "integer or list of integer" in msg


@pytest.mark.parametrize("raw", [
    {"MODEL": {"BUILDER": "ClassificationModelBuilder"}, "EXECUTION": {"EPOCHS": 10}},
    {"model": {"arch": "resnet"}},
    {"optimizer": {"name": "adam"}},
    ["not", "a", "mapping"],
])
def test_config_for_another_tool_is_not_a_trainer_config(raw: object) -> None:
    msg = error(raw)
    assert msg.startswith("not a trainer config")


def test_real_ednaml_config_is_rejected_clearly() -> None:
    files = sorted((CORPORA / "ednaml").rglob("*.yml"))
    if not files:
        pytest.skip("shared corpora not available")
    raw = yaml.safe_load(files[0].read_text())
    assert error(raw) == "not a trainer config: missing model.name"


@pytest.mark.parametrize("raw, fragment", [
    ({"model": {"name": "r", "pretrained": True}}, "no model hub here"),
    ({"model": {"name": "r"}, "data": {"dataset": "cifar10"}}, "data.dataset"),
    ({"model": {"name": "r"}, "data": {"fraction": 0}}, "data.fraction"),
    ({"model": {"name": "r"}, "data": {"channels": 2}}, "data.channels"),
    ({"model": {"name": "r"}, "scheduler": {"name": "cosin"}}, "did you mean 'cosine'"),
    ({"model": {"name": "r"}, "train": {"device": "gpu"}}, "train.device"),
    ({"model": {"name": "r"}, "train": {"best_metric": "accuracy"}}, "train.best_metric"),
    ({"model": {"name": "r"}, "data": {"batch_size": 63, "augment": {"mixup": True}}}, "even batch size"),
    ({"model": {"name": "r"}, "data": {"channels": 1, "augment": {"hue_saturation": 0.5}}}, "needs RGB"),
    ({"model": {"name": "r"}, "version": 2}, "version"),
])
def test_semantic_errors(raw: dict, fragment: str) -> None:
    assert fragment in error(raw)


def test_augment_forms() -> None:
    aug = normalize_augment({"hflip": 0.3, "mixup": True, "blur": {"sigma": [0.5, 1.0]}, "jpeg": False,
                             "noise": 0})
    assert aug["hflip"] == {"p": 0.3}
    assert aug["mixup"]["alpha"] == 0.8
    assert aug["blur"]["sigma"] == [0.5, 1.0] and aug["blur"]["p"] == 0.2
    assert "jpeg" not in aug and "noise" not in aug


def test_overrides_make_a_new_mapping() -> None:
    raw = yaml.safe_load(FIVE_LINES)
    new = apply_overrides(raw, ["optimizer.lr=3e-4", "epochs=5", "model=convnext_atto", "img_size=[32, 48]",
                                "data.augment.hflip=0.5", "train.early_stopping.patience=3"])
    assert raw["optimizer"]["lr"] == "1e-3" and raw["train"]["epochs"] == 2  # input untouched
    assert new["optimizer"]["lr"] == 3e-4 and isinstance(new["optimizer"]["lr"], float)
    assert new["train"]["epochs"] == 5
    assert new["model"] == {"name": "convnext_atto"}
    assert new["data"]["img_size"] == [32, 48]
    cfg = load_config(new)
    assert cfg.data.augment == {"hflip": 0.5} and cfg.train.early_stopping.patience == 3
    assert apply_overrides(raw, {"optimizer.lr": 0.01})["optimizer"]["lr"] == 0.01


@pytest.mark.parametrize("override, fragment", [
    ("optimizer.lrr=1", "did you mean 'optimizer.lr'"),
    ("epoch=3", "did you mean 'epochs'"),
    ("train.early_stopping.patiense=1", "did you mean 'train.early_stopping.patience'"),
    ("lr", "key=value"),
])
def test_bad_overrides(override: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as exc:
        apply_overrides({"model": {"name": "resnet18"}}, [override])
    assert fragment in str(exc.value)


def test_every_key_is_documented_here_and_in_the_docs() -> None:
    leaves = [key for key, *_ in schema_docs()]
    assert set(leaves) == set(DOCS)
    assert "train.early_stopping.patience" in schema_keys()
    doc = (REPO / "docs" / "trainer-config.md").read_text()
    missing = [key for key in leaves if f"`{key}`" not in doc]
    assert not missing, f"docs/trainer-config.md does not document {missing}"


def test_defaults_object_is_complete() -> None:
    cfg = TrainerConfig()
    assert to_dict(cfg)["scheduler"]["name"] == "cosine"
