"""Regenerate the bundled example configs (``python examples/make_examples.py``).

Writes a small, realistic sweep the way our users write theirs: six timm models x image
sizes x optimizers x schedulers x learning rates, nested YAML in the trainer's schema with
comments, learning rates written both as YAML-1.1 strings (``1e-3``, which PyYAML loads as a
*string*) and as floats (``0.001``, ``1.0e-4``), some files in JSON, one EdnaML-style
UPPER_CASE config, one file that is not valid YAML (it becomes an error record), and the
tiny ``quickstart/resnet18_digits.yaml`` that the trainer trains in seconds on a CPU.

The output is deterministic (fixed seed, no timestamps), so running it again changes nothing;
the generated files are committed so that the demo works without running this.
"""
from __future__ import annotations

import itertools
import json
import random
import shutil
from pathlib import Path

HERE = Path(__file__).resolve().parent
SEED = 2024
PER_MODEL = 8

#: model -> (image sizes it is run at, extra model keys)
MODELS: dict[str, tuple[list, dict]] = {
    "resnet18": ([32, 64, 224, [224, 192]], {}),
    "efficientnet_b0": ([32, 64, 224, [224, 192]], {"drop_rate": 0.2}),
    "convnext_atto": ([32, 64, 224, [224, 192]], {"drop_path_rate": 0.1}),
    "caformer_s18": ([64, 224, [224, 192]], {"drop_path_rate": 0.15}),
    "vit_tiny_patch16_224": ([32, 64, 224, [224, 192]], {"drop_path_rate": 0.1}),
    "eva02_tiny_patch14_224": ([112, 224], {"drop_path_rate": 0.1}),
}
OPTIMIZERS = ["adamw", "sgd", "lamb"]
SCHEDULERS = ["cosine", "step", "onecycle"]
#: learning rate -> the spellings users write it in (YAML text; the first two load as strings)
LR_SPELLINGS = {0.001: ["1e-3", "0.001"], 0.0003: ["3e-4", "0.0003"], 0.0001: ["1e-4", "1.0e-4"]}


def size_text(size: int | list[int]) -> str:
    return f"{size}px" if isinstance(size, int) else f"{size[0]}x{size[1]}px"


def flow(value: object) -> str:
    """A scalar or short list as YAML flow text."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return "[" + ", ".join(flow(v) for v in value) + "]"
    return str(value)


def plan() -> list[dict]:
    """The sweep: PER_MODEL (size, optimizer, scheduler, lr, seed) picks per model, fixed seed."""
    rng = random.Random(SEED)
    runs = []
    for model, (sizes, extra) in MODELS.items():
        grid = list(itertools.product(range(len(sizes)), OPTIMIZERS, SCHEDULERS, sorted(LR_SPELLINGS)))
        picks = rng.sample(grid, PER_MODEL)
        # every size of a model appears at least once
        for i in range(len(sizes)):
            if all(p[0] != i for p in picks):
                picks[i] = (i,) + picks[i][1:]
        assert len(set(picks)) == len(picks), "duplicate pick"
        for n, (si, opt, sched, lr) in enumerate(sorted(picks, key=lambda p: (p[0], p[1], p[2], -p[3]))):
            runs.append({"model": model, "extra": extra, "size": sizes[si], "optimizer": opt,
                         "scheduler": sched, "lr": lr, "lr_text": rng.choice(LR_SPELLINGS[lr]),
                         "seed": n % 3, "json": rng.random() < 0.2})
    return runs


def config_of(r: dict) -> dict:
    """The config (as plain data) for one planned run; the YAML writer adds comments to it."""
    size = r["size"]
    small = isinstance(size, int) and size <= 64
    if isinstance(size, list):
        dataset = "fake"  # non-square runs: synthetic images, to check shapes and throughput
    else:
        dataset = "digits" if size <= 32 else "fashion_mnist"
    model: dict = {"name": r["model"], **r["extra"]}
    if r["model"].startswith("vit_") and small:
        model["patch_size"] = 8  # 16px patches leave too few tokens on tiny images
    data: dict = {"dataset": dataset, "img_size": size, "batch_size": 128 if small else 64,
                  "fraction": 1.0 if small else 0.5}
    if small:
        data["augment"] = {"hflip": 0.5}
    else:
        data["augment"] = {"random_resized_crop": {"scale": [0.08, 1.0]}, "hflip": 0.5,
                           "color_jitter": 0.4, "mixup": {"alpha": 0.2}}
    opt = r["optimizer"]
    optimizer: dict = {"name": opt, "lr": r["lr"]}
    if opt == "adamw":
        optimizer["weight_decay"] = 0.05
    elif opt == "sgd":
        optimizer.update({"momentum": 0.9, "nesterov": True, "weight_decay": "5e-4"})
    else:
        optimizer["weight_decay"] = 0.02
    sched = r["scheduler"]
    scheduler: dict = {"name": sched}
    if sched == "cosine":
        scheduler.update({"warmup_epochs": 1 if small else 5, "min_lr": "1e-6"})
    elif sched == "step":
        scheduler.update({"decay_epochs": 3 if small else 10, "decay_rate": 0.1})
    else:
        scheduler["pct_start"] = 0.3
    train = {"epochs": 5 if small else 30, "seed": r["seed"], "device": "auto"}
    if not small:
        train["amp"] = True
    name = f"{r['model']}-{dataset}-{size_text(size)}-{opt}-{sched}"
    return {"name": name, "model": model, "data": data, "optimizer": optimizer, "scheduler": scheduler,
            "loss": {"label_smoothing": 0.1 if not small else 0.0}, "train": train}


def yaml_text(r: dict, cfg: dict) -> str:
    """The config as a user writes it: sections, comments, the lr in the run's own spelling."""
    m, d, o, s, t = cfg["model"], cfg["data"], cfg["optimizer"], cfg["scheduler"], cfg["train"]
    out = [f"# {cfg['name']}", f"# sweep: {r['model']} x {size_text(d['img_size'])}, seed {t['seed']}",
           f"name: {cfg['name']}", "", "model:"]
    out += [f"  {k}: {flow(v)}" for k, v in m.items()]
    out += ["", "data:"]
    for k, v in d.items():
        if k == "augment":
            out.append("  augment:")
            for ak, av in v.items():
                if isinstance(av, dict):
                    out.append(f"    {ak}: {{{', '.join(f'{kk}: {flow(vv)}' for kk, vv in av.items())}}}")
                else:
                    out.append(f"    {ak}: {flow(av)}")
        else:
            out.append(f"  {k}: {flow(v)}")
    out += ["", "optimizer:"]
    for k, v in o.items():
        out.append(f"  lr: {r['lr_text']}" if k == "lr" else f"  {k}: {flow(v)}")
    out += ["", "scheduler:"] + [f"  {k}: {flow(v)}" for k, v in s.items()]
    out += ["", f"loss: {{label_smoothing: {cfg['loss']['label_smoothing']}}}", "", "train:"]
    out += [f"  {k}: {flow(v)}" for k, v in t.items()]
    return "\n".join(out) + "\n"


EDNAML = """\
# EdnaML-style config (UPPER_CASE keys, lists of dicts): a colour classifier on VehicleColor.
EXECUTION:
  OPTIMIZER_BUILDER: ClassificationOptimizer
  MODEL_SERVING: False
  EPOCHS: 10
  SKIPEVAL: False
  TEST_FREQUENCY: 1
  DATAREADER:
    DATAREADER: VehicleColor
    GENERATOR: ClassificationGenerator
    DATASET_ARGS:
      classificationclass: color
  TRAINER: ClassificationTrainer

SAVE:
  MODEL_VERSION: 1
  MODEL_CORE_NAME: "vcolor"
  MODEL_BACKBONE: "res18"
  MODEL_QUALIFIER: "color"
  DRIVE_BACKUP: False
  SAVE_FREQUENCY: 5 # Epoch
  CHECKPOINT_DIRECTORY: "checkpoint"

TRANSFORMATION:
  SHAPE: [200, 200]
  NORMALIZATION_MEAN: 0.5
  NORMALIZATION_STD: 0.5
  NORMALIZATION_SCALE: 0.5
  H_FLIP: 0.5
  T_CROP: True
  RANDOM_ERASE: True
  RANDOM_ERASE_VALUE: 0.5
  CHANNELS: 3
  BATCH_SIZE: 32
  WORKERS: 2

MODEL:
  BUILDER: ednaml_model_builder
  MODEL_ARCH: ClassificationResnet
  MODEL_BASE: resnet18
  MODEL_NORMALIZATION: bn
  MODEL_KWARGS:
    initial_channels: 64

LOSS:
  - LOSSES: ['SoftmaxLabelSmooth']
    KWARGS: [{}]
    LAMBDAS: [1.0]
    LABEL: color
    NAME: colorloss

OPTIMIZER:
  - OPTIMIZER_NAME: Adam
    OPTIMIZER_KWARGS: {}
    BASE_LR: 0.0001
    LR_BIAS_FACTOR: 1.0
    WEIGHT_DECAY: 0.0005
    WEIGHT_BIAS_FACTOR: 0.0005

SCHEDULER:
  - LR_SCHEDULER: StepLR
    LR_KWARGS:
      step_size: 5
      gamma: 0.1

LOGGING:
  STEP_VERBOSE: 100 # Batch
"""

BROKEN = """\
# A config with a typo: `lr` is indented one space too far, so this is not valid YAML.
# The indexer keeps it as an error record (see `ednaquery errors`) and indexes everything else.
model: {name: resnet18}
data: {dataset: digits, img_size: 32, batch_size: 64}
optimizer:
  name: adamw
   lr: 1e-3
train: {epochs: 2}
"""

QUICKSTART = """\
# The smallest useful config: resnet18 on scikit-learn's bundled digits (no download),
# 16x16 images, 2 epochs: a few seconds on one CPU core.
#   trainer launch examples/quickstart/resnet18_digits.yaml
name: quickstart-resnet18-digits
model: {name: resnet18}
data: {dataset: digits, img_size: 16, batch_size: 64}
optimizer: {name: adamw, lr: 1e-3}
scheduler: {name: cosine}
train: {epochs: 2, seed: 0, device: auto}
"""


def write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")


def main(root: Path = HERE) -> list[Path]:
    """Write every example under ``root``; returns the written paths."""
    sweeps = root / "sweeps"
    if sweeps.exists():
        shutil.rmtree(sweeps)
    written = []
    for r in plan():
        cfg = config_of(r)
        lr_tag = r["lr_text"].replace(".", "p")
        stem = (f"{cfg['data']['dataset']}_{size_text(r['size'])}_{r['optimizer']}_{r['scheduler']}"
                f"_lr{lr_tag}_s{r['seed']}")
        folder = sweeps / r["model"]
        if r["json"]:
            path = folder / f"{stem}.json"
            write(path, json.dumps(cfg, indent=2) + "\n")
        else:
            path = folder / f"{stem}.yaml"
            write(path, yaml_text(r, cfg))
        written.append(path)
    for rel, text in (("legacy/ednaml_vehicle_color.yml", EDNAML), ("broken/bad_indent.yaml", BROKEN),
                      ("quickstart/resnet18_digits.yaml", QUICKSTART)):
        write(root / rel, text)
        written.append(root / rel)
    return written


if __name__ == "__main__":
    paths = main()
    print(f"wrote {len(paths)} files under {HERE}")
