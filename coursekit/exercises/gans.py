"""Checks for Lecture 05 (generative adversarial networks): each prints one ✓ / ✗ line.

The references are in ``coursekit.gan``. The players output logits: D(x) is a logit, the
probability "real" is sigmoid(D(x)), and log sigmoid(l) = -softplus(-l).

- ``check_discriminator_loss(fn)``: ``fn(D, G, x, z)``, the discriminator's step loss
  -E log D(x) - E log(1 - D(G(z))), with G(z) detached so no gradient reaches the generator.
- ``check_generator_loss(fn)``: ``fn(D, G, z)``, the non-saturating -E log D(G(z)), with the
  gradient flowing through D into G (no detach).
- ``check_gradient_penalty(fn)``: ``fn(critic, real, fake, eps)``, E[(||grad D(x_hat)|| - 1)^2]
  at x_hat = eps x + (1 - eps) G(z) with one eps per sample, the norm over every non-batch
  dimension, differentiable in the critic's parameters (create_graph=True). Checked on 2-D and
  image-shaped inputs, so a norm over the wrong dimensions fails.
- ``check_cycle_loss(fn)``: ``fn(G_ab, G_ba, a, b)``, CycleGAN's cycle-consistency loss
  ||G_ba(G_ab(a)) - a||_1 + ||G_ab(G_ba(b)) - b||_1, each term a mean over its elements,
  differentiable in both translators; the two domains' batches differ in size.
- ``check_inversion_loss(fn)``: ``fn(G, z, x, mask)``, GAN inversion's objective per image,
  ||m (G(z) - x)||^2 / |m| with the mask (B, 1, H, W) shared by the channels (|m| counts the
  visible values of the expanded mask), shape (B,), differentiable in z.

Every check runs on cases that differ in every size (batch B, data width X, latent Z; channels
C, height H, width W); ``seed=0`` starts with the notebook's inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import check
from coursekit import gan as ref


def reference_discriminator_loss(D: nn.Module, G: nn.Module, x: Tensor, z: Tensor) -> Tensor:
    return ref.d_gan(D(x), D(G(z).detach()))


def reference_generator_loss(D: nn.Module, G: nn.Module, z: Tensor) -> Tensor:
    return ref.g_nonsaturating(D(G(z)))


def reference_gradient_penalty(
    critic: nn.Module, real: Tensor, fake: Tensor, eps: Tensor
) -> Tensor:
    return ref.gradient_penalty(critic, real, fake, eps=eps, weight=1.0)


def _players(case: check.Case) -> tuple[nn.Module, nn.Module]:
    g = case.generator(1)
    G = nn.Sequential(nn.Linear(case.Z, 16), nn.Tanh(), nn.Linear(16, case.X))
    D = nn.Sequential(nn.Linear(case.X, 16), nn.Tanh(), nn.Linear(16, 1))
    with torch.no_grad():
        for p in [*G.parameters(), *D.parameters()]:
            p.copy_(torch.randn(p.shape, generator=g))
    return D, G


def _grads(out: Tensor, params: list[Tensor]) -> list[Tensor | None]:
    if not (isinstance(out, Tensor) and out.requires_grad):
        return [None] * len(params)
    return list(torch.autograd.grad(out, params, allow_unused=True, retain_graph=True))


def _sizes(seed: int) -> list[check.Case]:
    return check.sizes(seed, B=(8, 5, range(3, 17)), X=(2, 5, range(2, 8)), Z=(3, 6, range(2, 9)))


def check_discriminator_loss(fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``fn(D, G, x, z) -> scalar``: the discriminator's loss in its own step."""
    with check.exercise("discriminator loss", success="cross-entropy, G(z) detached") as ex:
        for case in ex.cases(_sizes(seed)):
            D, G = _players(case)
            g = case.generator(0)
            x, z = (
                torch.randn(case.B, case.X, generator=g),
                torch.randn(case.B, case.Z, generator=g),
            )
            with torch.no_grad():
                dr, df = D(x), D(G(z))
                expected = ref.d_gan(dr, df)
            out = ex.call(fn, D, G, x, z, grad=(0, 1))
            ex.tensor(out, shape=(), what="your loss")
            ex.close(out, expected, what="your loss", hints={
                "swapped the labels: real samples should get D(x) -> 1, i.e. -log sigmoid(D(x))":
                    F.softplus(dr).mean() + F.softplus(-df).mean(),
                "flipped the sign: the discriminator *minimises* -E log D(x) - E log(1 - D(G(z)))":
                    -expected,
                "forgot the fake term -E log(1 - D(G(z)))": F.softplus(-dr).mean(),
                "forgot the real term -E log D(x)": F.softplus(df).mean(),
                "summed over the batch: average each term (mean)": expected * case.B,
                "used the generator's non-saturating loss for the fakes (-log D(G(z)))":
                    F.softplus(-dr).mean() + F.softplus(-df).mean(),
            })  # fmt: skip
            n_d = len(list(D.parameters()))
            g_params = [p for _, p in ex._last_call[3][n_d:]]
            leaked = [gr for gr in _grads(out, g_params) if gr is not None and gr.abs().sum() > 0]
            ex.require(
                not leaked,
                "your loss sends gradients into the generator's weights: in the "
                "discriminator's step detach the fakes, D(G(z).detach()), so that this "
                "loss trains D only",
            )
            args, kwargs, _, wrt = ex._last_call
            ex._last_call = (args, kwargs, (0,), wrt[:n_d])  # compare D's gradient only
            ex.grad(out, reference_discriminator_loss, what="your loss")
    return ex.result


def check_generator_loss(fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``fn(D, G, z) -> scalar``: the non-saturating generator loss in the generator's step."""
    with check.exercise(
        "generator loss", success="non-saturating, gradient through D into G"
    ) as ex:
        for case in ex.cases(_sizes(seed)):
            D, G = _players(case)
            z = torch.randn(case.B, case.Z, generator=case.generator(0))
            with torch.no_grad():
                df = D(G(z))
                expected = ref.g_nonsaturating(df)
            out = ex.call(fn, D, G, z, grad=(1,))
            ex.tensor(out, shape=(), what="your loss")
            ex.close(out, expected, what="your loss", hints={
                "used the saturating loss E log(1 - D(G(z))): it has no gradient where D rejects "
                "the fakes; minimise -E log D(G(z)) instead": ref.g_saturating(df),
                "flipped the sign: the generator minimises -E log D(G(z))": -expected,
                "used the discriminator's loss on the fakes, -E log(1 - D(G(z))): that trains G "
                "to look fake": F.softplus(df).mean(),
                "summed over the batch: average (mean)": expected * case.B,
                "returned D(G(z)) averaged, not the log-loss -E log sigmoid(D(G(z)))": df.mean(),
            })  # fmt: skip
            g_params = [p for _, p in ex._last_call[3]]
            grads = _grads(out, g_params)
            ex.require(
                any(gr is not None and gr.abs().sum() > 0 for gr in grads),
                "no gradient reaches the generator's weights: in the generator's step do "
                "not detach G(z) (and do not use torch.no_grad()); the generator learns "
                "only through D(G(z))",
            )
            ex.grad(out, reference_generator_loss, what="your loss")
    return ex.result


class _Critic(nn.Module):
    """A smooth nonlinear critic on any input shape: tanh(<W1, x>) . w2, no batch statistics."""

    def __init__(self, shape: tuple[int, ...], g: torch.Generator):
        super().__init__()
        d = 1
        for s in shape:
            d *= s
        self.net = nn.Sequential(
            nn.Flatten(), nn.Linear(d, 12), nn.Tanh(), nn.Linear(12, 1, bias=False)
        )
        # (no output bias: the penalty does not depend on it)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(0.7 * torch.randn(p.shape, generator=g))

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def _gp(critic, real, fake, eps, *, at=None, dims=None, shared=False, square=True):
    e = eps[:1].expand_as(eps) if shared else eps
    e = e.view(-1, *([1] * (real.dim() - 1)))
    x = {None: e * real + (1 - e) * fake, "real": real, "fake": fake}[at]
    x = x.detach().requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    if dims == "dim1":
        norm = grad.norm(dim=1)
    elif dims == "all":
        norm = grad.norm()
    else:
        norm = grad.flatten(1).norm(dim=1)
    return ((norm - 1) ** 2 if square else (norm - 1).abs()).mean()


def check_gradient_penalty(fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``fn(critic, real, fake, eps) -> scalar``: WGAN-GP's penalty (weight 1), eps of shape (B,)."""
    cases = check.sizes(seed, B=(6, 4, range(3, 11)), C=(1, 3, range(1, 4)), H=(4, 3, range(2, 6)),
                        W=(4, 5, range(2, 6)))  # fmt: skip
    with check.exercise(
        "gradient penalty", success="per-sample interpolates, per-sample norm"
    ) as ex:
        for case in ex.cases(cases):
            for shape in [(case.C * case.H,), (case.C, case.H, case.W)]:
                g = case.generator(len(shape))
                critic = _Critic(shape, g)
                real = torch.randn(case.B, *shape, generator=g)
                fake = torch.randn(case.B, *shape, generator=g)
                eps = torch.rand(case.B, generator=g)
                expected = _gp(critic, real, fake, eps).detach()
                args = (critic, real, fake, eps)
                what = f"your penalty on inputs of shape {(case.B, *shape)}"
                out = ex.call(fn, *args, grad=(0,))
                ex.tensor(out, shape=(), what=what)
                ex.close(out, expected, what=what, hints={
                    "took the norm over dim=1 only (per pixel): flatten the gradient and take the "
                    "norm over every non-batch dimension, grad.flatten(1).norm(dim=1)":
                        _gp(*args, dims="dim1") if len(shape) > 1 else None,
                    "took one norm over the whole batch: one norm per sample, grad.flatten(1)"
                    ".norm(dim=1)": _gp(*args, dims="all"),
                    "used one interpolation coefficient for the whole batch: eps has one entry "
                    "per sample, reshape it to (B, 1, ...)": _gp(*args, shared=True),
                    "took the penalty at the real data: WGAN-GP evaluates it at the interpolates "
                    "eps x + (1 - eps) G(z)": _gp(*args, at="real"),
                    "took the penalty at the fakes: evaluate it at the interpolates": _gp(*args, at="fake"),
                    "swapped eps and 1 - eps between real and fake": _gp(critic, fake, real, eps),
                    "forgot the square: (||grad|| - 1)^2": _gp(*args, square=False),
                })  # fmt: skip
                ex.require(
                    isinstance(out, Tensor) and out.requires_grad,
                    f"{what} has the right value but no gradient reaches the critic: take the "
                    "input gradient with torch.autograd.grad(..., create_graph=True), so the "
                    "penalty can be backpropagated into the critic's weights",
                )
                ex.grad(out, reference_gradient_penalty, what=what)
    return ex.result


def reference_cycle_loss(G_ab: nn.Module, G_ba: nn.Module, a: Tensor, b: Tensor) -> Tensor:
    return ref.cycle_consistency_loss(G_ab, G_ba, a, b)


class _Translator(nn.Module):
    """A smooth nonlinear per-pixel map of images (B, C, H, W): x -> tanh(1x1 conv) + x."""

    def __init__(self, c: int, g: torch.Generator):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1)
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, x: Tensor) -> Tensor:
        return torch.tanh(self.conv(x)) + x


def check_cycle_loss(fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``fn(G_ab, G_ba, a, b) -> scalar``: the cycle-consistency loss (L1, means)."""
    cases = check.sizes(seed, B=(4, 3, range(2, 9)), C=(1, 2, range(1, 4)), H=(4, 5, range(2, 7)))
    with check.exercise("cycle-consistency loss", success="both cycles, L1, means") as ex:
        for case in ex.cases(cases):
            g = case.generator(0)
            G_ab, G_ba = _Translator(case.C, g), _Translator(case.C, g)
            a = torch.rand(case.B, case.C, case.H, case.H, generator=g)
            b = torch.rand(case.B + 1, case.C, case.H, case.H, generator=g)  # unpaired sizes
            with torch.no_grad():
                ra, rb = G_ba(G_ab(a)) - a, G_ab(G_ba(b)) - b
                expected = ra.abs().mean() + rb.abs().mean()
                hints = {
                    "kept only the A -> B -> A cycle: add ||G_ab(G_ba(b)) - b||_1": ra.abs().mean(),
                    "kept only the B -> A -> B cycle: add ||G_ba(G_ab(a)) - a||_1": rb.abs().mean(),
                    "used the squared error: the cycle loss is L1, |.|": ra.pow(2).mean()
                    + rb.pow(2).mean(),
                    "composed a translator with itself: the cycle is G_ba(G_ab(a)), not "
                    "G_ab(G_ab(a))": (G_ab(G_ab(a)) - a).abs().mean()
                    + (G_ba(G_ba(b)) - b).abs().mean(),
                    "compared one translation with the input, ||G_ab(a) - a||: translate there "
                    "and back before comparing": (G_ab(a) - a).abs().mean()
                    + (G_ba(b) - b).abs().mean(),
                    "summed over the elements: average each term (mean)": ra.abs().sum()
                    + rb.abs().sum(),
                    "averaged the two terms: the loss is their sum": expected / 2,
                }
            out = ex.call(fn, G_ab, G_ba, a, b, grad=(0, 1))
            ex.tensor(out, shape=(), what="your loss")
            ex.close(out, expected, what="your loss", hints=hints)
            ex.grad(out, reference_cycle_loss, what="your loss")
    return ex.result


def reference_inversion_loss(G: nn.Module, z: Tensor, x: Tensor, mask: Tensor) -> Tensor:
    m = mask.expand_as(x).to(x)
    return (m * (G(z) - x)).pow(2).flatten(1).sum(1) / m.flatten(1).sum(1)


class _ImageGenerator(nn.Module):
    """A smooth nonlinear generator z (B, Z) -> images (B, C, H, W): sigmoid(linear(z))."""

    def __init__(self, latent: int, shape: tuple[int, int, int], g: torch.Generator):
        super().__init__()
        self.shape = shape
        self.fc = nn.Linear(latent, shape[0] * shape[1] * shape[2])
        with torch.no_grad():
            for p in self.parameters():
                p.copy_(torch.randn(p.shape, generator=g))

    def forward(self, z: Tensor) -> Tensor:
        return torch.sigmoid(self.fc(z)).view(-1, *self.shape)


def check_inversion_loss(fn: Callable[..., Tensor], *, seed: int = 0) -> check.Result:
    """``fn(G, z, x, mask) -> (B,)``: each image's masked squared error, GAN inversion's objective."""
    cases = check.sizes(
        seed,
        B=(4, 3, range(2, 9)),
        Z=(3, 5, range(2, 8)),
        C=(1, 2, range(1, 4)),
        H=(4, 5, range(3, 7)),
        W=(3, 6, range(3, 8)),
    )
    with check.exercise("inversion loss", success="masked squared error per image") as ex:
        for case in ex.cases(cases):
            g = case.generator(0)
            G = _ImageGenerator(case.Z, (case.C, case.H, case.W), g)
            z = torch.randn(case.B, case.Z, generator=g)
            x = torch.rand(case.B, case.C, case.H, case.W, generator=g)
            # one mask per image, shared by the channels; every image keeps some pixels
            mask = (torch.rand(case.B, 1, case.H, case.W, generator=g) < 0.6).float()
            mask[:, :, 0, 0] = 1.0
            with torch.no_grad():
                m = mask.expand_as(x)
                d = G(z) - x
                sq = (m * d).pow(2).flatten(1).sum(1)  # (B,)
                count = m.flatten(1).sum(1)  # (B,) visible values, channels included
                expected = sq / count
                hints = {
                    "ignored the mask: only the visible pixels (mask = 1) count":
                        d.pow(2).flatten(1).mean(1),
                    "divided by every pixel of the image: divide by the number of visible "
                    "ones, |m|": sq / x[0].numel(),
                    "divided by the whole batch's visible count: normalise each image by its "
                    "own |m|": sq / count.sum(),
                    "counted the mask's pixels once, not once per channel: expand the mask "
                    "like x before summing it": sq / mask.flatten(1).sum(1),
                    "used the absolute error: the objective is the squared error":
                        (m * d).abs().flatten(1).sum(1) / count,
                    "left out the square's normalisation: divide the sum by |m|": sq,
                    "compared the masked generator output with the unmasked image: mask the "
                    "difference, m (G(z) - x)": (m * G(z) - x).pow(2).flatten(1).sum(1) / count,
                }  # fmt: skip
            out = ex.call(fn, G, z, x, mask, grad=(1,))
            ex.require(
                not (isinstance(out, Tensor) and out.dim() == 0),
                "your loss is one number for the batch: return one value per image, "
                f"shape ({case.B},) (each image's error; gan.invert averages them)",
            )
            ex.tensor(out, shape=(case.B,), what="your loss")
            ex.close(out, expected, what="your loss", hints=hints)
            ex.grad(out, reference_inversion_loss, what="your loss")
    return ex.result
