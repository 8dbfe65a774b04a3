"""Bulk catalog stylization: sources, names, the pool's size, refusals, and the command end to end on
a real local Ray (bad files, resume after a kill, CSV manifests)."""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from conftest import BAD, EMBEDDED_ENV, REPO, SAMPLES, cli_in_process
from PIL import Image
from stylegrid.orchestrator.catalog.driver import check_algorithm
from stylegrid.orchestrator.catalog.manifest import ManifestWriter, list_sources, read_manifest
from stylegrid.orchestrator.catalog.pipeline import (
    MANIFEST_COLUMNS,
    CatalogError,
    output_path,
)  # fmt: skip
from stylegrid.orchestrator.specs.catalog import CatalogSpec

STARRY = SAMPLES / "style" / "starry_night.jpg"
SCREAM = SAMPLES / "style" / "the_scream.jpg"
BAD_FILES = {  # the shared bad inputs a catalog meets, and what becomes of each
    "empty.jpg": "empty file",
    "truncated.jpg": "truncated or corrupt",
    "not_an_image.jpg": "not an image",
    "huge_dimensions.png": "decompression bomb refused",
    "grayscale.png": None,
    "rgba.png": None,
}


def make_catalog(folder: Path, n_good: int, seed: int = 0, sizes=(40, 120)) -> dict[str, tuple[int, int]]:
    """``n_good`` small JPEG/PNG crops of the sample photos in nested folders (two of them share a
    base name), plus the shared bad files; returns {path: (width, height)} of every file."""
    rng = random.Random(seed)
    photos = [Image.open(p).convert("RGB") for p in sorted((SAMPLES / "content").glob("*.jpg"))]
    made = {}
    for i in range(n_good):
        img = photos[i % len(photos)]
        long_side = rng.randint(*sizes)
        f = long_side / max(img.size)
        small = img.resize((max(8, round(img.width * f)), max(8, round(img.height * f))))
        name = "same_name" if i < 2 else f"img{i:03d}"
        path = folder / f"part{i % 3}" / f"{name}.{'png' if i % 4 == 0 else 'jpg'}"
        path.parent.mkdir(parents=True, exist_ok=True)
        small.save(path)
        made[str(path)] = small.size
    for name in BAD_FILES:
        dest = folder / "bad" / name
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(BAD / name, dest)
        made[str(dest)] = (0, 0)
    return made


def stylegrid(*args, timeout: float = 600, embedded: bool = False) -> subprocess.CompletedProcess:
    """The CLI as a subprocess, joining the session's Ray head, or (``embedded``) starting its own."""
    env = {**(EMBEDDED_ENV if embedded else os.environ), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "stylegrid", *map(str, args)],
        capture_output=True, text=True, cwd=REPO, env=env, timeout=timeout,
    )  # fmt: skip


def expected_size(w: int, h: int, long_side: int) -> tuple[int, int]:
    from stylegrid.orchestrator.images import resize_to

    return resize_to(Image.new("RGB", (w, h)), long_side).size


# --- pure parts ------------------------------------------------------------------------------------


def test_the_manifest_takes_batches_of_only_bad_files_beside_good_ones(tmp_path):
    import pyarrow as pa

    def batch(status, output, width):  # what the actors return: untyped columns, nulls for bad files
        row = {c: None for c in MANIFEST_COLUMNS[:-1]}
        row.update(source="/a.jpg", style="/s.jpg", status=status, seconds=0.5, run_id="r",
                   output=output, out_width=width, in_width=width)  # fmt: skip
        return pa.table({k: pa.array([v]) for k, v in row.items()})

    writer = ManifestWriter(tmp_path, "t")
    writer.add(batch("error", None, None))  # all-null output and sizes
    writer.add(batch("ok", "/o.png", 64))
    writer.flush()
    rows = read_manifest(tmp_path, history=True)  # both attempts of the pair, in order
    assert list(rows.status) == ["error", "ok"] and list(rows.columns) == list(MANIFEST_COLUMNS)
    assert rows.out_width.iloc[1] == 64 and pd.isna(rows.output.iloc[0])

    # a part written before the manifest had its tiles column reads beside the new ones, with nulls
    import pyarrow.parquet as pq

    old = pq.read_table(next((tmp_path / "manifest").glob("part-*.parquet"))).drop_columns(["tiles"])
    pq.write_table(old, tmp_path / "manifest" / "part-0-000001.parquet")  # sorts first: written first
    writer = ManifestWriter(tmp_path, "u")
    writer.add(
        batch("ok", "/o.png", 64).set_column(
            MANIFEST_COLUMNS.index("tiles"), "tiles", pa.array(["2x3 tiles"])
        )
    )
    writer.flush()
    rows = read_manifest(tmp_path, history=True)
    assert list(rows.columns) == list(MANIFEST_COLUMNS) and len(rows) == 5
    assert rows.tiles.isna().sum() == 4 and rows.tiles.iloc[-1] == "2x3 tiles"


def test_output_names_are_stable_and_distinct_for_equal_base_names(tmp_path):
    a, b, c = (
        Path(output_path(str(tmp_path), source, style, fmt))
        for source, style, fmt in (
            ("/photos/2020/cat.jpg", "/styles/starry.jpg", "png"),
            ("/photos/2021/cat.jpg", "/styles/starry.jpg", "png"),
            ("/photos/2020/cat.jpg", "/other/starry.jpg", "jpeg"),
        )
    )
    assert str(a) == output_path(str(tmp_path), "/photos/2020/cat.jpg", "/styles/starry.jpg", "png")
    on_s3 = output_path(
        "s3://bucket/styled", "s3://bucket/photos/cat.jpg", "s3://bucket/art/starry.jpg", "png"
    )
    assert on_s3.startswith("s3://bucket/styled/images/starry-") and "/cat-" in on_s3
    assert a != b and a.name.startswith("cat-") and b.name.startswith("cat-")
    assert a.parent != c.parent and c.suffix == ".jpg" and a.suffix == ".png"
    assert a.parent.parent == tmp_path / "images"


def test_sources_by_uri_are_listed_through_the_store(tmp_path):
    # file:// is this disk's (Location.of); an object store's words are tested on S3 in test_storage.py
    made = make_catalog(tmp_path / "cat", 5)
    uri = (tmp_path / "cat").as_uri()
    assert sorted(list_sources(uri + "/")) == sorted(made)
    assert sorted(list_sources(uri + "/part0/*.png")) == sorted(
        p for p in made if "/part0/" in p and p.endswith(".png")
    )
    pd.DataFrame({"path": ["part0/same_name.png", "s3://bucket/elsewhere.jpg"]}).to_parquet(
        tmp_path / "m.parquet"
    )
    assert list_sources((tmp_path / "m.parquet").as_uri()) == [
        str(tmp_path / "part0" / "same_name.png"), "s3://bucket/elsewhere.jpg",
    ]  # fmt: skip
    for where, reason in (
        ("nowhere", "no such file or folder"),
        ("*.tiff", "as a pattern it matches no image file"),
    ):
        with pytest.raises(CatalogError, match=reason):
            list_sources(f"{uri}/{where}")
    with pytest.raises(CatalogError, match="expected a folder, a pattern or a .csv / .parquet manifest"):
        list_sources(f"{uri}/part0/same_name.png")


def test_sources_from_a_folder_a_glob_and_manifests(tmp_path):
    made = make_catalog(tmp_path / "cat", 5)
    in_folder = list_sources(str(tmp_path / "cat"))
    assert sorted(in_folder) == sorted(made) and len(set(in_folder)) == len(made)
    assert sorted(list_sources(str(tmp_path / "cat" / "part0" / "*.png"))) == sorted(
        p for p in made if "/part0/" in p and p.endswith(".png")
    )
    manifest = pd.DataFrame({"image": ["part0/same_name.png", str(tmp_path / "gone.jpg"), None]})
    manifest.to_csv(tmp_path / "cat" / "m.csv", index=False)
    listed = list_sources(str(tmp_path / "cat" / "m.csv"), "image")
    assert listed == [str(tmp_path / "cat" / "part0" / "same_name.png"), str(tmp_path / "gone.jpg")]
    manifest.to_parquet(tmp_path / "m.parquet")
    with pytest.raises(CatalogError, match=r"m.parquet: no 'path' column \(columns: image\)"):
        list_sources(str(tmp_path / "m.parquet"))
    with pytest.raises(CatalogError, match="no such file or folder"):
        list_sources(str(tmp_path / "nowhere"))
    with pytest.raises(CatalogError, match="as a pattern it matches no image file"):
        list_sources(str(tmp_path / "*.tiff"))
    (tmp_path / "m.txt").write_text("x")
    with pytest.raises(CatalogError, match="expected a folder, a pattern or a .csv / .parquet manifest"):
        list_sources(str(tmp_path / "m.txt"))


@pytest.mark.parametrize(
    "algorithm,params",
    [("gatys", {}), ("mrf", {}), ("histogram", {}), ("adain_optimize", {})],
)
def test_image_optimisation_is_refused_with_a_pointer_to_sweeps(algorithm, params):
    spec = CatalogSpec(input="x", style=["s.jpg"], out="o", algorithm=algorithm, params=params)
    with pytest.raises(CatalogError) as info:
        check_algorithm(spec)
    assert f"--algorithm {algorithm}: it optimises every image" in str(info.value)
    assert "stylegrid sweep" in str(info.value) and "adain" in str(info.value)


def test_unknown_algorithms_and_parameters_are_refused():
    with pytest.raises(CatalogError, match="--algorithm nope: unknown; available: adain"):
        check_algorithm(CatalogSpec(input="x", style=["s"], out="o", algorithm="nope"))
    with pytest.raises(CatalogError, match="--algorithm adain: .*no_such"):
        check_algorithm(CatalogSpec(input="x", style=["s"], out="o", params={"no_such": 1}))


# --- the command, end to end on a real local Ray --------------------------------------------------


@pytest.mark.slow
def test_a_catalog_with_bad_files_gives_one_row_per_image_and_resumes_to_nothing(tmp_path):
    """Three runs of one command: first with a file where the images folder should be (every
    image fails, exit 3, one line each), then with the folder writable (the good images written,
    the bad files failed, each with its reason), then again (only the bad files tried)."""
    made = make_catalog(tmp_path / "cat", 14)
    thin = tmp_path / "cat" / "bad" / "thin.png"
    Image.new("RGB", (2000, 16), (200, 100, 50)).save(thin)
    assert len(made) == 20
    out = tmp_path / "out"
    out.mkdir()
    (out / "images").write_text("a file where the images folder should be")
    # in the CLI's own process (--engine local, what a laptop runs): the rows are the same on
    # Ray Data, whose error rows the multi-node catalog test checks
    args = ("stylize-catalog", "--input", tmp_path / "cat", "--style", STARRY, "--out", out,
            "--size", 48, "--engine", "local", "--quiet")  # fmt: skip
    blocked = stylegrid(*args)
    assert blocked.returncode == 3, blocked.stderr[-3000:]
    assert "0 ok, 21 failed, 0 skipped" in blocked.stdout and "Traceback" not in blocked.stderr
    errors = dict(zip(read_manifest(out).source, read_manifest(out).error, strict=True))
    assert "needs a size of at least" in errors[str(thin)] and all("\n" not in e for e in errors.values())
    (out / "images").unlink()

    proc = stylegrid(*args)
    assert proc.returncode == 3, proc.stderr[-3000:]  # some images failed
    assert "16 ok, 5 failed, 0 skipped" in proc.stdout, proc.stdout
    assert "Traceback" not in proc.stderr

    rows = read_manifest(out)
    assert len(rows) == 21 and sorted(rows.source) == sorted([*made, str(thin)])
    assert set(rows["style"]) == {str(STARRY)}
    by_name = {Path(s).name: r for s, r in zip(rows.source, rows.itertuples(), strict=True)}
    for name, reason in BAD_FILES.items():
        row = by_name[name]
        if reason is None:
            assert row.status == "ok", row
        else:
            assert row.status == "error" and reason in row.error and pd.isna(row.output), row
    for row in rows[rows.status == "ok"].itertuples():
        w, h = made[row.source] if made[row.source] != (0, 0) else Image.open(row.source).size
        assert (row.in_width, row.in_height) == (w, h)
        assert (row.out_width, row.out_height) == expected_size(w, h, 48)
        with Image.open(row.output) as img:
            assert img.size == (row.out_width, row.out_height) and img.mode == "RGB"
        assert row.seconds > 0
    assert rows[rows.status == "ok"].output.nunique() == 16  # two same_name.* sources, two outputs
    assert len(list((out / "images").rglob("*.png"))) == 16

    again = stylegrid(*args)
    assert again.returncode == 3, again.stderr[-3000:]
    assert "0 ok, 5 failed, 16 skipped" in again.stdout  # the failed ones are tried again
    assert len(read_manifest(out)) == 21 and len(read_manifest(out, history=True)) == 21 + 21 + 5

    from mlflow.tracking import MlflowClient

    client = MlflowClient(f"sqlite:///{out / 'mlflow.db'}")
    exp = client.get_experiment_by_name("stylize-catalog")
    _, first, second = sorted(client.search_runs([exp.experiment_id]), key=lambda r: r.info.start_time)
    assert first.data.metrics["images_ok"] == 16 and first.data.metrics["images_failed"] == 5
    assert first.data.metrics["images_per_second"] > 0 and first.data.params["size"] == "48"
    assert first.info.status == "FINISHED" and second.data.params["skipped"] == "16"
    artifacts = [a.path for a in client.list_artifacts(first.info.run_id)]
    assert "contact_sheet.jpg" in artifacts


@pytest.mark.slow
@pytest.mark.long
def test_a_killed_run_resumes_and_writes_every_pair_exactly_once(tmp_path):
    made = make_catalog(tmp_path / "cat", 30, sizes=(150, 250))
    goods = [p for p, wh in made.items() if wh != (0, 0) or "gray" in p or "rgba" in p]
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "stylegrid", "stylize-catalog", "--input", str(tmp_path / "cat"),
           "--style", str(STARRY), "--style", str(SCREAM), "--out", str(out), "--size", "160",
           "--format", "jpeg", "--quiet"]  # fmt: skip
    # as on a laptop: no Ray cluster named, so the catalog runs in the CLI's process (the
    # manifest and the files written are the same on Ray Data)
    env = {**EMBEDDED_ENV, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, start_new_session=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            if len(read_manifest(out)) >= 10:  # the first parts are in: kill the whole job
                break
            time.sleep(0.2)
        assert proc.poll() is None, (
            "the run ended before it could be interrupted: " + proc.stderr.read().decode()[-3000:]
        )
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    before = read_manifest(out)
    total = 2 * len(made)
    assert 10 <= len(before) < total
    for f in (out / "images").rglob("*.jpg"):  # a file under its final name is whole
        with Image.open(f) as img:
            img.load()

    resumed = stylegrid(*cmd[3:], embedded=True)
    assert resumed.returncode == 3, resumed.stderr[-3000:]  # the bad files fail again
    assert f"{(before.status == 'ok').sum()} skipped" in resumed.stdout, resumed.stdout
    rows = read_manifest(out)
    history = read_manifest(out, history=True)
    assert len(rows) == total and not history[history.status == "ok"].duplicated(["source", "style"]).any()
    ok = rows[rows.status == "ok"]
    assert len(ok) == 2 * len(goods) and set(ok.source) == set(goods)
    assert not list(out.rglob(".*.tmp"))
    assert sorted(str(p) for p in (out / "images").rglob("*.jpg")) == sorted(ok.output)


@pytest.mark.slow
def test_a_csv_manifest_with_missing_paths(tmp_path):
    made = make_catalog(tmp_path / "cat", 3)
    good = sorted(p for p, wh in made.items() if wh != (0, 0))
    rows = [{"path": str(Path(p).relative_to(tmp_path)), "label": "x"} for p in good]
    rows += [{"path": "cat/missing.jpg", "label": "y"}, {"path": str(tmp_path / "cat"), "label": "z"}]
    pd.DataFrame(rows).to_csv(tmp_path / "manifest.csv", index=False)
    out = tmp_path / "out"
    spec = tmp_path / "catalog.yaml"
    spec.write_text(
        f"input: manifest.csv\nstyle: [{STARRY}]\nout: out\nsize: 32\nformat: jpeg\nengine: local\n"
    )
    proc = stylegrid("stylize-catalog", spec, "--quiet")
    assert proc.returncode == 3, proc.stderr[-3000:]
    assert "3 ok, 2 failed" in proc.stdout
    result = read_manifest(out).set_index("source")
    assert result.loc[str(tmp_path / "cat" / "missing.jpg"), "error"] == "no such file"
    assert result.loc[str(tmp_path / "cat"), "error"] == "is a folder, not an image file"
    assert all(result.loc[good, "status"] == "ok")


@pytest.mark.xdist_group("ray_catalog")  # catalogs on the shared head run one at a time (./run test)
def test_an_object_store_output_needs_a_tracking_store(tmp_path, monkeypatch):
    from stylegrid.orchestrator.catalog.driver import stylize_catalog
    from stylegrid.orchestrator.cli.parser import build_parser
    from stylegrid.orchestrator.cli.workflows import catalog_spec_from_args

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = CatalogSpec(input=str(tmp_path), style=[str(STARRY)], out="s3://bucket/styled")
    with pytest.raises(
        CatalogError, match="s3://bucket/styled: the MLflow store cannot live in an object store"
    ):
        stylize_catalog(spec)  # refused before anything is listed, read or written
    args = build_parser().parse_args(
        [
            "stylize-catalog",
            "--input",
            "s3://b/p/",
            "--style",
            str(STARRY),
            "--out",
            "s3://b/o",
            "--tracking-uri",
            "sqlite:///x.db",
        ]
    )
    assert catalog_spec_from_args(args).tracking_uri == "sqlite:///x.db"


def test_the_command_refuses_bad_options_in_one_line(tmp_path):
    cases = [
        (["--input", tmp_path, "--style", STARRY, "--out", tmp_path / "o", "--algorithm", "gatys"],
         "--algorithm gatys: it optimises every image"),
        (["--input", tmp_path / "none", "--style", STARRY, "--out", tmp_path / "o"], "no such file or folder"),
        (["--input", tmp_path, "--style", tmp_path / "s.jpg", "--out", tmp_path / "o"], "s.jpg: no such file"),
        (["--input", tmp_path, "--out", tmp_path / "o"], "give a catalog YAML file or --style"),
    ]  # fmt: skip
    for args, fragment in cases:
        proc = cli_in_process("stylize-catalog", *args)
        assert proc.returncode in (1, 2) and "Traceback" not in proc.stderr, proc.stderr
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and fragment in lines[0], proc.stderr


def test_the_engine_is_ray_where_a_cluster_is_named_and_this_process_otherwise(monkeypatch):
    import ray
    from stylegrid.orchestrator.catalog.driver import choose_engine
    from stylegrid.orchestrator.specs.catalog import CatalogSpec

    base = {"input": "x", "style": ["s.jpg"], "out": "o"}
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    assert choose_engine(CatalogSpec(**base)) == "local"  # a laptop: no Ray at all
    assert choose_engine(CatalogSpec(**base), {"address": "10.0.0.1:6379"}) == "ray"
    for field, value in (("actors", 2), ("actor_resources", {"gpu_node": 1}), ("num_gpus", 1)):
        assert choose_engine(CatalogSpec(**base, **{field: value})) == "ray", field  # Ray's scheduling
    assert choose_engine(CatalogSpec(**base, num_gpus=0)) == "local"  # the CPU, in this process
    assert choose_engine(CatalogSpec(**base, engine="ray")) == "ray"
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:6379")  # `ray job submit`, `ray start`
    assert choose_engine(CatalogSpec(**base)) == "ray"
    assert choose_engine(CatalogSpec(**base, engine="local")) == "local"
    monkeypatch.delenv("RAY_ADDRESS")
    monkeypatch.setattr(ray, "is_initialized", lambda: True)  # a Ray this process has joined
    assert choose_engine(CatalogSpec(**base)) == "ray"


def test_the_local_engine_stops_its_decoding_thread_when_the_model_fails(tmp_path, monkeypatch):
    import threading

    from stylegrid.orchestrator.catalog import local as catalog_local

    def broken(self, batch, styles):
        raise RuntimeError("the model failed")

    monkeypatch.setattr(catalog_local.CatalogStylizer, "__call__", broken)
    monkeypatch.setattr(catalog_local.CatalogStylizer, "__init__", lambda self, *a: None)
    make_catalog(tmp_path / "cat", 40)
    todo = [{"source": str(p), "todo": "0"} for p in sorted((tmp_path / "cat").rglob("*.jpg"))]
    spec = type("Spec", (), {"batch_size": None, "num_gpus": None, "format": "png", "quality": 92,
                             "style_size": 64, "size": 32})()  # fmt: skip
    _, batches = catalog_local.local_batches(spec, "adain", {}, [], str(tmp_path / "o"), todo, "r", {})
    with pytest.raises(RuntimeError, match="the model failed"):
        next(batches)
    batches.close()
    assert not [t for t in threading.enumerate() if t.name == "stylegrid-decode"]
