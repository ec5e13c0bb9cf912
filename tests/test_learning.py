"""End to end: images are read and used. An image-only ResNet-18, trained for a few epochs
of CPU on small synthetic cells, ranks held-out cells like the experts do."""

from __future__ import annotations

from sarcnet_sklearn import spearman_score


def test_image_only_resnet18_learns_the_synthetic_rubric(cells, image_only_net):
    test = cells.iloc[200:]
    held_out = spearman_score(test["score"], image_only_net.predict(test[["image_path"]]))
    print(f"held-out Spearman {held_out:.3f}")
    assert held_out >= 0.5
