"""Shapes, conditioning and gradients of coursekit.networks."""

import pytest
import torch

from coursekit import networks


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def test_mlp_shape_and_depth():
    net = networks.MLP(3, 5, hidden=16, depth=2)
    assert net(torch.randn(7, 3)).shape == (7, 5)
    linears = [m for m in net.modules() if isinstance(m, torch.nn.Linear)]
    assert len(linears) == 3  # two hidden layers + output


def test_sinusoidal_embedding_distinct_and_bounded():
    emb = networks.SinusoidalTimeEmbedding(32)
    t = torch.linspace(0, 1, 50)
    e = emb(t)
    assert e.shape == (50, 32)
    assert e.abs().max() <= 1.0
    d = torch.cdist(e, e) + torch.eye(50) * 1e3
    assert d.min() > 1e-2  # every pair of distinct times gets a distinct embedding
    # cos/sin halves: cos^2 + sin^2 = 1 per frequency
    torch.testing.assert_close(e[:, :16] ** 2 + e[:, 16:] ** 2, torch.ones(50, 16))
    # integer steps with time_scale=1 equal t in [0, 1] with time_scale=1000
    steps = networks.SinusoidalTimeEmbedding(32, time_scale=1.0)
    torch.testing.assert_close(
        steps(torch.tensor([0.0, 250.0, 999.0])),
        emb(torch.tensor([0.0, 0.25, 0.999])),
        rtol=1e-4,
        atol=1e-4,
    )


def test_label_embedding_null_token():
    emb = networks.LabelEmbedding(10, 8)
    null = emb(None, batch_size=3)
    assert null.shape == (3, 8)
    torch.testing.assert_close(null, emb(torch.full((3,), 10)))
    assert not torch.allclose(emb(torch.tensor([0])), emb(torch.tensor([10])))
    with pytest.raises(ValueError, match="0..10"):
        emb(torch.tensor([11]))
    y = torch.arange(10).repeat(100)
    dropped = emb.drop_labels(y, 0.3, generator=torch.Generator().manual_seed(0))
    frac = (dropped == 10).float().mean().item()
    assert 0.25 < frac < 0.35
    kept = dropped != 10
    assert torch.equal(dropped[kept], y[kept])
    assert torch.equal(emb.drop_labels(y, 0.0), y)


def test_resblock_shapes_and_embedding_matters():
    blk = networks.ResBlock(8, 16, emb_dim=12)
    x = torch.randn(2, 8, 6, 6)
    e1, e2 = torch.randn(2, 12), torch.randn(2, 12)
    assert blk(x, e1).shape == (2, 16, 6, 6)
    assert not torch.allclose(blk(x, e1), blk(x, e2))
    assert isinstance(networks.ResBlock(8, 8, 12).skip, torch.nn.Identity)


@pytest.mark.parametrize("size,mults", [(8, None), (8, (1, 2)), (28, None), (28, (1, 2))])
@pytest.mark.parametrize("num_classes", [None, 10])
def test_unet_shapes(size, mults, num_classes):
    net = networks.UNet(in_ch=1, base=16, mults=mults, num_classes=num_classes, image_size=size)
    x = torch.randn(2, 1, size, size)
    t = torch.rand(2)
    y = torch.tensor([3, 7]) if num_classes else None
    assert net(x, t, y).shape == x.shape
    assert net(x, 0.5).shape == x.shape  # scalar time broadcasts


def test_unet_28_reaches_7x7():
    net = networks.UNet(base=16, image_size=28)  # mults None -> (1, 2, 2)
    seen = []
    net.mid1.register_forward_hook(lambda m, i, o: seen.append(o.shape))
    net(torch.randn(1, 1, 28, 28), torch.rand(1))
    assert seen[0][-2:] == (7, 7)


def test_unet_out_channels_and_bad_size():
    net = networks.UNet(in_ch=3, out_ch=6, base=16, mults=(1, 2), image_size=8)
    assert net(torch.randn(2, 3, 8, 8), torch.rand(2)).shape == (2, 6, 8, 8)
    with pytest.raises(ValueError, match="halved"):
        networks.UNet(image_size=28, mults=(1, 2, 2, 2))


def test_unet_conditioning_changes_output_and_null_label():
    net = networks.UNet(base=16, mults=(1, 2), num_classes=10, image_size=8)
    x, t = torch.randn(2, 1, 8, 8), torch.rand(2)
    out_a = net(x, t, torch.tensor([1, 1]))
    out_b = net(x, t, torch.tensor([2, 2]))
    assert not torch.allclose(out_a, out_b)
    torch.testing.assert_close(net(x, t, None), net(x, t, torch.tensor([10, 10])))
    assert not torch.allclose(net(x, t), net(x, t + 0.3))
    with pytest.raises(ValueError, match="num_classes"):
        networks.UNet(base=16, mults=(1, 2), image_size=8)(x, t, torch.tensor([1, 1]))


def test_unet_gradients_reach_every_parameter():
    net = networks.UNet(base=16, mults=(1, 2), num_classes=10, image_size=8)
    x = torch.randn(3, 1, 8, 8, requires_grad=True)
    net(x, torch.rand(3), torch.tensor([0, 5, 10])).square().mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    for name, p in net.named_parameters():
        if name.startswith("label_embed"):
            continue  # only the rows of used labels get gradient
        assert p.grad is not None and p.grad.abs().sum() > 0, name


def test_unet_receptive_field_spans_the_image():
    # an output pixel must depend on the input far away (attention + downsampling), i.e. the
    # UNet is not accidentally pointwise
    net = networks.UNet(base=16, mults=(1, 2), image_size=8)
    x = torch.randn(1, 1, 8, 8, requires_grad=True)
    net(x, torch.rand(1))[0, 0, 0, 0].backward()
    assert x.grad[0, 0, 7, 7].abs() > 0


@pytest.mark.parametrize("num_classes", [None, 4])
def test_time_conditioned_mlp(num_classes):
    net = networks.TimeConditionedMLP(2, hidden=32, depth=2, num_classes=num_classes)
    x = torch.randn(5, 2, requires_grad=True)
    y = torch.randint(0, 4, (5,)) if num_classes else None
    out = net(x, torch.rand(5), y)
    assert out.shape == (5, 2)
    assert not torch.allclose(net(x, torch.zeros(5), y), net(x, torch.ones(5), y))
    out.sum().backward()
    assert all(p.grad is not None for n, p in net.named_parameters() if "label" not in n)


@pytest.mark.parametrize("num_classes", [None, 3])
def test_image_mlp_is_a_time_conditioned_mlp_on_flattened_images(num_classes):
    # lectures 06 and 08 train it; the same seed must give the same network as the
    # TimeConditionedMLP it wraps, so that a lecture switching to it keeps its numbers
    shape = (1, 4, 4)
    torch.manual_seed(3)
    net = networks.ImageMLP(shape, hidden=16, depth=2, num_classes=num_classes)
    torch.manual_seed(3)
    flat = networks.TimeConditionedMLP(16, 16, 2, num_classes=num_classes)
    assert [n.removeprefix("mlp.") for n, _ in net.named_parameters()] == [
        n for n, _ in flat.named_parameters()
    ]
    x, t = torch.randn(5, *shape), torch.rand(5)
    y = torch.tensor([0, 1, 2, 0, 1]) if num_classes else None
    out = net(x, t, y)
    assert out.shape == (5, *shape)
    torch.testing.assert_close(out, flat(x.flatten(1), t, y).view(5, *shape))
    # each output pixel depends on every input pixel (an MLP, not a pointwise map)
    x.requires_grad_(True)
    net(x, t, y)[0, 0, 0, 0].backward()
    assert (x.grad[0] != 0).all()
