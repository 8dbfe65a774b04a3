"""The `ray job submit` path for real: the session's local Ray head (conftest: `ray start --head`,
token authentication on), a submitted sweep and a submitted catalog job."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from conftest import REPO, SAMPLES, submit_job
from stylegrid.orchestrator.results.rows import read_results

pytestmark = pytest.mark.slow


# A site hook that takes the editable install of stylegrid out of an interpreter (what a node
# where stylegrid is not installed is like): the job sees only the code it was submitted with.
NOT_INSTALLED = """import sys
sys.meta_path[:] = [f for f in sys.meta_path if "__editable__" not in getattr(f, "__module__", "")]
sys.path_hooks[:] = [h for h in sys.path_hooks if "__editable__" not in getattr(h, "__module__", "")]
"""


def test_ray_job_submit_runs_a_sweep(ray_head, tmp_path):
    """With ``--working-dir`` the job runs the submitted code (``python -m stylegrid``), on
    a node where stylegrid is not installed."""
    address, env = ray_head.dashboard, ray_head.env
    hide = tmp_path / "not_installed"
    hide.mkdir()
    (hide / "sitecustomize.py").write_text(NOT_INSTALLED)
    bare = subprocess.run(["python", "-c", "import stylegrid"], env={**env, "PYTHONPATH": str(hide)},
                          cwd=tmp_path, capture_output=True, text=True)  # fmt: skip
    assert "No module named 'stylegrid'" in bare.stderr, bare.stderr  # the hook does hide it
    spec = tmp_path / "submitted.yaml"
    contents = [str(SAMPLES / "content" / "tubingen.jpg"), str(SAMPLES / "content" / "chelsea.jpg")]
    spec.write_text(
        f"name: submitted\ncontent: {json.dumps(contents)}\n"
        f"style: [{json.dumps(str(SAMPLES / 'style' / 'the_scream.jpg'))}]\n"
        "algorithms: [{name: gatys}]\nsize: 32\nstyle_size: 64\nsteps: 3\nresources: {num_cpus: 1}\n"
    )
    out = tmp_path / "out"
    runtime_env = json.dumps({"env_vars": {"PYTHONPATH": str(hide)}})
    submit = ["ray", "job", "submit", "--address", address, "--working-dir", str(REPO),
              "--runtime-env-json", runtime_env, "--",
              "python", "-m", "stylegrid", "sweep", str(spec), "--output", str(out), "--quiet"]  # fmt: skip

    # token authentication is on: a client without RAY_AUTH_MODE=token is refused
    no_token = {k: v for k, v in env.items() if k != "RAY_AUTH_MODE"}
    refused = subprocess.run(submit, env=no_token, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert refused.returncode != 0
    assert "token authentication" in (refused.stdout + refused.stderr).lower()

    proc = submit_job(submit, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "succeeded" in proc.stdout + proc.stderr and "2 ok, 0 failed" in proc.stdout

    rows = read_results(out).to_pandas()
    assert sorted(rows.status) == ["ok", "ok"] and all(rows.mlflow_run_id != "")
    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("submitted")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 3  # the sweep's parent run and one child run per job
    assert {r.info.run_id for r in runs} >= set(rows.mlflow_run_id)


@pytest.mark.long
@pytest.mark.xdist_group("ray_catalog")  # catalogs on the shared head run one at a time (./run test)
def test_ray_job_submit_runs_a_catalog_job(ray_head, tmp_path):
    from stylegrid.orchestrator.catalog.manifest import read_manifest

    address, env = ray_head.dashboard, ray_head.env
    photos = tmp_path / "photos"
    for sub, name in (("a", "tubingen.jpg"), ("b", "chelsea.jpg"), ("c", "tubingen.jpg")):
        (photos / sub).mkdir(parents=True)
        shutil.copy(SAMPLES / "content" / name, photos / sub / name)
    (photos / "c" / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "styled"
    submit = ["ray", "job", "submit", "--address", address, "--working-dir", str(REPO), "--",
              "python", "-m", "stylegrid", "stylize-catalog", "--input", str(photos),
              "--style", str(SAMPLES / "style" / "the_scream.jpg"), "--out", str(out), "--size", "64",
              "--quiet"]  # fmt: skip
    proc = submit_job(submit, env)
    # one image failed: the entrypoint exits 3 (README, exit statuses), so Ray reports the job failed
    both = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "3 ok, 1 failed" in proc.stdout, both[-3000:]
    assert "exit code 3" in both, both[-3000:]
    rows = read_manifest(out)
    assert sorted(rows.status) == ["error", "ok", "ok", "ok"]
    assert rows.loc[rows.status == "error", "error"].item().startswith("not an image")
    assert rows.output.dropna().nunique() == 3  # the two tubingen.jpg are kept apart

    # the same catalog in this process (engine local, what a laptop runs): the same rows, and
    # the same pictures within rounding (one torch thread in each actor there, two here)
    import numpy as np
    from PIL import Image
    from stylegrid.orchestrator.catalog.driver import stylize_catalog
    from stylegrid.orchestrator.specs.catalog import CatalogSpec

    local = tmp_path / "local"
    spec = CatalogSpec(input=str(photos), style=[str(SAMPLES / "style" / "the_scream.jpg")], out=str(local),
                       size=64, engine="local")  # fmt: skip
    summary = stylize_catalog(spec, quiet=True)
    assert (summary.ok, summary.failed, summary.plan.engine) == (3, 1, "local")
    mine = read_manifest(local).set_index("source")
    theirs = rows.set_index("source")
    columns = ["status", "error", "in_width", "in_height", "out_width", "out_height"]
    assert mine[columns].sort_index().equals(theirs[columns].sort_index())
    for source, row in theirs[theirs.status == "ok"].iterrows():
        a = np.asarray(Image.open(row.output), dtype=int)
        b = np.asarray(Image.open(mine.loc[source, "output"]), dtype=int)
        assert np.abs(a - b).max() <= 2, source
