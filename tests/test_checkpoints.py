"""Checkpoints are never poisoned and never silently corrupt (issue 16, section 3).

Each fault a student's run can meet is made here on purpose: an infinite gradient with a
finite loss on a checkpoint step, a truncated / empty / garbage / bit-flipped file, the
temporary file of a write killed by SIGKILL. The oracle is always the same: an
uninterrupted run, which a resumed run must match bit for bit.
"""

import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch import nn

from coursekit import errors, train
from coursekit.train import checkpoint as checkpoints

CPU = torch.device("cpu")
STEPS, EVERY = 12, 4


class InfGrad(torch.autograd.Function):
    """Identity forward, infinite gradient backward: a finite loss with a poisoned gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.clone()

    @staticmethod
    def backward(ctx, grad):
        return grad * float("inf")


class Net(nn.Module):
    calls = 0

    def __init__(self, poison_at=None):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(3, 8), nn.Tanh(), nn.Linear(8, 1))
        self.poison_at = poison_at

    def loss(self, x, y=None):
        Net.calls += 1
        out = self.net(x).squeeze(1)
        if Net.calls == self.poison_at:
            out = InfGrad.apply(out)
        return {"loss": ((out - x.sum(1)) ** 2).mean()}


def _run(path, steps=STEPS, poison_at=None, **kwargs):
    torch.manual_seed(0)
    Net.calls = 0
    model = Net(poison_at)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(64, 3, generator=g)
    hist = train.fit(
        model, x, steps=steps, batch_size=16, ema=0.9, checkpoint=path, checkpoint_every=EVERY,
        progress=False, device=CPU, **kwargs,
    )  # fmt: skip
    return model, hist


def _same(a, b):
    return all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    return _run(tmp_path_factory.mktemp("ref") / "ref.pt")


# step 8 is a checkpoint step: its loss is finite, its gradient infinite, and Adam then makes
# every parameter NaN. Poisoned at step 7, the NaN parameters give step 8 a NaN loss instead.
@pytest.mark.parametrize(
    "poison_step, says",
    [(8, r"by step 8: model\.net\.\S+ is NaN or infinite.*Nothing was saved"),
     (7, r"at step 8: loss=nan")],
)  # fmt: skip
def test_an_infinite_gradient_with_a_finite_loss_is_never_saved(
    tmp_path, reference, poison_step, says
):
    path = tmp_path / "run.pt"
    with pytest.raises(FloatingPointError, match=says) as err:
        _run(path, poison_at=poison_step)
    message = str(err.value)
    assert "kept" in message
    assert f"{path} (step 4)" in message and "resume" in message
    state = train.load_checkpoint(path)
    assert state["step"] == 4
    assert checkpoints.first_non_finite(state) is None
    # the kept checkpoint is good: resuming (without the poison) equals an uninterrupted run
    model, hist = _run(path)
    assert _same(model, reference[0]) and hist.logs == reference[1].logs


def test_a_diverged_loss_keeps_the_last_good_checkpoint_and_says_so(tmp_path):
    path = tmp_path / "run.pt"

    class Exploding(Net):
        def loss(self, x, y=None):
            out = super().loss(x, y)
            return {"loss": out["loss"] / 0.0} if Net.calls == 6 else out

    torch.manual_seed(0)
    Net.calls = 0
    with pytest.raises(FloatingPointError, match=r"step 6: loss=inf.*kept: .*run.pt \(step 4\)"):
        train.fit(Exploding(), torch.randn(64, 3), steps=12, checkpoint=path, checkpoint_every=4,
                  progress=False, device=CPU)  # fmt: skip
    assert train.load_checkpoint(path)["step"] == 4
    Net.calls = 0
    with pytest.raises(FloatingPointError, match="No checkpoint was written before"):
        train.fit(Exploding(), torch.randn(64, 3), steps=12, checkpoint=tmp_path / "new.pt",
                  checkpoint_every=100, progress=False, device=CPU)  # fmt: skip


def test_the_rerun_learning_rate_replaces_the_saved_one():
    w = nn.Parameter(torch.zeros(2))
    saved = torch.optim.AdamW([w], lr=1e-3, weight_decay=0.1)
    w.grad = torch.ones(2)
    saved.step()
    lower = torch.optim.AdamW([w], lr=1e-4, weight_decay=0.0)
    checkpoints.load_optimizer(lower, saved.state_dict())
    assert lower.param_groups[0]["lr"] == 1e-4 and lower.param_groups[0]["weight_decay"] == 0.0
    assert torch.equal(lower.state[w]["exp_avg"], saved.state[w]["exp_avg"])  # moments restored


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _empty(path):
    path.write_bytes(b"")


def _garbage(path):
    path.write_bytes(b"this is not a checkpoint\n" * 40)


def _flip_a_byte(path):
    # a bit flip inside the serialized state, where the file's zip framing does not notice
    data = bytearray(path.read_bytes())
    wrapped = torch.load(path, weights_only=True)
    payload = wrapped["payload"].numpy().tobytes()
    at = data.find(payload[len(payload) // 2 : len(payload) // 2 + 64]) + 5
    assert at > 5
    data[at] ^= 0x10
    path.write_bytes(bytes(data))


FAULTS = {"truncated": _truncate, "empty": _empty, "garbage": _garbage, "bit-flip": _flip_a_byte}
REASONS = {"truncated": "truncated", "empty": "empty", "garbage": "not a checkpoint",
           "bit-flip": "checksum"}  # fmt: skip


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_checkpoint_falls_back_to_the_previous_one(tmp_path, reference, fault):
    path = tmp_path / "run.pt"
    _run(path, steps=8)  # saves at 4 and 8: run.pt holds step 8, run.pt.prev step 4
    assert train.load_checkpoint(path)["step"] == 8
    assert train.load_checkpoint(f"{path}.prev")["step"] == 4
    FAULTS[fault](path)
    with pytest.raises(errors.CheckpointError, match=REASONS[fault]):
        train.load_checkpoint(path)
    with pytest.warns(UserWarning, match=r"damaged.*previous good checkpoint .*prev.* \(step 4\)"):
        model, hist = _run(path)
    assert _same(model, reference[0]) and hist.logs == reference[1].logs
    # the damaged file was replaced, not rotated into .prev
    assert train.load_checkpoint(path)["step"] == 12
    assert train.load_checkpoint(f"{path}.prev")["step"] == 8


@pytest.mark.parametrize("fault", FAULTS)
def test_a_damaged_checkpoint_without_a_good_previous_one_says_what_to_do(tmp_path, fault):
    path = tmp_path / "run.pt"
    _run(path, steps=4)  # one save: no .prev
    FAULTS[fault](path)
    with pytest.raises(errors.CheckpointError) as err:
        _run(path)
    message = str(err.value)
    assert isinstance(err.value, errors.CourseError)
    assert str(path) in message and REASONS[fault] in message
    assert "Delete" in message and "from scratch" in message and "backup" in message
    assert "weights_only" not in message
    no_chain = err.value.__context__ is None or err.value.__suppress_context__
    assert err.value.__cause__ is None and no_chain  # no torch traceback above the message

    path.unlink()  # the fix the message gives: delete it, and the run starts from scratch
    _run(path, steps=8)
    _empty(tmp_path / "run.pt.prev")
    FAULTS[fault](path)
    with pytest.raises(
        errors.CheckpointError, match=r"(?s)previous copy is damaged too.*Delete both"
    ):
        _run(path)


def test_a_file_that_is_not_a_training_checkpoint_is_named(tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(Net().state_dict(), path)
    with pytest.raises(errors.CheckpointError, match="not a coursekit training checkpoint"):
        train.load_checkpoint(path)
    with pytest.raises(errors.CheckpointError, match="There is no checkpoint"):
        train.load_checkpoint(tmp_path / "missing.pt")


def test_a_checkpoint_without_checksum_from_an_older_coursekit_still_loads(tmp_path):
    path = tmp_path / "old.pt"
    torch.save({"model": {}, "step": 3}, path)
    with pytest.warns(UserWarning, match="no checksum"):
        assert train.load_checkpoint(path)["step"] == 3


def test_leftover_temporary_files_are_removed_on_the_next_run(tmp_path, capsys):
    path = tmp_path / "run.pt"
    _run(path, steps=4)
    for name in ["run.pt.tmp-abc123", "run.pt.prev.tmp-x9", "run.pt.prev.tmp-x9.link"]:
        (tmp_path / name).write_bytes(b"half a checkpoint")
    (tmp_path / "other.pt.tmp-1").write_bytes(b"not ours")
    capsys.readouterr()
    _run(path, steps=8)
    assert "Removed 3 temporary file(s)" in capsys.readouterr().out
    assert sorted(os.listdir(tmp_path)) == ["other.pt.tmp-1", "run.pt", "run.pt.prev"]


CHILD = """
import os, signal, sys, torch
sys.path.insert(0, {tests!r})
from test_checkpoints import _run
real_save, writes = torch.save, []

def dying_save(obj, f, *args, **kwargs):
    if not hasattr(f, "getvalue"):  # the write to disk, not the serialization in memory
        writes.append(1)
        if len(writes) == 3:  # the third checkpoint: die halfway through writing it
            f.write(b"half a checkpoint")
            f.flush()
            os.kill(os.getpid(), signal.SIGKILL)
    return real_save(obj, f, *args, **kwargs)

torch.save = dying_save
_run({path!r})
"""


def test_sigkill_during_a_checkpoint_write_resumes_bit_for_bit(tmp_path, reference, capsys):
    path = tmp_path / "run.pt"
    script = CHILD.format(tests=os.path.dirname(__file__), path=str(path))
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # this checkout's coursekit
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    child = subprocess.run([sys.executable, "-c", textwrap.dedent(script)], env=env,
                           capture_output=True, text=True, timeout=120)  # fmt: skip
    assert child.returncode == -9, child.stderr
    assert len(checkpoints.temporary_files(path)) == 1  # the half-written file
    assert train.load_checkpoint(path)["step"] == 8  # the two finished writes
    capsys.readouterr()
    model, hist = _run(path)
    out = capsys.readouterr().out
    assert "Removed 1 temporary file(s)" in out and "at step 8/12" in out
    assert checkpoints.temporary_files(path) == []
    assert _same(model, reference[0]) and hist.logs == reference[1].logs
