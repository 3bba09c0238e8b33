"""The student-feedback primitives give a specific message for each kind of mistake."""

import pytest
import torch

from coursekit import check

REF = torch.tensor([0.5, 1.5, 2.5])


def run(fn, *args, hints=None, shape=(3,)):
    with check.exercise("demo") as ex:
        out = ex.tensor(ex.call(fn, *args), shape=shape)
        ex.close(out, REF, hints=hints)
    return ex.result


def test_reference_passes_and_prints_a_tick(capsys):
    result = run(lambda: REF.clone())
    assert result and result.passed
    assert capsys.readouterr().out.strip() == "✓ demo"


@pytest.mark.parametrize(
    "fn, words",
    [
        (lambda: None, "is None: did you forget the `return`"),
        (lambda: [0.5, 1.5, 2.5], "is a list, expected a torch.Tensor"),
        (lambda: REF.sum(), "one value per example; did you sum or average over the batch"),
        (lambda: REF[:, None].expand(3, 4), "did you forget to sum over the last dimension"),
        (lambda: torch.tensor([0.5, float("nan"), 2.5]), "contains NaN"),
        (lambda: REF + 1, "does not match the reference: max |error| = 1"),
    ],
)
def test_wrong_answers_get_specific_messages(fn, words, capsys):
    result = run(fn)
    assert not result
    assert words in result.message
    assert capsys.readouterr().out.startswith("✗ demo: ")


def test_a_known_mistake_is_named():
    result = run(lambda: 2 * REF, hints={"forgot the factor 1/2": 2 * REF})
    assert (
        not result
        and result.message == "your result is wrong: it looks like you forgot the factor 1/2"
    )


def test_student_exception_is_a_message_pointing_at_their_line_not_a_traceback():
    def student(x):
        return x.reshape(7)

    result = run(student, REF)
    assert not result
    assert result.message.startswith("your code raised RuntimeError: ")
    assert "`return x.reshape(7)`" in result.message


def test_stub_reads_as_not_implemented():
    def stub():
        raise NotImplementedError("Exercise 1.1 (f): write your solution here")

    result = run(stub)
    assert not result and result.message.startswith("not implemented yet")


def test_strict_mode_raises_on_failure_only(monkeypatch):
    monkeypatch.setenv("COURSEKIT_STRICT", "1")
    assert run(lambda: REF.clone())
    with pytest.raises(check.CheckError, match="✗ demo: your function's output is None"):
        run(lambda: None)


def test_require_and_dtype():
    with check.exercise("dtype") as ex:
        ex.tensor(REF.double(), dtype=torch.float32)
    assert "dtype torch.float64, expected torch.float32" in ex.result.message
    with check.exercise("require") as ex:
        ex.require(False, "f(1) must be 0")
    assert ex.result.message == "f(1) must be 0"


def test_sizes_seed_zero_is_fixed_and_other_seeds_draw_fresh_distinct_sizes():
    shown = check.sizes(0, B=(5, 2, range(1, 13)), D=(3, 7, range(1, 9)))
    assert [c.dims for c in shown] == [{"B": 5, "D": 3}, {"B": 2, "D": 7}]
    assert shown[0].shown and not shown[1].shown
    for seed in (1, 2, 3):
        drawn = check.sizes(seed, B=(5, 2, range(1, 13)), D=(3, 7, range(1, 9)))
        assert drawn == check.sizes(seed, B=(5, 2, range(1, 13)), D=(3, 7, range(1, 9)))
        assert drawn[0].B != drawn[1].B and drawn[0].D != drawn[1].D
        assert {c.B for c in drawn}.isdisjoint({5, 2}) and {c.D for c in drawn}.isdisjoint({3, 7})
    with pytest.raises(ValueError):
        check.sizes(0, B=(5, range(3)))


def test_case_generator_is_the_notebooks_in_the_shown_case_only():
    a, b = check.sizes(0, B=(5, 2, range(9)))
    assert torch.equal(
        torch.randn(3, generator=a.generator(4)),
        torch.randn(3, generator=torch.Generator().manual_seed(4)),
    )
    assert not torch.equal(
        torch.randn(3, generator=a.generator(4)), torch.randn(3, generator=b.generator(4))
    )


def _double_check(fn, seed=0):
    with check.exercise("double") as ex:
        for case in ex.cases(check.sizes(seed, B=(3, 5, range(2, 9)))):
            x = torch.arange(case.B, dtype=torch.float32)
            out = ex.call(fn, x, grad=True)
            ex.close(ex.tensor(out, shape=(case.B,)), 2 * x, hints={"forgot the 2": x})
            ex.grad(out, lambda x: 2 * x)
    return ex.result


def test_cases_name_the_case_and_suspect_a_hard_coded_size():
    assert _double_check(lambda x: 2 * x)
    message = _double_check(lambda x: (2 * x)[:3]).message
    assert message.startswith("with B=5: your function's output has shape (3,)")
    assert "It passed with B=3: is that size (3) written into your code" in message
    named = _double_check(lambda x: x).message
    assert named == "with B=3: your result is wrong: it looks like you forgot the 2"


def test_call_passes_copies_and_names_an_input_modified_in_place():
    def student(x):
        x.mul_(2)
        return x

    x = torch.ones(3)
    with check.exercise("in place") as ex:
        ex.call(student, x)
    assert "modified its input `x` in place" in ex.result.message
    assert torch.equal(x, torch.ones(3))  # the caller's tensor is untouched
    module = torch.nn.Linear(2, 2)
    before = module.weight.detach().clone()

    def edits_module(m):
        with torch.no_grad():
            m.weight.zero_()
        return m.weight

    with check.exercise("module") as ex:
        ex.call(edits_module, module)
    assert "`m.weight`" in ex.result.message and torch.equal(module.weight, before)


def test_inputs_are_the_copies_the_student_got():
    seen = {}

    def student(x, y, *, scale):
        seen.update(x=x, y=y, scale=scale)
        return scale * x * y

    x, y, scale = torch.ones(3), torch.full((3,), 2.0), torch.tensor(3.0)
    with check.exercise("inputs") as ex:
        with pytest.raises(RuntimeError, match="needs an earlier ex.call"):
            ex.inputs()
        out = ex.call(student, x, y, grad=(1,), scale=scale)
        args, kwargs = ex.inputs()
        assert args[0] is seen["x"] and args[1] is seen["y"] and kwargs["scale"] is seen["scale"]
        assert args[0] is not x and args[1] is not y  # copies, not the caller's tensors
        assert args[1].requires_grad and not args[0].requires_grad
        (g,) = torch.autograd.grad(out.sum(), args[1])  # the output's graph reaches the copy
        assert torch.equal(g, torch.full((3,), 3.0))
    assert ex.result.passed


def test_grad_names_a_detached_result_and_a_wrong_gradient():
    assert "carries no gradient" in _double_check(lambda x: (2 * x).detach()).message
    assert "`.item()`" in _double_check(lambda x: float((2 * x).sum())).message
    wrong = _double_check(lambda x: 2 * x.detach() + 0 * x).message
    assert "wrong gradient with respect to `x`" in wrong
    assert "modified its input in place" in _double_check(lambda x: x.mul_(2)).message


def test_close_names_a_hint_of_another_shape():
    with check.exercise("reduction") as ex:
        ex.close(REF.sum(), REF, hints={"summed over the batch": REF.sum()})
    assert ex.result.message.endswith("it looks like you summed over the batch")
