"""The conformance data table: docs/query.md cases over the fixture corpus (``fixtures.py``).

Each case is a query and the exact set of fixture names it must return, derived by hand
from docs/query.md and the fixture dicts (never by running the code under test). A comment
explains any expectation that is not obvious. ``aliases=False`` is ``--no-aliases``.
Every backend must return exactly these sets.

Decisions where docs/query.md is silent (written down here and in the report):
- ``k!=v`` on a key whose value is null/{}/[] matches: the document has ``k`` and no leaf
  equals ``v`` (docs/query.md's definition of ``!=``); "matches no comparison" is read per leaf.
- A quoted query value is a string and compares only with string leaves: ``seed="42"``
  does not find ``seed: 42``.
- A query value is tokenized like stored values, so ``model=vit-base`` matches the token
  run ``vit base`` of ``vit_base_patch16_384``.
- String ``<``/``>`` compare lower-case text (only cases where case cannot matter are used).
- Sort puts ties in no defined order, so the sort cases avoid ties.
"""
from __future__ import annotations

from dataclasses import dataclass

from .fixtures import ALL, CONFIG_NAMES, RUN_NAMES


@dataclass(frozen=True)
class Case:
    query: str
    expected: frozenset[str]
    aliases: bool = True
    kinds: tuple[str, ...] | None = None  # FindOptions.kinds; None = the default


def c(query: str, *names: str, aliases: bool = True, kinds: tuple[str, ...] | None = None) -> Case:
    return Case(query, frozenset(names), aliases, kinds)


def cs(query: str, names: frozenset[str] | set[str], aliases: bool = True) -> Case:
    return Case(query, frozenset(names), aliases)


@dataclass(frozen=True)
class SortCase:
    query: str
    sort: tuple[str, ...]  # key names, '-' prefix = descending
    limit: int | None
    expected: tuple[str, ...]
    offset: int = 0


ALL_RUNS = RUN_NAMES
CONFIGS = CONFIG_NAMES

# leaves matched by the lr alias group (lr, learning_rate, lr0), per document:
# vit_base .001, vit_b16 3e-4, levit "5e-4", convnext lr0 .01, resnet 1e-4, eva learningRate 2e-5,
# onecycle max_lr .01, ednaml BASE_LR "1e-3", ednaml_v2 BASE_LR "5e-5" and .01, yolo lr0 .01,
# hydra .001, run_vit .001, run_convnext .01, run_eva 2e-5.
LR_DOCS = {"vit_base", "vit_b16", "levit", "convnext", "resnet", "eva", "onecycle", "ednaml", "ednaml_v2",
           "yolo", "hydra", "run_vit", "run_convnext", "run_eva"}
LR_BELOW_1E3 = {"vit_b16", "levit", "resnet", "eva", "ednaml_v2", "run_eva"}
LR_IS_1E3 = {"vit_base", "ednaml", "hydra", "run_vit"}
LR_ABOVE_1E3 = {"convnext", "onecycle", "ednaml_v2", "yolo", "run_convnext"}
# documents with a key matched by the model alias group (model, arch, architecture, backbone)
MODEL_DOCS = {"vit_base", "vit_b16", "levit", "convnext", "resnet", "eva", "ednaml", "ednaml_v2", "yolo",
              "teacher", "hydra", "run_vit", "run_convnext", "run_eva"}
VIT = {"vit_base", "vit_b16", "run_vit"}
OPTIMIZER_DOCS = {"vit_base", "vit_b16", "levit", "convnext", "resnet", "eva", "sched_only", "onecycle",
                  "ednaml", "ednaml_v2", "yolo", "hydra", "run_vit", "run_convnext", "run_eva"}
SGD = {"vit_b16", "convnext", "resnet", "sched_only", "ednaml_v2", "run_convnext"}
FLAGS = {"flag_true", "flag_one", "flag_false", "flag_zero", "flag_str"}

CASES: list[Case] = [
    # ---- empty query, existence, absence
    cs("", ALL),
    cs("lr", LR_DOCS),
    # not lr_scheduler / LR_KWARGS (sched_only), not lrf
    cs("!lr", ALL - LR_DOCS),
    cs("not lr", ALL - LR_DOCS),
    # without aliases: lr0 (convnext, yolo) and learning_rate/learningRate (vit_b16, eva) drop out
    c("lr", "vit_base", "levit", "resnet", "onecycle", "ednaml", "ednaml_v2", "hydra", "run_vit", aliases=False),
    c("max_lr", "onecycle"),
    c("base_lr", "ednaml", "ednaml_v2"),
    c("lr_scheduler", "eva", "sched_only", "ednaml", "run_eva"),
    c("lr_kwargs", "sched_only", "ednaml"),
    c("LR_KWARGS.gamma=0.1", "sched_only", "ednaml"),
    # scheduler, SCHEDULER, lr_scheduler, LR_SCHEDULER all end with the token 'scheduler'
    c("scheduler", "eva", "sched_only", "onecycle", "ednaml", "run_eva"),
    c("scheduler=onecycle", "onecycle"),
    c("lr_scheduler=step", "sched_only"),  # 'StepLR' is one token 'steplr'
    c("lr_scheduler=steplr", "ednaml"),
    cs("val_acc", ALL_RUNS),
    cs("!val_acc", CONFIGS),
    # ---- numbers: =, <, <=, >, >= with numeric strings
    cs("lr<1e-3", LR_BELOW_1E3),
    cs("lr<0.001", LR_BELOW_1E3),
    cs("lr<=1e-3", LR_BELOW_1E3 | LR_IS_1E3),
    cs("lr=0.001", LR_IS_1E3),  # 0.001 == "1e-3" (EdnaML's string) == 1e-3
    cs("lr=1e-3", LR_IS_1E3),
    cs("lr>1e-3", LR_ABOVE_1E3),
    cs("lr>=0.01", LR_ABOVE_1E3),
    cs("lr=.01", LR_ABOVE_1E3),
    c("lr<1e-3", "levit", "resnet", "ednaml_v2", aliases=False),
    c("base_lr<1e-3", "ednaml_v2"),
    c("BASE_LR<=1e-3", "ednaml", "ednaml_v2"),
    c("seed=42", "vit_base", "vit_b16", "run_vit"),  # "42" is indexed as a number too
    c("seed>41", "vit_base", "vit_b16", "run_vit", "ednaml"),  # ednaml: EXECUTION.SEED 1234
    c("seed<10", "levit", "ednaml_v2"),
    c("version=1.1", "strnums"),  # "1.10" as a number is 1.1
    c("version=1.10", "strnums"),
    c("version>1.05", "strnums"),
    c("code=7", "strnums"),  # "007" as a number is 7
    c("color>0"),  # "0x1F" is not Python float syntax: a string only
    c("color=0x1f", "strnums"),
    c("warmup=-2", "numbers"),
    c("warmup<0", "numbers"),
    c("warmup>-3", "numbers"),
    c("clip=inf", "numbers"),
    c("clip>1e300", "numbers"),
    c("ratio=.5", "numbers"),
    c("ratio=0.50", "numbers"),
    c("momentum=0.9", "vit_b16", "resnet"),
    c("momentum>0.9", "yolo"),
    # epochs matches epochs and EPOCHS exactly; max_epochs only where a document has no exact epochs
    # (hydra); resnet's warmup_epochs=5 lies next to its exact training.epochs=90, so it does not count
    c("epochs=5"),
    c("*epochs=5", "resnet"),
    c("epochs<=10", "empties", "hydra"),
    c("*epochs<=10", "empties", "hydra", "resnet"),
    c("epochs>=100", "vit_base", "levit", "convnext", "run_vit", "run_convnext"),
    c("epochs=100", "levit", "convnext", "run_convnext"),
    c("max_epochs", "hydra"),
    # ---- quoted strings are strings
    c('seed="42"', "vit_b16"),
    c("seed='42'", "vit_b16"),
    c('seed>"41"', "vit_b16"),  # string compared with strings only: "42" > "41"
    c('version="1.10"', "strnums"),
    c('version="1.1"'),  # the string "1.10" is not "1.1", nor a token run of it (1, 10)
    c('code="7"'),
    c('code="007"', "strnums"),
    # ---- ranges: both bounds on ONE leaf
    c("1e-4<=lr<1e-3", "vit_b16", "levit", "resnet"),
    c("1e-4<lr<1e-3", "vit_b16", "levit"),
    c("0.0001 <= lr < 0.001", "vit_b16", "levit", "resnet"),
    # ednaml_v2 has BASE_LR 5e-5 and 0.01: no single leaf in range, but each bound alone holds
    c("lr>=1e-4 lr<1e-3", "vit_b16", "levit", "resnet", "ednaml_v2"),
    c("150<crop<250"),  # crop: [100, 300], no element in range
    c("crop>150 crop<250", "shapes"),
    # ---- lists in documents, list values in queries
    c("i_shape=200", "shapes"),
    c("i_shape=300"),
    c("shape=200", "shapes", "ednaml"),  # i_shape and TRANSFORMATION.SHAPE both end with 'shape'
    c("crop=300", "shapes"),
    c("crop!=100"),  # one element equals 100
    c("crop!=200", "shapes"),
    c("mean<0.46", "shapes"),
    c("i_shape=200,300", "shapes"),
    c("i_shape!=300,400", "shapes"),
    cs("model=vit,convnext", VIT | {"convnext", "teacher", "run_convnext"}),
    cs("model!=vit,convnext", MODEL_DOCS - VIT - {"convnext", "teacher", "run_convnext"}),
    c("flag=true,1", "flag_true", "flag_one"),
    c("dataset=cifar,imagenet", "dataset_str", "vit_base", "run_vit"),
    # ---- string tokens, case-insensitive values
    cs("model=vit", VIT),  # not levit_128
    cs("model=VIT", VIT),
    c("model=vit_base", "vit_base", "run_vit"),
    c("model=Vit_Base", "vit_base", "run_vit"),
    c("model=vit-base", "vit_base", "run_vit"),
    c("model=vit_base_patch16_384", "vit_base", "run_vit"),
    c('model="ViT-B/16"', "vit_b16"),
    c("model=ViT-B/16", "vit_b16"),
    c("model=b/16", "vit_b16"),  # the token run (b, 16)
    c("model=levit", "levit"),
    c("model=eva02", "eva", "run_eva"),
    c("model=tiny", "convnext", "eva", "teacher", "run_convnext", "run_eva"),
    c("model=resnet50", "resnet", "ednaml_v2"),
    c("model=resnet"),  # 'resnet50', 'resnet18', 'ResnetBase' are single tokens
    c("model=resnet18", "ednaml", "teacher"),
    c("dataset=cifar", "dataset_str"),
    c("dataset=CIFAR-100", "dataset_str"),
    c("dataset=cifar_100", "dataset_str"),
    c("dataset=cifar100"),
    c("notes=vit", "dataset_str"),
    c('notes="vit on"', "dataset_str"),
    c('notes="on vit"'),  # tokens must be a run in order
    c('notes="Baseline: ViT on CIFAR"', "dataset_str"),
    cs("optimizer=sgd", SGD),
    cs("OPTIMIZER=SGD", SGD),
    c("optimizer=adam", "levit", "ednaml", "ednaml_v2", "hydra"),  # not 'adamw'; hydra: torch.optim.Adam
    c("name=adamw", "vit_base", "onecycle", "run_vit"),
    c("name=adam", "levit", "ednaml", "ednaml_v2"),  # OPTIMIZER_NAME ends with 'name'
    c("optimizer=auto", "yolo"),
    c("_target_=torch.optim.Adam", "hydra"),
    c("_target_=optim.adam", "hydra"),
    c("model='vit'", "vit_base", "vit_b16", "run_vit"),
    c('model="vit_base_patch16_384"', "vit_base", "run_vit"),
    c('model=""'),  # no empty string anywhere: an empty value must not match everything
    c("num_classes=1000", "vit_base", "run_vit"),
    c("num_classes=1e3", "vit_base", "run_vit"),
    cs("lr!=0.001", LR_DOCS - LR_IS_1E3),  # ednaml_v2: neither 5e-5 nor 0.01 is 0.001
    cs("lr < 1e-3", LR_BELOW_1E3),
    c("`weird.key`>4", "dotted_keys"),
    # ---- globs
    c("model=vit_*_384", "vit_base", "run_vit"),
    c("model=conv*", "convnext", "teacher", "run_convnext"),
    cs("model=vit*", VIT),
    c('model="vit_*"'),  # quoted: never a glob
    c("model=resnet??", "resnet", "ednaml", "ednaml_v2", "teacher"),
    c("model=resnet?0", "resnet", "ednaml_v2"),
    c("model=*lit*", "hydra"),  # MNISTLitModule; levit_128 has no 'lit'
    # ---- regular expressions
    cs("model~vit", VIT | {"levit"}),  # searched anywhere: levit too
    cs("model~^conv", {"convnext", "teacher", "run_convnext"}),
    c("model~resnet", "resnet", "ednaml", "ednaml_v2", "teacher"),
    c("model~PATCH1[46]", "vit_base", "eva", "run_vit", "run_eva"),
    c("model~^(vit|levit)", "vit_base", "vit_b16", "levit", "run_vit"),
    cs("model!~vit", MODEL_DOCS - VIT - {"levit"}),
    # every optimizer-matched string leaf checked; numbers never match a regex on strings here
    cs("optimizer!~^s", OPTIMIZER_DOCS - SGD),
    c("_target_~adam", "hydra"),
    c("target~adam", "hydra"),
    c('notes~"ViT on"', "dataset_str"),
    c("flag~^tr", "flag_str"),  # regex applies to strings, not booleans
    # ---- string comparisons (strings with strings only)
    c("dataset<j", "vit_base", "run_vit", "dataset_str"),
    c("dataset>d", "vit_base", "run_vit"),
    # ---- case-insensitive keys
    cs("LR<1e-3", LR_BELOW_1E3),
    cs("LEARNING_RATE<1e-3", LR_BELOW_1E3),
    cs("MODEL=vit", VIT),
    c("Model.Name=levit", "levit"),
    c("learning_rate<1e-3", "vit_b16", "eva", "run_eva", aliases=False),  # learningRate is camelCase
    c("learningRate", "vit_b16", "eva", "run_eva", aliases=False),
    c("batch_size=16", "eva", "run_eva"),  # batchSize; yolo's 'batch' is not batch_size
    # ---- != and existence
    cs("model!=vit", MODEL_DOCS - VIT),
    cs("flag!=true", FLAGS - {"flag_true"}),  # 1, false, 0 and "true" are not the boolean true
    cs("flag!=1", FLAGS - {"flag_one"}),
    c("flag!=true flag!=1", "flag_false", "flag_zero", "flag_str"),
    c("resume", "empties"),
    c("extra", "empties"),
    c("callbacks", "empties"),
    cs("!resume", ALL - {"empties"}),
    cs("!extra", ALL - {"empties"}),
    cs("!callbacks", ALL - {"empties"}),
    # ---- null, {} and []
    c("resume=null", "empties"),
    c("extra=null"),
    c("callbacks=null"),
    c("extra=1"),
    c("extra~."),
    c("callbacks>0"),
    c("resume!=null"),
    c("resume!=5", "empties"),  # has resume, and its one leaf (null) is not 5
    c("extra!=1", "empties"),  # has extra, and no leaf equals 1
    c("model=null"),
    # ---- booleans vs numbers (mongomock's True == 1 must not leak)
    c("flag=true", "flag_true"),
    c("flag=1", "flag_one"),
    c("flag=false", "flag_false"),
    c("flag=0", "flag_zero"),
    c('flag="true"', "flag_str"),
    c("flag>0", "flag_one"),  # booleans are not numbers
    c("flag>=0", "flag_one", "flag_zero"),
    c("flag<1", "flag_zero"),
    cs("flag", FLAGS),
    c("pretrained=true", "vit_base", "run_vit"),
    c("pretrained=false", "levit"),
    c("partial=true", "hydra"),
    c("amp=true", "yolo"),
    c("amp=1"),
    c("flag!=false", "flag_true", "flag_one", "flag_zero", "flag_str"),  # 0 is not false
    c("flag!=0", "flag_true", "flag_one", "flag_false", "flag_str"),
    c("flag=0,false", "flag_zero", "flag_false"),
    c("flag<=1", "flag_one", "flag_zero"),
    c("1<=flag<=1", "flag_one"),
    c("pretrained!=1", "vit_base", "levit", "run_vit"),  # true is not 1
    c("amp!=1", "yolo"),
    # ---- aliases
    cs("learning_rate<1e-3", LR_BELOW_1E3),
    cs("lr0>=0.01", LR_ABOVE_1E3),
    c("lr0=0.01", "convnext", "yolo", "run_convnext", aliases=False),
    c("arch=resnet50", "resnet", "ednaml_v2"),  # backbone and MODEL.MODEL_BASE
    c("arch=resnet50", aliases=False),  # arch keys hold convnext_tiny, ResnetBase, MultiBranchResnet, resnet18
    c("arch=resnet18", "teacher", aliases=False),
    c("arch=resnet18", "ednaml", "teacher"),
    c("model=resnet50", "ednaml_v2", aliases=False),
    cs("backbone=vit", VIT),
    cs("architecture", MODEL_DOCS),
    c("model=convnext_tiny", "convnext", "teacher", "run_convnext"),
    c("model=convnext_tiny", "teacher", aliases=False),
    c("bs=32", "convnext", "ednaml", "run_convnext"),
    c("bs>=64", "vit_base", "vit_b16", "levit", "resnet", "ednaml_v2", "run_vit"),
    c("bs", "convnext", "run_convnext", aliases=False),
    c("wd=0.05", "vit_base", "convnext", "run_vit", "run_convnext"),
    c("wd<0.001", "resnet", "ednaml", "yolo", "hydra"),
    c("weight_decay=0", "hydra"),
    c("weight_decay=0.05", "vit_base", "run_vit", "run_convnext", "convnext"),
    c("weight_decay=0.05", "vit_base", "run_vit", aliases=False),
    # the last segment of a dotted key is widened too
    c("student.model=resnet18", "teacher"),
    c("student.model=resnet18", aliases=False),
    # ---- dotted, anchored and backquoted keys
    # OPTIMIZER (a list of dicts) then BASE_LR (ends with 'lr'); hydra's model.optimizer.lr is unanchored
    c("optimizer.lr", "vit_base", "levit", "hydra", "run_vit", "ednaml", "ednaml_v2"),
    c("optimizer.lr", "vit_base", "levit", "hydra", "run_vit", "ednaml", "ednaml_v2", aliases=False),
    c("optimizer.learning_rate", "vit_base", "levit", "hydra", "run_vit", "ednaml", "ednaml_v2"),
    c("optimizer.learning_rate", aliases=False),
    c("optimizer.lr<1e-3", "levit", "ednaml_v2"),
    c(".optimizer.lr", "vit_base", "levit", "ednaml", "ednaml_v2", "run_vit"),
    c("training.learning.lr", "resnet"),
    c("training.learning.lr=1e-4", "resnet"),
    c("learning.lr", "resnet"),
    c("training.lr"),  # segments must be consecutive
    c("model.name", "vit_base", "levit", "eva", "teacher", "run_vit", "run_eva"),
    c(".model.name", "vit_base", "levit", "eva", "run_vit", "run_eva"),
    c("model.name=convnext_tiny", "teacher"),
    c(".model.name=convnext_tiny"),
    c("model.net.input_size=784", "hydra"),
    c("input_size>700", "hydra"),
    c("trainer.accelerator=gpu", "hydra"),
    c("val_acc.best>0.9", "run_vit", "run_eva"),
    c("metrics.val_acc.last<0.5", "run_convnext"),
    c("weird.key", "nested_weird"),  # two segments; 'weird.key' in dotted_keys is ONE segment
    c("weird", "nested_weird"),
    c("`weird.key`", "dotted_keys"),
    c("`weird.key`=5", "dotted_keys"),
    c("`weird.key`=6"),
    c("`$schema`", "dotted_keys"),
    c("`$schema`~json-schema", "dotted_keys"),
    # ---- and / or / not / precedence / parentheses
    c("model=vit seed=42 epochs=300", "vit_base", "run_vit"),
    c('model=vit and seed="42"', "vit_b16"),
    cs("model=vit && seed=42", VIT),
    c("flag=true or flag=1", "flag_true", "flag_one"),
    c("flag=true || flag=0", "flag_true", "flag_zero"),
    c("flag=true OR flag=false", "flag_true", "flag_false"),
    c("flag=true || flag=1 && flag=0", "flag_true"),  # and binds tighter than or
    cs("model=vit or model=levit seed=0", VIT | {"levit"}),
    c("(model=vit or model=levit) seed=0", "levit"),
    cs("(model=vit or model=levit) seed=42", VIT),
    cs("not model=vit", ALL - VIT),
    cs("!(flag=true)", ALL - {"flag_true"}),
    cs("!flag", ALL - FLAGS),
    cs("not flag=true flag", FLAGS - {"flag_true"}),  # not binds tighter than and
    cs("NOT flag=true AND flag", FLAGS - {"flag_true"}),
    c("not (flag=true or flag=1) flag", "flag_false", "flag_zero", "flag_str"),
    cs("not not flag", FLAGS),
    c("(flag=true or flag=false) and not flag=false", "flag_true"),
    # ---- spelled-out operators
    cs("lr:lt:1e-3", LR_BELOW_1E3),
    cs("lr:le:1e-3", LR_BELOW_1E3 | LR_IS_1E3),
    cs("lr:gt:1e-3", LR_ABOVE_1E3),
    cs("lr:ge:0.01", LR_ABOVE_1E3),
    cs("model:eq:vit", VIT),
    cs("model:ne:vit", MODEL_DOCS - VIT),
    c("bs:ge:64 bs:le:128", "vit_base", "vit_b16", "ednaml_v2", "run_vit"),
    # ---- reserved fields
    cs("kind=run", ALL_RUNS),
    cs("kind=config", CONFIGS),
    c("kind=error", "broken"),
    cs("kind=config,run", ALL),
    cs("kind!=config", ALL_RUNS | {"broken"}),  # naming kind lifts the default config+run filter
    c("status=completed", "run_vit", "run_eva"),
    c("status=failed", "run_convnext"),
    c("status!=completed", "run_convnext"),
    cs("!status", CONFIGS),
    cs("format=run", ALL_RUNS),
    cs("format=yaml", CONFIGS),  # the error record is yaml too, but kept out by default
    cs("path~fixtures", CONFIGS),
    cs("path~^/runs/", ALL_RUNS),
    c("path=vit_base", "vit_base"),  # tokens of /fixtures/vit_base.yaml
    c("path=run_vit", "run_vit"),
    c("path~broken"),
    c("kind=error path~broken", "broken"),
    c("path~broken", "broken", kinds=("config", "run", "error")),
    c("kind=config model=vit", "vit_base", "vit_b16"),
    c("kind=run model=vit", "run_vit"),
    c("tags=baseline"),
    cs("kind=run,error", ALL_RUNS | {"broken"}),
    cs("not kind=run", CONFIGS | {"broken"}),  # naming kind: no default kind filter
    cs("id~^20260101-", ALL_RUNS),
    cs("indexed_at>0", ALL),
    c("wd=0.05 or flag=1", "vit_base", "convnext", "run_vit", "run_convnext", "flag_one"),
    # ---- runs by metric
    c("val_acc>0.9", "run_vit", "run_eva"),
    c("val_acc>0.86", "run_vit", "run_eva"),
    c("val_acc>0.935", "run_eva"),  # run_vit's best is 0.93
    c("acc>0.9", "run_vit", "run_eva"),
    c("lr<1e-3 val_acc>0.9", "run_eva"),
    c("lr<=1e-3 val_acc>0.9", "run_vit", "run_eva"),
    c("train_loss<0.3", "run_eva"),
    c("loss<=0.3", "run_vit", "run_eva"),  # also ednaml's LOSS.LAMBDAS [1.0], not <= 0.3
    c("kind=run not status=failed", "run_vit", "run_eva"),
]

#: hostile queries: each must find nothing (or be a QuerySyntaxError) and leave the store intact
INJECTIONS: list[str] = [
    "$where=1",
    "`$where`=1",
    "$where",
    "$gt=''",
    'model=\'{"$gt": ""}\'',
    'model="x\'; DROP TABLE docs; --"',
    "model~\"'; DROP TABLE docs; --\"",
    'lr="1e-3\'; --"',
    '"$where"=1',
    "model='$ne'",
    "model~'(?=x)$^'",
    "`x'; DROP TABLE leaves; --`=1",
    "model=%",
    "model=_",
    "model~.*' OR '1'='1",
]

#: user alias groups (load_alias_groups(extra)) and cases under them
CUSTOM_ALIAS_CASES: list[tuple[list[list[str]], Case]] = [
    # seed ~ code: EXECUTION.SEED 7 and code "007" (a number view of 7)
    ([["seed", "code"]], c("seed=7", "ednaml_v2", "strnums")),
    # a user group sharing a member merges with the built-in lr group
    # (built-ins alone: lrf=0.01 finds only yolo)
    ([["lr", "lrf"]], c("lrf=0.01", "convnext", "onecycle", "ednaml_v2", "yolo", "run_convnext")),
    ([["lr", "lrf"]], c("lrf", *sorted(LR_DOCS))),
]

SORT_CASES: list[SortCase] = [
    # smallest matching value first: eva 2e-5, ednaml_v2 5e-5 (its smaller BASE_LR), resnet 1e-4, ...
    SortCase("kind=config lr<1e-3", ("lr",), None, ("eva", "ednaml_v2", "resnet", "vit_b16", "levit")),
    SortCase("kind=config lr<1e-3", ("lr",), 3, ("eva", "ednaml_v2", "resnet")),
    SortCase("kind=config lr<1e-3", ("lr",), 2, ("ednaml_v2", "resnet"), offset=1),
    SortCase("kind=config 1e-5<lr<1e-3 !base_lr", ("-lr",), None, ("levit", "vit_b16", "resnet", "eva")),
    SortCase("kind=config 1e-5<lr<1e-3 !base_lr", ("-lr",), 2, ("levit", "vit_b16")),
    SortCase("kind=run", ("-val_acc.best",), None, ("run_eva", "run_vit", "run_convnext")),
    SortCase("kind=run", ("train_loss.last",), None, ("run_eva", "run_vit", "run_convnext")),
    SortCase("kind=run", ("-val_acc",), 1, ("run_eva",)),
    SortCase("kind=config bs>100", ("bs",), None, ("vit_b16", "levit", "resnet")),
    SortCase("kind=config bs>100", ("-batch_size",), None, ("resnet", "levit", "vit_b16")),
]
