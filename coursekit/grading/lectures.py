"""What the grader grades in each lecture: the exercises, their points, and the check that runs.

The exercises and their points come from the lecture's source, ``solutions/NN_topic.py``: each
``### BEGIN SOLUTION`` (or ``### BEGIN SOLUTION points=N``; the default is 1 point) inside a
function is one exercise, numbered as the student notebook numbers it ("Exercise 2.1"). The
check of each exercise is the notebook's own check from ``coursekit.exercises``, run by the
grader with its own ``seed`` (other sizes and values than the notebook showed), on a stand-in
for the student's function that runs the real one in the sandbox (``worker.RemoteFunction``).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from coursekit import check
from coursekit.errors import CourseError

SOLUTIONS = Path(__file__).resolve().parents[2] / "solutions"
BEGIN = re.compile(r"^\s*### BEGIN SOLUTION(?: points=(?P<points>\d+(?:\.\d+)?))?\s*$")
TITLE = re.compile(r"^#\s*Lecture\s+0*(\d+)\b", re.IGNORECASE)


class LectureSourceError(CourseError):
    """A lecture source the grader cannot read its exercises from."""


@dataclass(frozen=True)
class Exercise:
    number: str  # "2.1", as the student notebook names it
    function: str  # the function the student writes
    points: float
    check: Callable[..., check.Result]  # check(student_fn, seed=...) -> Result

    @property
    def column(self) -> str:
        return f"{self.number} {self.function}"


@dataclass(frozen=True)
class Lecture:
    number: str  # "02"
    stem: str  # "02_vae"
    exercises: tuple[Exercise, ...]

    @property
    def max_points(self) -> float:
        return sum(e.points for e in self.exercises)

    def by_function(self) -> dict[str, Exercise]:
        return {e.function: e for e in self.exercises}


def _checks() -> dict[str, dict[str, Callable[..., check.Result]]]:
    """Function name -> the check that grades it, per lecture."""
    from coursekit.exercises import (
        autoregressive,
        diffusion,
        divergences,
        ebm,  # lecture 09
        flow_matching,
        flows,
        gans,  # lecture 05
        vae,
    )

    def generator(name: str) -> Callable[..., check.Result]:
        return functools.partial(divergences.check_generator, name)

    return {
        "01": {
            "kl_f": generator("kl"),
            "reverse_kl_f": generator("reverse_kl"),
            "pearson_f": generator("pearson"),
            "hellinger_f": generator("hellinger"),
            "js_f": generator("js"),
            "gan_f": generator("gan"),
            "kl_gaussian": divergences.check_kl_gaussian,
            "fgan_bound": divergences.check_fgan_bound,
            "donsker_varadhan": divergences.check_donsker_varadhan,
            "optimal_discriminator": divergences.check_optimal_discriminator,
        },
        "02": {
            "kl_diag_gaussian": vae.check_kl_diag_gaussian,
            "reparameterize": vae.check_reparameterize,
            "iwae_from_log_weights": vae.check_iwae_bound,
        },
        "03": {
            "made_masks": autoregressive.check_made_masks,
            "pixelcnn_mask": autoregressive.check_pixelcnn_mask,
            "causal_mask": autoregressive.check_causal_mask,
            "arithmetic_encode": autoregressive.check_arithmetic_encoder,
        },
        "04": {
            "flow_log_prob": flows.check_flow_log_prob,
            # the coupling check takes both directions: each is graded beside the reference
            # of the other, so a wrong inverse costs only the inverse's points
            "coupling_forward": _with_reference_inverse,
            "coupling_inverse": _with_reference_forward,
            "lu_conv": flows.check_lu_conv,
            "edit_latent": flows.check_latent_edit,  # lecture 04, topic 8 (latent edit)
        },
        "05": {
            "discriminator_loss": gans.check_discriminator_loss,
            "generator_loss": gans.check_generator_loss,
            "gradient_penalty": gans.check_gradient_penalty,
            "inversion_loss": gans.check_inversion_loss,  # lecture 05, topic 7 (inversion)
            "cycle_loss": gans.check_cycle_loss,  # lecture 05, topic 8 (CycleGAN)
        },
        "06": {
            "q_sample": diffusion.check_q_sample,
            "diffusion_loss": diffusion.check_diffusion_loss,
            "ddpm_step": diffusion.check_ddpm_step,
            "ddim_step": diffusion.check_ddim_step,
            "guided_eps": diffusion.check_guidance,
            "replace_known": diffusion.check_replace_known,
        },
        # Lecture 07 (VQ tokenizers): its checks are imported here, so the lines above stay as they were
        "07": _vq_checks(),
        "08": {
            "path_sample": flow_matching.check_path_sample,
            "cfm_loss": flow_matching.check_cfm_loss,
            "euler_sample": flow_matching.check_euler_sample,
        },
        "09": {
            "langevin_step": ebm.check_langevin_step,
            "cd_loss": ebm.check_cd_loss,
            "classifier_energy": ebm.check_classifier_energy,
        },
    }


def _with_reference_inverse(forward_fn, *, seed: int = 0) -> check.Result:
    from coursekit.exercises import flows

    return flows.check_affine_coupling(forward_fn, flows.reference_coupling_inverse, seed=seed)


def _with_reference_forward(inverse_fn, *, seed: int = 0) -> check.Result:
    from coursekit.exercises import flows

    return flows.check_affine_coupling(flows.reference_coupling_forward, inverse_fn, seed=seed)


def exercises_in_source(text: str, path: Path) -> list[tuple[str, float]]:
    """(function, points) of every solution region of a lecture source, in order."""
    found, last_def = [], None
    for lineno, line in enumerate(text.splitlines(), start=1):
        match = re.match(r"\s*def\s+(\w+)\s*\(", line)
        if match:
            last_def = match.group(1)
        begin = BEGIN.match(line)
        if begin:
            if last_def is None:
                raise LectureSourceError(f"{path}:{lineno}: a solution region outside a function")
            found.append((last_def, float(begin.group("points") or 1)))
        elif "### BEGIN SOLUTION" in line:
            raise LectureSourceError(
                f"{path}:{lineno}: write the marker as `### BEGIN SOLUTION` or "
                "`### BEGIN SOLUTION points=N`"
            )
    return found


@functools.cache
def load(solutions: Path = SOLUTIONS) -> dict[str, Lecture]:
    """Every gradable lecture, from the sources in ``solutions``."""
    checks = _checks()
    register_callables()
    lectures = {}
    for path in sorted(solutions.glob("[0-9][0-9]_*.py")):
        number = path.name[:2]
        found = exercises_in_source(path.read_text(encoding="utf-8"), path)
        if not found:
            continue
        if number not in checks:
            raise LectureSourceError(
                f"{path}: lecture {number} has exercises but coursekit/grading/lectures.py "
                "names no checks for it; add an entry per exercise to _checks()"
            )
        exercises = []
        for k, (function, points) in enumerate(found, start=1):
            if function not in checks[number]:
                raise LectureSourceError(
                    f"{path}: exercise {int(number)}.{k} ({function}) has no check in "
                    "coursekit/grading/lectures.py"
                )
            exercises.append(
                Exercise(f"{int(number)}.{k}", function, points, checks[number][function])
            )
        lectures[number] = Lecture(number, path.stem, tuple(exercises))
    if not lectures:
        raise LectureSourceError(
            f"no lecture sources in {solutions}: run the grader from a clone of the course "
            "repository, or pass --solutions"
        )
    return lectures


def register_callables() -> None:
    """Name the callables a check passes to a student's function (the f-GAN conjugates), in the
    grader and in the worker alike, so that they travel by name (see wire.CALLABLES)."""
    from coursekit import divergences
    from coursekit.grading import wire

    for name, div in divergences.DIVERGENCES.items():
        for field in ("f", "f_star", "g", "f_star_g"):
            fn = getattr(div, field, None)
            if callable(fn):
                wire.CALLABLES[f"divergences.{name}.{field}"] = fn

    # lecture 08: the velocity field that the Euler check integrates with the student's sampler
    from coursekit.exercises import flow_matching

    wire.CALLABLES["flow_matching.euler_field"] = flow_matching._field


def _vq_checks() -> dict[str, Callable[..., check.Result]]:
    """Lecture 07's exercises: the quantiser, the VQ-VAE loss, LFQ's entropy penalty,
    Gumbel-softmax, VAR's mask."""
    from coursekit.exercises import vq

    return {
        "quantize": vq.check_quantize,
        "vq_loss": vq.check_vq_loss,
        "lfq_entropy": vq.check_lfq_entropy,
        "gumbel_softmax": vq.check_gumbel_softmax,
        "block_causal_mask": vq.check_block_causal_mask,
    }
