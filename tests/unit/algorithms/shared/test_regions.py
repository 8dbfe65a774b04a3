"""Spatial control: a style (or none) per region of the photo, given as a label image."""

from __future__ import annotations

import pytest
import torch
from conftest import SAMPLES
from helpers import assert_one_line, cli, stylegrid
from PIL import Image, ImageDraw
from stylegrid.algorithms import get_algorithm
from stylegrid.algorithms.shared.losses import gram_matrix
from stylegrid.algorithms.shared.regions import Region, RegionTerms, label_masks, positions, select
from stylegrid.orchestrator.images import load_image

CONTENT = SAMPLES / "content" / "tubingen.jpg"


def test_label_masks_take_the_nearest_colour_and_refuse_an_unnamed_one():
    labels = torch.zeros(1, 3, 4, 6)
    labels[0, 0, :, :3] = 250 / 255  # a slightly-off red (a brush, JPEG): still red
    labels[0, 2, :, 3:] = 1.0
    red, blue = label_masks(labels, [(255, 0, 0), (0, 0, 255)])
    assert red[0, 0, :, :3].eq(1).all() and red[0, 0, :, 3:].eq(0).all()
    assert torch.equal(red + blue, torch.ones_like(red))
    labels[0, 1, :2, 3:] = 1.0  # a quarter of the pixels cyan: named by no region
    with pytest.raises(ValueError, match="25% of its pixels.*#00ffff"):
        label_masks(labels, [(255, 0, 0), (0, 0, 255)])


def test_a_region_sees_its_own_positions_and_one_region_over_everything_is_the_plain_term():
    features = torch.randn(1, 5, 4, 6)
    mask = torch.zeros(1, 1, 8, 12)
    mask[..., :, :6] = 1  # the left half, at twice the features' size
    index = positions(mask, (4, 6))
    assert index.tolist() == [r * 6 + c for r in range(4) for c in range(3)]
    left = features[..., :3].reshape(1, 5, 12, 1)
    assert torch.allclose(gram_matrix(select(features, index)), gram_matrix(left))
    tiny = torch.zeros(1, 1, 8, 12)
    tiny[..., 0, 11] = 1  # smaller than a feature cell: its strongest position is kept
    assert positions(tiny, (4, 6)).tolist() == [5]

    def term(feats):
        return {"style.gram.relu1_1": gram_matrix(feats["relu1_1"]).sum()}

    term.layers = ("relu1_1",)
    whole = RegionTerms([term], [torch.ones(1, 1, 8, 12)], [1.0])
    assert torch.allclose(
        whole({"relu1_1": features})["style.gram.relu1_1"], term({"relu1_1": features})["style.gram.relu1_1"]
    )


def test_one_region_over_the_whole_photo_is_the_plain_algorithm():
    content = load_image(CONTENT, max_side=32)
    style = tinted(0)
    for name in ("gatys", "adain_optimize"):
        algorithm = get_algorithm(name)
        params = algorithm.params_type(steps=3)
        plain = algorithm.stylize(content, [style], params)
        whole = algorithm.stylize(content, [style], params, regions=[Region(torch.ones(1, 1, 24, 32), 0)])
        assert torch.allclose(plain.image, whole.image, atol=1e-4), name
        for term, value in plain.final_losses.items():
            assert whole.final_losses[term] == pytest.approx(value, rel=1e-4, abs=1e-7), (name, term)
    # AdaIN: the region's own statistics are the whole photo's, so the target and image are adain's
    adain = get_algorithm("adain")
    exact = adain.params_type(precision="fp32")  # bf16 (auto on CPUs that have it) rounds the two paths apart
    plain = adain.stylize(content, [style], exact)
    whole = adain.stylize(content, [style], exact, regions=[Region(torch.ones(1, 1, 24, 32), 0)])
    assert torch.allclose(plain.image, whole.image, atol=1e-4)
    assert whole.final_losses.keys() == plain.final_losses.keys()


def halves(content: torch.Tensor) -> tuple[torch.Tensor, slice, slice]:
    w = content.shape[-1]
    left = torch.zeros(1, 1, *content.shape[-2:])
    left[..., : w // 2] = 1
    return left, slice(0, w // 2), slice(w // 2, w)


def tinted(channel: int) -> torch.Tensor:
    """A noisy texture of one dominant colour (0 red, 2 blue)."""
    image = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(channel)) * 0.3
    image[:, channel] += 0.7
    return image


def red_minus_blue(image: torch.Tensor, cols: slice) -> float:
    return float((image[:, 0, :, cols] - image[:, 2, :, cols]).mean())


@pytest.mark.parametrize(
    ("name", "settings"),
    [
        ("gatys", {"style_weight": 10.0}),
        ("histogram", {}),
        ("adain_optimize", {}),
        ("wct", {"alpha": 1.0}),
        ("adain", {"alpha": 1.0}),
    ],
)
def test_each_region_takes_its_own_style_and_a_region_without_one_stays_the_photo(name, settings):
    algorithm = get_algorithm(name)
    content = load_image(CONTENT, max_side=48)
    left, lcols, rcols = halves(content)
    steps = {"steps": 20} if algorithm.kind == "optimization" else {}  # wct, adain: one pass
    params = algorithm.params_type(**steps, **settings)
    red, blue = tinted(0), tinted(2)

    two = algorithm.stylize(
        content, [red, blue], params, regions=[Region(left, 0), Region(1 - left, 1)]
    ).image
    assert red_minus_blue(two, lcols) > red_minus_blue(content, lcols) + 0.03  # redder on the left
    assert red_minus_blue(two, rcols) < red_minus_blue(content, rcols) - 0.03  # bluer on the right

    one = algorithm.stylize(content, [red], params, regions=[Region(left, 0), Region(1 - left, None)]).image
    # a feed-forward algorithm returns the photo through its decoders: compare with that
    kept = (
        content
        if algorithm.kind == "optimization"
        else algorithm.stylize_batch(content, [red], params_kept(params))
    )
    changed = (one - kept).abs()
    assert float(changed[..., rcols].mean()) < 0.5 * float(changed[..., lcols].mean())
    assert float(changed[..., rcols].mean()) < 0.06


def test_mrf_matches_each_region_within_its_own_style_and_keeps_the_rest():
    """MRF's patches: a region's output patches matched only against its style's (here a blue
    texture on the left), the kept half matched against the photo's own patches there."""
    mrf = get_algorithm("mrf")
    content = load_image(CONTENT, max_side=48)
    left, lcols, rcols = halves(content)
    params = mrf.params_type(steps=20)
    out = mrf.stylize(content, [tinted(2)], params, regions=[Region(left, 0), Region(1 - left, None)]).image
    assert red_minus_blue(out, lcols) < red_minus_blue(content, lcols) - 0.03  # bluer on the left
    changed = (out - content).abs()
    assert float(changed[..., rcols].mean()) < 0.5 * float(changed[..., lcols].mean())
    # one region over the whole photo is the plain term, image and losses
    plain = mrf.stylize(content, [tinted(2)], mrf.params_type(steps=3))
    whole = mrf.stylize(
        content, [tinted(2)], mrf.params_type(steps=3), regions=[Region(torch.ones_like(left), 0)]
    )
    assert torch.allclose(plain.image, whole.image, atol=1e-5)
    for term, value in plain.final_losses.items():
        assert whole.final_losses[term] == pytest.approx(value, rel=1e-4, abs=1e-7), term


def params_kept(params):
    """``params`` with no style at all (alpha 0: WCT's levels and AdaIN's decoder only decode)."""
    import dataclasses

    return dataclasses.replace(params, alpha=0.0)


def test_regions_are_refused_where_they_cannot_apply():
    content = load_image(CONTENT, max_side=32)
    left, *_ = halves(content)
    gatys = get_algorithm("gatys")
    with pytest.raises(ValueError, match="no region names a style"):
        gatys.stylize(content, [tinted(0)], regions=[Region(left, None), Region(1 - left, None)])
    with pytest.raises(ValueError, match="marks no pixel"):
        gatys.stylize(content, [tinted(0)], regions=[Region(torch.zeros_like(left), 0)])
    with pytest.raises(ValueError, match="no spatial control"):
        get_algorithm("style_swap_optimize").stylize(content, [tinted(0)], regions=[Region(left, 0)])
    names = (
        "gatys",
        "histogram",
        "adain",
        "adain_optimize",
        "mrf",
        "style_swap",
        "style_swap_optimize",
        "johnson",
        "wct",
    )
    able = {n for n in names if get_algorithm(n).spatial_control}
    assert able == {"gatys", "histogram", "adain", "adain_optimize", "mrf", "wct"}


def label_image(path, size=(64, 48), right="#0000ff"):
    image = Image.new("RGB", size, "#ff0000")
    ImageDraw.Draw(image).rectangle([size[0] // 2, 0, size[0], size[1]], fill=right)
    image.save(path)
    return path


@pytest.mark.slow
def test_run_paints_each_region_from_the_command_line(tmp_path):
    out = tmp_path / "masked.png"
    proc = stylegrid(
        "run", "--algorithm", "histogram", "--content", CONTENT, "--mask", label_image(tmp_path / "m.png"),
        "--region", "#ff0000=" + str(SAMPLES / "style" / "starry_night.jpg"), "--region", "blue=none",
        "--size", "32", "--steps", "3", "-o", out,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert Image.open(out).size == (32, 24)


def test_mask_mistakes_are_one_line(tmp_path, capsys):
    feedforward = ["run", "--content", CONTENT, "--size", "32", "-o", tmp_path / "o.png"]
    base = [*feedforward, "--steps", "1"]
    style = "#f00=" + str(SAMPLES / "style" / "starry_night.jpg")
    mask = label_image(tmp_path / "m.png")
    assert_one_line(cli(capsys, *base, "--region", style), 2, "--region and --style-mask need --mask")
    assert_one_line(cli(capsys, *base, "--mask", mask), 2, "--mask needs a --region")
    assert_one_line(cli(capsys, *base, "--mask", mask, "--region", "#zz0000=a.jpg"), 2, "is not a colour")
    assert_one_line(
        cli(capsys, *feedforward, "--algorithm", "johnson", "--mask", mask, "--region", style),
        2,
        "johnson has no spatial control",
    )
    # blue is in the mask but no region names it
    assert_one_line(cli(capsys, *base, "--mask", mask, "--region", style), 1, "m.png: 50% of its pixels")
    tall = label_image(tmp_path / "tall.png", size=(48, 64))
    assert_one_line(
        cli(capsys, *base, "--mask", tall, "--region", style, "--region", "blue=none"),
        1,
        "not in the proportions",
    )
    assert not (tmp_path / "o.png").exists()


ALGORITHMS = ({"name": "adain"}, {"name": "gatys", "params": {"style_weight": 10.0}}, {"name": "style_swap"})


def regions_spec(tmp_path, regions, algorithms=ALGORITHMS):
    import json

    for channel, name in ((0, "red.png"), (2, "blue.png")):
        Image.fromarray((tinted(channel)[0].permute(1, 2, 0).numpy() * 255).astype("uint8")).save(
            tmp_path / name
        )
    label_image(tmp_path / "labels.png")
    spec = {
        "name": "masked", "content": [str(CONTENT)], "style": [str(tmp_path / "blue.png")],
        "algorithms": list(algorithms), "size": 64, "style_size": 48, "steps": 20,
        "regions": regions,
    }  # fmt: skip
    path = tmp_path / "masked.yaml"
    path.write_text(json.dumps(spec))
    return path


def test_a_sweep_runs_its_regions_with_every_algorithm_that_has_spatial_control(tmp_path):
    """The spec's regions: a job per algorithm with spatial control (style_swap left out), rows that
    record the regions, and pictures red on the left, kept on the right."""
    import hashlib
    import json

    from conftest import own_ray
    from stylegrid.orchestrator.results.rows import read_results
    from stylegrid.orchestrator.sweep.driver import plan, run_sweep

    regions = [
        {"content": str(CONTENT), "mask": "labels.png", "styles": {"#ff0000": "red.png", "blue": "none"}}
    ]
    spec = regions_spec(tmp_path, regions)
    assert "2 with regions; without spatial control, left out: style_swap" in plan(
        str(spec), str(tmp_path / "out")
    )
    summary = run_sweep(str(spec), output=str(tmp_path / "out"), quiet=True, ray_init_kwargs=own_ray())
    rows = read_results(tmp_path / "out").to_pandas()
    assert summary.failed == 0 and len(rows) == 5, rows.error.tolist()
    masked = rows[rows.regions.notna()].set_index("algorithm")
    assert sorted(masked.index) == ["adain", "gatys"] and set(masked.variant) == {"regions=labels"}
    record = json.loads(masked.loc["gatys", "regions"])
    assert record.pop("mask_sha256") == hashlib.sha256((tmp_path / "labels.png").read_bytes()).hexdigest()
    assert record == {"name": "labels", "mask": "labels.png", "styles": {"#ff0000": "red.png", "blue": "none"},
                      "style_masks": {}}  # fmt: skip
    # the report shows a regional picture with its label image and each colour's painting
    page = (tmp_path / "out" / "report" / "index.html").read_text()
    assert 'src="thumbs/mask-labels-' in page and "regions: #ff0000 red, blue none" in page
    assert masked.loc["gatys", "style"] == "red.png"  # the first region's painting
    photo = load_image(CONTENT, max_side=64)
    _, lcols, rcols = halves(photo)
    out = load_image(tmp_path / "out" / masked.loc["gatys", "output_image"])
    assert red_minus_blue(out, lcols) > red_minus_blue(photo, lcols) + 0.03
    assert float((out - photo)[..., rcols].abs().mean()) < 0.06


def test_a_sweep_refuses_bad_regions_before_any_job_runs(tmp_path):
    from stylegrid.orchestrator.specs.loading import SpecError
    from stylegrid.orchestrator.sweep.driver import plan

    cases = [
        ({"mask": "nope.png", "styles": {"red": "red.png"}}, r"regions\[0\].mask 'nope.png': no such file"),
        ({"mask": "labels.png", "styles": {"reddish": "red.png"}}, "'reddish' is not a colour"),
        ({"mask": "labels.png", "styles": {"red": "none"}}, "every colour keeps the photo"),
        ({"mask": "labels.png", "styles": {"red": "red.png", "#f00": "blue.png"}}, "are the same colour"),
        ({"mask": "labels.png", "styles": {"red": "red.png", "blue": "none"}, "style_masks": {"blue": "labels.png"}},
         "'blue' is not a colour of styles with a style image"),
        ({"mask": "red.png", "styles": {"red": "red.png"}}, r"48x48 px, not in the proportions of the photo"),
    ]  # fmt: skip
    for entry, message in cases:
        spec = regions_spec(tmp_path, [{"content": str(CONTENT), **entry}])
        with pytest.raises(SpecError, match=message):
            plan(str(spec), str(tmp_path / "out"))


def test_regional_measures_take_each_region_against_its_own_painting():
    from stylegrid.algorithms.shared.metrics import quality, regional_quality
    from stylegrid.algorithms.shared.regions import Region

    photo = torch.rand(1, 3, 48, 64, generator=torch.Generator().manual_seed(5)) * 0.3 + 0.35
    red, blue = tinted(0), tinted(2)
    left, _, _ = halves(photo)
    out = torch.cat([red[..., :32], blue[..., :32]], dim=-1)  # each half from its own painting
    # one region over everything is the plain measure
    plain = quality(out, photo, red)
    one = regional_quality(out, photo, [red], [Region(torch.ones(1, 1, 48, 64), 0, name="all")])
    for k, v in plain.as_dict().items():
        assert abs(one.as_dict()[k] - v) < 1e-4, k
    # each half against its own painting: far closer than the whole picture against the first
    both = regional_quality(out, photo, [red, blue], [Region(left, 0), Region(1 - left, 1)])
    # (Gram matrices least: at 48 x 64 px the deep layers' few positions see across the border)
    assert both.style_swd < 0.5 * plain.style_swd and both.color_swd < 0.01 * plain.color_swd
    assert both.style_distance < 0.75 * plain.style_distance
    assert both.content_distance == plain.content_distance  # the content measures: the whole picture's
    # a kept half takes no part in the style measures
    kept = regional_quality(out, photo, [red, blue], [Region(left, 0), Region(1 - left, None)])
    assert kept.color_swd < 0.01 * plain.color_swd and kept.style_swd < 0.5 * plain.style_swd
