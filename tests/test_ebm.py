"""Oracle tests of coursekit.ebm and solvers.mala against closed forms."""

import math

import pytest
import torch

from coursekit import ebm, solvers


def _gauss_energy(s2):
    return lambda x: 0.5 * (x**2).sum(1) / s2


@pytest.mark.parametrize("eps", [0.1, 0.4])
def test_ula_stationary_variance_has_the_known_bias(eps):
    s2 = 1.0
    g = torch.Generator().manual_seed(0)
    x = torch.randn(20000, 1, generator=g, dtype=torch.float64)
    x = solvers.langevin(x, energy=_gauss_energy(s2), step_size=eps, num_steps=200, generator=g)
    expected = s2 / (1 - eps / (2 * s2))  # ULA on N(0, s2): AR(1) with (1-eps/s2), noise 2 eps
    assert float(x.var()) == pytest.approx(expected, rel=0.03)
    assert abs(float(x.var()) - s2) > 0.5 * (expected - s2)  # the bias is there


def test_mala_removes_the_bias():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(20000, 1, generator=g, dtype=torch.float64)
    x, acc = solvers.mala(x, energy=_gauss_energy(1.0), step_size=0.4, num_steps=200, generator=g)
    assert float(x.var()) == pytest.approx(1.0, rel=0.03)
    assert 0.5 < acc < 1.0


def test_mala_rejects_when_the_step_is_too_large():
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2000, 1, generator=g, dtype=torch.float64)
    _, small = solvers.mala(x, energy=_gauss_energy(1.0), step_size=0.1, num_steps=20, generator=g)
    _, large = solvers.mala(x, energy=_gauss_energy(1.0), step_size=2.5, num_steps=20, generator=g)
    assert small > 0.95 and large < small - 0.4


class _Quadratic(torch.nn.Module):
    """E(x) = 1/2 (x - m)^T P (x - m) with P = L L^T learnt."""

    def __init__(self):
        super().__init__()
        self.m = torch.nn.Parameter(torch.zeros(2, dtype=torch.float64))
        self.L = torch.nn.Parameter(torch.eye(2, dtype=torch.float64))

    def forward(self, x):
        d = (x - self.m) @ self.L
        return 0.5 * (d**2).sum(1)


def _fit(loss_fn, steps=600):
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(3)
    cov = torch.tensor([[1.0, 0.6], [0.6, 0.8]], dtype=torch.float64)
    mean = torch.tensor([1.0, -0.5], dtype=torch.float64)
    x = mean + torch.randn(4000, 2, generator=g, dtype=torch.float64) @ torch.linalg.cholesky(cov).T
    model = _Quadratic()
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(steps):
        opt.zero_grad()
        loss_fn(model, x).mean().backward()
        opt.step()
    prec = (model.L @ model.L.T).detach()
    return model.m.detach(), torch.linalg.inv(prec), mean, cov


def test_score_matching_recovers_a_gaussian():
    m, cov_hat, mean, cov = _fit(ebm.score_matching)
    assert torch.allclose(m, mean, atol=0.05)
    assert torch.allclose(cov_hat, cov, atol=0.06)


def test_sliced_score_matching_recovers_a_gaussian():
    g = torch.Generator().manual_seed(5)
    m, cov_hat, mean, cov = _fit(
        lambda e, x: ebm.sliced_score_matching(e, x, n_projections=4, generator=g), steps=800
    )
    assert torch.allclose(m, mean, atol=0.1)
    assert torch.allclose(cov_hat, cov, atol=0.12)


def test_denoising_score_matching_learns_the_noised_gaussian():
    g = torch.Generator().manual_seed(6)
    sigma = 0.3
    m, cov_hat, mean, cov = _fit(
        lambda e, x: ebm.denoising_score_matching(e, x, sigma, generator=g), steps=800
    )
    assert torch.allclose(m, mean, atol=0.1)
    assert torch.allclose(cov_hat, cov + sigma**2 * torch.eye(2, dtype=torch.float64), atol=0.12)


def test_score_matching_trace_is_exact():
    # E = 1/2 x^T P x: s = -P x, tr(ds/dx) = -tr P
    e = _Quadratic()
    with torch.no_grad():
        e.L.copy_(torch.tensor([[1.5, 0.0], [0.4, 0.7]], dtype=torch.float64))
    x = torch.randn(5, 2, dtype=torch.float64)
    p = (e.L @ e.L.T).detach()
    expected = 0.5 * ((x @ p) ** 2).sum(1) - torch.trace(p)
    assert torch.allclose(ebm.score_matching(e, x), expected)


def test_nce_with_the_true_noise_recovers_log_z():
    # data N(0, 1) in 2-D; E = 1/2 |x|^2 / s2 with s2 learnt; log Z = log(2 pi s2)
    g = torch.Generator().manual_seed(7)
    x = torch.randn(8000, 2, generator=g)
    noise_sd = 1.5
    xn = noise_sd * torch.randn(16000, 2, generator=g)

    def noise_lp(z):
        return -0.5 * (z**2).sum(1) / noise_sd**2 - math.log(2 * math.pi * noise_sd**2)

    log_s2 = torch.nn.Parameter(torch.tensor(0.5))
    log_z = torch.nn.Parameter(torch.tensor(0.0))
    opt = torch.optim.Adam([log_s2, log_z], lr=0.05)
    for _ in range(400):
        opt.zero_grad()
        out = ebm.nce_loss(lambda z: 0.5 * (z**2).sum(1) / log_s2.exp(), log_z, x, xn, noise_lp)
        out["loss"].backward()
        opt.step()
    true_log_z = math.log(2 * math.pi * float(log_s2.detach().exp()))
    assert float(log_z) == pytest.approx(true_log_z, abs=0.05)
    assert float(log_s2.detach().exp()) == pytest.approx(1.0, abs=0.05)


def test_grid_normaliser_against_the_closed_form():
    s2 = 0.7
    log_z = ebm.grid_log_z(_gauss_energy(s2), -6.0, 6.0, 300)
    assert log_z == pytest.approx(math.log(2 * math.pi * s2), abs=1e-4)


def test_grid_model_log_prob_integrates_to_one():
    model = ebm.GridEnergyModel(
        torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)),
        box=(-3, 3),
        grid_size=100,
    )
    pts, area = ebm.grid_points(-3, 3, 100)
    total = model.log_prob(pts.float()).exp().sum() * area
    assert float(total) == pytest.approx(1.0, abs=1e-4)


def test_grid_log_z_is_cached_until_the_weights_change(monkeypatch):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    model = ebm.GridEnergyModel(net, box=(-3, 3), grid_size=40)
    calls = []
    real = ebm.grid.grid_log_z

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(ebm.grid, "grid_log_z", counting)
    x = torch.randn(5, 2)
    first = model.log_prob(x)
    assert torch.equal(model.log_prob(x), first) and len(calls) == 1  # reused
    model.loss(torch.randn(8, 2))["loss"].backward()  # a backward pass alone changes nothing
    model.log_z()
    assert len(calls) == 1
    torch.optim.SGD(model.parameters(), lr=0.5).step()  # a training step invalidates it
    lz = model.log_z()
    assert len(calls) == 2 and lz == pytest.approx(real(model.energy, -3, 3, 40), abs=1e-9)
    model.load_state_dict(
        ebm.GridEnergyModel(
            torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)),
            box=(-3, 3),
            grid_size=40,
        ).state_dict()
    )  # new weights through load_state_dict
    assert model.log_z() == pytest.approx(real(model.energy, -3, 3, 40), abs=1e-9)
    assert len(calls) == 3
    model.double()  # a dtype change
    model.log_z()
    assert len(calls) == 4
    with torch.no_grad():
        net[2].bias.data += 1.0  # .data bypasses the version counter: cleared by hand
    model.clear_log_z()
    assert model.log_z() == pytest.approx(real(model.energy, -3, 3, 40), abs=1e-9)
    assert len(calls) == 5


def test_cd_loss_detaches_the_samples_and_has_the_likelihood_sign():
    net = torch.nn.Linear(2, 1)
    xd, xm = torch.randn(8, 2), torch.randn(8, 2, requires_grad=True)
    out = ebm.contrastive_divergence(lambda z: net(z).squeeze(1), xd, xm, alpha=0.0)
    out["loss"].backward()
    assert xm.grad is None
    assert torch.allclose(net.weight.grad[0], xd.mean(0) - xm.detach().mean(0))


def test_buffer_resumes_from_its_state_dict_and_reinits_only_drawn_states():
    def init(n, g):
        return torch.full((n, 2), 7.0)

    buf = ebm.ReplayBuffer(50, init, reinit=0.5)
    g = torch.Generator().manual_seed(0)
    x = buf.draw(10, generator=g)
    buf.push(torch.zeros_like(x))
    assert int((buf.states == 0).all(1).sum()) == 10  # only the drawn slots changed
    other = ebm.ReplayBuffer(50, init)
    other.load_state_dict(buf.state_dict())
    assert torch.equal(other.states, buf.states)
    with pytest.raises(ebm.BufferError, match="capacity"):
        ebm.ReplayBuffer(10, init).load_state_dict(buf.state_dict())


def test_energy_model_state_dict_carries_the_buffer():
    case = ebm._tiny_image_ebm()
    case.model.loss(case.x)
    state = case.model.state_dict()
    fresh = ebm._tiny_image_ebm().model
    fresh.load_state_dict(state)
    assert torch.equal(fresh.buffer.states, case.model.buffer.states)


def test_energy_model_log_prob_raises_with_a_hint():
    with pytest.raises(NotImplementedError, match="GridEnergyModel"):
        ebm._tiny_image_ebm().model.log_prob(torch.rand(2, 1, 8, 8))


def test_sample_from_buffer_returns_distinct_training_chain_states():
    case = ebm._tiny_image_ebm()
    model = case.model
    with pytest.raises(ValueError, match="trained model"):
        model.sample(4, from_buffer=True)
    model.loss(case.x)
    g = torch.Generator().manual_seed(0)
    x = model.sample(16, generator=g, from_buffer=True, num_steps=0)
    states = model.buffer.states
    rows = {tuple(r.flatten().tolist()) for r in x}
    assert len(rows) == 16 and rows == {tuple(r.flatten().tolist()) for r in states}
    x[:] = -1.0  # a copy: the buffer is not edited through the samples
    assert float(states.min()) >= 0.0
    more = model.sample(4, generator=g, from_buffer=True, num_steps=2)
    assert more.shape == (4, 1, 8, 8) and float(more.min()) >= 0.0 and float(more.max()) <= 1.0
    with pytest.raises(ValueError, match="buffer of 16"):
        model.sample(17, from_buffer=True)


def test_mala_sampler_keeps_a_gaussian_energy_unbiased_where_ula_is_not():
    class Quadratic(torch.nn.Module):
        def forward(self, x):
            return 0.5 * (x**2).sum(1) / 0.1**2  # N(0, 0.01 I)

    x0 = torch.randn(4000, 2) * 0.1
    variances = {}
    for sampler in ("langevin", "mala"):
        model = ebm.EnergyModel(
            Quadratic(), (2,), box=(-5, 5), step_size=0.01, buffer_size=0, sampler=sampler
        )
        g = torch.Generator().manual_seed(0)
        variances[sampler] = float(model.langevin(x0, 200, g).var())
    assert variances["langevin"] == pytest.approx(0.01 / (1 - 0.01 / (2 * 0.01)), rel=0.1)
    assert variances["mala"] == pytest.approx(0.01, rel=0.08)
    assert 0.0 < model.acceptance < 1.0
    with pytest.raises(ValueError, match="sampler"):
        ebm.EnergyModel(Quadratic(), (2,), sampler="hmc")


def test_classifier_energy_is_minus_logsumexp_and_jem_adds_cross_entropy():
    torch.manual_seed(0)
    clf = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    x, y = torch.rand(6, 1, 8, 8), torch.randint(0, 10, (6,))
    energy = ebm.ClassifierEnergy(clf)
    assert torch.allclose(energy(x), -torch.logsumexp(clf(x), 1))
    model = ebm.JointEnergyModel(
        clf, (1, 8, 8), ce_weight=0.5, train_steps=2, buffer_size=16, alpha=0.1
    )
    model.generator = torch.Generator().manual_seed(1)
    out = model.loss(x, y)
    ce = torch.nn.functional.cross_entropy(clf(x), y)
    model.generator = torch.Generator().manual_seed(1)
    model.buffer.states = None  # the same chain again, for the CD part alone
    cd = ebm.EnergyModel.loss(model, x)["loss"]
    assert float(out["loss"]) == pytest.approx(float(cd + 0.5 * ce), rel=1e-5)
    assert float(out["accuracy"]) == pytest.approx(float((clf(x).argmax(1) == y).float().mean()))
    assert "ce" not in model.loss(x)  # no labels: the generative term only
