"""coursekit.metrics against closed forms and brute-force computations."""

import math

import numpy as np
import pytest
import torch

from coursekit import data, metrics


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


# --------------------------------------------------------------------------------- units


def test_bits_per_dim_uniform_256_levels_is_8():
    D = 3 * 32 * 32
    nll = torch.full((4,), D * math.log(256))  # uniform over 256 levels, in nats
    torch.testing.assert_close(metrics.bits_per_dim(nll, D), torch.full((4,), 8.0))
    assert metrics.nats_to_bits(math.log(2)) == pytest.approx(1.0)
    assert metrics.bits_to_nats(metrics.nats_to_bits(1.234)) == pytest.approx(1.234)


# --------------------------------------------------------------------------------- distances


def brute_energy(x, y):
    x, y = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    n, m = len(x), len(y)
    dxy = np.mean([np.linalg.norm(a - b) for a in x for b in y])
    dxx = sum(np.linalg.norm(x[i] - x[j]) for i in range(n) for j in range(n) if i != j) / (
        n * (n - 1)
    )
    dyy = sum(np.linalg.norm(y[i] - y[j]) for i in range(m) for j in range(m) if i != j) / (
        m * (m - 1)
    )
    return 2 * dxy - dxx - dyy


def brute_mmd(x, y, bws):
    x, y = x.numpy().astype(np.float64), y.numpy().astype(np.float64)
    k = lambda a, b: sum(np.exp(-np.sum((a - b) ** 2) / (2 * s * s)) for s in bws)
    n, m = len(x), len(y)
    exx = sum(k(x[i], x[j]) for i in range(n) for j in range(n) if i != j) / (n * (n - 1))
    eyy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    exy = np.mean([k(a, b) for a in x for b in y])
    return exx + eyy - 2 * exy


def test_energy_distance_matches_brute_force():
    x = torch.randn(20, 2, generator=gen(0))
    y = torch.randn(15, 2, generator=gen(1)) + 0.5
    assert metrics.energy_distance(x, y) == pytest.approx(brute_energy(x, y), rel=1e-10)


def test_energy_distance_near_zero_for_same_distribution():
    x = torch.randn(1000, 2, generator=gen(0))
    y = torch.randn(1000, 2, generator=gen(1))
    shifted = y + torch.tensor([0.5, 0.0])
    same, diff = metrics.energy_distance(x, y), metrics.energy_distance(x, shifted)
    assert abs(same) < 0.01
    assert diff > 10 * abs(same)


def test_mmd_matches_brute_force():
    x = torch.randn(12, 3, generator=gen(0))
    y = torch.randn(10, 3, generator=gen(1)) * 2
    bws = (0.5, 1.0, 3.0)
    assert metrics.mmd(x, y, bandwidths=bws) == pytest.approx(brute_mmd(x, y, bws), rel=1e-10)
    # the median heuristic default runs and separates a scale change
    same = metrics.mmd(torch.randn(500, 2, generator=gen(2)), torch.randn(500, 2, generator=gen(3)))
    diff = metrics.mmd(
        torch.randn(500, 2, generator=gen(2)), 2 * torch.randn(500, 2, generator=gen(3))
    )
    assert diff > 10 * abs(same)


def test_two_sample_score_floor_with_sampler_and_tensor():
    sampler = lambda n, seed: data.toy_2d("moons", n, seed=seed)
    good = metrics.two_sample_score(data.toy_2d("moons", 500, seed=100), sampler)
    bad = metrics.two_sample_score(torch.randn(500, 2, generator=gen(0)), sampler)
    assert good.value < good.real_p95 + 0.01
    assert bad.value > 0.05
    assert bad.value > 10 * max(abs(bad.real_floor), abs(bad.real_p95))
    assert "floor" in str(good) and good.n == 500
    real = data.toy_2d("moons", 2000, seed=7)
    score = metrics.two_sample_score(torch.randn(800, 2, generator=gen(0)), real, metric="mmd")
    assert score.n == 800
    assert score.value > 5 * max(score.real_p95, abs(score.real_floor))


def test_two_sample_score_averaged_over_sample_sets():
    """A list of K sets: the value is the mean of K single-set values (each against its own
    fresh real set), value_se their standard error, the floor that of single real pairs."""
    sampler = lambda n, seed: data.toy_2d("moons", n, seed=seed)
    one = data.toy_2d("moons", 300, seed=100)
    alone, listed = metrics.two_sample_score(one, sampler), metrics.two_sample_score([one], sampler)
    assert (alone.value, alone.real_p95, alone.sets) == (listed.value, listed.real_p95, 1)
    assert listed.value_se is None
    sets = [1.1 * data.toy_2d("moons", 300, seed=200 + i) for i in range(6)]  # slightly too wide
    score = metrics.two_sample_score(sets, sampler, repeats=8, seed=3)
    ref_seeds = [10_000 * 4] + [10_000 * 4 + 2 * 8 + j for j in range(1, 6)]
    singles = [metrics.energy_distance(s, sampler(300, seed=r)) for s, r in zip(sets, ref_seeds)]
    assert score.value == pytest.approx(np.mean(singles))
    assert score.value_se == pytest.approx(np.std(singles, ddof=1) / np.sqrt(6))
    floor = metrics.two_sample_score(sets[0], sampler, repeats=8, seed=3)
    assert (score.real_floor, score.real_p95) == (floor.real_floor, floor.real_p95)
    assert score.sets == 6 and "mean of 6 sets" in str(score)
    with pytest.raises(ValueError, match="same size"):
        metrics.two_sample_score([one, one[:10]], sampler)
    tensor_real = data.toy_2d("moons", 1000, seed=7)
    tensor_score = metrics.two_sample_score(sets[:3], tensor_real, repeats=4)
    assert tensor_score.sets == 3 and tensor_score.n == 300


# --------------------------------------------------------------------------------- Frechet


def test_frechet_distance_closed_form_diagonal():
    mu1, mu2 = np.array([0.0, 1.0, -2.0]), np.array([1.0, 1.0, 0.5])
    s1, s2 = np.array([1.0, 4.0, 0.25]), np.array([9.0, 1.0, 0.25])  # variances
    # W2^2 of diagonal Gaussians: |mu1 - mu2|^2 + sum (sqrt(s1) - sqrt(s2))^2
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(s1) - np.sqrt(s2)) ** 2)
    got = metrics.frechet_distance(mu1, np.diag(s1), mu2, np.diag(s2))
    assert got == pytest.approx(expected, rel=1e-10)


def test_frechet_distance_zero_for_identical_stats_and_nondiagonal():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    cov = a @ a.T
    mu = rng.normal(size=5)
    assert metrics.frechet_distance(mu, cov, mu, cov) == pytest.approx(0.0, abs=1e-8)
    # rotation-invariance oracle: same distance after rotating both Gaussians
    q, _ = np.linalg.qr(rng.normal(size=(5, 5)))
    b = rng.normal(size=(5, 5))
    cov2, mu2 = b @ b.T, rng.normal(size=5)
    d = metrics.frechet_distance(mu, cov, mu2, cov2)
    d_rot = metrics.frechet_distance(q @ mu, q @ cov @ q.T, q @ mu2, q @ cov2 @ q.T)
    assert d == pytest.approx(d_rot, rel=1e-8)


# --------------------------------------------------------------------------------- classifiers


@pytest.fixture(scope="module")
def digits_test():
    return data.digits("test")


def test_digits_classifier_reaches_recorded_accuracy(digits_test):
    info = metrics.classifier_info("digits")
    acc = metrics.classifier_accuracy(digits_test.float(), digits_test.labels, "digits")
    # at most one image may flip on another CPU's floating-point rounding
    assert acc == pytest.approx(info["test_accuracy"], abs=1.01 / len(digits_test))
    assert acc > 0.95
    net = metrics.classifier("digits")
    assert not net.training
    feats = net.features(digits_test.float()[:4])
    assert feats.shape == (4, info["architecture"]["feature_dim"])
    # wrong labels are judged wrong
    wrong = metrics.classifier_accuracy(digits_test.float(), (digits_test.labels + 1) % 10)
    assert wrong < 0.05


def test_classifier_input_checks(digits_test):
    with pytest.raises(ValueError, match=r"\(N, 1, 8, 8\)"):
        metrics.classifier_features(torch.rand(3, 1, 28, 28), "digits")
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        metrics.classifier_features(digits_test.images.float(), "digits")  # levels 0..16
    with pytest.raises(ValueError, match="Unknown classifier"):
        metrics.classifier("cifar")


def test_fcd_same_set_zero_and_blur_above_floor(digits_test):
    train = data.digits("train")
    feats = metrics.classifier_features(train.float(), "digits")
    stats = metrics.feature_statistics(feats)
    assert metrics.frechet_distance(*stats, *stats) == pytest.approx(0.0, abs=1e-6)

    real = train.float()
    fresh = digits_test.float()  # real images the reference set never saw
    x = fresh
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1)
    noisy = (x + 0.3 * torch.randn(x.shape, generator=gen(0))).clamp(0, 1)
    s_real = metrics.fcd(fresh, real, classifier="digits")
    s_blur = metrics.fcd(blurred, real, classifier="digits")
    s_noise = metrics.fcd(noisy, real, classifier="digits")
    assert s_real.n == len(fresh)
    assert s_blur.floor == pytest.approx(s_real.floor)  # same real halves, same floor
    assert s_real.value < 2 * s_real.floor  # real test images sit at the floor
    assert s_blur.value > 3 * s_blur.floor
    assert s_noise.value > 3 * s_noise.floor
    assert "FCD" in str(s_blur) and "floor" in str(s_blur)


# --------------------------------------------------------------------------------- PRDC


def test_prdc_identical_and_disjoint_sets():
    x = torch.randn(300, 8, generator=gen(0))
    same = metrics.precision_recall_coverage(x, x.clone(), k=5)
    assert same.precision == 1.0 and same.recall == 1.0 and same.coverage == 1.0
    assert same.density == pytest.approx(6 / 5)  # each ball holds its centre + k neighbours
    far = metrics.precision_recall_coverage(x, x + 100.0, k=5)
    assert far.precision == 0.0 and far.recall == 0.0 and far.coverage == 0.0
    assert far.density == 0.0


def test_prdc_mode_collapse_keeps_precision_loses_recall():
    real = torch.randn(400, 2, generator=gen(0))
    collapsed = 0.1 * torch.randn(400, 2, generator=gen(1))  # all fakes near the mode
    r = metrics.precision_recall_coverage(real, collapsed, k=5)
    assert r.precision > 0.9
    assert r.recall < 0.3 and r.coverage < 0.3


def test_prdc_matches_brute_force():
    real = torch.randn(40, 3, generator=gen(0))
    fake = torch.randn(30, 3, generator=gen(1)) + 0.5
    k = 3
    R, F = real.double().numpy(), fake.double().numpy()
    d_rr = np.linalg.norm(R[:, None] - R[None], axis=-1)
    d_ff = np.linalg.norm(F[:, None] - F[None], axis=-1)
    d_rf = np.linalg.norm(R[:, None] - F[None], axis=-1)
    r_r = np.sort(d_rr, axis=1)[:, k]
    r_f = np.sort(d_ff, axis=1)[:, k]
    precision = np.mean([any(d_rf[i, j] <= r_r[i] for i in range(40)) for j in range(30)])
    recall = np.mean([any(d_rf[i, j] <= r_f[j] for j in range(30)) for i in range(40)])
    density = sum(d_rf[i, j] <= r_r[i] for i in range(40) for j in range(30)) / (k * 30)
    coverage = np.mean([d_rf[i].min() <= r_r[i] for i in range(40)])
    got = metrics.precision_recall_coverage(real, fake, k=k)
    assert got.precision == pytest.approx(precision)
    assert got.recall == pytest.approx(recall)
    assert got.density == pytest.approx(density)
    assert got.coverage == pytest.approx(coverage)
