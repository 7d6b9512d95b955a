"""timm model creation: sizes, channels, ViT patch sizes, local weights only."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch

from trainer.engine.config import ModelConfig
from trainer.engine.model import build_model, check_forward, param_count
from trainer.errors import ConfigError


def test_cnn_takes_non_square_images_and_greyscale() -> None:
    m = build_model(ModelConfig(name="test_resnet"), num_classes=7, in_chans=1, img_size=(16, 24))
    check_forward(m, in_chans=1, img_size=(16, 24), name="test_resnet")
    assert m(torch.zeros(2, 1, 16, 24)).shape == (2, 7)
    assert param_count(m) > 0


def test_vit_gets_img_size_and_patch_size_override() -> None:
    m = build_model(ModelConfig(name="test_vit", patch_size=4), num_classes=3, in_chans=3, img_size=(16, 24))
    assert m.patch_embed.patch_size == (4, 4)
    assert m(torch.zeros(1, 3, 16, 24)).shape == (1, 3)


def test_vit_size_not_a_multiple_of_the_patch_is_a_clear_error() -> None:
    with pytest.raises(ConfigError) as exc:
        build_model(ModelConfig(name="vit_tiny_patch16_224"), num_classes=10, in_chans=3, img_size=(30, 30))
    msg = str(exc.value)
    assert "patch size 16x16" in msg and "32" in msg and "model.patch_size" in msg


def test_num_classes_and_dropout_options_reach_the_model() -> None:
    m = build_model(ModelConfig(name="test_resnet", num_classes=12, drop_rate=0.3), num_classes=10, in_chans=3,
                    img_size=(16, 16))
    assert m.eval()(torch.zeros(1, 3, 16, 16)).shape == (1, 12)
    assert m.drop_rate == 0.3


def test_pretrained_by_name_says_there_is_no_hub() -> None:
    for value in (True, "imagenet"):
        with pytest.raises(ConfigError, match="no model hub here"):
            build_model(ModelConfig(name="test_resnet", pretrained=value), num_classes=10, in_chans=3,
                        img_size=(16, 16))


def test_pretrained_local_file_is_loaded(tmp_path: Path) -> None:
    src = build_model(ModelConfig(name="test_resnet"), num_classes=10, in_chans=3, img_size=(16, 16))
    weights = tmp_path / "w.pth"
    torch.save(src.state_dict(), weights)
    m = build_model(ModelConfig(name="test_resnet", pretrained=str(weights)), num_classes=10, in_chans=3,
                    img_size=(16, 16))
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), m.state_dict().values()))
    # a file with another head (ImageNet's 1000 classes, say) loads the body and gets a fresh head
    m5 = build_model(ModelConfig(name="test_resnet", pretrained=str(weights)), num_classes=5, in_chans=3,
                     img_size=(16, 16))
    assert torch.equal(m5.state_dict()["conv1.0.weight"], src.state_dict()["conv1.0.weight"])
    assert m5.fc.weight.shape[0] == 5
    # a trainer checkpoint (best.pt holds {"model": state_dict, ...}) is a weights file too
    best = tmp_path / "best.pt"
    torch.save({"format": "ednaquery-trainer-checkpoint", "model": src.state_dict()}, best)
    mb = build_model(ModelConfig(name="test_resnet", pretrained=str(best)), num_classes=10, in_chans=3,
                     img_size=(16, 16))
    assert torch.equal(mb.state_dict()["fc.weight"], src.state_dict()["fc.weight"])
    with pytest.raises(ConfigError, match="not found"):
        build_model(ModelConfig(name="test_resnet", pretrained=str(tmp_path / "nope.pth")), num_classes=10,
                    in_chans=3, img_size=(16, 16))


def test_unknown_model_and_options() -> None:
    with pytest.raises(ConfigError, match="did you mean.*resnet18"):
        build_model(ModelConfig(name="resnet_18"), num_classes=10, in_chans=3, img_size=(32, 32))
    with pytest.raises(ConfigError, match="model.patch_size"):
        build_model(ModelConfig(name="test_resnet", patch_size=4), num_classes=10, in_chans=3, img_size=(32, 32))


def test_too_small_images_fail_clearly() -> None:
    m = build_model(ModelConfig(name="test_vit"), num_classes=3, in_chans=3, img_size=(16, 16))
    with pytest.raises(ConfigError, match="cannot run on 8x8 images"):
        check_forward(m, in_chans=3, img_size=(8, 8), name="test_vit")
