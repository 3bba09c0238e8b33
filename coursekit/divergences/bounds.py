"""Variational lower bounds on divergences from critic outputs, and training the critic.

f-GAN's bound ``E_P[T] - E_Q[f*(T)]`` (Nowozin et al. 2016, eq. 4), the Donsker-Varadhan
bound for KL (Belghazi et al. 2018), and the optimal GAN discriminator (Goodfellow et al.
2014, Prop. 1). See ``f_divergences`` for the generators and conventions.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from coursekit import train
from coursekit.divergences.f_divergences import FDivergence

# ----------------------------------------------------------------------------------------------
# variational lower bounds on critic outputs


def fgan_bound(div: FDivergence, v_p: Tensor, v_q: Tensor) -> Tensor:
    """The f-GAN lower bound (2) from raw critic outputs ``v`` at samples of P (N,) and Q (M,).

    ``E_P[g(v)] - E_Q[f*(g(v))]``; for ``div = get("kl")`` it is the NWJ bound.
    """
    return div.g(v_p).mean() - div.f_star_g(v_q).mean()


def donsker_varadhan_bound(t_p: Tensor, t_q: Tensor) -> Tensor:
    """The Donsker-Varadhan lower bound on KL(P || Q): ``E_P[T] - log E_Q[exp T]``.

    t_p (N,), t_q (M,) -> scalar. Optimal at ``T = log(p/q) + c`` for any constant c.
    On a minibatch the log of a mean is biased (MINE, Belghazi et al. 2018, Sec. 3.2);
    evaluate on a large sample.
    """
    log_mean_exp = torch.logsumexp(t_q, dim=0) - math.log(t_q.shape[0])
    return t_p.mean() - log_mean_exp


def optimal_discriminator_logit(log_p_data: Tensor, log_p_model: Tensor) -> Tensor:
    """Logit of ``D*(x) = p_d / (p_d + p_m)`` (Goodfellow et al. 2014, Prop. 1): log p_d - log p_m."""
    return log_p_data - log_p_model


def gan_value(logit_data: Tensor, logit_model: Tensor) -> Tensor:
    """``V(G, D) = E_{p_d}[log D(x)] + E_{p_m}[log(1 - D(x))]`` from discriminator logits.

    With ``D = sigmoid(logit)``: ``log D = logsigmoid(l)`` and ``log(1 - D) = logsigmoid(-l)``.
    At D* it equals ``2 JS(p_d || p_m) - log 4`` (Goodfellow et al. 2014, Thm. 1).
    """
    return F.logsigmoid(logit_data).mean() + F.logsigmoid(-logit_model).mean()


# ----------------------------------------------------------------------------------------------
# training a critic


@dataclass
class CriticTrace:
    """Bound estimates while a critic trains: ``estimates[i]`` is measured after ``steps[i]``."""

    steps: list[int] = field(default_factory=list)
    estimates: list[float] = field(default_factory=list)
    seconds: float = 0.0


def train_critic(
    critic: nn.Module,
    bound: Callable[[Tensor, Tensor], Tensor],
    sample_p: Callable[[int, torch.Generator | None], Tensor],
    sample_q: Callable[[int, torch.Generator | None], Tensor],
    *,
    steps: int,
    batch_size: int = 256,
    lr: float = 1e-3,
    eval_every: int = 50,
    eval_size: int = 8192,
    generator: torch.Generator | None = None,
) -> CriticTrace:
    """Maximise ``bound(critic(x_p), critic(x_q))`` by Adam; return held-out estimates.

    ``critic`` maps (B, D) to (B, 1) (or (B,)); ``bound`` takes the two output vectors, e.g.
    ``lambda a, b: divergences.fgan_bound(divergences.get("kl"), a, b)``.
    ``sample_p(n, generator)`` returns (n, D) samples on the critic's device.
    The held-out estimate uses one fixed evaluation sample, so the curve shows the critic
    improving rather than sampling noise.

    The training itself is the course's one two-player step with the generator held fixed:
    ``train.Adversarial(nn.Identity(), critic, None, d_loss, g_opt=None, d_opt=Adam, noise=sample_q)``
    run by ``train.fit`` on batches of ``sample_p``, where ``d_loss = -bound`` (the critic
    maximises the bound). Each step draws ``x_p`` then ``x_q`` from ``generator``.
    """
    start = time.perf_counter()
    x_p_eval, x_q_eval = sample_p(eval_size, generator), sample_q(eval_size, generator)
    critic_only = train.Adversarial(
        nn.Identity(),  # Q's samples are the "generator's", and Q does not move
        critic,
        None,
        lambda v_p, v_q: -bound(v_p.reshape(-1), v_q.reshape(-1)),  # maximise the bound
        g_opt=None,
        d_opt=torch.optim.Adam(critic.parameters(), lr=lr),
        noise=sample_q,
        rng=generator,
    )
    samples_of_p = iter(lambda: (sample_p(batch_size, generator), None), None)  # endless
    dev = next(critic.parameters()).device
    trace = CriticTrace()

    def evaluate(step: int) -> None:
        with torch.no_grad():
            value = bound(critic(x_p_eval).reshape(-1), critic(x_q_eval).reshape(-1))
        trace.steps.append(step)
        trace.estimates.append(float(value))

    evaluate(0)
    done = 0
    while done < steps:  # train up to the next evaluation, then measure on the held-out sample
        chunk = min(eval_every, steps - done)
        train.fit(critic_only, samples_of_p, steps=chunk, progress=False, device=dev)
        done += chunk
        evaluate(done)
    trace.seconds = time.perf_counter() - start
    return trace
