"""Profiles, devices and seeds."""

import pytest
import torch

from coursekit import utils


def test_profile_from_environment_and_pick(monkeypatch):
    for name in utils.PROFILES:
        monkeypatch.setenv("COURSEKIT_PROFILE", name)
        assert utils.profile() == name
        assert utils.pick(smoke=1, cpu=2, gpu=3) == {"smoke": 1, "cpu": 2, "gpu": 3}[name]


def test_default_profile_follows_cuda(monkeypatch):
    monkeypatch.delenv("COURSEKIT_PROFILE", raising=False)
    assert utils.profile() == ("gpu" if torch.cuda.is_available() else "cpu")


def test_unknown_profile_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSEKIT_PROFILE", "fast")
    with pytest.raises(ValueError, match="use one of smoke, cpu, gpu"):
        utils.profile()


def test_device_override(monkeypatch):
    monkeypatch.setenv("COURSEKIT_DEVICE", "cpu")
    assert utils.device() == torch.device("cpu")
    if not torch.cuda.is_available():
        monkeypatch.setenv("COURSEKIT_DEVICE", "cuda")
        with pytest.raises(RuntimeError, match="CUDA is not available"):
            utils.device()


def test_seed_everything_returns_a_seeded_generator():
    g1, g2 = utils.seed_everything(3), utils.seed_everything(3)
    assert torch.equal(torch.randn(4, generator=g1), torch.randn(4, generator=g2))
    utils.seed_everything(5)
    a = torch.randn(2)
    utils.seed_everything(5)
    assert torch.equal(a, torch.randn(2))


def test_autocast_is_a_no_op_on_cpu():
    with utils.autocast("cpu"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32


def test_randn_follows_the_generator_and_takes_dtype_and_device_from_like():
    like = torch.zeros(1, dtype=torch.float64)
    a = utils.randn((3, 2), like, torch.Generator().manual_seed(0))
    b = utils.randn((3, 2), like, torch.Generator().manual_seed(0))
    assert a.shape == (3, 2) and a.dtype == torch.float64 and a.device == like.device
    assert torch.equal(a, b)
    assert torch.equal(
        a, torch.randn(3, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    )


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_rand_randint_multinomial_follow_the_generator_and_land_on_like():
    like = torch.zeros(1, dtype=torch.float64, device="meta")
    # on the meta device the values vanish but the device, dtype and shape must be right
    u = utils.rand((3, 2), like, _gen())
    assert u.device.type == "meta" and u.dtype == torch.float64 and u.shape == (3, 2)
    k = utils.randint(0, 5, (4,), like, _gen())
    assert k.device.type == "meta" and k.dtype == torch.int64
    # on the CPU: exactly torch's own draws from the same generator
    cpu = torch.zeros(1, dtype=torch.float64)
    torch.testing.assert_close(
        utils.rand((3, 2), cpu, _gen()), torch.rand(3, 2, generator=_gen(), dtype=torch.float64)
    )
    assert torch.equal(
        utils.randint(2, 7, (50,), cpu, _gen()), torch.randint(2, 7, (50,), generator=_gen())
    )
    probs = torch.tensor([[0.2, 0.8], [0.9, 0.1]])
    assert torch.equal(
        utils.multinomial(probs, 3, replacement=True, generator=_gen()),
        torch.multinomial(probs, 3, True, generator=_gen()),
    )
    # like may be a device; integer tensors give the default float dtype for rand
    assert utils.rand((2,), "cpu").dtype == torch.float32
    assert utils.randn((2,), torch.zeros(1, dtype=torch.long)).dtype == torch.float32


def test_random_helpers_without_a_generator_use_the_global_rng_on_like():
    torch.manual_seed(3)
    a = (utils.rand((4,), "cpu"), utils.randint(0, 9, (4,), "cpu"), utils.randn((4,), "cpu"))
    torch.manual_seed(3)
    b = (torch.rand(4), torch.randint(0, 9, (4,)), torch.randn(4))
    for x, y in zip(a, b, strict=True):
        assert torch.equal(x, y)
