"""Tiles for large images (algorithms/shared/tiling.py) and AdaIN in tiles with the image's global
statistics (algorithms/feedforward/adain/tiles.py)."""

from __future__ import annotations

import math

import pytest
import torch
from conftest import SAMPLES
from stylegrid.algorithms.feedforward.adain.algorithm import stylize_batch
from stylegrid.algorithms.feedforward.adain.network import AdaINParams
from stylegrid.algorithms.feedforward.adain.tiles import HALO, stylize_tiled
from stylegrid.algorithms.shared.sizing import pad_to_multiple
from stylegrid.algorithms.shared.tiling import Canvas, crop, plan_tiles, seam_ratio, tile_weights
from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float((a - b).pow(2).mean())
    return 10 * math.log10(1 / mse) if mse else math.inf


def test_tile_cores_partition_the_image_on_the_alignment_grid():
    for offset in ((0, 0), (12, 20)):
        layout = plan_tiles(100, 130, 32, 16, 8, offset=offset)
        cover = torch.zeros(100, 130)
        for t in layout.tiles:
            top, left, bottom, right = t.core
            cover[top:bottom, left:right] += 1
            assert top % 8 == 0 and left % 8 == 0  # every tile pools like the whole image
            btop, bleft, bbottom, bright = t.box
            assert btop == max(0, top - 16) and bbottom == min(100, bottom + 16)
            assert bleft == max(0, left - 16) and bright == min(130, right + 16)
        assert torch.equal(cover, torch.ones(100, 130))  # every pixel in exactly one core
    shifted = {t.core[0] for t in plan_tiles(100, 130, 32, 16, 8, offset=(16, 0)).tiles}
    assert shifted == {0, 16, 48, 80}  # the grid moves with the offset
    # a last core under 8 px joins its neighbour: 100 px -> 32, 32, 36
    assert plan_tiles(100, 130, 32, 16, 8).describe() == "3x4 tiles of 32 px, halo 16, overlap 8"
    with pytest.raises(ValueError, match="overlap"):
        plan_tiles(100, 130, 32, 8, 16)
    with pytest.raises(ValueError, match="multiple of 8"):
        plan_tiles(100, 130, 30, 16, 8)


def test_blend_weights_sum_to_one_and_a_canvas_of_exact_tiles_is_the_image():
    image = torch.rand(2, 3, 90, 75)
    layout = plan_tiles(90, 75, 24, 16, 8)
    total = torch.zeros(1, 1, 90, 75)
    canvas = Canvas(layout, batch=2)
    for t in layout.tiles:
        top, left, bottom, right = t.box
        total[..., top:bottom, left:right] += tile_weights(layout, t)
        canvas.add(t, crop(image, t.box))
    assert torch.allclose(total, torch.ones_like(total), atol=1e-6)  # a partition of unity
    assert torch.allclose(canvas.image(), image, atol=1e-6)


def test_the_seam_measure_sees_a_seam_and_not_a_photo():
    photo = to_tensor(resize_to(read_image(SAMPLES / "content" / "tubingen.jpg"), 256))
    layout = plan_tiles(*photo.shape[-2:], 64, 16, 8)
    assert 0.7 < seam_ratio(photo, layout) < 1.3
    seamed = photo.clone()
    seamed[..., 64:, :] = (seamed[..., 64:, :] * 0.85).clamp(0, 1)  # one tile row darker
    seamed[..., :, 128:] = (seamed[..., :, 128:] + 0.1).clamp(0, 1)
    assert seam_ratio(seamed, layout) > 1.5


def test_adain_in_tiles_is_the_one_pass_image_without_seams():
    content = to_tensor(resize_to(read_image(SAMPLES / "content" / "chelsea.jpg"), 232))  # 232 x 174
    style = load_image(SAMPLES / "style" / "the_scream.jpg", max_side=256)
    params = AdaINParams(precision="fp32")
    whole = stylize_batch(content, [style], params)
    tiled, layout = stylize_tiled(content, [style], params, core=96)
    assert layout.grid == (2, 3) and len(layout.tiles) == 6
    # With HALO px of context a tile's core is what the whole image gives there: in fp32 the two
    # agree to float rounding (about 130 dB here). 60 dB is an RMS error of 0.1 % of the range,
    # about what rounding to 8 bits does (59 dB): no difference a saved image could show. (A
    # bug that left the padding rows out of the statistics still gave 48 dB: 40 would pass it.)
    assert psnr(tiled, whole) > 60, psnr(tiled, whole)
    # the seam measure on the tile edges: as the one pass has it (the decoder's up-sampling leaves
    # an 8 px grain, and the edges lie on that grid, so neither is exactly 1)
    assert seam_ratio(tiled, layout) < 1.02 * seam_ratio(whole, layout)
    # the control: tiles stylized on their own (no context, their own statistics) do show seams
    alone = Canvas(plan_tiles(*content.shape[-2:], 96, 0, 0))
    for t in alone.layout.tiles:
        alone.add(t, stylize_batch(crop(content, t.box), [style], params))
    assert seam_ratio(alone.image(), layout) > 1.3 * seam_ratio(whole, layout)
    assert psnr(alone.image(), whole) < psnr(tiled, whole) - 10
    assert HALO % 8 == 0


def test_a_fast_network_in_tiles_is_the_one_pass_image_without_seams():
    from stylegrid.algorithms.feedforward.johnson.algorithm import DEFAULT_NETWORK
    from stylegrid.algorithms.feedforward.johnson.network import load_network
    from stylegrid.algorithms.feedforward.johnson.tiles import stylize_tiled as johnson_tiled

    content = to_tensor(resize_to(read_image(SAMPLES / "content" / "china.jpg"), 200))  # 200 x 133
    h, w = content.shape[-2:]
    net, _ = load_network(str(DEFAULT_NETWORK), "cpu")
    mix = torch.tensor([0.0, 1.0, 0.0, 0.0])
    with torch.no_grad():
        whole = net(pad_to_multiple(content, 4), mix[None])[..., :h, :w].clamp(0, 1)
    tiled, layout = johnson_tiled(net, content, mix, core=64, precision="fp32")
    assert layout.grid == (2, 4)  # the last 5 rows join the row above
    # with the whole image's instance-norm statistics and HALO px of context: the one pass
    assert psnr(tiled, whole) > 60, psnr(tiled, whole)  # about 100 dB here; see the AdaIN test
    assert seam_ratio(tiled, layout) < 1.02 * seam_ratio(whole, layout)
    # the control: each tile normalised with its own statistics
    alone = Canvas(plan_tiles(h, w, 64, 0, 0))
    with torch.no_grad():
        for t in alone.layout.tiles:
            part = crop(content, t.box)
            out = net(pad_to_multiple(part, 4), mix[None])
            alone.add(t, out[..., : part.shape[-2], : part.shape[-1]])
    assert psnr(alone.image(), whole) < psnr(tiled, whole) - 10
    assert seam_ratio(alone.image(), layout) > 1.2 * seam_ratio(whole, layout)


def test_memory_budgets_and_the_tile_they_allow():
    from stylegrid.algorithms.shared.memory import MIN_CORE, budget_bytes, check_budget, tile_core

    cpu = torch.device("cpu")
    assert budget_bytes("512MB", cpu) == 512 * 2**20 and budget_bytes("1.5g", cpu) == int(1.5 * 2**30)
    assert budget_bytes("300", cpu) == 300 * 2**20  # a bare number is MB
    assert 0 < budget_bytes("auto", cpu) < 2**50
    with pytest.raises(ValueError, match="'auto' or a size such as 2GB"):
        check_budget("lots")
    with pytest.raises(ValueError, match="memory_budget"):
        AdaINParams(memory_budget="2 TB please")
    assert tile_core(512, 512, 1, 1000, 80, 2**30) is None  # one pass fits
    core = tile_core(4096, 4096, 1, 1600, 80, 512 * 2**20)
    assert core % 8 == 0 and (core + 160) ** 2 * 1600 <= 512 * 2**20 < (core + 168) ** 2 * 1600
    with pytest.raises(ValueError, match=r"too small for tiles of 64 px .* give at least \d+ MB"):
        tile_core(4096, 4096, 1, 1600, 80, 20 * 2**20)
    assert MIN_CORE == 64


def test_a_small_budget_tiles_the_same_picture_and_says_so():
    from stylegrid.algorithms import get_algorithm

    content = to_tensor(resize_to(read_image(SAMPLES / "content" / "tubingen.jpg"), 384))  # 384 x 288
    style = load_image(SAMPLES / "style" / "starry_night.jpg", max_side=256)
    # one pass would take about 88 MB (BYTES_PER_PIXEL): this budget gives 2 x 3 tiles (johnson's
    # budget path runs in tests/system/test_johnson.py's sweep)
    for name, budget in (("adain", "75MB"),):
        algo = get_algorithm(name)
        whole = algo.stylize(content, [style], algo.params_type(precision="fp32"))
        tiled = algo.stylize(content, [style], algo.params_type(precision="fp32", memory_budget=budget))
        assert whole.tiles == "" and tiled.tiles.endswith(f"(memory_budget {budget[:-2]} MB)"), tiled.tiles
        assert tiled.tiles.startswith("2x3 tiles of ") and psnr(tiled.image, whole.image) > 60, name
        assert all(math.isfinite(v) for v in tiled.final_losses.values())
        assert tiled.final_losses.keys() == whole.final_losses.keys()


MEASURED = """
import json, torch
from stylegrid.orchestrator.images import load_image, read_image, resize_to, to_tensor
def status(key):
    line = next(l for l in open("/proc/self/status") if l.startswith(key + ":"))
    return int(line.split()[1]) / 1024
def measure(run):
    open("/proc/self/clear_refs", "w").write("5")
    before = status("VmRSS")
    out = run()
    return status("VmHWM") - before, out
"""


def run_measured(script: str) -> dict:
    """Run ``script`` after ``MEASURED`` in a fresh process; the JSON of its last line.
    ``measure(run)`` gives the peak resident memory a call took above the resident memory
    before it (Linux resets the peak, VmHWM, when "5" is written to clear_refs), in MB."""
    import json
    import os
    import subprocess
    import sys

    from conftest import REPO

    proc = subprocess.run([sys.executable, "-c", MEASURED + script], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, timeout=600)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


@pytest.mark.long
def test_the_budget_bounds_the_memory_a_large_image_takes():
    # in a process of its own: the models warmed up on a small image, then 768 px through AdaIN
    # in tiles at 250 MB and in one pass
    mb = run_measured("""
from stylegrid.algorithms.feedforward.adain.algorithm import AdaINParams, stylize_batch
torch.set_num_threads(1)
photo = read_image("samples/content/tubingen.jpg")
style = load_image("samples/style/starry_night.jpg", max_side=256)
stylize_batch(to_tensor(resize_to(photo, 64)), [style], AdaINParams())
big = to_tensor(resize_to(photo, 768))
tiled, _ = measure(lambda: stylize_batch(big, [style], AdaINParams(memory_budget="250MB")))
one_pass, _ = measure(lambda: stylize_batch(big, [style], AdaINParams()))
print(json.dumps({"tiled": tiled, "one_pass": one_pass}))
""")
    # The budget bounds the passes; the image, its output and the blending canvas come on top
    # (about 20 MB at 768 x 576). One pass takes more than the budget: 257 MB on an AVX2 CPU
    # (fp32), about twice the budget where bf16 runs natively (other oneDNN kernels).
    assert mb["tiled"] < 250 + 40, mb
    assert mb["one_pass"] > 250 and mb["one_pass"] > 1.5 * mb["tiled"], mb  # what it saved


def test_a_tiled_pyramid_level_shifts_its_grid_between_passes():
    from stylegrid.algorithms.optimization.tiles import HALO, level_core, level_steps, pass_layouts

    (first, n1), (second, n2) = pass_layouts(288, 384, 192, 21)
    assert (n1, n2) == (10, 11) and first.grid == (2, 2) and second.grid == (2, 3)
    edges = lambda layout: {t.core[0] for t in layout.tiles} | {-t.core[1] for t in layout.tiles}  # noqa: E731
    assert edges(first) & edges(second) == {0}  # no inner edge of one pass is an edge of the other
    assert level_steps(288, 384, 192, 21) == 4 * 10 + 6 * 11 and level_steps(288, 384, None, 21) == 21
    assert [n for _, n in pass_layouts(288, 384, 192, 1)] == [1]  # one step: one pass
    assert level_core(288, 384, 2**30) is None  # fits whole
    core = level_core(288, 384, 350 * 2**20)
    assert core == 192 and (core + 2 * HALO) ** 2 * 3400 <= 350 * 2**20


@pytest.mark.long
def test_image_optimisation_in_tiles_keeps_the_picture_without_seams_within_the_budget():
    # Gatys at 384 x 288, 24 steps (12 at 192 px, 12 at 384 px): whole, and with a budget of
    # 350 MB that puts the 384 px level in 2 x 2 tiles (2 x 3 on the shifted grid), with the
    # tiled run's peak memory
    got = run_measured("""
from stylegrid.algorithms.optimization.gatys import GatysParams, stylize
from stylegrid.algorithms.shared.memory import budget_bytes
from stylegrid.algorithms.shared.metrics import quality
from stylegrid.algorithms.optimization.tiles import level_core, pass_layouts
from stylegrid.algorithms.shared.tiling import seam_ratio
torch.set_num_threads(2)
photo = read_image("samples/content/tubingen.jpg")
style = load_image("samples/style/starry_night.jpg", max_side=256)
stylize(to_tensor(resize_to(photo, 64)), [style], GatysParams(steps=2))
content = to_tensor(resize_to(photo, 384))
peak, tiled = measure(lambda: stylize(content, [style], GatysParams(steps=24, style_weight=2.5, memory_budget="350MB")))
whole = stylize(content, [style], GatysParams(steps=24, style_weight=2.5))  # the margins' weight
core = level_core(288, 384, budget_bytes("350MB", torch.device("cpu")))
out = {"peak": peak, "tiles": tiled.tiles, "losses": sorted(tiled.final_losses),
       "whole_losses": sorted(whole.final_losses), "steps": len(tiled.history)}
for name, r in (("tiled", tiled), ("whole", whole)):
    out[name] = quality(r.image, content, style).as_dict()
    out[name]["seams"] = [seam_ratio(r.image, layout) for layout, _ in pass_layouts(288, 384, core, 20)]
print(json.dumps(out))
""")
    assert got["tiles"] == (
        "scale 2/2: 2x2 tiles of 192 px, halo 64, overlap 32, 2 passes on shifted grids (memory_budget 350 MB)"
    )
    assert got["steps"] == 12 + 4 * 6 + 6 * 6  # the whole first level, then every tile's steps
    assert got["losses"] == got["whole_losses"]  # the whole result's losses, measured after
    assert got["peak"] < 350, got["peak"]
    tiled, whole = got["tiled"], got["whole"]
    # Tiles see the whole style's statistics but only their part of the photo, and each pass
    # restarts L-BFGS: on five photo/painting pairs and four algorithms (README) the tiled result
    # kept the content within 2-15 % and the style measures within -4..+13 % of the whole one's.
    assert tiled["content_distance"] < 1.2 * whole["content_distance"], (tiled, whole)
    assert tiled["style_distance"] < 1.15 * whole["style_distance"], (tiled, whole)
    assert tiled["style_swd"] < 1.15 * whole["style_swd"], (tiled, whole)
    assert abs(tiled["color_swd"] - whole["color_swd"]) < 0.15 * whole["color_swd"], (tiled, whole)
    # no seam along either pass's tile edges: the gradient there is what the whole result has
    # on the same lines (a seam left by the first pass measured 0.88 against 1.0 without the second)
    for t, w in zip(tiled["seams"], whole["seams"], strict=True):
        assert abs(t - w) < 0.08, (tiled["seams"], whole["seams"])


def test_workers_side_by_side_share_the_auto_budget():
    import ray
    from stylegrid.algorithms.shared import memory
    from stylegrid.orchestrator.runtime import share_memory_with_other_workers, start_ray

    cpu = torch.device("cpu")
    whole = memory.device_budget(cpu)
    try:
        memory.share_device(0.25, 0)
        assert memory.device_budget(cpu) == pytest.approx(whole / 4, rel=1e-6)
    finally:
        memory.share_device(1, 0)
    assert memory.device_budget(cpu) == whole

    # a Ray worker holding 1 CPU of its node's N takes 1/N of the machine's share
    start_ray()

    @ray.remote(num_cpus=1)
    def worker_budget() -> tuple[int, float]:
        share_memory_with_other_workers()
        node = next(n for n in ray.nodes() if n["NodeID"] == ray.get_runtime_context().get_node_id())
        return memory.device_budget(torch.device("cpu")), node["Resources"]["CPU"]

    budget, node_cpus = ray.get(worker_budget.remote())
    assert budget == pytest.approx(whole / node_cpus, rel=1e-6)
