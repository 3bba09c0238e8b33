"""coursekit.evaluation: the harness on toy models whose right answers are known."""

import math

import pytest
import torch
from torch import nn

from coursekit import autoregressive as ar
from coursekit import data, evaluation, likelihoods, metrics, models, networks, utils, vae


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


@pytest.fixture(scope="module")
def digits():
    return data.digits("train"), data.digits("test")


class BankModel(models.GenerativeModel):
    """Samples = images drawn at random from a fixed bank (with replacement).

    ``net`` is called ``steps`` times per ``sample`` call, on the whole batch.
    """

    def __init__(self, bank: torch.Tensor, steps: int = 3):
        super().__init__()
        self.data_shape = tuple(bank.shape[1:])
        self.register_buffer("bank", bank.float())
        self.net = nn.Identity()
        self.steps = steps

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None, x_T=None):
        idx = utils.randint(0, len(self.bank), (n,), self.device, generator)
        x = self.bank[idx]
        for _ in range(self.steps):
            x = self.net(x)
        return x


class NoiseModel(models.GenerativeModel):
    """Uniform noise images; ``x_T`` (n, 1, 8, 8), if given, is returned as the sample."""

    def __init__(self):
        super().__init__()
        self.data_shape = (1, 8, 8)
        self.net = nn.Identity()

    @torch.no_grad()
    def sample(self, n, y=None, *, generator=None, x_T=None):
        x = utils.rand((n, *self.data_shape), self.device, generator) if x_T is None else x_T
        if y is not None:
            x = x * 0 + y.view(-1, 1, 1, 1).float() / 10  # labels show up in the images
        return self.net(x)


def tiny_vae(likelihood=None):
    lik = likelihood or likelihoods.DiscretizedLogistic(17)
    P = math.prod(lik.param_shape((1, 8, 8)))
    torch.manual_seed(0)
    return vae.VAE(
        nn.Sequential(nn.Flatten(), networks.MLP(64, 2 * 4, 16, depth=1)),
        networks.MLP(4, P, 16, depth=1),
        lik,
        latent_dim=4,
        x_shape=(1, 8, 8),
    )


# ----------------------------------------------------------------------------- memorisation


def test_memorisation_score_is_the_base_rate_for_fresh_points_and_one_for_copies():
    train = torch.randn(3000, 8, generator=gen(0))
    held_out = torch.randn(3000, 8, generator=gen(1))
    fresh = torch.randn(3000, 8, generator=gen(2))
    score = metrics.memorisation_score(fresh, train, held_out, quantile=0.05)
    assert score.base_rate == 0.05
    assert abs(score.fraction - 0.05) < 0.015  # binomial sd at n=3000 is 0.004, plus tau's noise
    assert metrics.memorisation_score(train[:500], train, held_out).fraction == 1.0
    # the threshold is the held-out quantile of the nearest-neighbour distances
    d = metrics.nearest_neighbour_distance(held_out, train)
    assert score.threshold == pytest.approx(float(torch.quantile(d, 0.05)))


def test_nearest_neighbour_distance_matches_brute_force():
    x, ref = torch.randn(17, 5, generator=gen(0)), torch.randn(23, 5, generator=gen(1))
    brute = torch.tensor([min(float((a - b).norm()) for b in ref) for a in x.double()])
    got = metrics.nearest_neighbour_distance(x, ref, chunk=5)
    torch.testing.assert_close(got, brute.double())


def test_memorisation_score_rejects_bad_input():
    f = torch.randn(10, 3)
    with pytest.raises(ValueError, match="quantile"):
        metrics.memorisation_score(f, f, f, quantile=1.0)
    with pytest.raises(ValueError, match="held-out"):
        metrics.memorisation_score(f, f, f[:1])


def test_a_model_returning_training_images_memorises_and_fcd_cannot_tell(digits):
    train, test = digits
    row = evaluation.evaluate(
        BankModel(train.float()), train, test, n=750, fcd_real="train", generator=gen(0),
        progress=False,
    )  # fmt: skip
    assert row.memorisation > 0.95
    # copies are as close to the training set as fresh real images: FCD at about the floor
    assert row.fcd_ratio < 1.5


def test_an_fcd_below_the_floor_is_flagged_with_its_likely_cause():
    base = dict(name="m", n=750, classifier="digits", fcd_floor=2.7, memorisation_base_rate=0.05)
    copying = evaluation.EvaluationRow(fcd=1.4, memorisation=0.98, **base)
    assert copying.below_floor and copying.as_dict()["below_floor"] is True
    assert "! FCD below the real-vs-real floor: the samples copy training images" in str(copying)
    assert "(!)" in evaluation.table([copying])
    lucky = evaluation.EvaluationRow(fcd=2.6, memorisation=0.04, **base)
    assert lucky.below_floor and "not explained by copying" in str(lucky)
    fine = evaluation.EvaluationRow(fcd=5.8, memorisation=0.04, **base)
    assert not fine.below_floor and "!" not in str(fine)
    assert fine.fcd_ratio == pytest.approx(5.8 / 2.7)


def test_a_model_sampling_held_out_like_images_scores_the_base_rate(digits):
    train, test = digits
    # two random halves of the test set (its order follows the writers, so not first/last half)
    perm = torch.randperm(len(test), generator=gen(1))
    calibration, unseen = test.float()[perm[:148]], test.float()[perm[148:]]
    row = evaluation.evaluate(
        BankModel(unseen), train, calibration, n=1000, fcd_real="train", generator=gen(1),
        progress=False,
    )  # fmt: skip
    assert row.memorisation_base_rate == 0.05
    # 148 unseen digits, drawn with replacement: about 5% of them fall under tau, which is
    # itself the 5% quantile of only 148 distances (0.03 to 0.06 over four seeds)
    assert abs(row.memorisation - row.memorisation_base_rate) < 0.05
    copies = evaluation.evaluate(
        BankModel(train.float()), train, calibration, n=1000, fcd_real="train", generator=gen(1),
        progress=False,
    )  # fmt: skip
    assert copies.memorisation > 4 * row.memorisation


# ----------------------------------------------------------------------------- likelihood kinds


def test_a_vae_row_says_elbo_or_iwae_and_the_bits_match_the_model(digits):
    train, test = digits
    model = tiny_vae()
    test_small = test.float()[:40]
    rows = {}
    for spec in ("elbo", "iwae:20"):
        rows[spec] = evaluation.evaluate(
            model, train, test_small, n=20, likelihood=spec, generator=gen(3), progress=False
        )
    assert rows["elbo"].likelihood_kind == "ELBO" and "(ELBO)" in rows["elbo"].likelihood_label
    assert rows["iwae:20"].likelihood_kind == "IWAE-20"
    assert "[IWAE-20]" in str(rows["iwae:20"])
    # the same numbers by hand, from the same generator state after the same samples
    g = gen(3)
    model.sample(20, generator=g)
    elbo = model.elbo(test_small, generator=g).elbo.detach()
    expected = float(metrics.bits_per_dim(-elbo.double().mean(), 64))
    assert rows["elbo"].bpd == pytest.approx(expected, rel=1e-6)
    assert rows["iwae:20"].bpd < rows["elbo"].bpd  # a tighter bound: fewer bits
    table = evaluation.table(list(rows.values()))
    assert "(ELBO)" in table and "(IWAE-20)" in table


def test_a_density_decoder_gives_the_continuous_figure_only(digits):
    train, test = digits
    model = tiny_vae(likelihoods.Gaussian(std=0.1))
    row = evaluation.evaluate(
        model, train, test.float()[:20], n=10, likelihood="elbo", progress=False
    )
    assert row.bpd is None and row.bpd_continuous is not None
    assert "continuous" in row.likelihood_label and "ELBO" in row.likelihood_label


def test_an_exact_likelihood_is_labelled_exact_and_equals_log_prob(digits):
    train, test = digits
    model = ar.FVSBN((1, 8, 8), 17)
    row = evaluation.evaluate(
        model, train, test, n=10, likelihood="exact", batch_size=100, progress=False
    )
    with torch.no_grad():
        nll = -model.log_prob(test.float()).double().mean()
    assert row.likelihood_kind == "exact"
    assert row.bpd == pytest.approx(float(metrics.bits_per_dim(nll, 64)), rel=1e-6)
    assert row.nfe_per_sample is None  # FVSBN has no net/decoder: not counted unless asked


def test_no_likelihood_and_a_vae_has_no_exact_one(digits):
    train, test = digits
    row = evaluation.evaluate(tiny_vae(), train, test, n=10, progress=False)
    assert row.likelihood_kind == "none" and row.bpd is None and row.likelihood_label == "—"
    with pytest.raises(NotImplementedError, match="log_likelihood"):
        evaluation.evaluate(tiny_vae(), train, test, n=10, likelihood="exact", progress=False)


def test_a_likelihood_callable_needs_its_kind(digits):
    train, test = digits
    model = NoiseModel()
    fn = lambda x: torch.full((len(x),), -64 * math.log(17))  # uniform over 17 levels
    with pytest.raises(evaluation.EvaluationError, match="likelihood_kind"):
        evaluation.evaluate(model, train, test, n=10, likelihood=fn, progress=False)
    with pytest.raises(evaluation.EvaluationError, match="likelihood_kind"):
        evaluation.evaluate(
            model, train, test, n=10, likelihood=fn, likelihood_kind="bound", progress=False
        )
    row = evaluation.evaluate(
        model, train, test, n=10, likelihood=fn, likelihood_kind="ODE estimate", progress=False
    )
    assert row.likelihood_kind == "ODE estimate"
    assert row.bpd == pytest.approx(math.log2(17))


@pytest.mark.parametrize("spec", ["iwae", "iwae:0", "iwae:x", "ELBO", "exact-ish"])
def test_unknown_likelihood_names_are_rejected(digits, spec):
    train, test = digits
    with pytest.raises(evaluation.EvaluationError, match="likelihood"):
        evaluation.evaluate(tiny_vae(), train, test, n=10, likelihood=spec, progress=False)


# ----------------------------------------------------------------------------- NFE, chunks


@pytest.mark.parametrize("steps,chunk", [(3, 7), (11, 1000), (1, 1)])
def test_network_evaluations_per_sample_are_counted_across_chunks(digits, steps, chunk):
    train, test = digits
    model = BankModel(train.float()[:100], steps=steps)
    with evaluation.count_calls(model.net) as calls:
        evaluation.sample_in_chunks(model, 20, chunk=chunk)
    assert calls.calls == steps * math.ceil(20 / chunk) and calls.examples == 20 * steps
    row = evaluation.evaluate(model, train, test, n=20, chunk=chunk, progress=False)
    assert row.nfe_per_sample == steps
    none = evaluation.evaluate(model, train, test, n=20, network=None, progress=False)
    assert none.nfe_per_sample is None
    assert len(model.net._forward_pre_hooks) == 0  # the hook is removed


def test_chunks_give_the_same_samples_as_one_call_with_one_generator():
    model = NoiseModel()
    one = model.sample(23, generator=gen(4))
    chunked = evaluation.sample_in_chunks(model, 23, chunk=5, generator=gen(4))
    assert torch.equal(one, chunked)
    # per-sample inputs and labels are cut into the same chunks
    x_T = torch.rand(23, 1, 8, 8, generator=gen(5))
    y = torch.arange(23) % 10
    torch.testing.assert_close(
        evaluation.sample_in_chunks(model, 23, y, chunk=4, per_sample={"x_T": x_T}),
        model.sample(23, y, x_T=x_T),
    )


def test_a_vae_sampled_in_chunks_equals_one_call():
    model = tiny_vae().eval()
    one = model.sample(30, generator=gen(6), mean=True)
    chunked = evaluation.sample_in_chunks(model, 30, chunk=8, generator=gen(6), mean=True)
    torch.testing.assert_close(one, chunked)


def test_evaluate_returns_the_chunked_samples_statistics_and_restores_train_mode(digits):
    train, test = digits
    model = BankModel(train.float(), steps=2).train()
    row = evaluation.evaluate(
        model, train, test, n=300, chunk=64, generator=gen(7), training_seconds=12.5,
        progress=False,
    )  # fmt: skip
    assert model.training
    samples = evaluation.sample_in_chunks(model, 300, chunk=64, generator=gen(7))
    assert torch.equal(row.samples, samples) and "samples" not in row.as_dict()
    expected = metrics.fcd(samples[:148], test)
    assert row.fcd_n == 148 and row.fcd_batches == 2
    assert row.fcd_floor == pytest.approx(expected.floor)
    assert row.fcd_score.floor == row.fcd_floor and row.fcd_score.n == 148
    second = metrics.fcd(samples[148:296], test)
    assert row.fcd == pytest.approx((expected.value + second.value) / 2)
    prdc = metrics.precision_recall_coverage(
        metrics.classifier_features(test), metrics.classifier_features(samples)
    )
    assert row.coverage == pytest.approx(prdc.coverage)
    assert row.training_seconds == 12.5 and row.parameters == 0
    assert set(row.as_dict()) >= {"fcd", "fcd_ratio", "memorisation", "nfe_per_sample", "bpd"}


def test_conditional_samples_report_class_accuracy(digits):
    train, test = digits
    # a model that returns a real test digit of the requested class
    by_class = torch.stack([test.float()[test.labels == c][0] for c in range(10)])

    class Lookup(NoiseModel):
        def sample(self, n, y=None, *, generator=None, x_T=None):
            return by_class[y]

    y = torch.arange(40) % 10
    row = evaluation.evaluate(Lookup(), train, test, n=40, y=y, progress=False)
    assert row.class_accuracy == pytest.approx(
        metrics.classifier_accuracy(by_class[y], y), abs=1e-12
    )
    assert row.class_accuracy > 0.9


# ----------------------------------------------------------------------------- bad input


def test_bad_input_gets_a_clear_error(digits):
    train, test = digits
    model = NoiseModel()
    E = evaluation.EvaluationError
    with pytest.raises(E, match="n >= 2"):
        evaluation.evaluate(model, train, test, n=1, progress=False)
    with pytest.raises(E, match="data_shape"):
        evaluation.evaluate(model, train.float()[:, :, :4], test, n=10, progress=False)
    with pytest.raises(E, match="data_shape"):
        evaluation.evaluate(model, train, test.float().flatten(1), n=10, progress=False)
    with pytest.raises(E, match="fcd_real"):
        evaluation.evaluate(model, train, test, n=10, fcd_real="val", progress=False)
    with pytest.raises(E, match="one row per sample"):
        evaluation.evaluate(model, train, test, n=10, y=torch.arange(9), progress=False)
    with pytest.raises(E, match="chunk"):
        evaluation.sample_in_chunks(model, 10, chunk=0)
    with pytest.raises(E, match="classifier"):
        toy = BankModel(torch.randn(10, 2))
        evaluation.evaluate(toy, torch.randn(10, 2), torch.randn(10, 2), n=10, progress=False)
    assert issubclass(E, ValueError)


def test_a_diverged_sampler_is_named(digits):
    train, test = digits

    class Diverged(NoiseModel):
        def sample(self, n, y=None, *, generator=None, x_T=None):
            return torch.full((n, 1, 8, 8), float("nan"))

    with pytest.raises(evaluation.EvaluationError, match="diverge"):
        evaluation.evaluate(Diverged(), train, test, n=10, progress=False)


# ----------------------------------------------------------------------------- maybe_compile


def test_maybe_compile_compiles_and_the_hooks_still_count():
    net = nn.Linear(3, 2)
    x = torch.randn(4, 3, generator=gen(8))
    compiled = utils.maybe_compile(net, x, backend="eager")
    assert compiled is not net
    torch.testing.assert_close(compiled(x), net(x))
    with evaluation.count_calls(compiled) as calls:
        compiled(x)
        compiled(x[:2])
    assert calls.calls == 2 and calls.examples == 6


def test_maybe_compile_falls_back_when_compiling_fails(monkeypatch, capsys):
    net = nn.Linear(3, 2)

    def broken_compile(module, **kwargs):
        raise RuntimeError("no C++ compiler found\nlong traceback")

    monkeypatch.setattr(torch, "compile", broken_compile)
    assert utils.maybe_compile(net) is net
    out = capsys.readouterr().out
    assert (
        out.strip() == "torch.compile failed, running eagerly: RuntimeError: no C++ compiler found"
    )


def test_maybe_compile_falls_back_when_the_first_call_fails(monkeypatch, capsys):
    net = nn.Linear(3, 2)

    def fails_on_call(*args):
        raise TypeError("unsupported operation")

    monkeypatch.setattr(torch, "compile", lambda module, **kwargs: fails_on_call)
    assert utils.maybe_compile(net, torch.randn(1, 3)) is net
    assert "running eagerly: TypeError: unsupported operation" in capsys.readouterr().out
    # without example inputs nothing is called, so the failure is not seen yet
    assert utils.maybe_compile(net) is fails_on_call


def test_maybe_compile_without_torch_compile(monkeypatch, capsys):
    net = nn.Linear(3, 2)
    monkeypatch.delattr(torch, "compile")
    assert utils.maybe_compile(net, torch.randn(1, 3)) is net
    assert "not available" in capsys.readouterr().out
