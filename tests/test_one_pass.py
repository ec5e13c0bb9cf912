"""One forward pass per cell: the consistency term of training, and the channels-last layout."""

from __future__ import annotations

import pytest
import torch

from sarcnet_sklearn import SarcNetRegressor, make_sarcnet_pipeline
from sarcnet_sklearn.deploy import load_model, save_model


def test_consistency_shows_a_quarter_of_each_batch_twice_and_adds_its_disagreement(cells):
    train = cells.iloc[:32]
    net = SarcNetRegressor(use_features=False, image_size=32, max_epochs=1, batch_size=16,
                           train_split=None, verbose=0, random_state=0, consistency=2.0)
    seen = []
    net.initialize()
    net.module_.image_branch.register_forward_hook(
        lambda module, inputs, output: seen.append(len(inputs[0])))
    net.partial_fit(train[["image_path"]], train["score"])
    assert seen == [20, 20]  # 16 cells + a quarter of them again, per batch

    images = torch.randint(0, 255, (16, 32, 32), dtype=torch.uint8)
    net.module_.train()
    y_pred = net.infer({"images": images})
    first, second = net._consistency_pair
    assert len(y_pred) == 16 and len(first) == len(second) == 4
    assert not torch.allclose(first, second)  # two transforms, and BatchNorm in training mode
    target = torch.full((16, 1), 3.0)
    loss = net.get_loss(y_pred, target, training=True)
    plain = torch.nn.functional.mse_loss(y_pred, target)
    assert loss.item() == pytest.approx(plain.item() + 2.0 * ((first - second) ** 2).mean().item(),
                                        rel=1e-5)
    assert not hasattr(net, "_consistency_pair")  # used once


@pytest.mark.parametrize(("params", "message"), [
    ({"consistency": -1.0}, "consistency must be a finite number"),
    ({"consistency": float("nan")}, "consistency must be a finite number"),
    ({"consistency": 1.0, "augment": None}, "consistency needs augment='d4'"),
])
def test_bad_consistency_is_refused_before_training(cells, params, message):
    net = SarcNetRegressor(use_features=False, image_size=32, max_epochs=1, verbose=0, **params)
    with pytest.raises(ValueError, match=message):
        net.fit(cells[["image_path"]].head(8), cells["score"].head(8))
    assert not getattr(net, "initialized_", False) or not len(net.history_)


def test_channels_last_and_contiguous_layouts_give_the_same_scores(cells, tmp_path):
    train = cells.iloc[:24]
    model = make_sarcnet_pipeline(protocol=2, image_size=32, max_epochs=1, batch_size=12,
                                  verbose=0, random_state=0, consistency=1.0,
                                  test_time_augment=False, train_split=None)
    model.fit(train, train["score"])
    module = model.regressor.module_
    fast = model.predict(cells.iloc[24:40])
    module.to(memory_format=torch.contiguous_format)
    images = torch.randint(0, 255, (4, 32, 32), dtype=torch.uint8)
    normalized = module.normalize_images(images)
    assert normalized.is_contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        plain = module.image_branch(normalized.contiguous())
        module.to(memory_format=torch.channels_last)
        last = module.image_branch(normalized)
    torch.testing.assert_close(plain, last, atol=1e-5, rtol=1e-5)

    path = save_model(model, tmp_path / "model.sarcnet", format="safe")
    loaded = load_model(path)
    assert loaded.regressor.consistency == 1.0
    torch.testing.assert_close(torch.as_tensor(loaded.predict(cells.iloc[24:40])),
                               torch.as_tensor(fast), atol=1e-5, rtol=1e-5)


def test_train_model_with_canonical_orientation_says_so_in_the_card(cells):
    from sarcnet_sklearn.deploy import model_card, train_model

    pipeline, metadata = train_model(cells.iloc[:20], protocol=2, image_size=32, max_epochs=1,
                                     batch_size=10, validation=0.25, device="cpu",
                                     canonical_orientation=True)
    assert pipeline.regressor.canonical_orientation is True
    assert model_card(pipeline, metadata)["canonical_orientation"] is True
    with pytest.raises(ValueError, match="exclude each other"):
        train_model(cells.iloc[:20], protocol=2, image_size=32, max_epochs=1, device="cpu",
                    canonical_orientation=True, consistency=1.0)
