"""Experiment specs: validation errors name the file and the field; expansion and stable ids."""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest
from conftest import SAMPLES
from stylegrid.orchestrator.specs.loading import SpecError, output_dir, output_location
from stylegrid.orchestrator.specs.sweep import load_spec
from stylegrid.orchestrator.sweep.driver import plan
from stylegrid.orchestrator.sweep.plan import expand, plan_jobs
from stylegrid.orchestrator.sweep.sink import image_path

TUBINGEN = SAMPLES / "content" / "tubingen.jpg"
CHELSEA = SAMPLES / "content" / "chelsea.jpg"
STARRY = SAMPLES / "style" / "starry_night.jpg"


def write_spec(tmp_path, body: str, name: str = "s.yaml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def base_spec(
    content=f"[{TUBINGEN}, {CHELSEA}]", style=f"[{STARRY}]", algorithms="[{name: gatys}]", extra=""
):
    return f"""
    name: t
    content: {content}
    style: {style}
    algorithms: {algorithms}
    {extra}
    """


def test_grid_expands_as_a_product(tmp_path):
    spec_path = write_spec(
        tmp_path,
        base_spec(
            algorithms="[{name: gatys, params: {tv_weight: 0.5}, grid: {style_weight: [1, 2, 3], content_weight: [1, 2]}}]",
            extra="seeds: [0, 1]",
        ),
    )
    expansion = plan_jobs(load_spec(spec_path), str(spec_path))
    jobs = expansion.jobs
    # 2 contents x 1 style x 3 x 2 grid points; the seeds fold: init=content never draws a number
    assert len(jobs) == 2 * 1 * 3 * 2 and expansion.folded_seeds == len(jobs)
    assert {j.seed for j in jobs} == {None} and all("seed" not in j.varied for j in jobs)
    assert {j.params["tv_weight"] for j in jobs} == {0.5}
    assert {(j.params["style_weight"], j.params["content_weight"]) for j in jobs} == {
        (s, c) for s in (1.0, 2.0, 3.0) for c in (1.0, 2.0)
    }
    assert len({j.job_id for j in jobs}) == len(jobs)
    assert all(j.params["steps"] == 160 for j in jobs)  # defaults are resolved into every job
    assert "learning_rate" not in jobs[0].params  # L-BFGS has no step size: it does not apply
    assert {j.variant for j in jobs if j.content == jobs[0].content} == {
        f"content_weight={c} style_weight={s}" for s in (1, 2, 3) for c in (1, 2)
    }


def test_seeds_multiply_only_the_jobs_that_use_them(tmp_path):
    spec_path = write_spec(
        tmp_path,
        base_spec(
            algorithms="[{name: gatys, grid: {init: [content, noise]}}, {name: adain}]",
            extra="seeds: [0, 1, 2]",
        ),
    )
    expansion = plan_jobs(load_spec(spec_path), str(spec_path))
    seeds = sorted(
        (j.algorithm, j.params.get("init"), j.seed) for j in expansion.jobs if j.content == str(TUBINGEN)
    )
    assert seeds == [
        ("adain", None, None),
        ("gatys", "content", None),
        *[("gatys", "noise", s) for s in (0, 1, 2)],
    ]
    assert expansion.folded_seeds == 2 * 2 * 2  # (gatys content, adain) x 2 contents x 2 extra seeds
    noisy = next(j for j in expansion.jobs if j.seed == 1)
    assert noisy.variant == "init=noise seed=1"
    text = plan(str(spec_path), str(tmp_path / "out"))
    assert "10 jobs (8 seed duplicates folded: the seed only matters with init=noise)" in text


def test_an_algorithm_can_take_only_some_of_the_style_images(tmp_path):
    scream = STARRY.parent / "the_scream.jpg"
    only = "[{name: gatys}, {name: johnson, styles: [the_scream]}, {name: adain, styles: ['*.jpg']}]"
    spec_path = write_spec(tmp_path, base_spec(style=f"[{STARRY}, {scream}]", algorithms=only))
    jobs = plan_jobs(load_spec(spec_path), str(spec_path)).jobs
    pairs = {(j.algorithm, Path(j.style).stem) for j in jobs}
    assert {p for p in pairs if p[0] == "johnson"} == {("johnson", "the_scream")}
    assert (
        len([j for j in jobs if j.algorithm == "gatys"])
        == len([j for j in jobs if j.algorithm == "adain"])
        == 4
    )
    bad = write_spec(
        tmp_path, base_spec(style=f"[{STARRY}]", algorithms="[{name: johnson, styles: [scream]}]")
    )
    with pytest.raises(
        SpecError,
        match=r"algorithms\[0\] \(johnson\) styles: 'scream' is none of the sweep's style images \(starry_night.jpg\)",
    ):
        plan_jobs(load_spec(bad), str(bad))


def test_unused_parameters_fold_identical_jobs(tmp_path):
    spec_path = write_spec(
        tmp_path, base_spec(algorithms="[{name: gatys, grid: {learning_rate: [0.01, 0.1]}}]")
    )
    expansion = plan_jobs(load_spec(spec_path), str(spec_path))
    assert len(expansion.jobs) == 2 and expansion.folded_duplicates == 2  # L-BFGS ignores learning_rate
    spec_path = write_spec(
        tmp_path,
        base_spec(
            algorithms="[{name: gatys, params: {optimizer: adam}, grid: {learning_rate: [0.01, 0.1]}}]"
        ),
        "adam.yaml",
    )
    assert len(expand(load_spec(spec_path), str(spec_path))) == 4


def test_ids_are_stable_and_follow_the_bytes_not_the_names(tmp_path):
    spec_path = write_spec(tmp_path, base_spec(extra="steps: 5"))
    a = [j.job_id for j in expand(load_spec(spec_path), str(spec_path))]
    b = [j.job_id for j in expand(load_spec(spec_path), str(spec_path))]
    assert a == b
    copy = tmp_path / "renamed.jpg"
    shutil.copy(TUBINGEN, copy)
    renamed = write_spec(tmp_path, base_spec(content=f"[{copy}, {CHELSEA}]", extra="steps: 5"), "r.yaml")
    assert [j.job_id for j in expand(load_spec(renamed), str(renamed))] == a
    changed = write_spec(tmp_path, base_spec(extra="steps: 6"), "c.yaml")
    assert not set(a) & {j.job_id for j in expand(load_spec(changed), str(changed))}


def test_folders_and_globs_relative_to_the_spec(tmp_path):
    (tmp_path / "imgs").mkdir()
    shutil.copy(TUBINGEN, tmp_path / "imgs" / "a.jpg")
    shutil.copy(CHELSEA, tmp_path / "imgs" / "b.png")  # the suffix is what counts, not the format
    (tmp_path / "imgs" / "notes.txt").write_text("not an image")
    spec_path = write_spec(tmp_path, base_spec(content="[imgs/]", style="['imgs/*.jpg']"))
    jobs = expand(load_spec(spec_path), str(spec_path))
    assert sorted({j.content.rsplit("/", 1)[1] for j in jobs}) == ["a.jpg", "b.png"]
    assert {j.style.rsplit("/", 1)[1] for j in jobs} == {"a.jpg"}


def test_file_parameters_are_relative_to_the_spec_like_the_images(tmp_path):
    (tmp_path / "nets").mkdir()
    (tmp_path / "nets" / "old.pth").write_bytes(b"not read by the plan")
    algorithms = "[{name: adain, params: {decoder: nets/old.pth}}, {name: adain}, {name: johnson, params: {model: 'models:/x/1'}}]"
    spec_path = write_spec(tmp_path, base_spec(algorithms=algorithms))
    jobs = expand(load_spec(spec_path), str(spec_path))
    assert {j.params.get("decoder") for j in jobs if j.algorithm == "adain"} == {
        str(tmp_path / "nets" / "old.pth"),
        "default",
    }
    assert {j.params["model"] for j in jobs if j.algorithm == "johnson"} == {"models:/x/1"}


@pytest.mark.parametrize(
    "body, fragments",
    [
        (
            base_spec(algorithms="[{name: cubism}]"),
            ["algorithms[0].name", "unknown algorithm 'cubism'", "available: adain, adain_optimize, gatys"],
        ),
        (
            base_spec(algorithms="[{name: gatys, params: {stepz: 3}}]"),
            ["algorithms[0].params", "unknown parameter 'stepz'", "steps"],
        ),
        (
            base_spec(algorithms="[{name: gatys, grid: {steps: [10, many]}}]"),
            ["algorithms[0]", "'steps'", "valid integer"],
        ),
        (
            base_spec(algorithms="[{name: gatys, grid: {style_weight: []}}]"),
            ["grid.style_weight", "empty list"],
        ),
        (base_spec(content="['nothing/*.jpg']"), ["content[0]", "matches no image file"]),
        (base_spec(style="[missing.jpg]"), ["style[0]", "no such file or folder"]),
        (base_spec(extra="size: big"), ["size", "valid integer"]),
        (base_spec(extra="colour: red"), ["colour", "unknown field"]),
        (base_spec(extra="resources: {num_gpus: -1}"), ["resources.num_gpus", "greater than or equal to 0"]),
        ("name: t\ncontent: [\n", ["not valid YAML"]),
        (base_spec(extra="size: 32\n    size: 64"), ["not valid YAML", "the key 'size' is given twice"]),
        (base_spec(algorithms="[{name: gatys, params: {steps: 2, steps: 3}}]"), ["'steps' is given twice"]),
        ("- a\n- b\n", ["expected a mapping"]),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path, body, fragments):
    spec_path = write_spec(tmp_path, body)
    with pytest.raises(SpecError) as info:
        expand(load_spec(spec_path), str(spec_path))
    msg = str(info.value)
    assert msg.startswith(str(spec_path))
    for f in fragments:
        assert f in msg


def test_yaml_is_read_with_the_safe_loader(tmp_path):
    spec_path = write_spec(tmp_path, "!!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError, match="not valid YAML"):
        load_spec(spec_path)


def test_output_location(tmp_path, monkeypatch):
    spec_path = write_spec(tmp_path, base_spec(extra="output: results/here"))
    assert output_dir(load_spec(spec_path), spec_path) == tmp_path / "results" / "here"
    assert output_dir(load_spec(spec_path), spec_path, str(tmp_path / "x")) == tmp_path / "x"
    monkeypatch.chdir(tmp_path)
    plain = write_spec(tmp_path, base_spec(), "p.yaml")
    assert output_dir(load_spec(plain), plain) == tmp_path / "runs" / "t"
    # the same rule where the output may be an object store's: one text form, a URI as written
    assert output_location(load_spec(spec_path), spec_path) == str(tmp_path / "results" / "here")
    assert output_location(load_spec(plain), plain, "s3://b/sweeps/t/") == "s3://b/sweeps/t"
    assert output_location(load_spec(plain), plain, "elsewhere") == str(tmp_path / "elsewhere")
    assert output_location(load_spec(plain), plain) == str(tmp_path / "runs" / "t")


def test_image_paths_stay_inside_the_output_whatever_the_names(tmp_path):
    odd = tmp_path / "..weird name; rm -rf $HOME..jpg"
    shutil.copy(TUBINGEN, odd)
    spec_path = write_spec(tmp_path, base_spec(content=f"['{odd}']"))
    out = tmp_path / "out"
    for job in expand(load_spec(spec_path), str(spec_path)):
        p = image_path(out, job)
        assert p.resolve().is_relative_to(out.resolve())
        assert "/" not in p.name and " " not in p.name and not p.name.startswith(".")


def test_image_names_say_what_the_picture_is(tmp_path):
    spec_path = write_spec(
        tmp_path,
        base_spec(
            algorithms="[{name: gatys, grid: {style_weight: [2.5, 5]}}, {name: mrf}]", extra="seeds: [0, 1]"
        ),
    )
    names = sorted(
        str(image_path(tmp_path, j).relative_to(tmp_path))
        for j in expand(load_spec(spec_path), str(spec_path))
    )
    assert [n.rsplit("__", 1)[0] for n in names] == [
        "images/gatys/chelsea__starry_night__style_weight-2.5",
        "images/gatys/chelsea__starry_night__style_weight-5",
        "images/gatys/tubingen__starry_night__style_weight-2.5",
        "images/gatys/tubingen__starry_night__style_weight-5",
        "images/mrf/chelsea__starry_night",
        "images/mrf/tubingen__starry_night",
    ]
    assert all(re.fullmatch(r"[0-9a-f]{8}\.png", n.rsplit("__", 1)[1]) for n in names)


def test_plan_prints_the_count_and_a_sample(tmp_path):
    spec_path = write_spec(tmp_path, base_spec(algorithms="[{name: gatys, grid: {style_weight: [1, 2]}}]"))
    text = plan(str(spec_path), str(tmp_path / "out"), sample=3)
    assert text.splitlines()[0].startswith(f"{spec_path}: 4 jobs, 0 already done, 4 to run")
    assert "gatys tubingen x starry_night style_weight=1" in text
    assert "... and 1 more" in text


def test_shipped_experiments_are_valid():
    from conftest import REPO, needs_absent_corpus
    from stylegrid.orchestrator.specs.train import load_train_spec
    from stylegrid.orchestrator.train.recipes import RECIPES

    for path in sorted((REPO / "experiments").glob("*.yaml")):
        if needs_absent_corpus(path):
            continue
        kind = next((k for k in RECIPES if path.name.startswith(f"train_{k.replace('-', '_')}")), None)
        if kind:  # training specs (stylegrid train-adain, train-johnson), not sweeps
            assert load_train_spec(path, RECIPES[kind].spec_type).num_workers >= 1
            continue
        if path.name == "catalog.yaml":  # stylegrid stylize-catalog
            from stylegrid.orchestrator.catalog.driver import check_algorithm
            from stylegrid.orchestrator.catalog.manifest import list_sources
            from stylegrid.orchestrator.specs.catalog import load_catalog_spec

            spec = load_catalog_spec(path)
            assert list_sources(spec.input) and all(Path(s).is_file() for s in spec.style)
            check_algorithm(spec)
            continue
        jobs = expand(load_spec(path), str(path))
        assert jobs, path


def test_a_memory_budget_of_auto_leaves_the_job_ids_as_they_were():
    # memory_budget came after results existed: at auto (what was done before) it is left out
    # of the id, so existing sweeps do not run again; any other value makes new jobs
    from stylegrid.orchestrator.sweep.jobs import make_job_id

    def job_id(**params):
        return make_job_id("c" * 64, "s" * 64, "gatys", {"steps": 10, **params}, None, 64, 64)

    assert job_id(memory_budget="auto") == job_id()
    assert job_id(memory_budget="2GB") != job_id()


def test_a_spec_of_regions_only_needs_no_grid_and_half_a_grid_is_refused(tmp_path):
    regions = f"""
    regions:
      - name: sky
        content: {TUBINGEN}
        mask: {SAMPLES.parent / "experiments" / "masks" / "tubingen_labels.png"}
        styles: {{"#ff0000": {STARRY}, "#0000ff": none, "#000000": none}}
    """
    only = write_spec(
        tmp_path, "name: r\nalgorithms: [{name: gatys}, {name: johnson}]\n" + textwrap.dedent(regions)
    )
    jobs = expand(load_spec(only), str(only))
    assert [(j.algorithm, j.variant) for j in jobs] == [
        ("gatys", "regions=sky")
    ]  # johnson has no spatial control
    half = write_spec(
        tmp_path, f"name: r\nstyle: [{STARRY}]\nalgorithms: [{{name: gatys}}]\n" + textwrap.dedent(regions)
    )
    with pytest.raises(
        SpecError, match=r"s.yaml: content: empty while style is not: give both .* or neither"
    ):
        load_spec(half)
    none = write_spec(tmp_path, "name: r\nalgorithms: [{name: gatys}]\n")
    with pytest.raises(SpecError, match=r"s.yaml: content: give at least one image \(or regions"):
        load_spec(none)
