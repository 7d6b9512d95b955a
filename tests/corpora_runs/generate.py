"""Write the run corpus with the real libraries, and the ground truth it used (``truth.json``).

Run once, in a throwaway venv that has the libraries (never ednaquery's own venv)::

    python3 -m venv /tmp/libvenv
    /tmp/libvenv/bin/pip install torch==2.13.0 "mlflow==3.17.*" "wandb==0.31.*" "lightning==2.6.*" \
        "tensorboard==2.21.*" "hydra-core==1.3.*"
    /tmp/libvenv/bin/python tests/corpora_runs/generate.py tests/corpora_runs

Versions used for the committed corpus: mlflow 3.17.2, wandb 0.31.0, lightning 2.6.6,
tensorboard 2.21.0, hydra-core 1.3.8, torch 2.13.0+cpu (``truth.json`` records them too).

W&B 0.16 (whose offline runs keep everything in the ``.wandb`` file too, beside a near-empty
``files/wandb-summary.json``) needs a venv of its own; its section is written by that venv and
merged into ``truth.json`` (``versions.wandb16``)::

    python3 -m venv /tmp/wb16 && /tmp/wb16/bin/pip install "wandb==0.16.*"
    /tmp/wb16/bin/python tests/corpora_runs/generate.py tests/corpora_runs --only wandb16

``--only LIB`` rewrites one library's folder and its part of ``truth.json``, leaving the rest.

Every library writes its own files; the values it logs are fixed (dyadic fractions, exact in
float32 as TensorBoard stores them), so the truth is exact. Each run trains 4 epochs unless it
fails on purpose (then 2). Each library runs in its own subprocess (``generate.py OUT LIB``),
so one library's global state cannot touch another's.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

VAL_ACC = [0.5, 0.75, 0.625, 0.875]
TRAIN_LOSS = [1.0, 0.75, 0.5, 0.625]

#: the runs each library writes: name, params, epochs it runs, whether it fails at the end
RUNS = {
    "mlflow_sqlite": [
        ("m1", {"model": "resnet18", "lr": 0.001, "batch_size": 32, "epochs": 4}, 4, False),
        ("m2", {"model": "vit_tiny", "lr": 0.0003, "batch_size": 64, "epochs": 4}, 4, False),
        ("m3", {"model": "resnet18", "lr": 0.01, "batch_size": 32, "epochs": 4}, 2, True),
    ],
    "mlflow_files": [
        ("f1", {"model": "resnet18", "lr": 0.002, "batch_size": 16, "epochs": 4}, 4, False),
    ],
    "wandb16": [
        ("a1", {"model": "resnet18", "lr": 0.0005, "batch_size": 16, "epochs": 4}, 4, False),
        ("a2", {"model": "vit_tiny", "lr": 0.0002, "batch_size": 16, "epochs": 4}, 4, False),
        ("a3", {"model": "resnet18", "lr": 0.05, "batch_size": 16, "epochs": 4}, 2, True),
    ],
    "hydra_multirun": [
        ("0", {"model": "resnet18", "lr": 0.001, "batch_size": 16, "epochs": 4}, 4, False),
        ("1", {"model": "resnet18", "lr": 0.004, "batch_size": 16, "epochs": 4}, 4, False),
    ],
    "wandb": [
        ("w1", {"model": "resnet18", "lr": 0.001, "batch_size": 32, "epochs": 4}, 4, False),
        ("w2", {"model": "vit_tiny", "lr": 0.0005, "batch_size": 64, "epochs": 4}, 4, False),
        ("w3", {"model": "vit_tiny", "lr": 0.1, "batch_size": 64, "epochs": 4}, 2, True),
    ],
    "lightning_tb": [
        ("l1", {"model": "resnet18", "lr": 0.001, "batch_size": 8, "epochs": 4}, 4, False),
        ("l2", {"model": "vit_tiny", "lr": 0.004, "batch_size": 8, "epochs": 4}, 4, False),
    ],
    "lightning_csv": [
        ("c1", {"model": "resnet18", "lr": 0.003, "batch_size": 8, "epochs": 4}, 4, False),
    ],
    "hydra": [
        ("h1", {"model": "resnet18", "lr": 0.001, "batch_size": 32, "epochs": 4}, 4, False),
        ("h2", {"model": "vit_tiny", "lr": 0.001, "batch_size": 32, "epochs": 4}, 2, True),
    ],
}


def offset(i: int) -> float:
    """Each run's metrics are the base series plus i/64 (exact in float32)."""
    return i / 64


def values(i: int, epochs: int) -> list[tuple[int, float, float]]:
    """(epoch index, val_acc, train_loss) for each epoch the run trains."""
    return [(e, VAL_ACC[e] + offset(i), TRAIN_LOSS[e] + offset(i)) for e in range(epochs)]


def entry(**fields: object) -> dict:
    """One run's ground truth: name, run_id, folder (relative to the library's folder), params,
    epochs, status, metrics."""
    return fields


def truth_metrics(i: int, epochs: int) -> dict:
    rows = values(i, epochs)
    return {"val_acc": {"last": rows[-1][1], "best": max(r[1] for r in rows)},
            "train_loss": {"last": rows[-1][2], "best": min(r[2] for r in rows)}}


# ---------------------------------------------------------------- one library each


def gen_mlflow(out: Path, kind: str) -> list[dict]:
    import mlflow

    root = out / kind
    if kind == "mlflow_sqlite":
        uri = f"sqlite:///{root / 'mlflow.db'}"
    else:
        os.environ["MLFLOW_ALLOW_FILE_STORE"] = "true"
        uri = (root / "mlruns").as_uri()
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment("corpus")
    truth = []
    for i, (name, params, epochs, fails) in enumerate(RUNS[kind]):
        run = mlflow.start_run(run_name=name)
        mlflow.log_params(params)
        for e, acc, loss in values(i, epochs):
            mlflow.log_metrics({"val_acc": acc, "train_loss": loss}, step=e)
        mlflow.end_run(status="FAILED" if fails else "FINISHED")
        rid = run.info.run_id
        folder = f"mlflow.db#{rid}" if kind == "mlflow_sqlite" else \
            str((root / "mlruns" / run.info.experiment_id / rid).relative_to(root))
        truth.append(entry(name=name, run_id=rid, folder=folder, params=params, epochs=None,
                          status="failed" if fails else "completed", metrics=truth_metrics(i, epochs)))
    if kind == "mlflow_sqlite":
        import sqlite3

        mlflow.tracking._tracking_service.utils._tracking_store_registry = None  # let go of the db
        con = sqlite3.connect(root / "mlflow.db")
        con.execute("VACUUM")
        con.close()
    return truth


def gen_wandb(out: Path) -> list[dict]:
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
                      WANDB_DISABLE_CODE="true", WANDB__DISABLE_STATS="true")
    import wandb

    root = out / "wandb"
    root.mkdir(parents=True, exist_ok=True)
    truth = []
    for i, (name, params, epochs, fails) in enumerate(RUNS["wandb"]):
        rid = f"corpus{name}"
        run = wandb.init(project="corpus", name=name, id=rid, dir=str(root), config=params,
                         settings=wandb.Settings(x_disable_stats=True, x_disable_meta=True))
        for e, acc, loss in values(i, epochs):
            run.log({"val_acc": acc, "train_loss": loss, "epoch": e})
        run.finish(exit_code=1 if fails else 0)
        folder = next(p for p in (root / "wandb").iterdir() if p.name.endswith(rid))
        truth.append(entry(name=name, run_id=rid, folder=str(folder.relative_to(root)), params=params,
                          epochs=epochs, status="failed" if fails else "completed",
                          metrics=truth_metrics(i, epochs)))
    for p in (root / "wandb").glob("*/files/output.log"):
        p.unlink()  # console output: not read, and not needed
    for link in (root / "wandb").iterdir():
        if link.is_symlink():  # latest-run, debug.log, debug-internal.log
            link.unlink()
    for p in [*(root / "wandb").glob("*/logs"), *(root / "wandb").glob("*/tmp")]:
        shutil.rmtree(p)  # wandb's debug logs (host names, paths)
    return truth


WANDB16_CRASH = '''
import os, sys
os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true", WANDB_DISABLE_CODE="true")
import wandb
root, rid, name, config, rows = sys.argv[1], sys.argv[2], sys.argv[3], eval(sys.argv[4]), eval(sys.argv[5])
run = wandb.init(project="corpus", name=name, id=rid, dir=root, config=config,
                 settings=wandb.Settings(_disable_stats=True, _disable_meta=True))
for e, acc, loss in rows:
    run.log({"val_acc": acc, "train_loss": loss, "epoch": e})
raise RuntimeError("diverged")  # wandb's excepthook finishes the run with exit code 1
'''


def gen_wandb16(out: Path) -> list[dict]:
    """wandb 0.16 offline runs; the failing one crashes with an exception in a process of its own."""
    os.environ.update(WANDB_MODE="offline", WANDB_SILENT="true", WANDB_DISABLE_GIT="true",
                      WANDB_DISABLE_CODE="true")
    import wandb

    root = out / "wandb16"
    root.mkdir(parents=True, exist_ok=True)
    os.chdir(root)  # wandb 0.16 writes its CLI log under ./wandb
    truth = []
    for i, (name, params, epochs, fails) in enumerate(RUNS["wandb16"], start=-8):
        rid = f"corpus{name}"
        if fails:
            proc = subprocess.run([sys.executable, "-c", WANDB16_CRASH, str(root), rid, name, repr(params),
                                   repr(values(i, epochs))], capture_output=True, text=True, check=False, cwd=root,
                                  env={k: v for k, v in os.environ.items() if k != "WANDB_SERVICE"})
            # (without its own service, the child's crash would be reported by this process's: exit 0)
            assert proc.returncode != 0 and "diverged" in proc.stderr, proc.stderr[-2000:]
        else:
            run = wandb.init(project="corpus", name=name, id=rid, dir=str(root), config=params,
                             settings=wandb.Settings(_disable_stats=True, _disable_meta=True))
            for e, acc, loss in values(i, epochs):
                run.log({"val_acc": acc, "train_loss": loss, "epoch": e})
            run.finish()
        folder = next(p for p in (root / "wandb").iterdir() if p.name.endswith(rid))
        truth.append(entry(name=name, run_id=rid, folder=str(folder.relative_to(root)), params=params,
                          epochs=epochs, status="failed" if fails else "completed",
                          metrics=truth_metrics(i, epochs)))
    for link in (root / "wandb").iterdir():
        if link.is_symlink():  # latest-run, debug.log, debug-internal.log
            link.unlink()
    for p in [*(root / "wandb").glob("*/logs"), *(root / "wandb").glob("*/tmp")]:
        shutil.rmtree(p)  # wandb's debug logs (host names, paths)
    for p in [*(root / "wandb").glob("*/files/output.log"), *root.glob("wandb/debug-cli.*.log")]:
        p.unlink()  # console output and the CLI's log: not read, and not needed
    return truth


def gen_lightning(out: Path, kind: str) -> list[dict]:
    import lightning as L
    import torch
    from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

    class Tiny(L.LightningModule):
        def __init__(self, i: int, model: str, lr: float, batch_size: int, epochs: int) -> None:
            super().__init__()
            self.save_hyperparameters(ignore=["i"])
            self.i = i
            self.layer = torch.nn.Linear(2, 1)

        def training_step(self, batch, _idx):
            return self.layer(batch[0]).pow(2).mean()

        def on_train_epoch_end(self) -> None:
            e = self.current_epoch
            self.log("val_acc", VAL_ACC[e] + offset(self.i))
            self.log("train_loss", TRAIN_LOSS[e] + offset(self.i))

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    root = out / kind
    data = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.ones(4, 2)), batch_size=2)
    truth = []
    for i, (name, params, epochs, _fails) in enumerate(RUNS[kind]):
        logger = (TensorBoardLogger if kind == "lightning_tb" else CSVLogger)(str(root), name=name)
        trainer = L.Trainer(max_epochs=epochs, logger=logger, enable_checkpointing=False,
                            enable_progress_bar=False, enable_model_summary=False, accelerator="cpu",
                            log_every_n_steps=1)
        trainer.fit(Tiny(i, **params), data)
        truth.append(entry(name=name, run_id=None, folder=f"{name}/version_0", params=params, epochs=epochs,
                          status="unknown", metrics=truth_metrics(i, epochs)))
    return truth


HYDRA_APP = '''
import json, logging, os, sys
import hydra
from omegaconf import DictConfig

log = logging.getLogger(__name__)
VAL_ACC, TRAIN_LOSS, OFFSET, STOP = {val}, {loss}, float(sys.argv.pop(1)), int(sys.argv.pop(1))

@hydra.main(version_base="1.3", config_path=".", config_name="config")
def main(cfg: DictConfig) -> None:
    out = hydra.core.hydra_config.HydraConfig.get().runtime.output_dir
    with open(os.path.join(out, "metrics.jsonl"), "w") as fh:
        for e in range(cfg.epochs):
            if e == STOP:
                log.error("training diverged at epoch %d", e)
                raise RuntimeError("diverged")
            fh.write(json.dumps({{"epoch": e, "val_acc": VAL_ACC[e] + OFFSET,
                                 "train_loss": TRAIN_LOSS[e] + OFFSET}}) + "\\n")
            log.info("epoch %d done", e)
    with open(os.path.join(out, "summary.json"), "w") as fh:
        json.dump({{"status": "completed"}}, fh)

main()
'''


def gen_hydra(out: Path) -> list[dict]:
    root = out / "hydra"
    app = root.parent / "_hydra_app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "app.py").write_text(HYDRA_APP.format(val=VAL_ACC, loss=TRAIN_LOSS))
    truth = []
    for i, (name, params, epochs, fails) in enumerate(RUNS["hydra"]):
        (app / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in params.items()))
        run_dir = root / "outputs" / name
        subprocess.run([sys.executable, str(app / "app.py"), str(offset(i)), str(epochs if fails else 99),
                        f"hydra.run.dir={run_dir}", f"hydra.job.name={name}"], check=not fails,
                       capture_output=True, cwd=app)
        truth.append(entry(name=name, run_id=None, folder=str(run_dir.relative_to(root)), params=params,
                          epochs=epochs, status="failed" if fails else "completed",
                          metrics=truth_metrics(i, epochs)))
    shutil.rmtree(app)
    return truth


def gen_hydra_multirun(out: Path) -> list[dict]:
    """One Hydra multirun (``-m lr=...``): job folders ``multirun/<job num>`` beside ``multirun.yaml``."""
    root = out / "hydra_multirun"
    app = root.parent / "_hydra_app"
    app.mkdir(parents=True, exist_ok=True)
    (app / "app.py").write_text(HYDRA_APP.format(val=VAL_ACC, loss=TRAIN_LOSS))
    jobs = RUNS["hydra_multirun"]
    base = {k: v for k, v in jobs[0][1].items() if k != "lr"}
    (app / "config.yaml").write_text("".join(f"{k}: {v}\n" for k, v in jobs[0][1].items()))
    sweep = root / "multirun"
    i = -16  # every job logs the same series (the app's offset is per process)
    subprocess.run([sys.executable, str(app / "app.py"), str(offset(i)), "99", "-m",
                    "lr=" + ",".join(str(p["lr"]) for _n, p, _e, _f in jobs), f"hydra.sweep.dir={sweep}",
                    "hydra.job.name=sweep"], check=True, capture_output=True, cwd=app)
    truth = []
    for name, params, epochs, _fails in jobs:
        assert {k: v for k, v in params.items() if k != "lr"} == base
        truth.append(entry(name=name, run_id=None, folder=f"multirun/{name}", params=params, epochs=epochs,
                          status="completed", metrics=truth_metrics(i, epochs)))
    shutil.rmtree(app)
    return truth


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("mlflow", "wandb", "lightning", "tensorboard", "hydra-core", "torch"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out


GENERATORS = {
    "mlflow_sqlite": lambda out: gen_mlflow(out, "mlflow_sqlite"),
    "mlflow_files": lambda out: gen_mlflow(out, "mlflow_files"),
    "wandb": gen_wandb,
    "lightning_tb": lambda out: gen_lightning(out, "lightning_tb"),
    "lightning_csv": lambda out: gen_lightning(out, "lightning_csv"),
    "hydra": gen_hydra,
    "hydra_multirun": gen_hydra_multirun,
    "wandb16": gen_wandb16,
}
#: libraries that need a venv of their own (module docstring): ``main`` without ``--only`` skips them
OWN_VENV = ("wandb16",)


def run_one(out: Path, lib: str) -> list[dict]:
    """One library's runs, written by a subprocess of this interpreter: its truth."""
    shutil.rmtree(out / lib, ignore_errors=True)
    proc = subprocess.run([sys.executable, __file__, str(out), lib], check=False, capture_output=True, text=True,
                          cwd=out)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("TRUTH ")), None)
    if line is None:
        sys.exit(f"{lib} failed:\n{textwrap.indent(proc.stderr[-3000:], '  ')}")
    return json.loads(line[6:])


def main() -> None:
    out = Path(sys.argv[1]).resolve()
    if len(sys.argv) == 3:  # one library, in this process: print its truth
        print("TRUTH " + json.dumps(GENERATORS[sys.argv[2]](out)))
        return
    if len(sys.argv) == 4 and sys.argv[2] == "--only":  # rewrite one library, keep the rest of the truth
        lib = sys.argv[3]
        truth = json.loads((out / "truth.json").read_text())
        truth["libraries"][lib] = run_one(out, lib)
        if lib in OWN_VENV:
            truth["versions"][lib] = versions().get("wandb")
    else:
        truth = {"versions": versions(), "libraries": {}}
        old = json.loads((out / "truth.json").read_text()) if (out / "truth.json").exists() else {}
        for lib in GENERATORS:
            if lib in OWN_VENV:  # kept as its own venv wrote it
                truth["libraries"][lib] = old.get("libraries", {}).get(lib, [])
                truth["versions"][lib] = old.get("versions", {}).get(lib)
                continue
            truth["libraries"][lib] = run_one(out, lib)
    (out / "truth.json").write_text(json.dumps(truth, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
