"""One evaluation harness: a trained model and its data in, one row of numbers out.

    row = evaluation.evaluate(model, train, test, n=750, likelihood="iwae:1000")
    print(row)                    # a readable block
    row.as_dict()                 # plain numbers, for report.record or a table
    print(evaluation.table(rows)) # several models side by side (markdown)

How each number of an :class:`EvaluationRow` is obtained:

- **Likelihood** on the held-out images ``test``, with its *kind* always beside it, because a
  bound and an exact likelihood are different numbers: ``"exact"`` (``model.log_prob``),
  ``"ELBO"`` (``model.elbo(x).elbo``, a lower bound), ``"IWAE-K"`` (``model.log_likelihood(x,
  k=K)``, a tighter bound that tends to log p(x) as K grows), ``"ODE estimate"`` (a
  probability-flow or continuous-flow likelihood from a solver and a trace estimator, passed as
  a callable) or ``"none"``. Bits per dimension come from ``metrics.bits_per_dim``; a density
  (a Gaussian decoder) gives ``bpd_continuous``, a mass over the data's levels gives ``bpd``.
- **FCD** (``metrics.fcd``) against ``fcd_real`` (the test set unless told otherwise), beside
  its real-vs-real floor: the FCD between two disjoint halves of the same real set, at the same
  size ``m = min(n, len(real) // 2)``. The n samples are cut into ``n // m`` disjoint batches of
  m; the FCD is the mean over the batches (a 148-sample FCD is noisy; five batches are not) and
  the floor does not depend on the batch. ``fcd_ratio = fcd / floor``. A ratio below 1 means
  the samples are closer to the data than fresh real images are: the row flags it, and
  ``memorisation`` says whether copying is why.
- **Precision, recall, density, coverage** (``metrics.precision_recall_coverage``, k = 5) of
  the samples' classifier features against those of ``fcd_real``.
- **Memorisation** (``metrics.memorisation_score``): the fraction of samples nearer (in
  classifier features) to some training image than 95% of held-out real images are; a model
  that does not copy scores about 0.05 (``memorisation_base_rate``), one that returns training
  images scores 1.
- **Cost**: ``ms_per_sample`` is the wall time of drawing the n samples (chunked on the model's
  device, moved to the CPU) divided by n. ``nfe_per_sample`` counts the network evaluations: a
  forward pre-hook on ``network`` (default: ``model.net``, else ``model.diffusion.net``, else
  ``model.decoder``) adds the batch size of every call, and the total is divided by n, so
  chunking does not change it: DDIM-50 gives 50, ancestral sampling of 64 pixels gives 64,
  classifier-free guidance with two calls per step counts both. ``parameters`` counts every
  parameter of the model (frozen ones too); ``training_seconds`` is passed in.

Samples are drawn first, then the likelihood is computed, both from ``generator``: with a fixed
generator a row is reproducible, and the samples (kept in ``row.samples`` for figures; not in
``as_dict``) are those that ``sample_in_chunks`` with the same generator returns. The classifier
runs on the model's device.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import asdict, dataclass, field

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from coursekit import errors, metrics

LIKELIHOOD_KINDS = ("exact", "ELBO", "IWAE-K", "ODE estimate", "none")
CLASSIFIER_FOR_SHAPE = {(1, 8, 8): "digits", (1, 28, 28): "fashion"}
PRDC_K = 5


class EvaluationError(errors.CourseError, ValueError):
    """Bad input to the evaluation harness; the message says what to pass instead."""


# ----------------------------------------------------------------------------- sampling


def sample_in_chunks(
    model: nn.Module,
    n: int,
    y: Tensor | None = None,
    *,
    chunk: int = 1000,
    generator: torch.Generator | None = None,
    per_sample: Mapping[str, Tensor] | None = None,
    progress: bool = False,
    **kwargs,
) -> Tensor:
    """``model.sample`` for n samples, at most ``chunk`` per call, returned on the CPU.

    Labels ``y`` (n,) and every tensor of ``per_sample`` (one row per sample, e.g.
    ``{"x_T": x_T}``, the starting noise of a diffusion sampler) are cut into the same chunks;
    other keyword arguments go unchanged to every call. With one ``generator`` the chunks draw
    one after another from it, so a model whose draws are sequential gives the same samples as
    a single call. Chunks bound the memory of the network's activations on the device.
    """
    if not isinstance(n, int) or n < 1:
        raise EvaluationError(f"sample_in_chunks needs a number of samples n >= 1, got {n!r}.")
    if not isinstance(chunk, int) or chunk < 1:
        raise EvaluationError(f"chunk must be a positive integer, got {chunk!r}.")
    per_sample = dict(per_sample or {})
    if y is not None:
        per_sample["y"] = y
    for key, value in per_sample.items():
        if not isinstance(value, Tensor) or len(value) != n:
            got = tuple(value.shape) if isinstance(value, Tensor) else type(value).__name__
            raise EvaluationError(
                f"{key} must be a tensor with one row per sample (n = {n} rows), got {got}."
            )
    out = []
    with tqdm(total=n, disable=not progress, leave=False, desc="sampling") as bar:
        for start in range(0, n, chunk):
            rows = {k: v[start : start + chunk] for k, v in per_sample.items()}
            size = min(chunk, n - start)
            y_rows = rows.pop("y", None)
            out.append(model.sample(size, y_rows, generator=generator, **rows, **kwargs).cpu())
            bar.update(size)
    return torch.cat(out)


# ----------------------------------------------------------------------------- counting calls


@dataclass
class CallCount:
    """Forward calls of a module, and the number of examples they processed."""

    calls: int = 0
    examples: int = 0
    unsized: int = 0  # calls without a tensor input, whose batch size is unknown

    def per_sample(self, n: int) -> float | None:
        """Network evaluations per sample: examples processed / n (None if unknown)."""
        return None if self.unsized else self.examples / n


@contextlib.contextmanager
def count_calls(module: nn.Module) -> Iterator[CallCount]:
    """Count ``module``'s forward calls (and their batch sizes) inside the ``with`` block.

    The batch size of a call is the length of its first tensor argument. The hook is removed
    on leaving the block, also after an error.
    """
    count = CallCount()

    def hook(_module, args, kwargs):
        first = next(
            (a for a in (*args, *kwargs.values()) if isinstance(a, Tensor) and a.dim() > 0), None
        )
        count.calls += 1
        if first is None:
            count.unsized += 1
        else:
            count.examples += len(first)

    handle = module.register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield count
    finally:
        handle.remove()


def default_network(model: nn.Module) -> nn.Module | None:
    """The module whose calls are the network evaluations: ``model.net`` (diffusion, score
    models), ``model.diffusion.net`` (latent diffusion), ``model.decoder`` (VAEs), else None."""
    for path in ("net", "diffusion.net", "decoder"):
        obj = model
        for attr in path.split("."):
            obj = getattr(obj, attr, None)
        if isinstance(obj, nn.Module):
            return obj
    return None


# ----------------------------------------------------------------------------- likelihood


@dataclass
class _Likelihood:
    kind: str  # one of LIKELIHOOD_KINDS, with K filled in for IWAE
    fn: Callable[[Tensor], Tensor] | None  # x (B, ...) on the model's device -> log p (B,) nats


def _parse_likelihood(
    model: nn.Module,
    spec: str | Callable | None,
    kind: str | None,
    generator: torch.Generator | None,
) -> _Likelihood:
    if callable(spec):
        if kind is None or not _valid_kind(kind) or kind == "none":
            raise EvaluationError(
                "A likelihood callable needs its kind: pass likelihood_kind='exact', 'ELBO', "
                f"'IWAE-<K>' or 'ODE estimate' (got {kind!r}), so the row says what it is."
            )
        return _Likelihood(kind, spec)
    if kind is not None:
        raise EvaluationError(
            "likelihood_kind goes with a likelihood callable; for likelihood="
            f"{spec!r} the kind follows from the name."
        )
    if spec is None or spec == "none":
        return _Likelihood("none", None)
    name = type(model).__name__
    if spec == "exact":
        return _Likelihood("exact", model.log_prob)
    if spec == "elbo":
        if not hasattr(model, "elbo"):
            raise EvaluationError(f"{name} has no elbo(x); pass likelihood='exact' or a callable.")
        return _Likelihood("ELBO", lambda x: model.elbo(x, generator=generator).elbo)
    match = re.fullmatch(r"iwae:(\d+)", spec) if isinstance(spec, str) else None
    if match:
        k = int(match.group(1))
        if k < 1:
            raise EvaluationError(
                f"likelihood={spec!r}: IWAE needs k >= 1 importance samples, e.g. 'iwae:1000'."
            )
        if not hasattr(model, "log_likelihood"):
            raise EvaluationError(
                f"{name} has no log_likelihood(x, k=...) for an IWAE estimate; pass a callable."
            )
        return _Likelihood(f"IWAE-{k}", lambda x: model.log_likelihood(x, k=k, generator=generator))
    raise EvaluationError(
        f"likelihood={spec!r} is not understood: use 'none', 'exact', 'elbo', 'iwae:<K>' "
        "(e.g. 'iwae:1000') or a callable x -> log p(x) (B,) in nats with likelihood_kind=..."
    )


def _valid_kind(kind: str) -> bool:
    return (kind in LIKELIHOOD_KINDS and kind != "IWAE-K") or bool(re.fullmatch(r"IWAE-\d+", kind))


def _is_density(model: nn.Module) -> bool:
    """A decoder likelihood that is a density (Gaussian) gives a continuous bits/dim figure."""
    lik = getattr(model, "likelihood", None)
    return lik is not None and getattr(lik, "discrete", True) is False


# ----------------------------------------------------------------------------- the row


@dataclass
class EvaluationRow:
    """The numbers of one model; see the module docstring for how each is computed."""

    name: str
    n: int  # samples drawn
    classifier: str
    likelihood_kind: str = "none"  # "exact", "ELBO", "IWAE-<K>", "ODE estimate" or "none"
    nll_nats: float | None = None  # mean over the test images, per image
    bpd: float | None = None  # discrete figure: a mass over the data's levels
    bpd_continuous: float | None = None  # a density's figure (not comparable with bpd)
    fcd: float = math.nan
    fcd_floor: float = math.nan
    fcd_n: int = 0  # samples per FCD batch (= real images per half)
    fcd_batches: int = 0
    precision: float | None = None
    recall: float | None = None
    density: float | None = None
    coverage: float | None = None
    memorisation: float = math.nan
    memorisation_base_rate: float = math.nan
    class_accuracy: float | None = None  # conditional samples: classifier agrees with y
    ms_per_sample: float = math.nan
    nfe_per_sample: float | None = None
    training_seconds: float | None = None
    parameters: int = 0
    extra: dict = field(default_factory=dict)  # anything the caller adds
    samples: Tensor | None = field(default=None, repr=False)  # the n samples, on the CPU

    @property
    def fcd_ratio(self) -> float:
        """FCD over the real-vs-real floor: 1 is as close as fresh real images."""
        return self.fcd / self.fcd_floor

    @property
    def fcd_score(self) -> metrics.FCDScore:
        """The FCD and its floor as ``metrics.fcd`` returns them."""
        return metrics.FCDScore(self.fcd, self.fcd_floor, n=self.fcd_n, classifier=self.classifier)

    @property
    def below_floor(self) -> bool:
        """The samples are closer to the real set than real images are: suspect copying."""
        return bool(self.fcd < self.fcd_floor)

    @property
    def likelihood_label(self) -> str:
        """e.g. ``'1.871 (IWAE-1000)'`` or ``'—'``: a number never without its kind."""
        if self.bpd is not None:
            return f"{self.bpd:.3f} ({self.likelihood_kind})"
        if self.bpd_continuous is not None:
            return f"{self.bpd_continuous:.3f} ({self.likelihood_kind}, continuous)"
        return "—"

    def as_dict(self) -> dict:
        """Every number (not the samples), plus ``fcd_ratio``, ``below_floor`` and
        ``likelihood_label``."""
        out = asdict(dataclasses.replace(self, samples=None))
        del out["samples"]
        out.update(
            fcd_ratio=self.fcd_ratio,
            below_floor=self.below_floor,
            likelihood_label=self.likelihood_label,
        )
        return out

    def __str__(self) -> str:
        lines = [f"{self.name}  (n = {self.n} samples, classifier {self.classifier!r})"]
        if self.likelihood_kind == "none":
            lines.append("  likelihood    none")
        else:
            figure = "bits/dim" if self.bpd is not None else "bits/dim (continuous, a density)"
            value = self.bpd if self.bpd is not None else self.bpd_continuous
            lines.append(f"  likelihood    {value:.4f} {figure}  [{self.likelihood_kind}]")
        lines.append(
            f"  FCD           {self.fcd:.3g} = {self.fcd_ratio:.2f} x the real-vs-real floor "
            f"{self.fcd_floor:.3g}  (batches of {self.fcd_n}, {self.fcd_batches} of them)"
        )
        if self.precision is not None:
            lines.append(
                f"  PRDC          precision {self.precision:.3f}, recall {self.recall:.3f}, "
                f"density {self.density:.3f}, coverage {self.coverage:.3f}"
            )
        lines.append(
            f"  memorisation  {self.memorisation:.3f} (base rate {self.memorisation_base_rate:.2f}"
            " for samples as new as held-out images)"
        )
        if self.class_accuracy is not None:
            lines.append(f"  class acc.    {self.class_accuracy:.3f}")
        nfe = "?" if self.nfe_per_sample is None else f"{self.nfe_per_sample:.4g}"
        train_s = (
            "" if self.training_seconds is None else f", {self.training_seconds:.0f} s training"
        )
        lines.append(
            f"  cost          {self.ms_per_sample:.3g} ms/sample, {nfe} network evaluations/sample, "
            f"{self.parameters:,} parameters{train_s}"
        )
        if self.below_floor:
            why = (
                "the samples copy training images"
                if self.memorisation > 2 * self.memorisation_base_rate
                else "not explained by copying; the floor is noisy at this size"
            )
            lines.append(f"  ! FCD below the real-vs-real floor: {why}")
        return "\n".join(lines)


def table(rows: list[EvaluationRow]) -> str:
    """A markdown table of rows; the bits/dim column always carries the likelihood's kind."""
    header = (
        "| model | bits/dim (kind) | FCD | x floor | precision | recall | coverage "
        "| memorisation | ms/sample | NFE | parameters | train s |"
    )
    lines = [header, "|" + "---|" * (header.count("|") - 1)]
    for r in rows:
        fmt = lambda v, spec: "—" if v is None else format(v, spec)  # noqa: E731
        flag = " (!)" if r.below_floor else ""
        lines.append(
            f"| {r.name} | {r.likelihood_label} | {r.fcd:.3g} | {r.fcd_ratio:.2f}{flag} "
            f"| {fmt(r.precision, '.2f')} | {fmt(r.recall, '.2f')} | {fmt(r.coverage, '.2f')} "
            f"| {r.memorisation:.3f} | {r.ms_per_sample:.3g} | {fmt(r.nfe_per_sample, '.4g')} "
            f"| {r.parameters:,} | {fmt(r.training_seconds, '.0f')} |"
        )
    return "\n".join(lines)


# ----------------------------------------------------------------------------- evaluate


def _images(x, shape: tuple[int, ...], what: str) -> Tensor:
    """ImageSet or tensor -> float CPU tensor (N, *shape), checked."""
    if hasattr(x, "images") and hasattr(x, "float"):  # an ImageSet
        x = x.float()
    if not isinstance(x, Tensor):
        raise EvaluationError(f"{what} must be an ImageSet or a tensor, got {type(x).__name__}.")
    if tuple(x.shape[1:]) != shape or x.dim() != len(shape) + 1:
        raise EvaluationError(
            f"{what} has shape {tuple(x.shape)} but the model's data_shape is {shape}: pass "
            f"images of shape (N, {', '.join(map(str, shape))}) in [0, 1] (ImageSet.float())."
        )
    return x.detach().float().cpu()


def evaluate(
    model: nn.Module,
    train,
    test,
    *,
    n: int = 1000,
    name: str | None = None,
    likelihood: str | Callable[[Tensor], Tensor] | None = "none",
    likelihood_kind: str | None = None,
    fcd_real="test",
    y: Tensor | None = None,
    sample_kwargs: Mapping | None = None,
    per_sample: Mapping[str, Tensor] | None = None,
    chunk: int = 1000,
    batch_size: int = 500,
    generator: torch.Generator | None = None,
    network: nn.Module | None | str = "auto",
    classifier: str | None = None,
    training_seconds: float | None = None,
    memorisation_quantile: float = 0.05,
    progress: bool = True,
) -> EvaluationRow:
    """Draw n samples of ``model`` and compute every number of an :class:`EvaluationRow`.

    Args:
        model: a trained ``GenerativeModel`` of images (it has ``data_shape`` and ``sample``).
        train: the images it was trained on (ImageSet or (N, C, H, W) in [0, 1]); the
            reference of the memorisation test.
        test: held-out images: the likelihood is computed on them, and they calibrate the
            memorisation test.
        n: number of samples (>= 2).
        likelihood: ``"none"``, ``"exact"``, ``"elbo"``, ``"iwae:<K>"``, or a callable
            ``x -> log p(x)`` (B,) in nats, which then needs ``likelihood_kind``.
        fcd_real: the real images FCD and PRDC compare with: ``"test"``, ``"train"`` or a set.
        y: labels (n,) for a conditional model (also gives ``class_accuracy``).
        sample_kwargs: keyword arguments for every ``model.sample`` call (e.g. ``steps=50``).
        per_sample: tensors with one row per sample, cut into chunks (e.g. ``{"x_T": x_T}``).
        chunk: samples per ``model.sample`` call; batch_size: test images per likelihood call.
        generator: draws the samples, then the likelihood's noise.
        network: the module whose calls are counted (``"auto"``: see ``default_network``;
            None: not counted).
        classifier: ``"digits"`` or ``"fashion"``; inferred from ``data_shape`` if None.
        training_seconds: reported as given.
        memorisation_quantile: the held-out quantile of the memorisation rule (base rate).
        progress: a tqdm bar over the samples.
    """
    shape = tuple(getattr(model, "data_shape", ()))
    if not shape:
        raise EvaluationError(f"{type(model).__name__} has no data_shape; evaluate needs one.")
    if classifier is None:
        if shape not in CLASSIFIER_FOR_SHAPE:
            raise EvaluationError(
                f"No evaluation classifier for data of shape {shape}: evaluate judges 8x8 digits "
                "or 28x28 Fashion-MNIST images (pass classifier=...); for 2-D toy data use "
                "metrics.two_sample_score."
            )
        classifier = CLASSIFIER_FOR_SHAPE[shape]
    if not isinstance(n, int) or isinstance(n, bool) or n < 2:
        raise EvaluationError(f"evaluate needs n >= 2 samples (FCD needs a covariance), got {n!r}.")
    x_train = _images(train, shape, "train")
    x_test = _images(test, shape, "test")
    if isinstance(fcd_real, str):
        if fcd_real not in ("test", "train"):
            raise EvaluationError(f"fcd_real must be 'test', 'train' or images, got {fcd_real!r}.")
        real = x_test if fcd_real == "test" else x_train
    else:
        real = _images(fcd_real, shape, "fcd_real")
    if len(real) < 4 or len(x_test) < 2:
        raise EvaluationError(
            f"Need at least 4 real images for FCD's two halves and 2 test images, got "
            f"{len(real)} and {len(x_test)}."
        )
    lik = _parse_likelihood(model, likelihood, likelihood_kind, generator)
    if network == "auto":
        network = default_network(model)

    was_training = model.training
    model.eval()
    try:
        # 1. samples, timed and with the network's calls counted
        counter = count_calls(network) if network is not None else contextlib.nullcontext()
        with counter as calls:
            start = time.perf_counter()
            samples = sample_in_chunks(
                model, n, y, chunk=chunk, generator=generator, per_sample=per_sample,
                progress=progress, **dict(sample_kwargs or {}),
            )  # fmt: skip
            seconds = time.perf_counter() - start  # .cpu() above waited for the device
        if tuple(samples.shape) != (n, *shape) or not torch.isfinite(samples).all():
            raise EvaluationError(
                f"{type(model).__name__}.sample returned {tuple(samples.shape)} with "
                f"{int((~torch.isfinite(samples)).sum())} non-finite values; expected "
                f"({n}, {', '.join(map(str, shape))}), finite (did the sampler diverge?)."
            )
        # 2. likelihood on the test images
        nll = None
        if lik.fn is not None:
            with torch.no_grad():
                log_p = torch.cat(
                    [
                        lik.fn(xb.to(model.device)).detach().double().cpu()
                        for xb in x_test.split(batch_size)
                    ]
                )
            nll = float(-log_p.mean())
    finally:
        model.train(was_training)

    bpd = bpd_continuous = None
    if nll is not None:
        figure = float(metrics.bits_per_dim(nll, math.prod(shape)))
        if _is_density(model):
            bpd_continuous = figure
        else:
            bpd = figure

    # the classifier runs where the images are: on the model's device (60000 training images)
    dev = model.device
    # 3. FCD over disjoint batches of m samples, each against the same floor
    m = min(n, len(real) // 2)
    real_dev = real.to(dev)
    scores = [
        metrics.fcd(samples[i * m : (i + 1) * m].to(dev), real_dev, classifier=classifier)
        for i in range(n // m)
    ]
    # 4. PRDC and memorisation in the classifier's features
    # features (float64) stay on the device too: nearest neighbours among 60000 are a big cdist
    features = lambda x: metrics.classifier_features(x.to(dev), classifier).to(dev)
    fake_f, real_f = features(samples), features(real)
    prdc = metrics.precision_recall_coverage(real_f, fake_f, k=PRDC_K) if n > PRDC_K else None
    memo = metrics.memorisation_score(
        fake_f, features(x_train), features(x_test), quantile=memorisation_quantile
    )
    accuracy = None
    if y is not None:
        accuracy = metrics.classifier_accuracy(samples.to(dev), y.to(dev), classifier=classifier)
    return EvaluationRow(
        name=name or type(model).__name__,
        n=n,
        classifier=classifier,
        likelihood_kind=lik.kind,
        nll_nats=nll,
        bpd=bpd,
        bpd_continuous=bpd_continuous,
        fcd=sum(s.value for s in scores) / len(scores),
        fcd_floor=scores[0].floor,
        fcd_n=m,
        fcd_batches=len(scores),
        precision=None if prdc is None else prdc.precision,
        recall=None if prdc is None else prdc.recall,
        density=None if prdc is None else prdc.density,
        coverage=None if prdc is None else prdc.coverage,
        memorisation=memo.fraction,
        memorisation_base_rate=memo.base_rate,
        class_accuracy=accuracy,
        ms_per_sample=1000 * seconds / n,
        nfe_per_sample=None if network is None else calls.per_sample(n),
        training_seconds=training_seconds,
        parameters=sum(p.numel() for p in model.parameters()),
        samples=samples,
    )
