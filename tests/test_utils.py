"""Profiles, devices and seeds."""

import re

import pytest
import torch

from coursekit import errors, utils


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
        with pytest.raises(errors.SettingError, match="there is no cuda on this machine"):
            utils.device()


def _machine(monkeypatch, gpus: int, mps: bool) -> None:
    """Pretend this machine has ``gpus`` CUDA devices and (or not) Apple's mps."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: gpus > 0)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: gpus)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize(
    "gpus, mps, value, expected",
    [
        (0, False, "CPU", "cpu"),
        (0, False, " cpu ", "cpu"),
        (2, False, "cuda", "cuda"),
        (2, False, "CUDA:1", "cuda:1"),
        (0, True, "MPS", "mps"),
        (0, False, "", "cpu"),
        (2, False, "", "cuda"),
        (0, True, "", "mps"),
    ],
)
def test_device_accepts_names_in_any_case_when_the_machine_has_them(
    monkeypatch, gpus, mps, value, expected
):
    _machine(monkeypatch, gpus, mps)
    monkeypatch.setenv("COURSEKIT_DEVICE", value)
    assert utils.device() == torch.device(expected)


@pytest.mark.parametrize(
    "gpus, mps, value, why, available",
    [
        (0, False, "tpu", "not a device name", "cpu"),
        (0, False, "gpu", "not a device name", "cpu"),
        (0, False, "cuda:x", "not a device name", "cpu"),
        (0, False, "mps", "there is no mps on this machine", "cpu"),
        (0, True, "cuda", "there is no cuda on this machine", "mps, cpu"),
        (2, False, "cuda:2", "there is no cuda:2 on this machine", "cuda:0, cuda:1, cpu"),
    ],
)
def test_unusable_device_names_the_variable_and_lists_what_is_available(
    monkeypatch, gpus, mps, value, why, available
):
    _machine(monkeypatch, gpus, mps)
    monkeypatch.setenv("COURSEKIT_DEVICE", value)
    with pytest.raises(errors.SettingError) as err:
        utils.device()
    message = str(err.value)
    assert message.startswith(f"COURSEKIT_DEVICE={value!r} cannot be used")
    assert why in message and f"Available here: {available}." in message
    assert isinstance(err.value, errors.CourseError) and isinstance(err.value, ValueError)


def test_threads_default_to_half_the_cores_and_are_applied_with_the_profile(monkeypatch):
    monkeypatch.delenv("COURSEKIT_THREADS", raising=False)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.setattr(utils, "_threads_applied", None)
    before = torch.get_num_threads()
    try:
        for cores, expected in [(1, 1), (2, 1), (3, 1), (8, 4)]:
            monkeypatch.setattr(utils, "cores", lambda c=cores: c)
            assert utils.threads() == expected
            utils.profile()
            assert torch.get_num_threads() == expected
        monkeypatch.setenv("COURSEKIT_THREADS", "3")
        utils.device()
        assert torch.get_num_threads() == 3
        torch.set_num_threads(2)  # a later choice by hand is kept: applied once per value
        utils.profile()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_threads_follow_omp_num_threads_when_only_that_is_set(monkeypatch):
    monkeypatch.delenv("COURSEKIT_THREADS", raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setattr(utils, "cores", lambda: 8)
    assert utils.threads() == torch.get_num_threads()


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", "2 threads"])
def test_bad_thread_counts_are_a_setting_error(monkeypatch, value):
    monkeypatch.setenv("COURSEKIT_THREADS", value)
    with pytest.raises(
        errors.SettingError, match=rf"COURSEKIT_THREADS='{re.escape(value)}' is not"
    ):
        utils.profile()


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
