"""Shared fixtures, and one real Ray head for the whole session.

Starting an embedded Ray costs every sweep, catalog and training run several seconds here (and
more under load), and the suite runs dozens of them, in process and through the CLI. So the
session starts one head with ``ray start --head`` (on loopback, token authentication on, as Ray
2.60 does by default) before the tests are collected, and exports ``RAY_ADDRESS`` (and
``RAY_AUTH_MODE``): every ``ray.init()`` the code under test makes, in this process or in a CLI
subprocess, joins that head the way it joins a cluster under ``ray job submit``; the job
submission tests submit to its dashboard. Tests of the embedded path (``ray.init()`` with no
cluster, what ``./run demo`` does) take ``EMBEDDED_ENV`` (an environment without the address).
``STYLEGRID_TEST_RAY=embedded`` runs the whole suite the old way, each run starting its own Ray.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "samples"
BAD = Path(__file__).resolve().parent / "data" / "bad"
CORPUS = REPO.parent / "shared" / "data" / "train"  # the training corpus, beside the checkout


def needs_absent_corpus(spec: Path) -> bool:
    """A shipped spec that names the training corpus where this checkout has none beside it
    (a clone elsewhere): its images cannot be resolved here, so its checks are skipped."""
    return not CORPUS.is_dir() and "shared/data/train" in spec.read_text()


RAY_ENV_KEYS = ("RAY_ADDRESS", "RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH")


@dataclass
class RayHead:
    address: str  # the GCS address ray.init() joins
    dashboard: str  # the job-submission address
    temp_dir: str
    env: dict  # an environment whose `ray` commands reach this head
    marker: str = ""  # SESSION_MARKER's value in the environment of every process of this head


SESSION_MARKER = "STYLEGRID_TEST_RAY_SESSION"


def kill_marked(marker: str, timeout: float = 5) -> None:
    """Stop every process whose environment holds ``SESSION_MARKER=marker``: the processes of a
    Ray that a test started (its GCS, raylets, agents, workers, submitted jobs all inherit it),
    and no other Ray on the machine (``ray stop`` would stop them all, a user's own included)."""
    import psutil

    want = f"{SESSION_MARKER}={marker}".encode()
    procs = {}
    for proc in psutil.process_iter():
        try:
            with open(f"/proc/{proc.pid}/environ", "rb") as f:
                if want not in f.read().split(b"\0"):
                    continue
            # with their children: the raylet's agents and workers retitle themselves (ray::...),
            # which can overwrite the environment /proc shows
            for p in (proc, *proc.children(recursive=True)):
                procs[p.pid] = p
        except (OSError, psutil.Error):
            continue
    procs = list(procs.values())
    for proc in procs:
        try:
            proc.terminate()
        except psutil.Error:
            pass
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    for proc in alive:
        try:
            proc.kill()
        except psutil.Error:
            pass
    psutil.wait_procs(alive, timeout=timeout)


HEAD: RayHead | None = None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def node_ports() -> list[str]:
    """``ray start`` options that give a node's agents free ports of their own: with Ray's
    fixed defaults (52365 for the dashboard agent) a second node on the machine, or another
    Ray, leaves this one without a job agent ("No available agent to submit job")."""
    return [
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


def start_head() -> RayHead:
    """`ray start --head` on loopback with 2 CPUs; a port taken between free_port() and Ray's
    bind fails the start, so it is tried twice with new ports."""
    temp_dir = tempfile.mkdtemp(prefix="rt", dir="/tmp")  # short: Ray's socket paths have a length limit
    # the session's own token (`ray start` does not create one, and a fresh machine has no
    # ~/.ray/auth_token; the user's own token is left alone)
    token = Path(temp_dir) / "auth_token"
    token.write_text(secrets.token_hex(32))
    token.chmod(0o600)
    bin_dir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}",
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        SESSION_MARKER: secrets.token_hex(8),
    }
    env.pop("RAY_ADDRESS", None)
    failures = []
    for _ in range(2):
        port, dashboard = free_port(), free_port()
        cmd = [
            "ray", "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
            f"--dashboard-port={dashboard}", "--dashboard-host=127.0.0.1",
            f"--ray-client-server-port={free_port()}", "--num-cpus=2", f"--temp-dir={temp_dir}",
            "--disable-usage-stats", *node_ports(),
        ]  # fmt: skip
        proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        if proc.returncode == 0:
            return RayHead(
                f"127.0.0.1:{port}", f"http://127.0.0.1:{dashboard}", temp_dir, env, env[SESSION_MARKER]
            )
        failures.append(proc.stdout[-2000:] + proc.stderr[-2000:])
        kill_marked(env[SESSION_MARKER])
    raise RuntimeError("ray start --head failed twice:\n" + "\n---\n".join(failures))


def stop_head(head: RayHead) -> None:
    kill_marked(head.marker)
    shutil.rmtree(head.temp_dir, ignore_errors=True)


DASHBOARD_ENV = "STYLEGRID_TEST_RAY_DASHBOARD"
OWNER = False  # whether this process started the head (pytest-xdist workers use their controller's)


def pytest_configure(config):
    global HEAD, OWNER
    check_loadgroup(config)
    if hasattr(config, "workerinput"):
        torch.set_num_threads(1)  # two test processes (xdist) on two cores: one torch thread each
    if os.environ.get("STYLEGRID_TEST_RAY") == "embedded":
        return
    if hasattr(config, "workerinput"):  # an xdist worker: the controller's head, from the environment
        if os.environ.get(DASHBOARD_ENV):
            env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"}
            HEAD = RayHead(os.environ["RAY_ADDRESS"], os.environ[DASHBOARD_ENV], "", env)
        return
    HEAD, OWNER = start_head(), True
    os.environ["RAY_ADDRESS"] = HEAD.address
    os.environ["RAY_AUTH_MODE"] = "token"
    os.environ["RAY_AUTH_TOKEN_PATH"] = HEAD.env["RAY_AUTH_TOKEN_PATH"]
    os.environ[DASHBOARD_ENV] = HEAD.dashboard


LOADGROUP_BROKEN = "pytest-xdist's --dist loadgroup does not group tests on pytest {} (9.2 made node ids read-only; xdist 3.8 renames them to group them): install the versions pyproject.toml names"


def check_loadgroup(config) -> None:
    """Under ``--dist loadgroup`` xdist renames each grouped test ``<id>@<group>`` and sends a group
    to one process. Where the rename does not take (pytest 9.2 with xdist 3.8) the ray_catalog
    tests would run side by side and starve each other: refuse to run, in the controller by
    version (its message reaches the user) and in the workers by what they see."""
    if config.getoption("dist", None) == "loadgroup":
        from importlib.metadata import version

        xdist = tuple(int(x) for x in version("pytest-xdist").split(".")[:2])
        if pytest.version_tuple[:2] >= (9, 2) and xdist <= (3, 8):
            raise pytest.UsageError(LOADGROUP_BROKEN.format(pytest.__version__))


# The longest tests (a minute or more each here), started first so that the two test processes
# finish together instead of one of them running a long test alone at the end (by file name:
# test files have unique names, whichever folder they are in).
LONGEST_FIRST = (
    "test_multinode.py::",  # the long checks (./run checks) first
    "test_johnson.py::test_train_johnson",
    "test_faults.py::test_random_worker_kills",
    "test_tiling.py::test_image_optimisation_in_tiles",
    "test_reliability_services.py::test_a_disk_that_fills",
    "test_reliability_services.py::test_a_tracking_server_lost_mid_sweep",
    "test_lost_cluster.py::test_a_ray_cluster_lost",
    "test_catalog.py::test_a_killed_run",
    "test_wct.py::test_train_wct",
    "test_scripts.py::test_gpu_check_smoke",
    "test_scripts.py::test_catalog_throughput_smoke",  # then the suite's longest (30-60 s)
    "test_video.py::test_a_clip_is_stylized",
    "test_scripts.py::test_sweep_overhead_smoke",
    "test_scripts.py::test_early_stopping_smoke",
    "test_sweep.py::test_early_stopping",
    "test_sweep.py::test_sweep_records_failures",
    "test_object_storage.py::test_a_sweep_into_s3",
    "test_ray_job_submit.py::test_ray_job_submit_runs_a_sweep",
    "test_scripts.py::test_results_scale_smoke",
    "test_catalog.py::test_a_catalog_with_bad_files",
    "test_mlflow_ui.py::",
    "test_faults.py::test_sigterm_stops_like_ctrl_c",
)


def _longest_first(item) -> int:
    return next(
        (i for i, prefix in enumerate(LONGEST_FIRST) if item.nodeid.rsplit("/", 1)[-1].startswith(prefix)),
        len(LONGEST_FIRST),
    )


def pytest_addoption(parser):
    parser.addoption(
        "--long",
        action="store_true",
        help="also run the tests marked long (system checks of a minute or more: `./run checks`)",
    )


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    if getattr(config.option, "loadgroup", False):  # an xdist worker under --dist loadgroup
        if any(i.get_closest_marker("xdist_group") and "@" not in i.nodeid for i in items):
            raise pytest.UsageError(LOADGROUP_BROKEN.format(pytest.__version__))
    if not config.getoption("long"):  # `./run test`: the suite within its ten minutes
        long = [i for i in items if i.get_closest_marker("long")]
        if long:
            config.hook.pytest_deselected(items=long)
            items[:] = [i for i in items if not i.get_closest_marker("long")]
    items.sort(key=_longest_first)  # stable: the rest keep their order


def pytest_unconfigure(config):
    import ray

    if ray.is_initialized():  # this process's own connection first, so that it does not report the stop
        ray.shutdown()
    if HEAD is not None and OWNER:
        stop_head(HEAD)


EMBEDDED_ENV = {
    k: v for k, v in os.environ.items() if k not in RAY_ENV_KEYS
}  # taken at import: before the head


@pytest.fixture(scope="session")
def ray_head() -> RayHead:
    """The session's Ray head (a test of `ray job submit` needs one; skipped when the suite runs
    with STYLEGRID_TEST_RAY=embedded)."""
    if HEAD is None:
        pytest.skip("STYLEGRID_TEST_RAY=embedded: no shared Ray head")
    return HEAD


@pytest.fixture(scope="session")
def tubingen_64() -> torch.Tensor:
    from stylegrid.orchestrator.images import read_image, resize_to, to_tensor

    return to_tensor(resize_to(read_image(SAMPLES / "content" / "tubingen.jpg"), 64))


@pytest.fixture(scope="session")
def starry_128() -> torch.Tensor:
    from stylegrid.orchestrator.images import load_image

    return load_image(SAMPLES / "style" / "starry_night.jpg", max_side=128)


EVERY_ALGORITHM_STEPS = 3


@pytest.fixture(scope="session")
def every_algorithm_sweep(tmp_path_factory):
    """One small sweep of every registered algorithm (gatys at two style weights, two seeds that
    fold, snapshots every 2 steps) run once for the session: its output folder and summary. Its
    rows, MLflow store and report are checked by test_sweep.py and test_report.py."""
    import json

    from stylegrid.algorithms import ALGORITHMS
    from stylegrid.orchestrator.sweep.driver import run_sweep

    folder = tmp_path_factory.mktemp("every")
    algorithms = [{"name": "gatys", "grid": {"style_weight": [2.5, 5.0]}}]
    algorithms += [{"name": n} for n in sorted(ALGORITHMS) if n != "gatys"]
    spec = folder / "every.yaml"
    # 64 px: at 32 px a landscape photo leaves MRF a 2x4 relu4_1 map, smaller than its patches
    spec.write_text(
        json.dumps(
            {
                "name": "every",
                "content": [str(SAMPLES / "content" / "chelsea.jpg")],
                "style": [str(SAMPLES / "style" / "starry_night.jpg")],
                "algorithms": algorithms,
                "seeds": [0, 1],
                "size": 64,
                "style_size": 64,
                "steps": EVERY_ALGORITHM_STEPS,
                "snapshot_every": 2,
                "resources": {"num_cpus": 1},
            }
        )
    )
    summary = run_sweep(str(spec), output=str(folder / "out"), quiet=True, ray_init_kwargs=own_ray())
    return folder / "out", summary


def own_ray() -> dict:
    """``ray_init_kwargs`` for an in-process run: none with the shared head (ray.init joins it),
    two CPUs for an embedded Ray."""
    return {} if HEAD is not None else {"num_cpus": 2}


def ray_workers(root: int, title: str = "ray::JobRunner") -> list:
    """The processes under ``root``'s process tree whose title starts with ``title``: the Ray
    workers of an embedded Ray that process started, never another test's (a test that kills or
    counts workers runs its driver embedded, so that it can run beside the others)."""
    import psutil

    try:
        tree = psutil.Process(root).children(recursive=True)
    except psutil.Error:
        return []
    found = []
    for p in tree:
        try:
            if " ".join(p.cmdline()).startswith(title):
                found.append(p)
        except psutil.Error:
            pass
    return found


def cli_in_process(*args, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """``stylegrid ARGS`` run by its entry point in this process, its output captured, as a
    ``CompletedProcess``: what a test of a message or a small run needs, without the seconds a new
    Python takes to import torch, MLflow and pandas (the tests that are about the process itself,
    the installed script, signals, ``ray job submit``, keep a real one)."""
    import contextlib
    import io

    from stylegrid.orchestrator.cli.main import main

    out, err = io.StringIO(), io.StringIO()
    before = os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main([str(a) for a in args])
            except SystemExit as exc:  # argparse's usage errors and --help
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        os.chdir(before)
    return subprocess.CompletedProcess(["stylegrid", *map(str, args)], code, out.getvalue(), err.getvalue())


SUBMIT_WAIT_S = 600  # on a busy 2-core machine the head's job agent took minutes to accept jobs


def submit_job(submit: list[str], env: dict) -> subprocess.CompletedProcess:
    """``ray job submit ...``, polling (bounded) until the head's job agent accepts jobs: right
    after ``ray start``, and much longer under load, the head answers "No available agent"."""
    import time

    deadline = time.monotonic() + SUBMIT_WAIT_S
    while True:
        proc = subprocess.run(submit, env=env, cwd=REPO, capture_output=True, text=True, timeout=900)
        if "No available agent" not in proc.stdout + proc.stderr or time.monotonic() > deadline:
            return proc
        time.sleep(5)


# --- a local S3 endpoint ---------------------------------------------------------------------------

BUCKET = "stylegrid"
BIN = Path(sys.executable).parent


@dataclass
class S3:
    endpoint: str
    env: dict  # AWS_* variables that point pyarrow (and boto) at it
    proc: subprocess.Popen

    def fs(self):
        import pyarrow.fs as pafs

        return pafs.S3FileSystem(
            access_key="testing", secret_key="testing", region="us-east-1",
            endpoint_override=self.endpoint, allow_bucket_creation=True,
        )  # fmt: skip


@pytest.fixture(scope="module")
def s3():
    """moto's S3 server on a free loopback port, with an empty bucket."""
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(endpoint, timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                raise RuntimeError("moto_server did not start") from None
            time.sleep(0.3)
    env = {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }
    store = S3(endpoint, env, proc)
    store.fs().create_dir(BUCKET)
    yield store
    proc.terminate()
    proc.wait(timeout=30)
