"""train.Adversarial: a generator and a critic trained by fit, against hand-computed updates."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from coursekit import divergences, train

CPU = torch.device("cpu")


class Affine(nn.Module):
    """G(z) = a z + b: the generated distribution is N(b, a^2) for z ~ N(0, 1)."""

    def __init__(self, a=1.0, b=0.0):
        super().__init__()
        self.a, self.b = nn.Parameter(torch.tensor([a])), nn.Parameter(torch.tensor([b]))

    def forward(self, z):
        return self.a * z + self.b


class Quadratic(nn.Module):
    """D(x) = w . (x, x^2) + c: it can represent the optimal logit between two Gaussians."""

    def __init__(self):
        super().__init__()
        self.w = nn.Linear(2, 1)

    def forward(self, x):
        return self.w(torch.cat([x, x**2], 1))


def d_gan(d_real, d_fake):  # -E[log D(x)] - E[log(1 - D(G(z)))]
    return F.softplus(-d_real).mean() + F.softplus(d_fake).mean()


def g_nonsaturating(d_fake):  # -E[log D(G(z))]
    return F.softplus(-d_fake).mean()


def _gan(lr=2e-2, opt=torch.optim.Adam, **kwargs):
    torch.manual_seed(0)
    g, d = Affine(), Quadratic()
    extra = {"betas": (0.5, 0.999)} if opt is torch.optim.Adam else {}
    return train.Adversarial(
        g, d, g_nonsaturating, d_gan, g_opt=opt(g.parameters(), lr, **extra),
        d_opt=opt(d.parameters(), lr, **extra), noise=train.gaussian_noise(1), **kwargs,
    )  # fmt: skip


def _data(mean=3.0, std=0.5, n=4096):
    return mean + std * torch.randn(n, 1, generator=torch.Generator().manual_seed(1))


def _fit(gan, data=None, steps=20, **kwargs):
    data = _data() if data is None else data
    return train.fit(gan, data, steps=steps, batch_size=64, progress=False, device=CPU, **kwargs)


def test_a_gan_on_a_1d_gaussian_learns_the_mean():
    gan = _gan(ema_decay=0.9)
    hist = train.fit(gan, _data(), steps=400, batch_size=256, progress=False, device=CPU)
    with torch.no_grad():
        mean = gan.generator(torch.randn(20_000, 1)).mean().item()
        ema_mean = hist.ema.module(torch.randn(20_000, 1)).mean().item()
    assert gan.generator.b.item() != 0.0 and abs(mean - 3.0) < 0.15, mean  # from 0 to ~3
    assert abs(ema_mean - 3.0) < 0.15, ema_mean
    assert set(hist.logs) == {"d_loss", "g_loss"} and hist.steps == list(range(1, 401))
    # near equilibrium D ~ 1/2 everywhere: d_loss -> 2 log 2, g_loss -> log 2
    assert hist.final("d_loss") == pytest.approx(2 * 0.6931, abs=0.1)
    assert hist.final("g_loss") == pytest.approx(0.6931, abs=0.1)


def test_n_critic_critic_updates_per_generator_update():
    gan = _gan(n_critic=3)
    counts = {"d": 0, "g": 0}
    gan.d_opt.register_step_post_hook(lambda *_: counts.__setitem__("d", counts["d"] + 1))
    gan.g_opt.register_step_post_hook(lambda *_: counts.__setitem__("g", counts["g"] + 1))
    start = [p.detach().clone() for p in gan.generator.parameters()]
    hist = _fit(gan, steps=2)
    # before its first update the generator's loss is measured, not acted on
    assert counts == {"d": 2, "g": 0} and len(hist.logs["g_loss"]) == 2
    assert all(torch.equal(p, q) for p, q in zip(start, gan.generator.parameters()))
    gan = _gan(n_critic=3)
    gan.d_opt.register_step_post_hook(lambda *_: counts.__setitem__("d", counts["d"] + 1))
    gan.g_opt.register_step_post_hook(lambda *_: counts.__setitem__("g", counts["g"] + 1))
    counts.update(d=0, g=0)
    hist = _fit(gan, steps=10)
    assert counts == {"d": 10, "g": 3} and (gan.d_steps, gan.g_steps) == (10, 3)
    g_loss = hist.logs["g_loss"]
    assert g_loss[3] == g_loss[4] and g_loss[5] != g_loss[4]  # carried until the next update
    with pytest.raises(ValueError, match="n_critic"):
        _gan(n_critic=0)


def test_the_ema_averages_the_generator_only():
    decay = 0.8
    gan = _gan(ema_decay=decay, n_critic=2)
    average = [p.detach().clone() for p in gan.generator.parameters()]
    updates = [0]

    def by_hand(*_):  # the bias-corrected average (train.EMA): weight (1 - d) / (1 - d^t)
        updates[0] += 1
        weight = (1 - decay) / (1 - decay ** updates[0])
        for avg, p in zip(average, gan.generator.parameters()):
            avg.mul_(1 - weight).add_(weight * p.detach())

    gan.g_opt.register_step_post_hook(by_hand)
    hist = _fit(gan, steps=9)
    assert hist.ema is gan.ema and isinstance(gan.ema.module, Affine)
    for avg, p in zip(average, gan.ema.module.parameters()):
        assert torch.allclose(avg, p, atol=1e-6)
    assert not torch.equal(gan.ema.module.b, gan.generator.b)
    keys = set(gan.state_dict())
    assert {k for k in keys if "ema" in k} == {"generator_ema.a", "generator_ema.b"}
    gan.train()
    assert not gan.ema.module.training  # fit's model.train() leaves the average in eval mode
    with pytest.raises(ValueError, match="ema"):
        _fit(_gan(), ema=0.9)  # fit's ema would average the critic too: refused


def _displacement(before, module):
    return torch.cat([(p.detach() - b).flatten() for b, p in zip(before, module.parameters())])


def test_clipping_applies_to_both_players():
    def steep_d(d_real, d_fake):
        return 1000.0 * (d_fake.mean() - d_real.mean())

    def steep_g(d_fake):
        return -1000.0 * d_fake.mean()

    for clip in [None, 0.5]:
        torch.manual_seed(0)
        g, d = Affine(), Quadratic()
        gan = train.Adversarial(
            g, d, steep_g, steep_d, g_opt=torch.optim.SGD(g.parameters(), 1.0),
            d_opt=torch.optim.SGD(d.parameters(), 1.0), noise=train.gaussian_noise(1), clip_grad=clip,
        )  # fmt: skip
        g0, d0 = (
            [p.detach().clone() for p in g.parameters()],
            [p.detach().clone() for p in d.parameters()],
        )
        hist = _fit(gan, steps=1)
        moved_g, moved_d = _displacement(g0, g).norm(), _displacement(d0, d).norm()
        if clip is None:  # SGD with lr 1 moves each player by its whole gradient
            assert moved_g > 10 and moved_d > 10 and "d_grad_norm" not in hist.logs
        else:
            assert moved_g.item() == pytest.approx(clip, rel=1e-4)
            assert moved_d.item() == pytest.approx(clip, rel=1e-4)
            assert hist.logs["d_grad_norm"][0] > 10 and hist.logs["g_grad_norm"][0] > 10


def test_the_gradient_penalty_hook_gets_real_and_fake_and_is_added():
    calls = []

    def penalty(critic, real, fake):
        calls.append((critic, real.clone(), fake.clone(), fake.requires_grad))
        return (critic.w.weight**2).sum()

    torch.manual_seed(0)
    g, d = Affine(a=0.0, b=-2.0), Quadratic()  # G(z) = -2 for every z
    w0 = d.w.weight.detach().clone()
    lr = 0.1
    gan = train.Adversarial(
        g, d, g_nonsaturating, lambda r, f: 0.0 * (r.sum() + f.sum()),  # only the penalty acts
        g_opt=torch.optim.SGD(g.parameters(), 0.0), d_opt=torch.optim.SGD(d.parameters(), lr),
        noise=train.gaussian_noise(1), gradient_penalty=penalty,
    )  # fmt: skip
    hist = _fit(gan, torch.full((32, 1), 5.0), steps=2)
    assert len(calls) == 2 and calls[0][0] is d
    critic, real, fake, fake_grad = calls[0]
    assert real.shape == fake.shape == (32, 1)  # a batch of all 32 rows, as many fakes
    assert torch.all(real == 5.0) and torch.all(fake == -2.0) and not fake_grad
    # SGD on |w|^2: w <- (1 - 2 lr) w, twice
    assert torch.allclose(d.w.weight, w0 * (1 - 2 * lr) ** 2, atol=1e-6)
    assert hist.logs["d_gp"][0] == pytest.approx((w0**2).sum().item(), rel=1e-5)
    assert hist.logs["d_loss"] == [0.0, 0.0]  # the logged loss excludes the penalty


def _wgan_gp(critic, real, fake):
    """WGAN-GP (Gulrajani et al. 2017, eq. 3); the interpolation weights use torch's global RNG."""
    t = torch.rand(real.shape[0], 1)
    x = (t * real + (1 - t) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x).sum(), x, create_graph=True)
    return 10.0 * ((grad.norm(dim=1) - 1) ** 2).mean()


def _resumable_run(path, steps, **kwargs):
    gan = _gan(n_critic=2, ema_decay=0.9, clip_grad=1.0, gradient_penalty=_wgan_gp, **kwargs)
    hist = train.fit(
        gan, _data(), steps=steps, batch_size=64, checkpoint=path, checkpoint_every=5,
        progress=False, device=CPU, generator=torch.Generator().manual_seed(3),
    )  # fmt: skip
    return gan, hist


def test_resuming_from_a_checkpoint_is_bit_identical(tmp_path, capsys):
    straight, straight_hist = _resumable_run(tmp_path / "straight.pt", steps=12)
    path = tmp_path / "resumed.pt"
    _resumable_run(path, steps=5)  # stops mid-cycle: critic step 5, the generator's is at 6
    capsys.readouterr()
    resumed, hist = _resumable_run(path, steps=12)
    assert "Resumed from" in capsys.readouterr().out
    a, b = straight.state_dict(), resumed.state_dict()
    assert a.keys() == b.keys()
    for k in a:
        if k.endswith("_extra_state"):
            continue
        assert torch.equal(a[k], b[k]), k
    for opt in ["d_opt", "g_opt"]:
        sa, sb = getattr(straight, opt).state_dict(), getattr(resumed, opt).state_dict()
        for i in sa["state"]:
            for name, value in sa["state"][i].items():
                assert torch.equal(value, sb["state"][i][name]), (opt, i, name)
    assert (resumed.d_steps, resumed.g_steps) == (straight.d_steps, straight.g_steps) == (12, 6)
    assert torch.equal(resumed.rng.get_state(), straight.rng.get_state())
    assert hist.logs == straight_hist.logs and hist.steps == list(range(1, 13))
    assert set(hist.logs) == {"d_loss", "d_gp", "d_grad_norm", "g_loss", "g_grad_norm"}
    assert hist.ema is resumed.ema and resumed.ema.updates == straight.ema.updates == 6


def test_amp_runs_on_cpu_as_a_no_op_and_fit_refuses_its_own_options():
    plain, mixed = _gan(), _gan(amp=True)
    h1, h2 = _fit(plain, steps=5), _fit(mixed, steps=5)
    assert h1.logs == h2.logs
    for p, q in zip(plain.parameters(), mixed.parameters()):
        assert torch.equal(p, q)
    for option in [{"amp": True}, {"clip_grad": 1.0}, {"optimizer": plain.d_opt}]:
        with pytest.raises(ValueError, match="does its own training step"):
            _fit(_gan(), **option)


@pytest.mark.parametrize(
    "where, says",
    [("d", "d_loss is the critic's loss"), ("gp", "d_gp is the critic's gradient penalty"),
     ("g", "g_loss is the generator's loss")],
)  # fmt: skip
def test_a_non_finite_term_names_the_player_and_the_term(where, says):
    calls = {"d": 0, "g": 0}

    def d_loss(r, f):
        calls["d"] += 1
        return d_gan(r, f) * (float("nan") if where == "d" and calls["d"] == 3 else 1.0)

    def g_loss(f):
        calls["g"] += 1
        return g_nonsaturating(f) * (float("inf") if where == "g" and calls["g"] == 3 else 1.0)

    def gp(critic, real, fake):
        return torch.tensor(float("inf") if where == "gp" and calls["d"] == 3 else 0.0)

    torch.manual_seed(0)
    g, d = Affine(), Quadratic()
    gan = train.Adversarial(
        g, d, g_loss, d_loss, g_opt=torch.optim.Adam(g.parameters()),
        d_opt=torch.optim.Adam(d.parameters()), noise=train.gaussian_noise(1), gradient_penalty=gp,
    )  # fmt: skip
    with pytest.raises(FloatingPointError, match="at step 3") as err:
        _fit(gan, steps=10)
    assert says in str(err.value)


def test_each_optimizer_must_belong_to_its_player():
    g, d = Affine(), Quadratic()
    common = {"noise": train.gaussian_noise(1)}
    with pytest.raises(ValueError, match="d_opt updates 2 parameter.*not the critic's"):
        train.Adversarial(g, d, g_nonsaturating, d_gan, g_opt=torch.optim.SGD(g.parameters(), 1),
                          d_opt=torch.optim.SGD(g.parameters(), 1), **common)  # fmt: skip
    with pytest.raises(ValueError, match="both g_loss and g_opt"):
        train.Adversarial(g, d, g_nonsaturating, d_gan, g_opt=None,
                          d_opt=torch.optim.SGD(d.parameters(), 1), **common)  # fmt: skip
    with pytest.raises(KeyError, match='"loss" entry'):
        bad = train.Adversarial(g, d, None, lambda r, f: {"bce": r.mean()}, g_opt=None,
                                d_opt=torch.optim.SGD(d.parameters(), 1), **common)  # fmt: skip
        _fit(bad, steps=1)


def test_lecture_01_critic_training_is_the_critic_only_step_bit_for_bit():
    """train_critic (fit + a critic-only Adversarial) equals the plain Adam loop it replaced."""

    def sample_p(n, g):
        return 1.0 + 0.5 * torch.randn(n, 1, generator=g)

    def sample_q(n, g):
        return torch.randn(n, 1, generator=g)

    def bound(a, b):
        return divergences.fgan_bound(divergences.get("kl"), a, b)

    def critic():
        torch.manual_seed(0)
        return nn.Sequential(nn.Linear(1, 16), nn.SiLU(), nn.Linear(16, 1))

    steps, g = 25, torch.Generator().manual_seed(7)
    ours = critic()
    trace = divergences.train_critic(ours, bound, sample_p, sample_q, steps=steps, lr=1e-2,
                                     eval_every=10, eval_size=500, generator=g)  # fmt: skip
    loop, g = critic(), torch.Generator().manual_seed(7)
    opt = torch.optim.Adam(loop.parameters(), lr=1e-2)
    x_p_eval, x_q_eval = sample_p(500, g), sample_q(500, g)
    for _ in range(steps):
        x_p, x_q = sample_p(256, g), sample_q(256, g)
        loss = -bound(loop(x_p).reshape(-1), loop(x_q).reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
    for p, q in zip(ours.parameters(), loop.parameters()):
        assert torch.equal(p, q)
    assert trace.steps == [0, 10, 20, 25]
    with torch.no_grad():
        assert (
            trace.estimates[-1]
            == bound(loop(x_p_eval).reshape(-1), loop(x_q_eval).reshape(-1)).item()
        )


def test_the_amp_path_runs_under_a_real_bf16_autocast(monkeypatch):
    """On CPU utils.autocast is a no-op; here it is CPU bf16 autocast, as on CUDA."""
    from coursekit import utils

    def bf16(dev, enabled=True):
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)

    monkeypatch.setattr(utils, "autocast", bf16)
    seen = []

    def d_loss(d_real, d_fake):
        seen.append((d_real.dtype, d_fake.dtype))
        return d_gan(d_real, d_fake)

    def run(amp):
        torch.manual_seed(0)
        g, d = Affine(), nn.Sequential(nn.Linear(1, 16), nn.SiLU(), nn.Linear(16, 1))
        gan = train.Adversarial(
            g, d, g_nonsaturating, d_loss, g_opt=torch.optim.Adam(g.parameters(), 1e-2),
            d_opt=torch.optim.Adam(d.parameters(), 1e-2), noise=train.gaussian_noise(1),
            gradient_penalty=_wgan_gp, clip_grad=1.0, ema_decay=0.9, amp=amp,
        )  # fmt: skip
        return gan, _fit(gan, steps=20)

    (gan, mixed), (_, plain) = run(amp=True), run(amp=False)
    assert seen[0] == (torch.float32, torch.float32)  # the losses see float32 outputs
    assert all(p.dtype == torch.float32 for p in gan.parameters())
    assert all(all(map(torch.isfinite, map(torch.tensor, v))) for v in mixed.logs.values())
    assert mixed.logs["d_loss"] != plain.logs["d_loss"]  # bf16 was really used
    assert mixed.final("d_loss", last=5) == pytest.approx(plain.final("d_loss", last=5), abs=0.1)


def test_the_progress_bar_shows_both_players(capsys):
    train.fit(_gan(), _data(), steps=3, batch_size=16, device=CPU)
    bar = capsys.readouterr().err
    assert "3/3" in bar and "d_loss=" in bar and "g_loss=" in bar
