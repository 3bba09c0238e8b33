"""Lecture 05 topic 9 against closed forms: the shapes are what they say, a quarter turn of the
renderer's rotation is the exact voxel rotation, the projection of a known column, the IoU of
known sets, and gradients reach a 3-D generator through its 2-D renderings."""

import math

import pytest
import torch

from coursekit.gan import voxels as vx


def test_shapes_are_binary_and_each_kind_has_its_volume():
    x, kind = vx.shapes_3d(300, seed=0)
    assert x.shape == (300, 1, 16, 16, 16) and set(x.unique().tolist()) <= {0.0, 1.0}
    assert set(kind.tolist()) == {0, 1, 2}
    vol = x.mean((1, 2, 3, 4))
    # a sphere fills pi/6 of its bounding cube, a box all of it, a torus much less
    assert vol[kind == 1].mean() > vol[kind == 0].mean() > vol[kind == 2].mean() > 0
    y, _ = vx.shapes_3d(300, seed=0)
    torch.testing.assert_close(y, x)  # the seed fixes the shapes
    assert not torch.equal(vx.shapes_3d(300, seed=1)[0], x)


def test_a_quarter_turn_is_the_exact_voxel_rotation_and_zero_is_the_identity():
    x, _ = vx.shapes_3d(4, seed=1)
    torch.testing.assert_close(vx.rotate_y(x, torch.zeros(4)), x, atol=1e-5, rtol=0)
    quarter = vx.rotate_y(x, torch.full((4,), math.pi / 2))
    torch.testing.assert_close(quarter, torch.rot90(x, -1, (2, 4)), atol=1e-5, rtol=0)


def test_projection_of_a_known_column():
    v = torch.zeros(1, 1, 16, 16, 16)
    v[0, 0, :3, 5, 7] = 1.0  # three occupied voxels along depth at pixel (5, 7)
    img = vx.render(v, 0.0)
    assert img.shape == (1, 1, 16, 16)
    assert img[0, 0, 5, 7].item() == pytest.approx(1 - math.exp(-3), rel=1e-5)
    assert img.sum().item() == pytest.approx(1 - math.exp(-3), rel=1e-5)


def test_nearest_iou_of_known_sets():
    a = torch.zeros(2, 1, 2, 2, 2)
    a[0, 0, 0] = 1  # 4 voxels
    a[1, 0, :, 0, 0] = 1  # 2 voxels, 1 shared with a[0]
    ref = a[:1]
    iou = vx.nearest_iou(a, ref)
    assert iou.tolist() == pytest.approx([1.0, 1 / 5])


def test_gradients_reach_the_3d_generator_through_the_renderer():
    torch.manual_seed(0)
    G = vx.PlatonicGenerator(vx.VoxelGenerator(latent=4, width=2))
    z = vx.platonic_noise(4)(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 5) and (0 <= z[:, -1]).all() and (z[:, -1] < 2 * math.pi).all()
    img = G(z)
    assert img.shape == (3, 1, 16, 16)
    img.mean().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in G.parameters())
    assert vx.VoxelCritic(width=2)(torch.rand(3, 1, 16, 16, 16)).shape == (3, 1)
    assert vx.random_views(torch.rand(2, 1, 16, 16, 16), views=3).shape == (6, 1, 16, 16)


def test_the_networks_take_the_grid_size():
    torch.manual_seed(0)
    G = vx.VoxelGenerator(latent=4, width=2, size=8)
    x = G(torch.randn(3, 4))
    assert x.shape == (3, 1, 8, 8, 8) and (0 <= x).all() and (x <= 1).all()
    assert vx.VoxelCritic(width=2, size=8)(x).shape == (3, 1)
    assert vx.PlatonicGenerator(G)(torch.randn(3, 5)).shape == (3, 1, 8, 8)
    assert vx.shapes_3d(5, size=8)[0].shape == (5, 1, 8, 8, 8)
    with pytest.raises(ValueError, match="multiple of 4"):
        vx.VoxelGenerator(size=10)
    with pytest.raises(ValueError, match="multiple of 4"):
        vx.VoxelCritic(size=6)
