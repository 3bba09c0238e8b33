"""fit() against closed forms: optima, hand-computed EMA, resumed == uninterrupted runs."""

import io
import math
import os

import pytest
import torch
from torch import nn

from coursekit import train
from coursekit.data import ImageSet

CPU = torch.device("cpu")


class Gaussian(nn.Module):
    """N(mu, sigma^2) per dimension, fitted by maximum likelihood: the optimum is the sample mean and std."""

    def __init__(self, dim: int):
        super().__init__()
        self.mu = nn.Parameter(torch.zeros(dim))
        self.log_sigma = nn.Parameter(torch.zeros(dim))

    def loss(self, x, y=None):
        nll = 0.5 * ((x - self.mu) / self.log_sigma.exp()) ** 2 + self.log_sigma
        nll = nll.sum(1).mean() + 0.5 * x.shape[1] * math.log(2 * math.pi)
        return {"loss": nll, "mean_sigma": self.log_sigma.exp().mean()}


class Linear(nn.Module):
    """Least-squares regression; ``y`` is the target."""

    def __init__(self):
        super().__init__()
        self.net = nn.Linear(3, 1)

    def loss(self, x, y=None):
        return {"loss": ((self.net(x).squeeze(1) - y) ** 2).mean()}


def _data(n=512, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    y = x @ torch.tensor([1.5, -2.0, 0.5]) + 0.3 + 0.1 * torch.randn(n, generator=g)
    return x, y


def test_gaussian_mle_reaches_the_sample_mean_and_std():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(1024, 2, generator=g) * torch.tensor([0.5, 2.0]) + torch.tensor([1.0, -3.0])
    model = Gaussian(2)
    # full batch: every step sees all 1024 points, so the optimum is exact
    hist = train.fit(model, x, steps=300, lr=0.1, batch_size=1024, progress=False, device=CPU)
    assert torch.allclose(model.mu, x.mean(0), atol=1e-4)
    assert torch.allclose(model.log_sigma.exp(), x.std(0, unbiased=False), atol=1e-4)
    best = (
        -torch.distributions.Normal(x.mean(0), x.std(0, unbiased=False)).log_prob(x).sum(1).mean()
    )
    assert abs(hist.final("loss", last=1) - best.item()) < 1e-4
    assert hist.steps == list(range(1, 301))
    assert set(hist.logs) == {"loss", "mean_sigma"} and len(hist.logs["mean_sigma"]) == 300
    assert hist.seconds > 0 and hist.ema is None


def test_least_squares_with_minibatches_reaches_lstsq():
    x, y = _data()
    design = torch.cat([x, torch.ones(len(x), 1)], 1)  # (N, 4): weights and bias
    w = torch.linalg.lstsq(design, y[:, None]).solution.squeeze(1)
    model = Linear()
    hist = train.fit(
        model, (x, y), steps=800, lr=0.02, batch_size=64, ema=0.98, progress=False, device=CPU
    )
    fitted = torch.cat([model.net.weight[0], model.net.bias]).detach()
    averaged = torch.cat([hist.ema.module.net.weight[0], hist.ema.module.net.bias])
    # minibatch Adam jitters around the optimum; the EMA averages the jitter away
    assert torch.allclose(fitted, w, atol=5e-3), (fitted, w)
    assert torch.allclose(averaged, w, atol=1e-3), (averaged, w)
    assert isinstance(hist.ema.module, Linear) and not hist.ema.module.training


def test_nan_guard_names_the_step_and_every_term():
    class Diverging(Gaussian):
        calls = 0

        def loss(self, x, y=None):
            Diverging.calls += 1
            out = super().loss(x, y)
            if Diverging.calls == 7:
                out["loss"] = out["loss"] * float("nan")
                out["mean_sigma"] = out["mean_sigma"] * float("inf")
            return out

    with pytest.raises(FloatingPointError) as err:
        train.fit(
            Diverging(2), torch.randn(64, 2), steps=20, batch_size=8, progress=False, device=CPU
        )
    message = str(err.value)
    assert "step 7" in message
    assert "loss=nan" in message and "mean_sigma=inf" in message
    assert "lr" in message and "clip_grad" in message
    assert Diverging.calls == 7  # stopped at once (log_every=1 on CPU)


def test_nan_guard_with_deferred_logging_still_names_the_first_bad_step():
    class Diverging(Gaussian):
        calls = 0

        def loss(self, x, y=None):
            Diverging.calls += 1
            out = super().loss(x, y)
            return {**out, "loss": out["loss"] / 0.0 if Diverging.calls >= 3 else out["loss"]}

    with pytest.raises(FloatingPointError, match="at step 3: loss=inf"):
        train.fit(
            Diverging(2), torch.randn(64, 2), steps=20, log_every=5, progress=False, device=CPU
        )
    assert Diverging.calls == 5


def _run(path, steps, generator_seed=0, fail_at=None, **kwargs):
    """A 2-layer net trained with Adam + EMA + clipping; raises at call ``fail_at``."""
    torch.manual_seed(0)  # the model init, and the global RNG its loss draws noise from

    class Noisy(nn.Module):
        calls = 0

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(3, 16), nn.Tanh(), nn.Linear(16, 1))

        def loss(self, x, y=None):
            Noisy.calls += 1
            if Noisy.calls == fail_at:
                raise KeyboardInterrupt("simulated disconnect")
            noise = 0.1 * torch.randn_like(y)  # global RNG: the checkpoint must restore it
            return {"loss": ((self.net(x).squeeze(1) - y - noise) ** 2).mean()}

    model = Noisy()
    hist = train.fit(
        model, _data(), steps=steps, batch_size=100, ema=0.9, clip_grad=1.0, checkpoint=path,
        checkpoint_every=4, progress=False, generator=torch.Generator().manual_seed(generator_seed),
        device=CPU, **kwargs,
    )  # fmt: skip
    return model, hist


def test_resumed_run_ends_exactly_where_an_uninterrupted_one_does(tmp_path, capsys):
    # 512 examples in batches of 100: the resume point (step 8) is mid-epoch
    reference, ref_hist = _run(tmp_path / "ref.pt", steps=14)
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(path, steps=14, fail_at=11)  # checkpoints at steps 4 and 8 survive
    assert train.load_checkpoint(path)["step"] == 8
    capsys.readouterr()
    resumed, hist = _run(path, steps=14)
    assert "Resumed from" in (out := capsys.readouterr().out) and "step 8/14" in out
    for a, b in zip(reference.state_dict().values(), resumed.state_dict().values()):
        assert torch.equal(a, b)
    for a, b in zip(ref_hist.ema.module.parameters(), hist.ema.module.parameters()):
        assert torch.equal(a, b)
    assert hist.steps == list(range(1, 15)) and hist.logs == ref_hist.logs
    assert train.load_checkpoint(path)["step"] == 14  # the final state is saved too


def test_resume_message_and_a_finished_run_is_not_retrained(tmp_path, capsys):
    path = tmp_path / "run.pt"
    with pytest.raises(KeyboardInterrupt):
        _run(path, steps=10, fail_at=6)
    capsys.readouterr()
    _run(path, steps=10)
    assert "Resumed from" in capsys.readouterr().out
    model, hist = _run(path, steps=10, fail_at=1)  # would raise if it trained at all
    out = capsys.readouterr().out
    assert "step 10/10" in out and hist.steps[-1] == 10


def test_a_different_seed_gives_a_different_run(tmp_path):
    a, _ = _run(tmp_path / "a.pt", steps=6)
    b, _ = _run(tmp_path / "b.pt", steps=6, generator_seed=1)
    assert not torch.equal(a.net[0].weight, b.net[0].weight)


def test_checkpoint_of_another_architecture_is_refused(tmp_path):
    path = tmp_path / "run.pt"
    _run(path, steps=4)
    with pytest.raises(ValueError, match="different model.*Delete it"):
        train.fit(
            Gaussian(3), torch.randn(8, 3), steps=8, checkpoint=path, progress=False, device=CPU
        )


def test_a_failing_save_leaves_the_previous_checkpoint_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "run.pt"
    _run(path, steps=4)
    before = path.read_bytes()
    real_save = torch.save

    def failing_save(obj, f, *args, **kwargs):
        if isinstance(f, io.BytesIO):  # serializing in memory works
            return real_save(obj, f, *args, **kwargs)
        f.write(b"half a checkpoint")  # a partial write to the file, then the disk fills up
        raise OSError("No space left on device")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(OSError, match="No space"):
        _run(path, steps=8)
    monkeypatch.setattr(torch, "save", real_save)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["run.pt"]


def test_ema_equals_the_hand_computed_average():
    class Scalar(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.tensor(3.0))
            self.register_buffer("seen", torch.tensor(0.0))

        def loss(self, x, y=None):
            self.seen += 1  # buffers are copied into the EMA model, not averaged
            return {"loss": (self.w - 1.0) ** 2}

    model = Scalar()
    lr, decay, steps = 0.1, 0.7, 6
    opt = torch.optim.SGD(model.parameters(), lr=lr)
    hist = train.fit(
        model, torch.zeros(4, 1), steps=steps, optimizer=opt, ema=decay, progress=False, device=CPU
    )
    w, iterates = 3.0, []
    for _ in range(steps):
        w = w - lr * 2 * (w - 1.0)  # SGD on (w - 1)^2
        iterates.append(w)
    # the bias-corrected average: weights decay^(t - i) over the iterates after steps 1..t,
    # normalised; the initial w = 3 has no weight
    weights = [decay ** (steps - i) for i in range(1, steps + 1)]
    avg = sum(a * b for a, b in zip(weights, iterates)) / sum(weights)
    uncorrected = 3.0
    for b in iterates:
        uncorrected = decay * uncorrected + (1 - decay) * b  # keeps decay^t of the initial w
    assert abs(avg - uncorrected) > 0.05  # so the check below tells the two apart
    assert model.w.item() == pytest.approx(w, abs=1e-6)
    assert hist.ema.module.w.item() == pytest.approx(avg, abs=1e-6)
    assert hist.ema.module.seen.item() == steps
    assert not hist.ema.module.w.requires_grad
    hist.ema.copy_to(model)
    assert model.w.item() == pytest.approx(avg, abs=1e-6)
    with pytest.raises(ValueError, match="decay"):
        train.EMA(model, 1.0)


def test_ema_after_one_update_is_the_model_and_its_count_survives_a_state_dict():
    model = nn.Linear(3, 2)
    ema = train.EMA(model, 0.999)
    with torch.no_grad():
        model.weight.add_(1.0)  # an optimizer step
    ema.update(model)  # the first update has weight 1: none of the initial weights is kept
    assert torch.equal(ema.module.weight, model.weight)
    for _ in range(4):
        ema.update(model)
    other = train.EMA(nn.Linear(3, 2), 0.999)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 5 and torch.equal(other.module.weight, ema.module.weight)
    bare = train.EMA(nn.Linear(3, 2), 0.999)
    bare.load_state_dict(model.state_dict())  # a model's own state: an average of unknown age
    with torch.no_grad():
        model.weight.add_(1.0)
    bare.update(model)  # moves by 1 - decay, not by 1
    assert torch.allclose(bare.module.weight, model.weight - 0.999, atol=1e-6)


def test_step_fn_drives_its_own_optimizers_and_is_checkpointed(tmp_path):
    class TwoPlayer:
        """Alternating updates of two parameters, like a GAN's two optimizers."""

        def __init__(self, model):
            self.opt_a = torch.optim.SGD([model.a], lr=0.1)
            self.opt_b = torch.optim.SGD([model.b], lr=0.1)
            self.saved = self.loaded = 0

        def __call__(self, model, batch, step):
            x, y = batch
            assert y is None and x.shape == (4, 1)
            opt = self.opt_a if step % 2 else self.opt_b
            opt.zero_grad()
            loss_a, loss_b = (model.a - 2.0) ** 2, (model.b + 1.0) ** 2
            (loss_a + loss_b).backward()
            opt.step()
            return {"loss_a": loss_a, "loss_b": loss_b.item(), "step_seen": float(step)}

        def state_dict(self):
            self.saved += 1
            return {"a": self.opt_a.state_dict(), "b": self.opt_b.state_dict()}

        def load_state_dict(self, state):
            self.loaded += 1
            self.opt_a.load_state_dict(state["a"])
            self.opt_b.load_state_dict(state["b"])

    model = nn.Module()
    model.a, model.b = nn.Parameter(torch.tensor(0.0)), nn.Parameter(torch.tensor(0.0))
    step_fn = TwoPlayer(model)
    path = tmp_path / "gan.pt"
    hist = train.fit(
        model, torch.zeros(16, 1), steps=40, batch_size=4, step_fn=step_fn, checkpoint=path,
        checkpoint_every=10, progress=False, device=CPU,
    )  # fmt: skip
    # 20 SGD steps each: the distance to the optimum shrinks by 1 - 2 lr = 0.8 per own step
    assert model.a.item() == pytest.approx(2.0 - 2.0 * 0.8**20, abs=1e-5)
    assert model.b.item() == pytest.approx(-1.0 + 0.8**20, abs=1e-5)
    assert hist.logs["step_seen"] == [float(s) for s in range(1, 41)]
    assert set(hist.logs) == {"loss_a", "loss_b", "step_seen"}
    assert step_fn.saved == 4
    with pytest.raises(KeyError, match="loss_a"):
        hist.final("loss")
    again = TwoPlayer(model)
    train.fit(
        model,
        torch.zeros(16, 1),
        steps=40,
        step_fn=again,
        checkpoint=path,
        progress=False,
        device=CPU,
    )
    assert again.loaded == 1


def test_imageset_and_iterator_data_reach_the_model():
    seen = []

    class Probe(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(()))

        def loss(self, x, y=None):
            seen.append((x, y))
            return {"loss": (self.w - x.mean()) ** 2}

    images = ImageSet(
        images=torch.full((6, 1, 2, 2), 16, dtype=torch.uint8),
        labels=torch.arange(6),
        levels=17,
        classes=[str(i) for i in range(6)],
    )
    train.fit(Probe(), images, steps=2, batch_size=4, progress=False, device=CPU)
    x, y = seen[0]
    assert x.dtype == torch.float32 and x.shape == (4, 1, 2, 2) and torch.all(x == 1.0)
    assert y.dtype == torch.int64 and y.shape == (4,)

    seen.clear()
    loader = [(torch.ones(3, 2), None), (torch.zeros(3, 2), None)]  # re-iterable: restarts
    train.fit(Probe(), loader, steps=5, progress=False, device=CPU)
    assert [x.mean().item() for x, _ in seen] == [1.0, 0.0, 1.0, 0.0, 1.0]
    with pytest.raises(RuntimeError, match="ran out"):
        train.fit(Probe(), iter(loader), steps=5, progress=False, device=CPU)
    with pytest.raises(TypeError, match="cannot draw batches"):
        train.fit(Probe(), 3.0, steps=5, progress=False, device=CPU)


def test_loss_dict_errors_are_explained():
    class NoLoss(nn.Module):
        def __init__(self):
            super().__init__()
            self.w = nn.Parameter(torch.zeros(2))

        def loss(self, x, y=None):
            return {"nll": self.w.sum()}

    with pytest.raises(KeyError, match='"loss" entry'):
        train.fit(NoLoss(), torch.zeros(4, 2), steps=1, progress=False, device=CPU)

    class Vector(NoLoss):
        def loss(self, x, y=None):
            return {"loss": (self.w**2).sum(), "per_dim": self.w}

    with pytest.raises(ValueError, match="per_dim.*scalar"):
        train.fit(Vector(), torch.zeros(4, 2), steps=1, progress=False, device=CPU)


def test_progress_bar_amp_on_cpu_and_plot(capsys):
    import matplotlib

    matplotlib.use("Agg")
    model = Gaussian(2)
    hist = train.fit(model, torch.randn(64, 2), steps=5, amp=True, live_plot=True, device=CPU)
    assert "5/5" in capsys.readouterr().err  # the tqdm bar
    assert hist.final("loss", last=2) == pytest.approx(sum(hist.logs["loss"][-2:]) / 2)
    ax = hist.plot()
    positive = min(min(v) for v in hist.logs.values()) > 0
    assert ax.get_yscale() == ("log" if positive else "linear")
    hist.logs["loss"][0] = -1.0  # a negative NLL (continuous data) forces a linear axis
    assert hist.plot().get_yscale() == "linear"
    assert {line.get_label() for line in ax.get_lines()} >= {"loss", "mean_sigma"}


class _Clock:
    """A fake time.perf_counter that advances one second per training step."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class _TimedLinear(Linear):
    def __init__(self, clock):
        super().__init__()
        self.clock = clock

    def loss(self, x, y=None):
        self.clock.now += 1.0  # each step "takes" one second
        return super().loss(x, y)


def test_a_time_budget_stops_after_the_step_that_spends_it(tmp_path, monkeypatch):
    from coursekit.train import loop

    clock = _Clock()
    monkeypatch.setattr(loop.time, "perf_counter", clock)
    path = tmp_path / "run.pt"
    hist = train.fit(
        _TimedLinear(clock), _data(), steps=1000, seconds=3.5, checkpoint=path,
        checkpoint_every=100, progress=False, device=CPU,
    )  # fmt: skip
    # after step 3 three seconds are spent (< 3.5), after step 4 four: the run ends there
    assert hist.steps == [1, 2, 3, 4] and hist.seconds == 4.0
    assert train.load_checkpoint(path)["step"] == 4  # the budget's last step is saved
    # the step count still caps a run whose budget is not spent
    short = train.fit(_TimedLinear(clock), _data(), steps=2, seconds=100.0, progress=False,
                      device=CPU)  # fmt: skip
    assert short.steps == [1, 2]
    with pytest.raises(ValueError, match="training budget"):
        train.fit(Linear(), _data(), steps=2, seconds=0, progress=False, device=CPU)


def test_default_optimizer_is_adamw_fused_where_supported_and_plain_elsewhere(monkeypatch):
    params = [nn.Parameter(torch.randn(3, 2)), nn.Parameter(torch.randn(2))]
    opt = train.loop.default_optimizer(params, lr=0.1, weight_decay=0.01)
    assert isinstance(opt, torch.optim.AdamW)
    assert opt.param_groups[0]["lr"] == 0.1 and opt.param_groups[0]["weight_decay"] == 0.01
    # this torch (>= 2.4) has a fused CPU AdamW: the default must use it
    assert opt.param_groups[0]["fused"] is True
    # one step of the fused optimizer equals one of the plain one, to rounding
    grads = [torch.randn_like(p) for p in params]
    plain = [p.detach().clone().requires_grad_() for p in params]
    reference = torch.optim.AdamW(plain, lr=0.1, weight_decay=0.01)
    for ps, o in ((params, opt), (plain, reference)):
        for p, g in zip(ps, grads):
            p.grad = g.clone()
        o.step()
    for p, q in zip(params, plain):
        torch.testing.assert_close(p, q)

    real_adamw = torch.optim.AdamW

    def no_fused(*args, fused=None, **kwargs):  # a torch or device without the fused kernel
        if fused:
            raise RuntimeError("`fused=True` requires all the params to be on a supported device")
        return real_adamw(*args, **kwargs)

    monkeypatch.setattr(torch.optim, "AdamW", no_fused)
    fallback = train.loop.default_optimizer(iter(params), lr=0.1)  # a generator is read once
    assert fallback.param_groups[0]["fused"] in (None, False)
    assert len(fallback.param_groups[0]["params"]) == 2
