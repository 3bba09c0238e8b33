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
