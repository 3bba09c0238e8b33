"""coursekit.comparison against closed forms and scipy (the capstone's table)."""

import math

import pytest
import scipy.stats
import torch

from coursekit import comparison, data


def test_slerp_keeps_the_ends_and_the_norm_of_orthogonal_unit_rows():
    a = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    b = torch.tensor([[0.0, 1.0], [0.0, 2.0]])  # the second pair is parallel: a straight line
    zs = comparison.slerp(a, b, torch.linspace(0, 1, 5))  # (5, 2, 2)
    assert zs.shape == (5, 2, 2)
    torch.testing.assert_close(zs[0], a)
    torch.testing.assert_close(zs[-1], b)
    torch.testing.assert_close(zs[:, 0].norm(dim=1), torch.ones(5))  # on the unit circle
    mid = math.sqrt(0.5)
    torch.testing.assert_close(zs[2, 0], torch.tensor([mid, mid]))
    torch.testing.assert_close(zs[:, 1], b[1].expand(5, 2))


def test_path_length_ratio_is_one_for_a_straight_path_and_more_for_a_detour():
    digits = data.digits("test").float()
    x_a, x_b, x_c = digits[:4], digits[4:8], digits[8:12]
    S = 8
    z_a = torch.tensor([[1.0, 0.0]]).repeat(4, 1)  # slerp to (0, 1): a quarter circle
    z_b = torch.tensor([[0.0, 1.0]]).repeat(4, 1)

    def by_angle(image_at):
        """A decoder of the angle: t = 0 at z_a, 1 at z_b; rows come ordered (S + 1, B)."""

        def decode(z):
            t = (torch.atan2(z[:, 1], z[:, 0]) / (math.pi / 2)).view(-1, 1, 1, 1)
            rep = lambda x: x.repeat(S + 1, 1, 1, 1)  # noqa: E731
            return image_at(t, rep(x_a), rep(x_b), rep(x_c))

        return decode

    def blend(t, a, b, c):  # straight from a to b in pixels
        return (1 - t) * a + t * b

    def detour(t, a, b, c):  # a -> c -> b
        return torch.where(t < 0.5, (1 - 2 * t) * a + 2 * t * c, (2 - 2 * t) * c + (2 * t - 1) * b)

    r_blend = comparison.path_length_ratio(by_angle(blend), z_a, z_b, steps=S)
    r_detour = comparison.path_length_ratio(by_angle(detour), z_a, z_b, steps=S)
    assert r_blend.shape == (4,)
    # a pixel-straight path is at least as long as its chord in features (triangle inequality)
    assert (r_blend >= 1 - 1e-9).all() and (r_detour > r_blend).all()
    with pytest.raises(ValueError, match="steps"):
        comparison.path_length_ratio(by_angle(blend), z_a, z_b, steps=0)


def test_class_histogram_kl_is_zero_for_the_same_set_and_large_for_one_class():
    real = data.digits("test")
    x = real.float()
    assert comparison.class_histogram_kl(x, x) == pytest.approx(0.0, abs=1e-12)
    ones = x[real.labels == 1]
    kl = comparison.class_histogram_kl(ones, x)
    # one class of ten: close to log 10 (the classifier and smoothing move it a little)
    assert 1.5 < kl < math.log(10) + 1.0


def test_rate_thresholds_both_directions_and_missing_values():
    assert comparison.rate(0.9, good=0.8, bad=0.5) == "✓"
    assert comparison.rate(0.6, good=0.8, bad=0.5) == "?"
    assert comparison.rate(0.4, good=0.8, bad=0.5) == "✗"
    assert comparison.rate(1.5, good=2, bad=5, higher_is_better=False) == "✓"
    assert comparison.rate(3.0, good=2, bad=5, higher_is_better=False) == "?"
    assert comparison.rate(6.0, good=2, bad=5, higher_is_better=False) == "✗"
    assert comparison.rate(None, good=2, bad=5) == "n/a"
    with pytest.raises(ValueError, match="good"):
        comparison.rate(1.0, good=5, bad=2, higher_is_better=False)


def test_kendall_tau_matches_scipy_with_and_without_ties():
    g = torch.Generator().manual_seed(0)
    for ties in (False, True):
        a = torch.randint(0, 4 if ties else 1000, (9,), generator=g).tolist()
        b = torch.randint(0, 4 if ties else 1000, (9,), generator=g).tolist()
        expected = scipy.stats.kendalltau(a, b).statistic
        assert comparison.kendall_tau(a, b) == pytest.approx(expected)
    assert comparison.kendall_tau([1, 2, 3], [10, 20, 30]) == 1.0
    assert comparison.kendall_tau([1, 2, 3], [3, 2, 1]) == -1.0


def test_pareto_front_keeps_only_undominated_points():
    cost = [1.0, 2.0, 3.0, 0.5, 2.5]
    loss = [5.0, 2.0, 1.0, 9.0, 2.5]  # point 4 is beaten by point 1 on both
    assert comparison.pareto_front(cost, loss) == [3, 0, 1, 2]


def test_weighted_ranking_and_table():
    ratings = {
        "A": {"fast": "✓", "good": "✗"},
        "B": {"fast": "✗", "good": "✓"},
        "C": {"fast": "?", "good": "?"},
    }
    assert comparison.weighted_ranking(ratings, {"fast": 1, "good": 0})[0] == ("A", 1.0)
    assert comparison.weighted_ranking(ratings, {"fast": 0, "good": 1})[0] == ("B", 1.0)
    assert dict(comparison.weighted_ranking(ratings, {"fast": 1, "good": 1}))["C"] == 0.5
    with pytest.raises(ValueError):
        comparison.weighted_ranking(ratings, {"fast": 0, "good": 0})
    table = comparison.markdown_table(
        ratings, ["fast", "good"], seed={"A": {"fast": "✓", "good": "✓"}}
    )
    lines = table.splitlines()
    assert lines[0] == "| family | fast | good |" and len(lines) == 5
    assert lines[2] == "| A | ✓ (✓) | ✗ **(✓)** |"
    assert lines[3] == "| B | ✗ | ✓ |"
