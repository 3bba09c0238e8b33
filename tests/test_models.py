"""Every model in coursekit honours the one interface of coursekit.models."""

import pytest
import torch

from coursekit import models

CASES = models.conformance_cases()


def test_some_models_are_registered():
    assert CASES, "no model registered with models.register_conformance"


@pytest.fixture(params=sorted(CASES), ids=sorted(CASES))
def case(request):
    torch.manual_seed(0)
    return CASES[request.param]()


def test_loss_is_a_dict_with_a_differentiable_scalar_loss(case):
    terms = case.model.loss(case.x, case.y)
    assert isinstance(terms, dict) and "loss" in terms
    assert all(torch.as_tensor(v).dim() == 0 for v in terms.values()), (
        "every logged term is a scalar"
    )
    assert torch.isfinite(terms["loss"])
    terms["loss"].backward()
    grads = [p.grad for p in case.model.parameters() if p.requires_grad]
    assert any(g is not None and g.abs().sum() > 0 for g in grads), (
        "the loss reaches the parameters"
    )


def test_sample_has_the_data_shape_and_range_and_follows_the_generator(case):
    n = 3
    y = None if case.y is None else case.y[:n]
    a = case.model.sample(n, y, generator=torch.Generator().manual_seed(1))
    b = case.model.sample(n, y, generator=torch.Generator().manual_seed(1))
    assert a.shape == (n, *case.x.shape[1:])
    assert not a.requires_grad
    assert torch.equal(a, b), "the same generator seed gives the same samples"
    if case.data_range is not None:
        lo, hi = case.data_range
        assert a.min() >= lo and a.max() <= hi


def test_device_and_data_shape_describe_the_model(case):
    assert case.model.device == case.x.device == torch.device("cpu")
    assert tuple(case.model.data_shape) == tuple(case.x.shape[1:])
    # device follows the parameters and buffers: a meta copy reports the meta device
    assert case.model.to("meta").device == torch.device("meta")


def test_device_of_a_module_without_tensors_is_the_cpu():
    class Empty(models.GenerativeModel):
        pass

    assert Empty().device == torch.device("cpu")
    assert models.device_of(torch.nn.Linear(2, 2).to("meta")) == torch.device("meta")


def test_bad_input_is_rejected_with_a_message_that_says_what_is_wrong(case):
    if not case.checks_input:
        pytest.skip(f"{type(case.model).__name__} does not check its input yet")
    verbs = {"loss": lambda x: case.model.loss(x, case.y)}
    if case.exact_log_prob or case.estimated_log_prob:
        verbs["log_prob"] = case.model.log_prob
    nan = case.x.float().clone()
    nan.view(-1)[0] = float("nan")
    for fn in verbs.values():
        with pytest.raises(ValueError, match="shape"):
            fn(case.x.unsqueeze(1))  # (B, 1, *data_shape): one dimension too many
        with pytest.raises((TypeError, ValueError), match="NaN|integer"):
            fn(nan)


def test_log_prob_is_exact_or_says_which_bound_to_use(case):
    assert not (case.exact_log_prob and case.estimated_log_prob), "exact or estimated, not both"
    if case.exact_log_prob or case.estimated_log_prob:
        lp = case.model.log_prob(case.x)
        assert lp.shape == (case.x.shape[0],) and torch.isfinite(lp).all()
        if case.estimated_log_prob:  # an estimate says what it is (evaluation labels it so)
            kind = getattr(case.model, "likelihood_kind", "exact")
            assert kind != "exact", f"{type(case.model).__name__} estimates log p: name its kind"
    else:
        with pytest.raises(NotImplementedError, match=type(case.model).__name__):
            case.model.log_prob(case.x)


def test_base_class_names_the_model_and_the_hint():
    class Toy(models.GenerativeModel):
        likelihood_hint = "Use the ELBO instead."

    with pytest.raises(
        NotImplementedError, match="Toy has no exact log-likelihood. Use the ELBO instead."
    ):
        Toy().log_prob(torch.zeros(2, 1))


def test_drop_labels_drops_whole_examples_with_the_given_probability():
    y = torch.arange(2000) % 7
    torch.testing.assert_close(models.drop_labels(y, 0.0, 7), y)
    assert (models.drop_labels(y, 1.0, 7) == 7).all()
    g = torch.Generator().manual_seed(0)
    dropped = models.drop_labels(y, 0.3, 7, g) == 7
    assert 0.27 < dropped.float().mean() < 0.33
    # the draw is one uniform per example from the generator, as in every model's loss
    expected = torch.rand(2000, generator=torch.Generator().manual_seed(0)) < 0.3
    assert torch.equal(dropped, expected)
    # captions: (B, L) words, an example's words dropped together
    words = torch.randint(1, 9, (500, 3))
    out = models.drop_labels(words, 0.5, 0, torch.Generator().manual_seed(1))
    rows_dropped = (out == 0).all(1)
    assert ((out == words).all(1) | rows_dropped).all() and 0.4 < rows_dropped.float().mean() < 0.6
