"""ControlNet: exactly the base model at initialisation, a frozen base, and a control it learns.

The zero-initialised joins make the controlled network equal the base bit for bit before
training (Zhang et al., 2023, sec. 3.1); the base's parameters never receive gradients.
"""

import copy

import pytest
import torch

from coursekit import networks, train
from coursekit.diffusion import controlnet, ddpm, schedules


def unet(num_classes=None, mults=(1, 2), num_res_blocks=1, attention=False, size=8):
    torch.manual_seed(0)
    return networks.UNet(in_ch=1, base=8, mults=mults, num_classes=num_classes, image_size=size,
                         num_res_blocks=num_res_blocks, attention=attention)  # fmt: skip


def mlp(in_dim=64, depth=3):
    torch.manual_seed(0)
    return networks.TimeConditionedMLP(in_dim=in_dim, hidden=32, depth=depth)


def randomize(module):
    """Non-zero weights in the base, as after pretraining (a fresh UNet's layers are random too)."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return module


@pytest.mark.parametrize(
    "base, x, control, y",
    [
        (unet(), torch.randn(3, 1, 8, 8), torch.rand(3, 1, 4, 4), None),
        (unet(), torch.randn(3, 1, 8, 8), torch.rand(3, 1, 2, 2), None),
        (unet(num_classes=10), torch.randn(2, 1, 8, 8), torch.rand(2, 1, 8, 8), torch.tensor([3, 7])),
        (unet(mults=(1, 2, 2), num_res_blocks=2, attention=True, size=12),
         torch.randn(2, 1, 12, 12), torch.rand(2, 1, 3, 3), None),
        (mlp(), torch.randn(4, 1, 8, 8), torch.rand(4, 1, 4, 4), None),
        (mlp(in_dim=2, depth=4), torch.randn(5, 2), torch.rand(5, 3), None),
    ],
)  # fmt: skip
def test_at_initialisation_the_output_is_exactly_the_base_models(base, x, control, y):
    base = randomize(base)
    t = torch.rand(len(x))
    channels = control.shape[1] if isinstance(base, networks.UNet) else control[0].numel()
    net = controlnet.ControlNet(copy.deepcopy(base), channels)
    if isinstance(base, networks.UNet):
        expected = base(x, t, y)
    else:  # an MLP sees images flattened
        expected = base(x.flatten(1), t, y).view(x.shape)
    assert torch.equal(net(x, t, control, y), expected)
    # the control does not matter yet: every join starts at zero
    assert torch.equal(net(x, t, 1 + control, y), expected)


def test_the_base_is_frozen_and_the_copy_learns():
    base = randomize(unet())
    before = copy.deepcopy(base.state_dict())
    net = controlnet.ControlNet(base, 1)
    assert all(not p.requires_grad for p in net.base.parameters())
    trainable = net.trainable_parameters()
    n_base = sum(p.numel() for p in base.parameters())
    assert sum(p.numel() for p in trainable) > n_base / 3  # the encoder copy is a real share
    opt = torch.optim.AdamW(trainable, lr=1e-2)
    x, t, c = torch.randn(4, 1, 8, 8), torch.rand(4), torch.rand(4, 1, 2, 2)
    for _ in range(3):
        loss = (net(x, t, c) - x).pow(2).mean()
        opt.zero_grad()
        loss.backward()
        assert all(p.grad is None for p in net.base.parameters())
        opt.step()
    assert all(torch.equal(before[k], v) for k, v in base.state_dict().items())
    assert not torch.equal(net(x, t, c), base(x, t))  # after a few steps the joins are open


def test_the_controlled_loss_starts_at_the_base_loss():
    base = ddpm.Diffusion(randomize(unet()), schedules.cosine_schedule(50), data_shape=(1, 8, 8))
    model = controlnet.ControlledDiffusion(
        base, controlnet.ControlNet(base.net, 1), lambda x: controlnet.low_resolution(x, 2)
    )
    x = torch.rand(6, 1, 8, 8)
    noise, t = torch.randn(6, 1, 8, 8), torch.randint(0, 50, (6,))
    assert torch.equal(
        model.loss(x, noise=noise, t=t)["loss"], base.loss(x, noise=noise, t=t)["loss"]
    )
    with pytest.raises(ValueError, match="needs the control"):
        model.sample(2)


def test_training_makes_the_samples_obey_the_control():
    """Data: flat 4x4 images of a random brightness b; control: b itself (a 1x1 low-res image).

    A tiny base trained without the control samples all brightnesses; after ControlNet training
    the brightness of a sample follows the control it was given (measured by correlation).
    """
    g = torch.Generator().manual_seed(0)
    b = torch.rand(2000, 1, 1, 1, generator=g)
    images = (b + 0.03 * torch.randn(2000, 1, 4, 4, generator=g)).clamp(0, 1)
    torch.manual_seed(0)
    base = ddpm.Diffusion(networks.TimeConditionedMLP(in_dim=16, hidden=64, depth=3),
                          schedules.cosine_schedule(100), data_shape=(1, 4, 4),
                          prediction="x0")  # fmt: skip
    base.net = _Flat(base.net)
    train.fit(base, images, steps=150, lr=2e-3, progress=False, device="cpu")
    control_fn = lambda x: controlnet.low_resolution(x, 1)  # noqa: E731
    model = controlnet.ControlledDiffusion(base, controlnet.ControlNet(base.net.mlp, 1), control_fn)
    train.fit(model, images, steps=200, lr=2e-3, progress=False, device="cpu")
    control = torch.rand(300, 1, 1, 1, generator=g)
    x_T = torch.randn(300, 1, 4, 4, generator=g)
    controlled = model.eval().sample(300, control, sampler="ddim", steps=20, x_T=x_T)
    free = base.eval().sample(300, sampler="ddim", steps=20, x_T=x_T)

    def r(samples):
        return torch.corrcoef(torch.stack([samples.mean((1, 2, 3)), control.flatten()]))[0, 1]

    assert r(controlled) > 0.9 and abs(r(free)) < 0.2, (r(controlled), r(free))


class _Flat(torch.nn.Module):
    """The lecture's ImageMLP: an MLP on flattened images."""

    def __init__(self, mlp):
        super().__init__()
        self.mlp = mlp

    def forward(self, x, t, y=None):
        return self.mlp(x.flatten(1), t, y).view(x.shape)


def test_bad_inputs_are_named():
    net = controlnet.ControlNet(unet(), 1)
    with pytest.raises(ValueError, match="control must have shape"):
        net(torch.randn(2, 1, 8, 8), torch.rand(2), torch.rand(2, 3, 4, 4))
    with pytest.raises(TypeError, match="networks.UNet"):
        controlnet.ControlNet(torch.nn.Linear(2, 2), 1)
    with pytest.raises(ValueError, match="features"):
        controlnet.ControlNet(mlp(), 16)(torch.randn(2, 64), torch.rand(2), torch.rand(2, 15))


def test_control_signals():
    x = torch.zeros(1, 1, 8, 8)
    x[..., 4:] = 1.0  # a vertical step edge
    low = controlnet.low_resolution(x, 2)
    assert torch.equal(low, torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]]))
    e = controlnet.edges(x)
    assert e.shape == x.shape
    assert (e[..., 1:-1, 3:5] > 0).all() and (e[..., 1:-1, :2] == 0).all()
