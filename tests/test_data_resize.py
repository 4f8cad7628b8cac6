"""Resizing in-memory data sets (e.g. 28 px Fashion-MNIST for an ImageNet-stem model)."""

import pytest
import torch

from resnetlab.data import load_dataset


def test_idx_images_resize_to_requested_size():
    plain = load_dataset("fashion-mnist", train_subset=16, test_subset=8)
    big = load_dataset("fashion-mnist", train_subset=16, test_subset=8, image_size=56)
    assert big.image_size == (56, 56)
    assert big.train.images.shape == (16, 1, 56, 56) and big.test.images.shape == (8, 1, 56, 56)
    assert big.train.images.dtype == torch.uint8
    torch.testing.assert_close(big.train.labels, plain.train.labels)
    # 2x bilinear upsampling keeps the image's brightness
    mean_a = plain.train.images.float().mean()
    mean_b = big.train.images.float().mean()
    assert abs(mean_a - mean_b) < 0.02 * mean_a


def test_bad_image_size():
    with pytest.raises(ValueError, match="image_size must be >= 1"):
        load_dataset("fashion-mnist", train_subset=4, test_subset=4, image_size=0)
