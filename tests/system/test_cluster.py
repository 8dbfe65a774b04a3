"""cluster.yaml is a valid Ray cluster-launcher file whose commands refer to real entrypoints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import jsonschema
import ray
import yaml
from conftest import REPO

CLUSTER = yaml.safe_load((REPO / "cluster.yaml").read_text())
TEXT = (REPO / "cluster.yaml").read_text()


def test_valid_against_rays_own_schema():
    schema = json.loads((Path(ray.autoscaler.__file__).parent / "ray-schema.json").read_text())
    jsonschema.validate(CLUSTER, schema)
    assert CLUSTER["provider"]["type"] == "aws"
    assert CLUSTER["head_node_type"] in CLUSTER["available_node_types"]


def test_gpu_worker_types_with_autoscaling_limits():
    workers = {k: v for k, v in CLUSTER["available_node_types"].items() if k != CLUSTER["head_node_type"]}
    assert workers
    for node in workers.values():
        assert node["resources"]["GPU"] >= 1
        assert 0 <= node["min_workers"] <= node["max_workers"] <= CLUSTER["max_workers"]


def test_every_key_is_commented():
    block_indent = None  # inside a folded (>-) command: its lines are shell, not keys
    for line in TEXT.splitlines():
        indent = len(line) - len(line.lstrip())
        if block_indent is not None and (indent > block_indent or not line.strip()):
            continue
        block_indent = indent if line.rstrip().endswith(">-") else None
        m = re.match(r"^(\s*)([A-Za-z_.\"~/][^:#]*):\s*(.*)$", line)
        if m and not line.strip().startswith("-") and not line.strip().startswith("#"):
            assert "#" in line or _next_is_block(line), f"uncommented key: {line}"


def _next_is_block(line: str) -> bool:
    # keys that open a block (a mapping or a list below) are explained in the block's own comments
    rest = line.split(":", 1)[1].strip()
    return rest in ("", ">-")


def test_installs_stylegrid_and_keeps_ports_private():
    assert CLUSTER["file_mounts"]["~/stylegrid"] == "."
    assert any("pip install" in c and "~/stylegrid" in c for c in CLUSTER["setup_commands"])
    head_start = " ".join(CLUSTER["head_start_ray_commands"])
    assert "RAY_AUTH_MODE=token" in head_start and "--dashboard-host=127.0.0.1" in head_start
    assert all("RAY_AUTH_MODE=token" in c for c in CLUSTER["worker_start_ray_commands"] if "ray start" in c)
    mlflow = " ".join(CLUSTER["head_setup_commands"])
    assert "mlflow server" in mlflow and "--host 127.0.0.1" in mlflow and "postgresql://" in mlflow
    assert "0.0.0.0" not in TEXT


def test_readme_cluster_commands_refer_to_real_entrypoints():
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Run on a cluster", 1)[1].split("\n## ", 1)[0]
    for spec in set(re.findall(r"experiments/[\w.-]+\.yaml", section)):
        assert (REPO / spec).is_file(), spec
    assert "ray up cluster.yaml" in section and "ray down cluster.yaml" in section
    assert "RAY_AUTH_MODE=token ray job submit" in section and "ray dashboard cluster.yaml" in section
    for sub in set(re.findall(r"python -m stylegrid (\w[\w-]*)", section)):
        proc = subprocess.run(
            [sys.executable, "-m", "stylegrid", sub, "--help"], cwd=REPO, capture_output=True
        )
        assert proc.returncode == 0, sub


def test_no_default_password_no_open_ssh_and_one_ray_version():
    assert "change-me" not in TEXT
    head = "\n".join(CLUSTER["head_setup_commands"])
    # the password is read from a file the user creates, and never put on a command line
    assert CLUSTER["file_mounts"]["~/.stylegrid/mlflow_db_password"] == "~/.stylegrid/mlflow_db_password"
    assert "test -s ~/.stylegrid/mlflow_db_password" in head
    assert "--backend-store-uri" not in head and "MLFLOW_BACKEND_STORE_URI=" in head
    assert "WITH PASSWORD '" not in head
    rules = CLUSTER["provider"]["security_group"]["IpPermissions"]
    assert [(r["FromPort"], r["ToPort"]) for r in rules] == [(22, 22)]
    assert all(ip["CidrIp"] != "0.0.0.0/0" for r in rules for ip in r["IpRanges"])
    # every node installs the one Ray version stylegrid pins, so a worker added later cannot differ
    pins = re.findall(r"ray\[default\]==([\w.]+)", " ".join(CLUSTER["setup_commands"]))
    pinned = re.findall(r'"ray\[default\]==([\w.]+)"', (REPO / "pyproject.toml").read_text())
    assert pins == pinned == [ray.__version__]
