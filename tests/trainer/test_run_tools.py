"""``trainer eval`` / ``predict`` / ``export`` on a run trained once (module fixture), and its run statistics.

The image folder's class names sort differently from the order they are created (and listed)
in, and the test split lists them in yet another order: a prediction that looked a name up
by position anywhere but in the checkpoint's class list would come out off by one.
"""
from __future__ import annotations

import csv
import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from click.testing import CliRunner
from PIL import Image

from ednaquery.cli import main as ednaquery_main
from tests.support.settings import clean_settings
from trainer.cli import main
from trainer.ops.restore import image_files, read_images, restore_run

# created in this order; sorted() gives 10, 9, Zilla, abril, yesseva, yesteryear
CLASSES = ["yesteryear", "yesseva", "abril", "Zilla", "9", "10"]
COLORS = [(255, 40, 40), (40, 255, 40), (40, 40, 255), (255, 255, 40), (255, 40, 255), (40, 255, 255)]
SIZE = 16


def _image(k: int, rng: np.random.RandomState) -> Image.Image:
    """Class k: a coloured 6x6 square at its own place on dark noise."""
    arr = rng.randint(0, 50, (SIZE, SIZE, 3)).astype(np.uint8)
    r, c = divmod(k, 3)
    y, x = 1 + r * 8 + rng.randint(0, 2), 1 + c * 5 + rng.randint(0, 2)
    arr[y:y + 6, x:x + 5] = COLORS[k]
    return Image.fromarray(arr)


def make_folder(root: Path, per_class: dict[str, int], order: list[str]) -> None:
    rng = np.random.RandomState(len(order))
    for split, n in per_class.items():
        for name in order:
            d = root / split / name
            d.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                _image(CLASSES.index(name), rng).save(d / f"{name}-{i}.png")


def invoke(args: list[str], cli=main) -> object:
    return CliRunner().invoke(cli, args, catch_exceptions=False)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory):
    tmp = tmp_path_factory.mktemp("runtools")
    with pytest.MonkeyPatch.context() as mp:
        clean_settings(tmp, mp)
        data = tmp / "fonts"
        make_folder(data, {"train": 24, "val": 6}, CLASSES)
        make_folder(data, {"test": 5}, list(reversed(CLASSES)))
        cfg = {"model": {"name": "test_resnet"},
               "data": {"dataset": f"imagefolder:{data}", "img_size": SIZE, "batch_size": 16},
               "optimizer": {"name": "adamw", "lr": 3e-3}, "scheduler": {"name": "cosine"},
               "train": {"epochs": 4, "seed": 0, "device": "cpu"}}
        (tmp / "fonts.yaml").write_text(yaml.safe_dump(cfg))
        db = str(tmp / "index.db")
        res = invoke(["--store", db, "launch", str(tmp / "fonts.yaml"), "--runs-root", str(tmp / "runs"), "-q"])
        assert res.exit_code == 0, res.output
        [run_dir] = list((tmp / "runs").iterdir())
        yield {"tmp": tmp, "data": data, "db": db, "run_dir": run_dir, "run_id": run_dir.name, "mp": mp}


def find_ids(db: str, *query: str) -> list[str]:
    res = invoke(["--store", db, "find", "--format", "ids", "-q", *query], cli=ednaquery_main)
    assert res.exit_code in (0, 1), res.output
    return res.output.split()


def test_the_checkpoint_holds_the_class_list_and_the_preprocessing(trained) -> None:
    state = torch.load(trained["run_dir"] / "best.pt", weights_only=True)
    assert state["class_names"] == sorted(CLASSES)  # the loader's order, not the creation order
    assert state["preprocess"]["img_size"] == [SIZE, SIZE] and state["preprocess"]["channels"] == 3
    assert len(state["preprocess"]["mean"]) == len(state["preprocess"]["std"]) == 3
    val = json.loads((trained["run_dir"] / "summary.json").read_text())["metrics"]["val_acc"]
    assert val["best"] > 0.9, "the fixture run should have learnt the squares"


def test_predict_names_every_class_right(trained) -> None:
    test = trained["data"] / "test"
    for name in CLASSES:
        image = next((test / name).iterdir())
        res = invoke(["predict", str(trained["run_dir"]), str(image), "--top", "3", "--format", "json"])
        assert res.exit_code == 0, res.output
        [pred] = json.loads(res.output)
        top = pred["predictions"]
        assert top[0]["class"] == name, f"{image.name}: predicted {top[0]['class']}"
        assert top[0]["probability"] > 0.5 and len(top) == 3
        assert top[0]["probability"] >= top[1]["probability"] >= top[2]["probability"]

    # a whole folder, by run id through the store, as CSV: every image's top-1 is its folder's name
    res = invoke(["--store", trained["db"], "predict", trained["run_id"], str(test), "--top", "2", "--format", "csv"])
    assert res.exit_code == 0, res.output
    rows = list(csv.DictReader(io.StringIO(res.output)))
    firsts = [r for r in rows if r["rank"] == "1"]
    assert len(firsts) == 5 * len(CLASSES) and len(rows) == 2 * len(firsts)
    right = sum(Path(r["image"]).parent.name == r["class"] for r in firsts)
    assert right >= 0.9 * len(firsts)

    res = invoke(["predict", str(trained["run_dir"]), str(test / "abril")])  # the table
    assert res.exit_code == 0 and res.output.splitlines()[0].split() == ["image", "predictions"]
    assert all(" abril " in line for line in res.output.splitlines()[1:])


def test_eval_records_searchable_test_metrics_and_the_confusion_matrix(trained) -> None:
    run_dir, db = trained["run_dir"], trained["db"]
    res = invoke(["--store", db, "eval", trained["run_id"], "--data", f"imagefolder:{trained['data']}",
                  "--split", "test", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["images"] == 5 * len(CLASSES) and out["metrics"]["test_acc"] > 0.9
    assert {"test_loss", "test_acc", "test_top5", "test_softmax_std", "test_balanced_acc", "test_macro_f1",
            "test_recall_Zilla", "test_precision_10"} <= set(out["metrics"])
    assert out["metrics"]["test_softmax_std"] > 0.1  # not one constant prediction
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["metrics"]["test_acc"]["last"] == out["metrics"]["test_acc"]
    assert summary["metrics"]["val_acc"]["best"] > 0.9  # the training's metrics are untouched
    run = json.loads((run_dir / "run.json").read_text())
    assert run["eval"]["test"]["images"] == 30 and run["eval"]["test"]["checkpoint"] == "best.pt"
    conf = json.loads((run_dir / "test_confusion.json").read_text())
    assert conf["class_names"] == sorted(CLASSES) and np.trace(conf["matrix"]) >= 27
    assert (run_dir / "confusion_matrix_test.png").read_bytes()[:4] == b"\x89PNG"
    assert (run_dir / "val_confusion.json").is_file()  # the training's own matrix stays
    # re-indexed: searchable like val_acc
    assert find_ids(db, "kind=run", "test_acc>0.9") == [trained["run_id"]]
    assert find_ids(db, "kind=run", "test_acc>1.5") == []


def test_eval_matches_class_folders_by_name(trained, tmp_path: Path) -> None:
    # a test set with only three classes, written in another order: still right
    make_folder(tmp_path / "some", {"test": 4}, ["Zilla", "yesteryear", "10"])
    res = invoke(["eval", str(trained["run_dir"]), "--data", f"imagefolder:{tmp_path / 'some'}", "--no-record",
                  "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["metrics"]["test_acc"] > 0.9
    # a class the model never saw is an error, not a silent shift
    (tmp_path / "some" / "test" / "Comic Sans").mkdir()
    shutil.copy(next((tmp_path / "some" / "test" / "Zilla").iterdir()), tmp_path / "some" / "test" / "Comic Sans")
    res = invoke(["eval", str(trained["run_dir"]), "--data", f"imagefolder:{tmp_path / 'some'}", "--no-record"])
    assert res.exit_code == 2 and "not trained on: Comic Sans" in res.output


def test_end_of_run_statistics_are_searchable(trained) -> None:
    run = json.loads((trained["run_dir"] / "run.json").read_text())
    lat = run["latency_ms"]
    assert lat > 0 and run["latency_batch_ms"] > 0 and run["latency_batch_size"] == 16
    assert run["flops"] > run["param_count"] > 1000  # a conv net does more multiply-adds than it has weights
    rows = [json.loads(line) for line in (trained["run_dir"] / "metrics.jsonl").read_text().splitlines()]
    for key in ("epoch_time_s", "train_time_s", "eval_time_s", "images_per_s", "train_images_per_s",
                "data_wait_frac", "cpu_rss_mb", "cpu_rss_max_mb"):
        assert key in rows[-1], key
    assert not any(k.startswith("gpu_") for k in rows[-1])  # no NVML on a CPU run: absent, never invented
    db = trained["db"]
    assert find_ids(db, "kind=run", f"latency_ms<{lat * 2}", "val_acc>0.9") == [trained["run_id"]]
    assert find_ids(db, "kind=run", f"latency_ms<{lat / 2}", "val_acc>0.9") == []
    assert find_ids(db, "kind=run", f"flops={run['flops']}") == [trained["run_id"]]


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:FutureWarning")
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_round_trips(trained, tmp_path: Path, fmt: str) -> None:
    out = tmp_path / f"fonts.{'pt' if fmt == 'torchscript' else 'onnx'}"
    res = invoke(["export", str(trained["run_dir"]), "--format", fmt, "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert res.output.split() == [str(out), str(out.with_suffix(".json"))]
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["class_names"] == sorted(CLASSES) and side["preprocess"]["img_size"] == [SIZE, SIZE]
    assert side["run_id"] == trained["run_id"] and side["output"]["name"] == "probabilities"

    run = restore_run(trained["run_dir"])
    paths = image_files(trained["data"] / "test")
    images = read_images(paths, run.preprocess)
    expected = run.probabilities(images)
    x = images.float()
    if fmt == "torchscript":
        extra = {"class_names.json": "", "preprocess.json": ""}
        model = torch.jit.load(str(out), _extra_files=extra)
        got = model(x).detach()
        assert json.loads(extra["class_names.json"]) == sorted(CLASSES)
        assert json.loads(extra["preprocess.json"]) == side["preprocess"]
    else:
        import onnx
        import onnxruntime

        meta = {p.key: p.value for p in onnx.load(str(out)).metadata_props}
        assert json.loads(meta["class_names"]) == sorted(CLASSES)
        assert json.loads(meta["preprocess"]) == side["preprocess"]
        session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        got = torch.from_numpy(session.run(["probabilities"], {"images": x.numpy()})[0])
    assert got.shape == expected.shape == (len(paths), len(CLASSES))
    assert torch.equal(got.argmax(1), expected.argmax(1))
    assert torch.allclose(got, expected, atol=1e-4)
    names = [side["class_names"][i] for i in got.argmax(1).tolist()]
    assert sum(n == p.parent.name for n, p in zip(names, paths)) >= 0.9 * len(paths)


def test_a_checkpoint_without_preprocessing_still_loads(trained, tmp_path: Path) -> None:
    old = tmp_path / "old-run"
    shutil.copytree(trained["run_dir"], old)
    state = torch.load(old / "best.pt", weights_only=True)
    saved = state.pop("preprocess")
    torch.save(state, old / "best.pt")
    run = restore_run(old)
    assert run.preprocess.as_dict() == saved
    assert run.class_names == sorted(CLASSES)


def test_predict_escapes_control_characters_in_its_table_and_keeps_them_in_csv(trained, tmp_path: Path) -> None:
    red = "a\x1b[31mred"  # a class folder named so: printed raw it would colour the terminal
    run = tmp_path / "run"
    shutil.copytree(trained["run_dir"], run)
    state = torch.load(run / "best.pt", weights_only=True)
    state["class_names"] = [red if n == "abril" else n for n in state["class_names"]]
    torch.save(state, run / "best.pt")
    image = tmp_path / red / "abril.png"
    image.parent.mkdir()
    shutil.copy(next((trained["data"] / "test" / "abril").iterdir()), image)
    table = CliRunner().invoke(main, ["predict", str(run), str(image), "--top", "1"], color=True)  # a terminal
    assert table.exit_code == 0, table.output
    assert "\x1b" not in table.output
    assert table.output.splitlines()[1].split()[:2] == [str(image).replace("\x1b", "\\x1b"), "a\\x1b[31mred"]
    piped = invoke(["predict", str(run), str(image), "--top", "1", "--format", "csv"])
    [row] = list(csv.DictReader(io.StringIO(piped.output)))
    assert (row["image"], row["class"]) == (str(image), red)  # the exact bytes, as json has them


def test_tune_refuses_a_plot_or_output_folder_that_does_not_exist_before_it_runs(trained, tmp_path: Path) -> None:
    config = str(trained["tmp"] / "fonts.yaml")
    for args in (["lr", config, "--plot", str(tmp_path / "no" / "lr.png")],
                 ["lr", config, "--apply", "--output", str(tmp_path / "no" / "tuned.yaml")],
                 ["batch-size", config, "--apply", "--output", str(tmp_path / "no" / "tuned.yaml")]):
        res = invoke(["tune", *args])
        assert res.exit_code == 2, res.output
        assert res.output == f"error: {args[-2]}: the folder {tmp_path / 'no'} does not exist\n"


def test_bad_input_is_one_line_and_exit_2(trained, tmp_path: Path) -> None:
    run_dir = str(trained["run_dir"])
    image = str(next((trained["data"] / "test" / "abril").iterdir()))
    bad = tmp_path / "broken.png"
    bad.write_text("not an image")
    no_best = tmp_path / "no-best"
    shutil.copytree(trained["run_dir"], no_best, ignore=shutil.ignore_patterns("*.pt"))
    running = tmp_path / "running"
    shutil.copytree(trained["run_dir"], running)
    state = json.loads((running / "run.json").read_text())
    (running / "run.json").write_text(json.dumps({**state, "status": "running"}))
    cases = [
        (["eval", str(running), "--data", f"imagefolder:{trained['data']}"], "is still running"),
        (["predict", str(tmp_path / "nowhere"), image], "no run"),
        (["--store", trained["db"], "predict", "19990101-000000-dead", image], "no run"),
        (["predict", str(no_best), image], "has no best.pt"),
        (["eval", str(no_best), "--no-record"], "has no best.pt"),
        (["predict", run_dir, str(bad)], f"cannot read image {bad}"),
        (["predict", run_dir, image, "--format", "xml"], "--format: 'xml'"),
        (["export", run_dir, "--format", "tflite"], "--format: 'tflite'"),
        (["eval", run_dir, "--no-record", "--data", f"imagefolder:{tmp_path / 'nowhere'}"], "is not a folder"),
    ]
    for args, message in cases:
        res = invoke(args)
        assert res.exit_code == 2, (args, res.output)
        lines = res.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], (args, res.output)


@pytest.mark.parametrize("command", [["eval"], ["predict"], ["export"], ["tune", "lr"], ["tune", "batch-size"]])
def test_every_new_command_has_an_example(command: list[str]) -> None:
    res = invoke([*command, "--help"])
    assert res.exit_code == 0 and "Example" in res.output and f"trainer {' '.join(command)} " in res.output


def test_a_features_run_predicts_and_exports_as_it_trained(tmp_path: Path) -> None:
    from trainer.engine.runner import run_training
    from trainer.ops.export import export_run

    cfg = {"model": {"name": "test_resnet"},
           "data": {"dataset": "digits", "img_size": 16, "batch_size": 32, "fraction": 0.25,
                    "features": ["gray", "sobel"]},
           "optimizer": {"name": "adamw", "lr": 3e-3}, "train": {"epochs": 1, "device": "cpu"}}
    result = run_training(cfg, tmp_path / "run", quiet=True, plots=False, handle_signals=False)
    assert result.status == "completed", result.error
    run = restore_run(tmp_path / "run")
    assert run.preprocess.features == ("gray", "sobel") and run.preprocess.in_chans == 2
    # the trainer's own predictions on the holdout images (one epoch: best.pt is the last model)
    with np.load(tmp_path / "run" / "holdout.npz") as h:
        images, preds = torch.from_numpy(h["images"]), h["preds"]
    assert run.probabilities(images).argmax(1).tolist() == preds.tolist()
    path, _ = export_run(run, "onnx", tmp_path / "digits.onnx")
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(["probabilities"], {"images": images.float().numpy()})[0]
    assert np.allclose(got, run.probabilities(images).numpy(), atol=1e-4)


def test_eval_split_test_needs_no_data_where_the_dataset_has_a_test_split(tmp_path: Path) -> None:
    from tests.trainer.test_engine_data import write_idx
    from trainer.engine.runner import run_training

    rng = np.random.RandomState(0)
    fm = tmp_path / "fashion"
    fm.mkdir()
    for prefix, n in (("train", 48), ("t10k", 30)):  # Fashion-MNIST's layout, tiny
        write_idx(fm / f"{prefix}-images-idx3-ubyte.gz", rng.randint(0, 256, (n, 28, 28)))
        write_idx(fm / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n) % 10)
    cfg = {"model": {"name": "test_resnet"},
           "data": {"dataset": "fashion_mnist", "root": str(fm), "img_size": 16, "batch_size": 16},
           "train": {"epochs": 1, "device": "cpu"}}
    assert run_training(cfg, tmp_path / "run", quiet=True, plots=False, handle_signals=False).status == "completed"
    res = invoke(["eval", str(tmp_path / "run"), "--split", "test", "--no-record", "--json"])
    assert res.exit_code == 0, res.output
    out = json.loads(res.output)
    assert out["images"] == 30 and "t10k" in out["data"] and 0 <= out["metrics"]["test_acc"] <= 1
    # digits has no test split: the command says what to give instead
    digits = {**cfg, "data": {"dataset": "digits", "img_size": 16, "batch_size": 64, "fraction": 0.1}}
    assert run_training(digits, tmp_path / "d", quiet=True, plots=False, handle_signals=False).status == "completed"
    res = invoke(["eval", str(tmp_path / "d"), "--no-record"])
    assert res.exit_code == 2 and "digits has no test split; give --data imagefolder:PATH" in res.output


def test_a_run_with_a_task_head_restores_and_other_tasks_are_refused(tmp_path: Path) -> None:
    from trainer.engine.runner import run_training

    base = {"model": {"name": "test_resnet"},
            "data": {"dataset": "digits", "img_size": 16, "batch_size": 32, "fraction": 0.25},
            "optimizer": {"name": "adamw", "lr": 3e-3}, "train": {"epochs": 1, "device": "cpu"}}
    head = {**base, "head": {"hidden": [16], "norm": "batch"}}
    assert run_training(head, tmp_path / "head", quiet=True, plots=False, handle_signals=False).status == "completed"
    run = restore_run(tmp_path / "head")
    with np.load(tmp_path / "head" / "holdout.npz") as h:  # one epoch: best.pt is the model that predicted these
        assert run.probabilities(torch.from_numpy(h["images"])).argmax(1).tolist() == h["preds"].tolist()
    reg = {**base, "task": "regression", "data": {"dataset": "synthetic_regression", "channels": 1,
                                                   "fake_samples": 64, "img_size": 16, "batch_size": 32}}
    assert run_training(reg, tmp_path / "reg", quiet=True, plots=False, handle_signals=False).status == "completed"
    Image.fromarray(np.zeros((16, 16), np.uint8)).save(tmp_path / "x.png")
    res = invoke(["predict", str(tmp_path / "reg"), str(tmp_path / "x.png")])
    assert res.exit_code == 2 and "is a regression run" in res.output
