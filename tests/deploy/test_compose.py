"""Checks of the team deployment (compose.yaml, Dockerfiles, deploy/ scripts) without Docker.

Docker cannot run on the machines that run these tests, so compose.yaml is validated against the
Compose Specification's JSON schema and checked for what the deployment promises: a MongoDB
replica set with auth and a real healthcheck, the indexer against it with the experiments folder
read-only, GPU trainer workers that scale, and no secrets in committed files. The deploy/ shell
scripts are run here against stubs (a fake docker-entrypoint.sh, mongosh and nvidia-smi).
What only a Docker host can show is listed in docs/deploy.md ("Verify").
"""

from __future__ import annotations

import copy
import json
import os
import re
import shutil
import stat
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.wait import wait_until

REPO = Path(__file__).resolve().parents[2]
COMPOSE = REPO / "compose.yaml"
SCHEMA = REPO.parent / "shared" / "schemas" / "compose-spec.json"
DEPLOY = REPO / "deploy"
SHELL_SCRIPTS = sorted(DEPLOY.rglob("*.sh"))
EXPERIMENTS = "/experiments"

needs_bash = pytest.mark.skipif(shutil.which("bash") is None, reason="bash is not installed")

# ---------------------------------------------------------------------------------------------------
# Compose variable interpolation, as `docker compose config` does it (enough for this file).
_VAR = re.compile(r"\$(?:\$|\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?:(?P<op>:?[-?])(?P<arg>[^}]*))?\})")


def interpolate(text: str, env: dict[str, str]) -> str:
    def repl(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group("name"), m.group("op"), m.group("arg")
        value = env.get(name)
        unset_or_empty = value is None or (value == "" and op is not None and op.startswith(":"))
        if op in ("-", ":-") and unset_or_empty:
            return arg
        if op in ("?", ":?") and unset_or_empty:
            raise KeyError(f"{name}: {arg}")
        return value or ""

    return _VAR.sub(repl, text)


def resolve(node: Any, env: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {k: resolve(v, env) for k, v in node.items()}
    if isinstance(node, list):
        return [resolve(v, env) for v in node]
    if isinstance(node, str):
        return interpolate(node, env)
    return node


def strings(node: Any, key: str = "") -> list[tuple[str, str]]:
    """Every (mapping key, string value) pair in the file, at any depth."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() for pair in strings(v, str(k))]
    if isinstance(node, list):
        return [pair for v in node for pair in strings(v, key)]
    return [(key, node)] if isinstance(node, str) else []


def run_cmd(args: list[str], **kwargs: Any) -> subprocess.CompletedProcess:
    """Run a command with captured text output; callers assert on the exit status themselves."""
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=30, **kwargs)


def read_env_file(path: Path) -> dict[str, str]:
    env = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            name, sep, value = line.partition("=")
            assert sep, f"{path.name}: not NAME=value: {line!r}"
            env[name.strip()] = value.strip()
    return env


# ---------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def env_example() -> dict[str, str]:
    return read_env_file(REPO / ".env.example")


@pytest.fixture(scope="module")
def compose(raw: dict, env_example: dict[str, str]) -> dict:
    """compose.yaml as Compose resolves it with a .env copied from .env.example."""
    return resolve(raw, env_example)


@pytest.fixture(scope="module")
def schema_validator():
    if not SCHEMA.is_file():
        pytest.skip(f"Compose JSON schema not found at {SCHEMA} (expected shared/ beside the repository)")
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    return jsonschema.Draft7Validator(schema)


def service(compose: dict, name: str) -> dict:
    return compose["services"][name]


def mounts(svc: dict) -> list[dict]:
    """Volumes in long form: {type, source, target, read_only}."""
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append({"read_only": False, **v})
        else:
            parts = v.split(":")
            source, target = parts[0], parts[1]
            kind = "bind" if source.startswith((".", "/", "~", "$")) else "volume"
            out.append(
                {
                    "type": kind,
                    "source": source,
                    "target": target,
                    "read_only": len(parts) > 2 and "ro" in parts[2].split(","),
                }
            )
    return out


def mount_at(svc: dict, target: str) -> dict:
    found = [m for m in mounts(svc) if m["target"] == target]
    assert len(found) == 1, f"expected one mount at {target}, got {found}"
    return found[0]


# ---------------------------------------------------------------------------------------------------
# The file as a whole
def test_compose_is_valid_against_the_compose_spec_schema(raw: dict, schema_validator) -> None:
    errors = sorted(schema_validator.iter_errors(raw), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.path))}: {e.message}" for e in errors)


def test_schema_check_catches_a_broken_file(raw: dict, schema_validator) -> None:
    broken = copy.deepcopy(raw)
    broken["services"]["mongo"]["healthcheck"]["tests"] = broken["services"]["mongo"]["healthcheck"].pop(
        "test"
    )
    assert not schema_validator.is_valid(broken)


def test_no_obsolete_version_key_and_three_services(raw: dict) -> None:
    assert "version" not in raw
    assert set(raw["services"]) == {"mongo", "indexer", "trainer"}


def test_every_variable_compose_uses_is_documented_in_env_example(raw: dict, env_example: dict) -> None:
    used = {m.group("name") for _, s in strings(raw) for m in _VAR.finditer(s) if m.group("name")}
    missing = used - set(env_example)
    assert not missing, f"compose.yaml uses variables that .env.example does not set: {sorted(missing)}"


def test_required_variables_fail_loudly_without_env(raw: dict) -> None:
    with pytest.raises(KeyError, match="MONGO_INITDB_ROOT_PASSWORD"):
        resolve(raw, {"MONGO_INITDB_ROOT_USERNAME": "u"})


# ---------------------------------------------------------------------------------------------------
# mongo
def test_mongo_image_is_official_and_pinned_to_a_major(compose: dict) -> None:
    assert re.fullmatch(r"mongo:[78](\.\d+){0,2}", service(compose, "mongo")["image"])


def test_mongo_runs_an_authenticated_replica_set(compose: dict) -> None:
    mongo = service(compose, "mongo")
    cmd = mongo["command"]
    assert cmd[cmd.index("--replSet") + 1] == "rs0"
    # the healthcheck initiates the set under the same name and announces the service's own address
    assert mongo["environment"]["RS_NAME"] == "rs0" and mongo["environment"]["RS_HOST"] == "mongo:27017"
    assert "--bind_ip_all" in cmd
    keyfile = cmd[cmd.index("--keyFile") + 1]
    keyfile_mount = [m for m in mounts(mongo) if keyfile.startswith(m["target"].rstrip("/") + "/")]
    assert keyfile_mount and keyfile_mount[0]["type"] == "volume", "the keyfile must live in a named volume"
    for var in ("MONGO_INITDB_ROOT_USERNAME", "MONGO_INITDB_ROOT_PASSWORD"):
        assert mongo["environment"][var]


def test_mongo_data_is_on_a_named_volume(compose: dict) -> None:
    data = mount_at(service(compose, "mongo"), "/data/db")
    assert data["type"] == "volume"
    assert data["source"] in compose["volumes"]


def test_mongo_healthcheck_pings_and_initiates_the_replica_set(compose: dict) -> None:
    mongo = service(compose, "mongo")
    check = mongo["healthcheck"]
    assert check["test"][0] in ("CMD", "CMD-SHELL")
    script = next(a for a in check["test"] if a.endswith(".sh"))
    mount = next(m for m in mounts(mongo) if script.startswith(m["target"] + "/"))
    host_script = (REPO / mount["source"] / script[len(mount["target"]) + 1 :]).resolve()
    text = host_script.read_text()
    assert "db.adminCommand('ping')" in text
    assert "rs.initiate" in text
    assert "mongosh" in text
    assert mount["read_only"]
    assert check.get("retries", 0) >= 3 and check.get("start_period")


def test_mongo_entrypoint_script_is_the_mounted_one(compose: dict) -> None:
    mongo = service(compose, "mongo")
    script = next(a for a in mongo["entrypoint"] if a.endswith(".sh"))
    mount = next(m for m in mounts(mongo) if script.startswith(m["target"] + "/"))
    assert (REPO / mount["source"] / script[len(mount["target"]) + 1 :]).is_file()


@pytest.mark.parametrize("env_kind", ["env.example", "unset"])
def test_mongo_port_is_published_on_loopback_only(raw: dict, env_example: dict, env_kind: str) -> None:
    env = dict(env_example)
    if env_kind == "unset":  # a .env without the optional settings: the defaults must be safe too
        env = {k: v for k, v in env.items() if k.startswith("MONGO_INITDB_")}
    for port in resolve(raw, env)["services"]["mongo"].get("ports", []):
        if isinstance(port, dict):
            assert port.get("host_ip") == "127.0.0.1", port
        else:
            assert str(port).startswith("127.0.0.1:"), port


def test_only_mongo_publishes_ports(compose: dict) -> None:
    assert [name for name, s in compose["services"].items() if s.get("ports")] == ["mongo"]


# ---------------------------------------------------------------------------------------------------
# indexer and trainer
def test_store_uri_targets_the_replica_set_with_auth(compose: dict, env_example: dict) -> None:
    user, password = env_example["MONGO_INITDB_ROOT_USERNAME"], env_example["MONGO_INITDB_ROOT_PASSWORD"]
    for name in ("indexer", "trainer"):
        uri = service(compose, name)["environment"]["EDNAQUERY_STORE"]
        assert uri.startswith(f"mongodb://{user}:{password}@mongo:27017/"), uri
        query = dict(p.split("=", 1) for p in uri.split("?", 1)[1].split("&"))
        assert query["replicaSet"] == "rs0" and query["authSource"] == "admin"


def test_indexer_watches_read_only_experiments_after_mongo_is_healthy(compose: dict) -> None:
    indexer = service(compose, "indexer")
    assert indexer["build"]["dockerfile"] == "Dockerfile"
    cmd = indexer["command"]
    assert cmd[-2:] == ["watch", EXPERIMENTS] and cmd[0] == "ednaquery"
    assert indexer["depends_on"]["mongo"]["condition"] == "service_healthy"
    exp = mount_at(indexer, EXPERIMENTS)
    assert exp["type"] == "bind" and exp["read_only"] is True
    assert indexer["restart"] in ("on-failure", "unless-stopped", "always")
    assert "EDNAQUERY_POLL" in indexer["environment"]


def test_indexer_experiments_path_defaults_and_follows_env(raw: dict, env_example: dict) -> None:
    env = {k: v for k, v in env_example.items() if k.startswith("MONGO_INITDB_")}
    assert mount_at(resolve(raw, env)["services"]["indexer"], EXPERIMENTS)["source"] == "./experiments"
    env["EDNAQUERY_EXPERIMENTS"] = "/srv/lab"
    for name in ("indexer", "trainer"):
        assert mount_at(resolve(raw, env)["services"][name], EXPERIMENTS)["source"] == "/srv/lab"


def test_trainer_reserves_nvidia_gpus_and_can_scale(compose: dict) -> None:
    trainer = service(compose, "trainer")
    assert trainer["build"]["dockerfile"] == "Dockerfile.trainer"
    assert "worker" in trainer["command"]
    devices = trainer["deploy"]["resources"]["reservations"]["devices"]
    assert any(d.get("driver") == "nvidia" and "gpu" in d["capabilities"] for d in devices)
    # --scale trainer=N: no fixed name, no host port
    assert "container_name" not in trainer and not trainer.get("ports")
    assert trainer["depends_on"]["mongo"]["condition"] == "service_healthy"
    # recreating mongo (an upgrade) must not restart the workers and kill running trainings
    assert trainer["depends_on"]["mongo"].get("restart") in (None, False)
    exp = mount_at(trainer, EXPERIMENTS)
    assert exp["type"] == "bind" and not exp["read_only"]
    # the GPU locks that spread replicas over GPUs must be shared by all replicas: a named volume
    locks = [m for m in mounts(trainer) if "gpu-locks" in m["target"]]
    assert locks and locks[0]["type"] == "volume"


# ---------------------------------------------------------------------------------------------------
# secrets
SECRET_KEY = re.compile(r"pass(word|wd)?|secret|token|api_?key", re.IGNORECASE)
ONLY_INTERPOLATION = re.compile(r"(\$\{[^}]+\})+")


def test_no_secret_literals_in_compose(raw: dict, env_example: dict) -> None:
    text = COMPOSE.read_text()
    for key, value in strings(raw):
        if SECRET_KEY.search(key):
            assert ONLY_INTERPOLATION.fullmatch(value), f"{key} holds a literal: {value!r}"
        for userinfo in re.findall(r"mongodb(?:\+srv)?://([^@/]*)@", value):
            literal = ONLY_INTERPOLATION.sub("", userinfo)
            assert literal in ("", ":"), f"credentials in a URI: {value!r}"
    assert env_example["MONGO_INITDB_ROOT_PASSWORD"] not in text


def test_env_example_is_committed_with_placeholders(env_example: dict) -> None:
    assert env_example["MONGO_INITDB_ROOT_USERNAME"]
    assert "change" in env_example["MONGO_INITDB_ROOT_PASSWORD"].lower()


def test_env_is_git_ignored_and_env_example_is_not() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")

    def ignored(path: str) -> bool:
        r = run_cmd(["git", "check-ignore", "-q", "--no-index", path], cwd=REPO)
        assert r.returncode in (0, 1), f"git check-ignore failed for {path}"
        return r.returncode == 0

    assert ignored(".env")
    assert not ignored(".env.example")


def test_dockerignore_keeps_secrets_and_environments_out_of_images() -> None:
    lines = {ln.strip() for ln in (REPO / ".dockerignore").read_text().splitlines()}
    assert {".env", ".git", ".venv"} <= lines
    assert "deploy" not in lines  # Dockerfile.trainer copies deploy/trainer-entrypoint.sh


# ---------------------------------------------------------------------------------------------------
# Dockerfiles
def final_stage(dockerfile: Path) -> list[str]:
    lines = [
        ln.strip()
        for ln in dockerfile.read_text().splitlines()
        if ln.strip() and not ln.lstrip().startswith("#")
    ]
    starts = [i for i, ln in enumerate(lines) if ln.upper().startswith("FROM ")]
    assert starts, f"{dockerfile.name} has no FROM"
    return lines[starts[-1] :]


def last_user(stage: list[str]) -> str:
    users = [ln.split(None, 1)[1] for ln in stage if ln.upper().startswith("USER ")]
    assert users, "the image runs as root: add a USER"
    return users[-1]


def test_dockerfile_is_slim_non_root_and_without_the_train_extra() -> None:
    text = (REPO / "Dockerfile").read_text()
    stage = final_stage(REPO / "Dockerfile")
    assert "slim" in stage[0]
    assert last_user(stage).split(":")[0] not in ("root", "0")
    code = "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#"))
    assert "[train]" not in code and "torch" not in code


def test_trainer_dockerfile_installs_train_extra_on_cuda_pytorch() -> None:
    text = (REPO / "Dockerfile.trainer").read_text()
    base = re.search(r"ARG PYTORCH_IMAGE=(\S+)", text)
    assert base and re.fullmatch(r"pytorch/pytorch:[\d.]+-cuda[\d.]+-cudnn\d+-runtime", base.group(1))
    assert '".[train]"' in text or "'.[train]'" in text
    assert last_user(final_stage(REPO / "Dockerfile.trainer")).split(":")[0] not in ("root", "0")
    assert "trainer-entrypoint" in text


# ---------------------------------------------------------------------------------------------------
# deploy/ shell scripts
def test_there_are_deploy_scripts() -> None:
    names = {p.name for p in SHELL_SCRIPTS}
    assert {"entrypoint.sh", "healthcheck.sh", "trainer-entrypoint.sh"} <= names


@needs_bash
@pytest.mark.parametrize("script", SHELL_SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_shell_script_parses(script: Path) -> None:
    r = run_cmd(["bash", "-n", str(script)])
    assert r.returncode == 0, r.stderr


def write_stub(path: Path, body: str) -> Path:
    path.write_text("#!/usr/bin/env bash\n" + body)
    path.chmod(0o755)
    return path


@needs_bash
def test_mongo_entrypoint_generates_a_keyfile_once_and_hands_over(tmp_path: Path) -> None:
    stub = write_stub(tmp_path / "docker-entrypoint.sh", 'printf "%s\\n" "$@" > "$ARGS_OUT"\n')
    keyfile = tmp_path / "keys" / "mongo.key"
    env = {**os.environ, "MONGO_DOCKER_ENTRYPOINT": str(stub), "ARGS_OUT": str(tmp_path / "args")}
    args = ["mongod", "--replSet", "rs0", "--keyFile", str(keyfile)]

    def run() -> str:
        r = run_cmd(["bash", str(DEPLOY / "mongo-init" / "entrypoint.sh"), *args], env=env)
        assert r.returncode == 0, r.stderr
        return keyfile.read_text()

    first = run()
    assert (tmp_path / "args").read_text().split() == args
    assert re.fullmatch(r"[A-Za-z0-9+/=]{6,1024}", first)
    assert stat.S_IMODE(keyfile.stat().st_mode) == 0o400
    if os.geteuid() == 0:
        assert (keyfile.stat().st_uid, keyfile.stat().st_gid) == (999, 999)
    assert run() == first, "a restart must keep the keyfile"
    assert [p.name for p in keyfile.parent.iterdir()] == ["mongo.key"], "no temp file left behind"


@needs_bash
def test_mongo_entrypoint_refuses_a_command_without_keyfile() -> None:
    r = run_cmd(["bash", str(DEPLOY / "mongo-init" / "entrypoint.sh"), "mongod", "--replSet", "rs0"])
    assert r.returncode == 2 and "--keyFile" in r.stderr


@needs_bash
def test_healthcheck_calls_mongosh_with_credentials_and_the_check(tmp_path: Path) -> None:
    write_stub(tmp_path / "mongosh", 'printf "%s\\0" "$@" > "$ARGS_OUT"\n')
    env = {
        **os.environ,
        "PATH": f"{tmp_path}:{os.environ['PATH']}",
        "ARGS_OUT": str(tmp_path / "args"),
        "MONGO_INITDB_ROOT_USERNAME": "root",
        "MONGO_INITDB_ROOT_PASSWORD": "s3cret",
    }
    r = run_cmd(["bash", str(DEPLOY / "mongo-init" / "healthcheck.sh")], env=env)
    assert r.returncode == 0, r.stderr
    argv = (tmp_path / "args").read_text().split("\0")[:-1]
    assert argv[argv.index("--username") + 1] == "root"
    assert argv[argv.index("--password") + 1] == "s3cret"
    assert argv[argv.index("--authenticationDatabase") + 1] == "admin"
    js = argv[argv.index("--eval") + 1]
    assert "rs.initiate" in js and "db.adminCommand('ping')" in js

    del env["MONGO_INITDB_ROOT_PASSWORD"]
    r = run_cmd(["bash", str(DEPLOY / "mongo-init" / "healthcheck.sh")], env=env)
    assert r.returncode != 0 and "MONGO_INITDB_ROOT_PASSWORD" in r.stderr


# The healthcheck's JavaScript, run under node with a fake replica set (mongosh is node too).
MOCK_SHELL = """
const state = %s;
const calls = [];
let dumped = false;
const dump = () => { if (!dumped) { dumped = true; console.log(JSON.stringify(calls)); } };
process.on('exit', dump);
globalThis.print = (...a) => calls.push(['print', a.join(' ')]);
globalThis.quit = (code) => { dump(); process.exit(code); };
globalThis.sleep = () => {};
const err = (codeName) => Object.assign(new Error(codeName), { codeName });
globalThis.rs = {
  status() { calls.push(['status']); if (state.statusError) throw err(state.statusError); return { ok: 1 }; },
  initiate(cfg) { calls.push(['initiate', cfg]); if (state.initiateError) throw err(state.initiateError);
                  return { ok: 1 }; },
};
globalThis.db = {
  adminCommand(cmd) { calls.push(['adminCommand', cmd]); return { ok: 1 }; },
  hello() { state.helloCalls++; return { isWritablePrimary: state.primaryAfter >= 0 && state.helloCalls > state.primaryAfter }; },
};
"""


def run_health_js(tmp_path: Path, **state: Any) -> tuple[int, list]:
    text = (DEPLOY / "mongo-init" / "healthcheck.sh").read_text()
    js = re.search(r"<<'JS'[^\n]*\n(.*?)\nJS\n", text, re.DOTALL).group(1)
    full = {"statusError": None, "initiateError": None, "primaryAfter": 0, "helloCalls": 0, **state}
    prog = tmp_path / "check.js"
    prog.write_text(MOCK_SHELL % json.dumps(full) + js)
    r = run_cmd(["node", str(prog)], env={**os.environ, "RS_NAME": "rs0", "RS_HOST": "mongo:27017"})
    out = r.stdout.strip().splitlines()
    return r.returncode, json.loads(out[-1]) if out else []


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed (runs the healthcheck's JS)")
class TestHealthcheckLogic:
    def test_first_start_initiates_once_then_pings(self, tmp_path: Path) -> None:
        code, calls = run_health_js(tmp_path, statusError="NotYetInitialized", primaryAfter=2)
        assert code == 0
        inits = [c for c in calls if c[0] == "initiate"]
        assert inits == [["initiate", {"_id": "rs0", "members": [{"_id": 0, "host": "mongo:27017"}]}]]
        assert ["adminCommand", "ping"] in calls

    def test_configured_set_is_not_initiated_again(self, tmp_path: Path) -> None:
        code, calls = run_health_js(tmp_path)
        assert code == 0 and not [c for c in calls if c[0] == "initiate"]

    def test_other_errors_are_not_mistaken_for_a_fresh_set(self, tmp_path: Path) -> None:
        code, calls = run_health_js(tmp_path, statusError="Unauthorized")
        assert code != 0 and not [c for c in calls if c[0] == "initiate"]

    def test_losing_the_initiate_race_is_fine(self, tmp_path: Path) -> None:
        code, _ = run_health_js(tmp_path, statusError="NotYetInitialized", initiateError="AlreadyInitialized")
        assert code == 0

    def test_unhealthy_until_writable_primary(self, tmp_path: Path) -> None:
        code, _ = run_health_js(tmp_path, primaryAfter=-1)
        assert code == 1


# Trainer GPU claiming: fake nvidia-smi with two GPUs, three workers.
@pytest.fixture
def gpu_env(tmp_path: Path) -> dict[str, str]:
    if shutil.which("flock") is None:
        pytest.skip("flock (util-linux) is not installed")
    bindir = tmp_path / "bin"
    bindir.mkdir()
    write_stub(bindir / "nvidia-smi", 'printf "GPU-aaaa\\nGPU-bbbb\\n"\n')
    env = {k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"}
    return {
        **env,
        "PATH": f"{bindir}:{env['PATH']}",
        "EDNAQUERY_GPU_LOCK_DIR": str(tmp_path / "locks"),
        "EDNAQUERY_GPU_RETRY_S": "0.1",
    }


def start_worker(env: dict[str, str], out: Path) -> subprocess.Popen:
    """The entrypoint running a stand-in worker that writes its GPU to ``out``; its messages go to ``out``.log."""
    cmd = f'echo "$CUDA_VISIBLE_DEVICES" > {out}.tmp && mv {out}.tmp {out} && exec sleep 60'
    with open(f"{out}.log", "wb") as log:
        return subprocess.Popen(
            ["bash", str(DEPLOY / "trainer-entrypoint.sh"), "sh", "-c", cmd],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def wait_for(path: Path, timeout: float = 10.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            return path.read_text().strip()
        time.sleep(0.02)
    raise AssertionError(f"{path.name} did not appear within {timeout}s")


@needs_bash
def test_scaled_trainers_each_claim_a_different_gpu(gpu_env: dict, tmp_path: Path) -> None:
    procs = []
    try:
        procs.append(start_worker(gpu_env, tmp_path / "w1"))
        first = wait_for(tmp_path / "w1")
        procs.append(start_worker(gpu_env, tmp_path / "w2"))
        second = wait_for(tmp_path / "w2")
        assert {first, second} == {"GPU-aaaa", "GPU-bbbb"}

        procs.append(start_worker(gpu_env, tmp_path / "w3"))  # more workers than GPUs: it waits
        log = tmp_path / "w3.log"
        assert wait_until(lambda: log.exists() and "waiting for one to free up" in log.read_text()), log
        assert not (tmp_path / "w3").exists()

        procs[0].kill()  # a worker dies: its GPU is free again
        procs[0].wait(timeout=10)
        assert wait_for(tmp_path / "w3") == first
    finally:
        for p in procs:
            p.kill()
            p.wait(timeout=10)


@needs_bash
def test_trainer_entrypoint_respects_a_pinned_gpu_and_runs_without_gpus(
    gpu_env: dict, tmp_path: Path
) -> None:
    script = str(DEPLOY / "trainer-entrypoint.sh")
    echo = ["sh", "-c", 'echo "[$CUDA_VISIBLE_DEVICES]"']
    r = run_cmd(["bash", script, *echo], env={**gpu_env, "CUDA_VISIBLE_DEVICES": "3"})
    assert r.returncode == 0 and r.stdout.strip() == "[3]"

    bindir = Path(gpu_env["PATH"].split(":")[0])
    write_stub(bindir / "nvidia-smi", "exit 9\n")  # no driver
    write_stub(bindir / "python", "exit 0\n")  # torch.cuda.device_count() == 0
    r = run_cmd(["bash", script, *echo], env=gpu_env)
    assert r.returncode == 0 and r.stdout.strip() == "[]"
    assert "no GPU visible" in r.stderr
