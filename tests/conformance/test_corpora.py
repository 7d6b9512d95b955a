"""Queries over the real-world corpora (``../shared/corpora``) with hand-derived answers.

The corpora are configs other projects wrote for themselves: EdnaML (UPPER_CASE keys,
lists of dicts, one file that is not valid YAML, one empty file), detectron2 (``_BASE_``
inheritance, a ``!!python/object/apply:eval`` tag) and lightning-hydra-template (Hydra
``defaults:`` lists, ``${...}`` interpolation, ``_target_``, a key containing dots).

Every file is converted with ``indexer.convert.convert_path`` (inheritance and
interpolation resolved) and indexed into the embedded SQLite store. Each expected set
below was derived by reading the files (grep, and a throw-away script with plain
``yaml.safe_load`` to list candidates, then checked line by line), never by running the
code under test. Where inheritance changes the answer, ``written`` is the answer for the
files as written, used when the converter is not available.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from ednaquery.documents import make_config_document, make_error_document
from ednaquery.errors import LoadError
from ednaquery.query import expand_aliases, parse
from ednaquery.store import FileState, FindOptions, PathUpdate, open_store

CORPORA = Path(__file__).resolve().parents[2].parent / "shared" / "corpora"
ALL_KINDS = ("config", "run", "error")

pytestmark = pytest.mark.skipif(not CORPORA.is_dir(), reason=f"real-world corpora not found at {CORPORA}")

try:
    from indexer.convert import convert_path
except ImportError:  # the converter is another package's job; fall back to the files as written
    convert_path = None

EFFECTIVE = convert_path is not None

# ------------------------------------------------------------------ EdnaML (172 .yml files)
EDNAML_INVALID = "ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-3.yml"  # line 49: 'SOFT_DIM:12'
EDNAML_EMPTY = "ednaml/archives/config/exp0/VERI_Exp1.yml"  # 0 bytes: no document at all
# files with no BASE_LR at all (grep -rL BASE_LR, minus the empty file)
EDNAML_NO_BASE_LR = {
    "ednaml/profiles/CarZam/color_type.yml",
    "ednaml/profiles/CarZam/color_type_make.yml",
    "ednaml/profiles/CarZam/multibranch-ctm.yml",
    "ednaml/profiles/FNC/experts/configs/config_base_plugin_deploy.yml",
    "ednaml/profiles/FNC/experts/configs/crawler-efnd-base.yml",
    "ednaml/profiles/FNC/experts/configs/crawler-fakeddit-base.yml",
    "ednaml/profiles/FNC/experts/configs/crawler-nela-base.yml",
    "ednaml/profiles/FNC/experts/configs/model-bertvariant.yml",
    "ednaml/profiles/FNC/experts/configs/plugin_base.yml",
    "ednaml/profiles/FNC/extension/fastkmeans.yml",
    "ednaml/profiles/FNC/extension/neighbors.yml",
    "ednaml/profiles/FNC/extension/oracle.yml",
    "ednaml/profiles/FNC/extension/training_features.yml",
    "ednaml/profiles/FNC/filtered/config.yml",
    "ednaml/profiles/FNC/labeling/config_base.yml",
    "ednaml/profiles/NELA/nela-covid-deploy.yml",
    "ednaml/profiles/NELA/plugins.yml",
}
# BASE_LR of 0.001, 1.0e-3 or 0.002 (every other BASE_LR is 1e-5 .. 5e-4); one BASE_LR per file
EDNAML_BASE_LR_GE_1E3 = {
    "ednaml/archives/CarZam/sun_gzsl_base.yml",
    "ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-2.yml",
    "ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-4.yml",
    "ednaml/archives/config/CarZam/zsl/carzam_cars_full.yml",
    "ednaml/archives/config/CarZam/zsl/carzam_cub200_full.yml",
    "ednaml/archives/config/VeRi/veri_partattention2.yml",
    "ednaml/archives/config/exp0/vaegan_cifar10.yml",  # 0.002
    "ednaml/archives/config/exp0/vric_debugging.yml",
    "ednaml/profiles/CarZam/base_config_with_backup.yml",
    "ednaml/usage-docs/sample-configs/basics/cnn/cifar.yml",
    "ednaml/usage-docs/sample-configs/basics/cnn/mnist.yml",
}
# MODEL.MODEL_BASE: 'resnet34' (grep; the invalid colabel_vehiclecolor-3 has it too but is not indexed,
# and cnn/mnist.yml only names resnet34 in a comment)
EDNAML_RESNET34 = {
    "ednaml/archives/CarZam/sun_gzsl_base.yml",
    "ednaml/archives/CarZam/sun_gzsl_bn.yml",
    "ednaml/archives/CarZam/sun_gzsl_cbam.yml",
    "ednaml/archives/CarZam/sun_gzsl_cbame.yml",
    "ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-4.yml",
    "ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-6.yml",
}


def ednaml_base_lr_below_1e3() -> set[str]:
    """EdnaML files whose BASE_LR < 1e-3: every indexed .yml minus the literal lists above."""
    every = {str(p.relative_to(CORPORA)) for p in (CORPORA / "ednaml").rglob("*.yml")}
    return every - EDNAML_NO_BASE_LR - EDNAML_BASE_LR_GE_1E3 - {EDNAML_INVALID, EDNAML_EMPTY}


# ------------------------------------------------------------------ detectron2 (92 .yaml files)
D2 = "detectron2/configs/"
D2_DEPTH_101 = {D2 + f for f in (
    "COCO-Detection/faster_rcnn_R_101_C4_3x.yaml",
    "COCO-Detection/faster_rcnn_R_101_DC5_3x.yaml",
    "COCO-Detection/faster_rcnn_R_101_FPN_3x.yaml",
    "COCO-Detection/faster_rcnn_X_101_32x8d_FPN_3x.yaml",
    "COCO-Detection/retinanet_R_101_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_C4_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_DC5_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_101_FPN_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_3x.yaml",
    "COCO-Keypoints/keypoint_rcnn_R_101_FPN_3x.yaml",
    "COCO-Keypoints/keypoint_rcnn_X_101_32x8d_FPN_3x.yaml",
    "COCO-PanopticSegmentation/panoptic_fpn_R_101_3x.yaml",
    "LVISv0.5-InstanceSegmentation/mask_rcnn_R_101_FPN_1x.yaml",
    "LVISv0.5-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_R_101_FPN_1x.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_X_101_32x8d_FPN_1x.yaml",
    "Misc/panoptic_fpn_R_101_dconv_cascade_gn_3x.yaml",
)}
# MODEL.WEIGHTS containing "R-50" (…/MSRA/R-50.pkl, …/FAIR/R-50-GN) as the files write it; the scratch_*
# files set WEIGHTS: "" and the *_inference_acc_test files name model_final_*.pkl (R_50 with '_')
D2_WEIGHTS_R50_WRITTEN = {D2 + f for f in (
    "COCO-Detection/fast_rcnn_R_50_FPN_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_C4_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_C4_3x.yaml",
    "COCO-Detection/faster_rcnn_R_50_DC5_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_DC5_3x.yaml",
    "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml",
    "COCO-Detection/faster_rcnn_R_50_FPN_3x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "COCO-Detection/rpn_R_50_C4_1x.yaml",
    "COCO-Detection/rpn_R_50_FPN_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_C4_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_DC5_3x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_1x_giou.yaml",
    "COCO-InstanceSegmentation/mask_rcnn_R_50_FPN_3x.yaml",
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_1x.yaml",
    "COCO-Keypoints/keypoint_rcnn_R_50_FPN_3x.yaml",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_1x.yaml",
    "COCO-PanopticSegmentation/panoptic_fpn_R_50_3x.yaml",
    "Detectron1-Comparisons/faster_rcnn_R_50_FPN_noaug_1x.yaml",
    "Detectron1-Comparisons/keypoint_rcnn_R_50_FPN_1x.yaml",
    "Detectron1-Comparisons/mask_rcnn_R_50_FPN_noaug_1x.yaml",
    "LVISv0.5-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "LVISv1-InstanceSegmentation/mask_rcnn_R_50_FPN_1x.yaml",
    "Misc/cascade_mask_rcnn_R_50_FPN_1x.yaml",
    "Misc/cascade_mask_rcnn_R_50_FPN_3x.yaml",
    "Misc/mask_rcnn_R_50_FPN_1x_cls_agnostic.yaml",
    "Misc/mask_rcnn_R_50_FPN_1x_dconv_c3-c5.yaml",
    "Misc/mask_rcnn_R_50_FPN_3x_dconv_c3-c5.yaml",
    "Misc/mask_rcnn_R_50_FPN_3x_gn.yaml",
    "Misc/mask_rcnn_R_50_FPN_3x_syncbn.yaml",
    "Misc/semantic_R_50_FPN_1x.yaml",
    "PascalVOC-Detection/faster_rcnn_R_50_C4.yaml",
    "PascalVOC-Detection/faster_rcnn_R_50_FPN.yaml",
    "quick_schedules/fast_rcnn_R_50_FPN_instant_test.yaml",
    "quick_schedules/keypoint_rcnn_R_50_FPN_instant_test.yaml",
    "quick_schedules/keypoint_rcnn_R_50_FPN_normalized_training_acc_test.yaml",
    "quick_schedules/keypoint_rcnn_R_50_FPN_training_acc_test.yaml",
    "quick_schedules/mask_rcnn_R_50_C4_GCV_instant_test.yaml",
    "quick_schedules/mask_rcnn_R_50_C4_instant_test.yaml",
    "quick_schedules/mask_rcnn_R_50_C4_training_acc_test.yaml",
    "quick_schedules/mask_rcnn_R_50_FPN_instant_test.yaml",
    "quick_schedules/mask_rcnn_R_50_FPN_training_acc_test.yaml",
    "quick_schedules/panoptic_fpn_R_50_instant_test.yaml",
    "quick_schedules/panoptic_fpn_R_50_training_acc_test.yaml",
    "quick_schedules/retinanet_R_50_FPN_instant_test.yaml",
    "quick_schedules/rpn_R_50_FPN_instant_test.yaml",
    "quick_schedules/semantic_R_50_FPN_instant_test.yaml",
    "quick_schedules/semantic_R_50_FPN_training_acc_test.yaml",
)}
# ... plus two files that write no WEIGHTS and inherit one: cascade_mask_rcnn_R_50_FPN_instant_test
# (_BASE_ Misc/cascade_mask_rcnn_R_50_FPN_3x) and mask_rcnn_R_50_FPN_pred_boxes_training_acc_test
# (_BASE_ ./mask_rcnn_R_50_FPN_training_acc_test)
D2_WEIGHTS_R50_INHERITED = {D2 + f for f in (
    "quick_schedules/cascade_mask_rcnn_R_50_FPN_instant_test.yaml",
    "quick_schedules/mask_rcnn_R_50_FPN_pred_boxes_training_acc_test.yaml",
)}
# SOLVER.BASE_LR 0.01: Base-RetinaNet sets it; three retinanet files inherit it, one more two levels down
D2_BASE_LR_001_WRITTEN = {D2 + f for f in (
    "Base-RetinaNet.yaml",
    "Cityscapes/mask_rcnn_R_50_FPN.yaml",
    "quick_schedules/panoptic_fpn_R_50_training_acc_test.yaml",
    "quick_schedules/semantic_R_50_FPN_training_acc_test.yaml",
)}
D2_BASE_LR_001_INHERITED = {D2 + f for f in (
    "COCO-Detection/retinanet_R_101_FPN_3x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "quick_schedules/retinanet_R_50_FPN_inference_acc_test.yaml",  # -> retinanet_R_50_FPN_3x -> Base-RetinaNet
)}
D2_RETINANET = {D2 + f for f in (
    "Base-RetinaNet.yaml",
    "COCO-Detection/retinanet_R_101_FPN_3x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_1x.yaml",
    "COCO-Detection/retinanet_R_50_FPN_3x.yaml",
    "quick_schedules/retinanet_R_50_FPN_inference_acc_test.yaml",
    "quick_schedules/retinanet_R_50_FPN_instant_test.yaml",
)}

# ------------------------------------------------------------------ lightning-hydra-template (34 .yaml)
LH = "lightning-hydra-template/configs/"
LH_TRAINER_FILES = {LH + f"trainer/{n}.yaml" for n in ("default", "cpu", "ddp", "ddp_sim", "gpu", "mps")}
LH_DEBUG_FILES = {LH + f"debug/{n}.yaml" for n in ("default", "fdr", "limit", "overfit", "profiler")}


@dataclass(frozen=True)
class CorpusCase:
    query: str
    expected: frozenset[str]  # with inheritance/interpolation resolved
    written: frozenset[str] | None = None  # for the files as written, if different
    kinds: tuple[str, ...] | None = None

    def want(self) -> set[str]:
        return set(self.expected if EFFECTIVE or self.written is None else self.written)


def cc(query: str, expected, written=None, kinds=None) -> CorpusCase:
    return CorpusCase(query, frozenset(expected), None if written is None else frozenset(written), kinds)


CORPUS_CASES: list[CorpusCase] = [
    # ---- EdnaML: lr finds OPTIMIZER[i].BASE_LR (and nothing else in any corpus is < 1e-3:
    # detectron2's smallest SOLVER.BASE_LR is 0.001, the Hydra template's lr 0.001/0.002)
    cc("lr<1e-3", ednaml_base_lr_below_1e3()),
    cc("lr:lt:1e-3 path~/ednaml/", ednaml_base_lr_below_1e3()),
    cc("OPTIMIZER.BASE_LR<0.001", ednaml_base_lr_below_1e3()),
    cc("base_lr>=1e-3 path~/ednaml/", EDNAML_BASE_LR_GE_1E3),
    cc("base_lr=0.002", {"ednaml/archives/config/exp0/vaegan_cifar10.yml"}),
    cc("!lr path~/ednaml/", EDNAML_NO_BASE_LR),  # LR_KWARGS / LR_SCHEDULER / LR_BIAS_FACTOR are not lr
    cc("model=resnet34", EDNAML_RESNET34),
    cc("MODEL.MODEL_BASE=resnet34", EDNAML_RESNET34),
    # ---- the file that is not valid YAML is an error record, never a find result
    cc("kind=error", {EDNAML_INVALID}),
    cc("path~colabel_vehiclecolor-3", set()),
    cc("path~colabel_vehiclecolor-3", {EDNAML_INVALID}, kinds=ALL_KINDS),
    cc("path~colabel_vehiclecolor", {f"ednaml/archives/CoLabel/VehicleColor/exp-v1/colabel_vehiclecolor-{i}.yml"
                                     for i in (1, 2, 4, 5, 6)}),
    cc("path~VERI_Exp1", set(), kinds=ALL_KINDS),  # an empty file gives no document
    # ---- detectron2: _BASE_ inheritance
    cc("path~COCO-Detection/faster_rcnn_R_50_FPN_1x solver.base_lr=0.02",
       {D2 + "COCO-Detection/faster_rcnn_R_50_FPN_1x.yaml"}, written=set()),
    cc("SOLVER.BASE_LR=0.01", D2_BASE_LR_001_WRITTEN | D2_BASE_LR_001_INHERITED, written=D2_BASE_LR_001_WRITTEN),
    cc("solver.base_lr>0.02", {D2 + f for f in (
        "Misc/cascade_mask_rcnn_X_152_32x8d_FPN_IN5k_gn_dconv.yaml",  # 0.16
        "Misc/panoptic_fpn_R_101_dconv_cascade_gn_3x.yaml",  # 0.04
        "Misc/scratch_mask_rcnn_R_50_FPN_9x_gn.yaml",  # 0.08
        "Misc/scratch_mask_rcnn_R_50_FPN_9x_syncbn.yaml",  # 0.08
    )}),
    cc("solver.base_lr<0.005", {D2 + "quick_schedules/mask_rcnn_R_50_C4_GCV_instant_test.yaml",
                                D2 + "quick_schedules/mask_rcnn_R_50_C4_instant_test.yaml"}),  # 0.001
    cc("MODEL.RESNETS.DEPTH=101", D2_DEPTH_101),
    cc("weights~R-50", D2_WEIGHTS_R50_WRITTEN | D2_WEIGHTS_R50_INHERITED, written=D2_WEIGHTS_R50_WRITTEN),
    # scratch_mask_rcnn_R_50_FPN_3x_gn inherits from mask_rcnn_R_50_FPN_3x_gn but overrides WEIGHTS: ""
    cc("weights~R-50-GN", {D2 + "Misc/mask_rcnn_R_50_FPN_3x_gn.yaml"}),
    cc("meta_architecture=RetinaNet", D2_RETINANET, written={D2 + "Base-RetinaNet.yaml"}),
    # ---- lightning-hydra-template: defaults lists compose, ${...} resolves
    cc("_target_~adam", {LH + f for f in ("model/mnist.yaml", "train.yaml", "eval.yaml", "experiment/example.yaml")},
       written={LH + "model/mnist.yaml"}),
    cc("_target_=lightning.pytorch.trainer.Trainer",
       LH_TRAINER_FILES | {LH + f for f in ("train.yaml", "eval.yaml", "experiment/example.yaml")},
       written={LH + "trainer/default.yaml"}),
    cc("task_name=debug", LH_DEBUG_FILES, written={LH + "debug/default.yaml"}),
    cc("task_name=train", {LH + "train.yaml"}),
    cc("max_epochs=10", LH_TRAINER_FILES | {LH + f for f in ("train.yaml", "eval.yaml", "experiment/example.yaml")},
       written={LH + "trainer/default.yaml", LH + "experiment/example.yaml"}),
    cc("model.optimizer.lr=0.002", {LH + "experiment/example.yaml"}),
    # model/mnist.yaml's own document holds its package's keys (optimizer.lr), not model.optimizer.lr
    cc("model.optimizer.lr=0.001", {LH + "train.yaml", LH + "eval.yaml"}, written=set()),
    cc("wandb.tags=simple_dense_net", {LH + "experiment/example.yaml"}, written=set()),  # tags: ${tags}
    # a key that contains dots, as Optuna sweeper params are written
    cc("`model.optimizer.lr`~^interval", {LH + "hparams_search/mnist_optuna.yaml"}),
    cc("seed=12345", {LH + "experiment/example.yaml"}),
    cc("accelerator=gpu", {LH + "trainer/gpu.yaml", LH + "trainer/ddp.yaml"}),
]


def _corpus_files() -> list[Path]:
    return sorted(p for p in CORPORA.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def _documents_for(path: Path) -> list[dict]:
    if convert_path is not None:
        return convert_path(path)
    from ednaquery.loaders import load_file

    try:
        loaded = load_file(path)
    except LoadError as exc:
        return [make_error_document(str(path), str(exc), format="yaml")]
    return [make_config_document(d, path=str(path), format=loaded.format, warnings=loaded.warnings)
            for d in loaded.documents]


@pytest.fixture(scope="module")
def corpus_store(tmp_path_factory):
    store = open_store(str(tmp_path_factory.mktemp("corpora") / "corpora.db"))
    updates = []
    for path in _corpus_files():
        st = os.stat(path)
        updates.append(PathUpdate(str(path), _documents_for(path), FileState(st.st_size, st.st_mtime_ns, st.st_ino)))
    store.apply(updates)
    yield store
    store.close()


def _found(store, query: str, kinds=None) -> set[str]:
    docs = store.find(expand_aliases(parse(query)), FindOptions(kinds=kinds))
    out: set[str] = set()
    for doc in docs:
        for p in doc["paths"]:
            out.add(os.path.relpath(p, CORPORA))
    return out


@pytest.mark.parametrize("case", CORPUS_CASES, ids=lambda c: c.query + (f" [kinds={c.kinds}]" if c.kinds else ""))
def test_corpus_query(corpus_store, case: CorpusCase) -> None:
    got = _found(corpus_store, case.query, case.kinds)
    want = case.want()
    assert got == want, f"{case.query!r}: missing {sorted(want - got)}, unexpected {sorted(got - want)}"


def test_ednaml_counts_add_up() -> None:
    """The hand-made EdnaML lists partition the 172 files (guards the lists themselves)."""
    every = {str(p.relative_to(CORPORA)) for p in (CORPORA / "ednaml").rglob("*.yml")}
    assert len(every) == 172
    assert len(ednaml_base_lr_below_1e3()) == 142
    assert EDNAML_NO_BASE_LR | EDNAML_BASE_LR_GE_1E3 | {EDNAML_INVALID, EDNAML_EMPTY} <= every


def test_error_record_says_where(corpus_store) -> None:
    docs = corpus_store.find(parse("kind=error"))
    assert len(docs) == 1
    assert docs[0]["kind"] == "error"
    assert "49" in docs[0]["error"]  # 'SOFT_DIM:12' on line 49-50: the message names the line


@pytest.mark.skipif(not EFFECTIVE, reason="indexer.convert.convert_path is not available: no _BASE_ resolution")
def test_detectron2_inherited_base_lr_is_in_the_effective_config(corpus_store) -> None:
    docs = corpus_store.find(parse("path~COCO-Detection/faster_rcnn_R_50_FPN_1x\\.yaml$"))
    assert len(docs) == 1
    cfg = docs[0]["config"]
    assert cfg["SOLVER"]["BASE_LR"] == 0.02  # from Base-RCNN-FPN.yaml
    assert cfg["MODEL"]["RESNETS"]["DEPTH"] == 50  # the file's own value merged over the base
    assert cfg["MODEL"]["RESNETS"]["OUT_FEATURES"] == ["res2", "res3", "res4", "res5"]  # the base's sibling key
    assert "_BASE_" not in cfg
    assert any(p.endswith("Base-RCNN-FPN.yaml") for p in docs[0]["depends_on"])


def test_unsafe_yaml_tag_is_kept_as_data_with_a_warning(corpus_store) -> None:
    docs = corpus_store.find(parse("path~/Base-RetinaNet\\.yaml$"))
    assert len(docs) == 1 and docs[0]["kind"] == "config"
    assert any("python/object/apply" in w for w in docs[0]["warnings"]), docs[0]["warnings"]
