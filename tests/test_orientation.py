"""Orientation: D4 augmentation, test-time averaging, and the backbones besides ResNet-18."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import tifffile
import torch

from sarcnet_sklearn import SarcNetPipeline, SarcNetRegressor, make_sarcnet_pipeline
from sarcnet_sklearn._batches import N_D4, canonical_d4, d4_inverse, d4_transform, random_d4
from sarcnet_sklearn.deploy import load_model, save_model
from sarcnet_sklearn.explain import default_target_layer, grad_cam
from sarcnet_sklearn.images import read_plane
from sarcnet_sklearn.nn import BACKBONES

# A non-identity D4 element each: quarter turn, half turn, flip, flip + three quarter turns.
TURNS = [1, 2, 4, 7]


def _turned_copies(cells: pd.DataFrame, folder, t: int, size: int = 32) -> pd.DataFrame:
    """The cells with their TIFF pages put on a ``size`` square canvas and turned by D4
    transform ``t`` (0: not turned).

    Square files of the model's input size are not resized, so the model sees the turned
    pixels exactly (PIL's two-pass resize of a non-square image rounds differently once
    it is turned).
    """
    turned = cells.copy()
    paths = []
    for i, path in enumerate(cells["image_path"]):
        pages = tifffile.imread(path)[:, :size, :size]
        canvas = np.zeros((len(pages), size, size), dtype=pages.dtype)
        canvas[:, :pages.shape[1], :pages.shape[2]] = pages
        target = folder / f"cell{i}_t{t}.tiff"
        tifffile.imwrite(target, d4_transform(torch.from_numpy(canvas), t).numpy().copy())
        paths.append(str(target))
    turned["image_path"] = paths
    return turned


def test_the_eight_transforms_are_the_dihedral_group():
    image = torch.arange(9).reshape(3, 3)
    seen = {tuple(d4_transform(image, t).reshape(-1).tolist()) for t in range(N_D4)}
    assert len(seen) == N_D4
    for t in range(N_D4):
        assert torch.equal(d4_inverse(d4_transform(image, t), t), image)


def test_random_d4_gives_each_image_one_of_its_eight_transforms():
    torch.manual_seed(0)
    base = torch.randint(0, 256, (1, 1, 5, 5), dtype=torch.uint8)
    out = random_d4(base.repeat(400, 1, 1, 1))
    options = [d4_transform(base[0], t) for t in range(N_D4)]
    which = [next(t for t, option in enumerate(options) if torch.equal(image, option))
             for image in out]
    counts = np.bincount(which, minlength=N_D4)
    assert counts.min() > 25  # all eight, roughly uniformly (expected 50 each)
    with pytest.raises(ValueError, match="square"):
        random_d4(torch.zeros((2, 4, 6), dtype=torch.uint8))


def _tiny_model(cells, **params):
    """A 1-epoch Protocol 2 SarcNet at 32 px on the first 32 cells."""
    train = cells.iloc[:32]
    pipe = make_sarcnet_pipeline(protocol=2, image_size=32, max_epochs=1, batch_size=16,
                                 verbose=0, random_state=0, device="cpu", **params)
    return pipe.fit(train, train["score"])


@pytest.fixture(scope="module")
def invariant_model(cells):
    return _tiny_model(cells, head_activation=True, augment="d4", test_time_augment=True)


def test_augmented_training_sees_turned_images_and_fits(cells, invariant_model):
    net = invariant_model[-1]
    assert (net.augment, net.test_time_augment) == ("d4", True)
    assert (SarcNetRegressor().augment, SarcNetRegressor().test_time_augment) == ("d4", True)
    assert np.isfinite(net.history[-1, "train_loss"])
    with pytest.raises(ValueError, match="augment must be one of"):
        SarcNetRegressor(augment="rot", image_size=32, max_epochs=1).fit(
            cells.iloc[:8][["image_path"]].assign(a=1.0), cells["score"].iloc[:8])


def test_test_time_averaging_makes_the_score_invariant_to_flips_and_turns(
        cells, invariant_model, tmp_path):
    some = _turned_copies(cells.iloc[100:104], tmp_path, 0)
    reference = invariant_model.predict(some)
    net = invariant_model[-1]
    net.set_params(test_time_augment=False)
    try:
        plain = invariant_model.predict(some)
        plain_turned = invariant_model.predict(_turned_copies(some, tmp_path, 1))
    finally:
        net.set_params(test_time_augment=True)
    assert np.abs(plain - plain_turned).max() > 1e-3  # the network alone is not invariant
    for t in TURNS:
        turned = invariant_model.predict(_turned_copies(some, tmp_path, t))
        np.testing.assert_allclose(turned, reference, atol=1e-5)


def test_grad_cam_with_test_time_averaging_turns_with_the_image(cells, invariant_model,
                                                                  tmp_path):
    some = _turned_copies(cells.iloc[100:102], tmp_path, 0)
    maps = grad_cam(invariant_model, some, layer="layer2")
    for t in (1, 4):
        turned_maps = grad_cam(invariant_model, _turned_copies(some, tmp_path, t),
                               layer="layer2")
        for heatmap, turned in zip(maps, turned_maps, strict=True):
            expected = d4_transform(torch.from_numpy(heatmap), t).numpy()
            np.testing.assert_allclose(turned, expected, atol=1e-4)
    plain = grad_cam(invariant_model, some, layer="layer2", test_time_augment=False)
    assert max(np.abs(a - b).max() for a, b in zip(plain, maps, strict=True)) > 1e-3


def test_canonical_pose_is_the_same_for_the_eight_transforms_ties_included():
    torch.manual_seed(1)
    images = torch.randint(0, 256, (6, 7, 7), dtype=torch.uint8)
    images[0] = 0  # every pose ties: decided by the pixels (all equal)
    images[1] = images[1] + images[1].flip(-1)  # mirror-symmetric: a tie on the moments
    images[2] = images[2] + images[2].rot90(1, (-2, -1))  # a centroid on a diagonal, maybe
    canonical, chosen = canonical_d4(images)
    for t in range(N_D4):
        turned, _ = canonical_d4(d4_transform(images, t))
        assert torch.equal(turned, canonical)
    for image, t, pose in zip(images, chosen, canonical, strict=True):
        assert torch.equal(d4_transform(image, int(t)), pose)
    with pytest.raises(ValueError, match="square"):
        canonical_d4(torch.zeros((2, 4, 6), dtype=torch.uint8))


@pytest.fixture(scope="module")
def canonical_model(cells):
    return _tiny_model(cells, canonical_orientation=True)


def test_canonical_orientation_makes_one_pass_exactly_invariant(cells, canonical_model,
                                                                tmp_path):
    some = _turned_copies(cells.iloc[100:104], tmp_path, 0)
    reference = canonical_model.predict(some)
    for t in TURNS:
        turned = canonical_model.predict(_turned_copies(some, tmp_path, t))
        np.testing.assert_allclose(turned, reference, atol=1e-5)
    as_they_lie = SarcNetPipeline.of(canonical_model).for_prediction(
        test_time_augment=False, canonical_orientation=False)
    plain = as_they_lie.predict(some)
    plain_turned = as_they_lie.predict(_turned_copies(some, tmp_path, 1))
    assert np.abs(plain - plain_turned).max() > 1e-3  # the network alone is not invariant
    maps = grad_cam(canonical_model, some, layer="layer2")
    turned_maps = grad_cam(canonical_model, _turned_copies(some, tmp_path, 4), layer="layer2")
    for heatmap, turned in zip(maps, turned_maps, strict=True):
        expected = d4_transform(torch.from_numpy(heatmap), 4).numpy()
        np.testing.assert_allclose(turned, expected, atol=1e-4)


def test_canonical_orientation_survives_both_model_formats(cells, canonical_model, tmp_path):
    some = cells.iloc[100:104]
    for name, format in (("model.joblib", "joblib"), ("model.zip", "safe")):
        save_model(canonical_model, tmp_path / name, format=format)
        loaded = load_model(tmp_path / name)
        assert loaded.regressor.canonical_orientation is True
        np.testing.assert_allclose(loaded.predict(some), canonical_model.predict(some),
                                   atol=1e-5)
    with pytest.raises(ValueError, match="exclude each other"):
        SarcNetRegressor(canonical_orientation=True, consistency=1.0, image_size=32,
                         max_epochs=1, verbose=0).fit(cells.iloc[:8][["image_path"]],
                                                      cells["score"].iloc[:8])


NEW_BACKBONES = ["convnext_tiny", "efficientnet_b0", "resnet50"]


@pytest.mark.parametrize("backbone", NEW_BACKBONES)
def test_new_backbones_train_predict_explain_and_round_trip(backbone, cells, tmp_path):
    from sarcnet_sklearn.deploy import load_model, save_model

    assert backbone in BACKBONES
    train = cells.iloc[:16]
    pipe = make_sarcnet_pipeline(protocol=1, backbone=backbone, image_size=32, max_epochs=1,
                                 batch_size=8, test_time_augment=False, verbose=0,
                                 random_state=0, device="cpu")
    pipe.fit(train, train["score"])
    some = cells.iloc[200:202]
    prediction = pipe.predict(some)
    assert prediction.shape == (2,) and np.isfinite(prediction).all()
    module = pipe[-1].module_
    layer = default_target_layer(module, backbone)
    assert any(isinstance(sub, torch.nn.Conv2d) for sub in layer.modules())
    heatmaps = grad_cam(pipe, some.iloc[:1])
    assert heatmaps[0].shape == read_plane(some["image_path"].iloc[0], 1).shape
    assert 0 <= heatmaps[0].min() <= heatmaps[0].max() <= 1
    loaded = load_model(save_model(pipe, tmp_path / "m.zip", format="safe"))
    assert loaded[-1].backbone == backbone
    np.testing.assert_allclose(loaded.predict(some), prediction, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("backbone", NEW_BACKBONES)
def test_new_backbones_read_local_weight_files_and_refuse_wrong_ones(backbone, tmp_path):
    import torchvision.models as tvm

    from sarcnet_sklearn.nn import build_backbone

    full = getattr(tvm, backbone)(weights=None)
    path = tmp_path / f"{backbone}.pth"
    torch.save(full.state_dict(), path)
    branch, _ = build_backbone(backbone, weights=path)
    # Everything but the ImageNet classification layer comes from the file.
    own = branch.state_dict()
    for key, value in full.state_dict().items():
        if key in own:
            assert torch.equal(own[key], value), key
    assert len(own) >= len(full.state_dict()) - 2
    wrong = tmp_path / "wrong.pth"
    torch.save(tvm.resnet18(weights=None).state_dict(), wrong)
    with pytest.raises(RuntimeError, match=f"does not fit torchvision's {backbone}"):
        build_backbone(backbone, weights=wrong)
    with pytest.raises(RuntimeError, match="weights file not found"):
        build_backbone(backbone, weights=tmp_path / "missing.pth")
