# %% [markdown]
# # Lecture 08: Flow matching and rectified flow
#
# A diffusion model (lecture 06) turns noise into data by integrating a differential equation
# whose right-hand side a network learned by regression. Flow matching (Lipman et al. 2023;
# Liu et al. 2023, "rectified flow"; Albergo & Vanden-Eijnden 2023) keeps the idea and drops
# the detour through a noising process: choose how each noise sample should travel to a data
# point (a straight line), regress a network on the velocity of that motion, and integrate the
# learned velocity field from noise to data. Straight paths are cheap to follow, so the
# question of this lecture is how few solver steps a good sample needs.
#
# Convention throughout (Lipman et al.): $x_0$ is **noise**, $x_1$ is **data**, and time runs
# from $t = 0$ (noise) to $t = 1$ (data). This is the reverse of lecture 06, where $x_0$ was
# data and large $t$ was noise; `coursekit.paths` pins both conventions in its tests.
#
# After this lecture you can
#
# - say what a velocity field, a probability path and the continuity equation are, and why the
#   marginal velocity is the conditional expectation of the conditional velocities;
# - write the linear path and the conditional flow-matching loss, and sample with Euler steps;
# - measure how straight a learned flow is, and how its sample quality falls with fewer steps;
# - straighten a flow by reflow (rectified flow) and distil it to a single step;
# - pair noise and data by minibatch optimal transport, and say what it changes;
# - compute a flow-matching model's likelihood through the augmented ODE (exact trace and
#   Hutchinson's estimator), and say what kind of number it is;
# - run flow matching in an autoencoder's latent space and weigh cost against quality;
# - condition a flow on a class and steer it with classifier-free guidance on the velocity.
#
# **Profiles.** The `cpu` profile trains small MLPs (a few thousand steps, half a minute or
# less each) on 2-D toys and on the 8×8 digits; its numbers are meaningful but far from the
# state of the art. The `gpu` profile (Fashion-MNIST, the small UNet) has not been run yet.

# %%
import copy
import functools
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from coursekit import (
    data,
    evaluation,
    likelihoods,
    metrics,
    networks,
    paths,
    plot,
    report,
    solvers,
    train,
    utils,
    vae,
)
from coursekit import flow_matching as fm
from coursekit.diffusion import latent, schedules
from coursekit.exercises import flow_matching as checks

gen = utils.seed_everything(0)
DEV = utils.device()
PROFILE = utils.profile()
GPU = PROFILE == "gpu"
print("profile:", PROFILE, "| device:", utils.describe_device(DEV))


def seeded(seed: int) -> torch.Generator:
    """A fresh generator, so each experiment is repeatable on its own."""
    return torch.Generator().manual_seed(seed)


# %% [markdown]
# ## 1. From diffusion to flows
#
# A time-dependent **velocity field** $u_t(x)$ moves points by the ODE $\dot x_t = u_t(x_t)$.
# Started from $x_0 \sim p_0 = \mathcal N(0, I)$, the points at time $t$ have some density
# $p_t$, the **probability path**; it obeys the continuity equation (mass is neither created
# nor destroyed)
#
# $$\partial_t p_t(x) + \nabla \cdot \big(p_t(x)\, u_t(x)\big) = 0 .$$
#
# We want a field whose path ends at the data, $p_1 = p_{\text{data}}$. Building one is easy
# *one data point at a time*: the straight line $x_t = (1 - t)\,x_0 + t\,x_1$ takes the noise
# $x_0$ to the data point $x_1$ with the constant **conditional velocity** $x_1 - x_0$. Mixing
# these lines over $x_0 \sim p_0$ and $x_1 \sim p_{\text{data}}$ gives a path $p_t$ from noise to
# data, and the field that generates it is the **marginal velocity**, the average of the
# conditional velocities of all the lines that pass through $x$ at time $t$:
#
# $$u_t(x) = \mathbb E\big[\, x_1 - x_0 \;\big|\; x_t = x \,\big].$$
#
# (Check it in the continuity equation: the flux $p_t u_t$ is the sum of the lines' fluxes.)
# For a finite data set this expectation has a closed form: given $x_t = x$, the data point
# $x_1^{(i)}$ has posterior weight $w_i \propto \mathcal N\big(x;\, t\,x_1^{(i)}, (1-t)^2 I\big)$
# and $x_1 - x_0 = (x_1 - x)/(1 - t)$. Below we integrate that exact field for twelve points.
# Lecture 06's probability-flow ODE is the same object for the diffusion path: a velocity field
# built from the score, integrated from noise to data.

# %%
points = data.toy_2d("8gaussians", 12, seed=3)  # (12, 2): the "data set"


def exact_velocity(x, t):
    """u_t(x) = Σ_i w_i (x1_i − x) / (1 − t), w = softmax over i of log N(x; t x1_i, (1 − t)² I)."""
    t = t[:, None]  # (B, 1)
    d2 = ((x[:, None, :] - t[:, None] * points[None]) ** 2).sum(-1)  # (B, 12)
    w = torch.softmax(-d2 / (2 * (1 - t) ** 2), dim=1)  # (B, 12)
    return (w @ points - x) / (1 - t)  # (B, 2)


x0_demo = torch.randn(300, 2, generator=seeded(1))
exact_traj = solvers.euler(
    exact_velocity, x0_demo, solvers.uniform_grid(0.0, 0.99, 100), record=True
)
nearest = torch.cdist(exact_traj.x, points).min(1).values
fig, ax = plt.subplots(figsize=(4.5, 4.5))
plot.trajectories(exact_traj.xs, ax=ax, n=300, title="the exact marginal flow of 12 points")
ax.scatter(points[:, 0], points[:, 1], marker="x", c="k", s=40)
plt.show()
print(f"median distance of an end point to its nearest data point: {nearest.median():.3f}")

# %% [markdown]
# You should see every trajectory bend towards one of the twelve crosses and end on it (median
# distance about 0.03 at $t = 0.99$): the exact marginal field of a finite data set reproduces
# that set and nothing else. A network trained on the same regression cannot represent such a
# sharp field and smooths it, which is what lets it generalise.
#
# ## 2. Conditional flow matching
#
# The marginal field is an expectation we cannot compute for real data, but we never have to:
# the **conditional flow-matching loss**
#
# $$\mathcal L_{\text{CFM}}(\theta) = \mathbb E_{t \sim U[0,1],\, x_0,\, x_1}
# \big\| v_\theta(x_t, t) - (x_1 - x_0) \big\|^2, \qquad x_t = (1-t)\,x_0 + t\,x_1,$$
#
# differs from the loss against the unknown $u_t$ by a constant that does not depend on
# $\theta$ (Lipman et al., thm. 2: expand the square; the cross term averages $x_1 - x_0$ given
# $x_t$ into $u_t(x_t)$). Its minimiser is therefore the marginal velocity, and each training
# step needs only a data point, a noise sample and a time: a regression as simple as
# lecture 06's $\varepsilon$-loss. (`tests/test_flow_matching.py` checks the identity on a
# Gaussian whose $u_t$ is known: the loss of $u_t + \delta$ exceeds that of $u_t$ by
# $\|\delta\|^2$.)
#
# **Exercise 8.1.** Write `path_sample`: the point of the linear path at time `t` (one time per
# example, broadcast over images too) between the noise `x0` and the data `x1`.


# %%
def path_sample(x0, x1, t):
    """x_t = (1 − t) x0 + t x1; x0 noise, x1 data (B, ...), t (B,) in [0, 1]."""
    ### BEGIN SOLUTION
    t = t.view(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1)
    return (1 - t) * x0 + t * x1
    ### END SOLUTION


checks.check_path_sample(path_sample)

# %% [markdown]
# **Exercise 8.2.** Write the loss: the mean over every entry of the squared error between
# `net(x_t, t)` and the conditional velocity.


# %%
def cfm_loss(net, x0, x1, t):
    """mean (net(x_t, t) − (x1 − x0))² with x_t on the linear path; a scalar."""
    ### BEGIN SOLUTION
    x_t = path_sample(x0, x1, t)
    return ((net(x_t, t) - (x1 - x0)) ** 2).mean()
    ### END SOLUTION


checks.check_cfm_loss(cfm_loss)

# %% [markdown]
# **Exercise 8.3.** Sample by Euler's method: $N$ steps of size $h = 1/N$ from $t = 0$ (noise)
# to $t = 1$ (data), $x \leftarrow x + h\, v(x, t_i)$ with $t_i = i h$. The velocity takes one
# time per example, a tensor of shape `(B,)`.


# %%
def euler_sample(velocity, x0, num_steps):
    """x at t = 1 from x0 at t = 0 by num_steps Euler steps of dx/dt = velocity(x, t)."""
    ### BEGIN SOLUTION
    h, x = 1.0 / num_steps, x0
    for i in range(num_steps):
        t = torch.full((x.shape[0],), i * h, device=x.device)
        x = x + h * velocity(x, t)
    return x
    ### END SOLUTION


checks.check_euler_sample(euler_sample)

# %% [markdown]
# ### Flow matching on 2-D toys
#
# `fm.FlowMatching(net, data_shape=...)` wraps a velocity network `net(x, t, y)` with exactly
# this loss (`fm.cfm_loss`, on the shared `paths.LinearPath`) and samples with any solver of
# `coursekit.solvers` (`sample(n, solver="euler", steps=100)`). We train one on each of two
# toys and compare samples with fresh data by the energy distance, beside its real-vs-real
# 95th percentile.
#
# *How to read the score.* The energy distance of one set of $n$ samples is itself a random
# number: even for a perfect model it scatters around zero with the spread of the
# real-vs-real floor, so the ratio "value / 95th percentile" of a single sample set can land
# anywhere from below zero to several times 1 just by the sampling seed. We therefore draw
# `N_SETS` sets of $n$ samples with different seeds and pass the list to
# `metrics.two_sample_score`: it averages the sets' values (each against its own fresh real
# set) and reports the standard error, while the 95th percentile stays that of single pairs
# of $n$ real points. The averaged ratio asks whether the model's *expected* distance at this
# $n$ is within the range two real sets show.

# %%
TOYS = ("moons", "8gaussians")
TOY_STEPS = utils.pick(smoke=30, cpu=2500, gpu=10000)
TOY_STEPS_OT = utils.pick(smoke=30, cpu=1500, gpu=10000)  # the OT toy of section 5
N_TOY = utils.pick(smoke=200, cpu=2000, gpu=5000)
N_SETS = utils.pick(smoke=2, cpu=8, gpu=8)  # sample sets averaged into a toy's score
FLOOR_REPEATS = utils.pick(smoke=5, cpu=20, gpu=20)  # real-vs-real pairs for the percentile
TOY_EMA = utils.pick(smoke=0.9, cpu=0.999, gpu=0.999)


def toy_flow(coupling="independent"):
    net = networks.TimeConditionedMLP(in_dim=2, hidden=128, depth=3)
    return fm.FlowMatching(net, data_shape=(2,), data_range=None, coupling=coupling)


def train_toy(name, coupling="independent", steps=TOY_STEPS):
    model = toy_flow(coupling)
    history = train.fit(model, data.toy_2d(name, 20_000, seed=0), steps=steps, lr=2e-3,
                        batch_size=256, ema=TOY_EMA, progress=False, device=DEV)  # fmt: skip
    history.ema.copy_to(model)
    return model.eval()


toy_models, toy_scores, toy_single = {}, {}, {}
for name in TOYS:
    start = time.perf_counter()
    model = train_toy(name)
    sets = [model.sample(N_TOY, generator=seeded(20), steps=100).cpu()]
    seconds = time.perf_counter() - start  # a trained model and one set of samples
    sets += [model.sample(N_TOY, generator=seeded(20 + i), steps=100).cpu()
             for i in range(1, N_SETS)]  # fmt: skip
    real = functools.partial(data.toy_2d, name)
    toy_models[name] = model
    toy_scores[name] = (metrics.two_sample_score(sets, real, repeats=FLOOR_REPEATS), seconds)
    p95 = toy_scores[name][0].real_p95
    # one set at a time, each against a fresh real set: the spread the average removes
    toy_single[name] = [metrics.energy_distance(x, real(N_TOY, seed=500 + i)) / p95
                        for i, x in enumerate(sets)]  # fmt: skip
    plot.compare_2d(
        data.toy_2d(name, N_TOY, seed=1), sets[0], titles=(name, "flow matching, 100 Euler steps")
    )
    plt.show()
    sc = toy_scores[name][0]
    print(f"{name}: {sc}  [{seconds:.0f} s for training and sampling]")
    print(f"  mean of {N_SETS} sets / real p95 = {sc.value / p95:.2f} ± {sc.value_se / p95:.2f}; "
          f"single sets from {min(toy_single[name]):.2f} to {max(toy_single[name]):.2f}")  # fmt: skip

# %% [markdown]
# You should see both moons and all eight Gaussians covered. One sample set's ratio swings
# widely with the seed alone (in our `cpu` run from −1.5 to 2.2 × the 95th percentile on the
# eight Gaussians, −0.57 to 1.1 × on the moons), which is why a single draw decides nothing.
# Averaged over eight sets the ratio was about −0.10 ± 0.12 on the moons (as close as fresh
# data) and 0.75 ± 0.92 on the eight Gaussians: the mean meets the target of 1, but its
# standard error says that this model's score is only known to within about ±0.9, so it is
# close to the real-vs-real range rather than demonstrably inside it. (A model with a real
# bias has a value whose spread grows with the bias, so more sets, not more points per set,
# are what tighten it.)
#
# ## 3. Straightness and the number of steps
#
# The lines of the conditional paths cross: independent pairs send nearby noise to far-apart
# data. The marginal field cannot cross itself (an ODE has one velocity per point), so at a
# crossing it averages the directions and its trajectories *bend*. Curved trajectories are what
# makes few-step sampling inaccurate: Euler's method follows the tangent. Liu et al. measure it
# by the **straightness**
#
# $$S = \int_0^1 \mathbb E \big\| (x_1 - x_0) - \dot x_t \big\|^2 \, dt ,$$
#
# zero exactly when every trajectory is a straight line at constant speed, and then a single
# Euler step is exact. `fm.straightness` computes it (per dimension) from a recorded trajectory.

# %%
name = "8gaussians"
model = toy_models[name]
x0_toy = torch.randn(400, 2, generator=seeded(3)).to(DEV)
x1_toy = data.toy_2d(name, 400, seed=4).to(DEV)
with torch.no_grad():
    toy_traj = model.transport(x0_toy, steps=100, record=True)
lines = torch.stack([x0_toy, x1_toy])  # (2, N, 2): a straight line per independent pair
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
plot.trajectories(lines.cpu(), ax=axes[0], n=150, title="conditional paths (they cross)")
plot.trajectories(toy_traj.xs.cpu(), ax=axes[1], n=150, title="learned ODE trajectories")
plt.show()
toy_straightness = float(fm.straightness(toy_traj).mean())
print(f"straightness of the learned flow: {toy_straightness:.3f}")

# %% [markdown]
# You should see the independent pairs' lines cross everywhere, and the learned trajectories
# never cross: they first head for the centre of the data and then fan out, bending on the way.
#
# ### Digits: FCD against the number of steps
#
# Now the 8×8 digits (images mapped to $[-1, 1]$ inside the model), with an MLP velocity as in
# lecture 06, and the final numbers from `evaluation.evaluate` (FCD against the training
# digits beside the real-vs-real floor). We sample from the same noise with Euler and Heun
# (two network calls per step) and 1 to 100 steps.
#
# *What the network predicts.* On the `cpu` profile the MLP predicts the data,
# $\hat x_1(x_t, t)$ (`prediction="data"`), and the model turns it into the velocity
# $(\hat x_1 - x_t)/(1 - t)$ through the path's conversions. The loss
# $\|\hat x_1 - x_1\|^2 = (1-t)^2\, \|v - (x_1 - x_0)\|^2$ is the CFM loss with a weight
# $(1-t)^2$, so its minimiser is the same marginal field; what changes is the network's task.
# A velocity contains $-x_0$, most of the input near $t = 0$, and an MLP without a skip
# connection spends its capacity copying its input; lecture 06's MLP predicted $\hat x_0$ for the
# same reason. (Near $t = 1$ the division is capped at $1 - t \ge 0.01$.) The `gpu` profile's
# UNet predicts the velocity itself.


# %%
if GPU:
    images_train, images_test = data.fashion_mnist("train"), data.fashion_mnist("test")
    SHAPE = (1, 28, 28)
else:
    images_train, images_test = data.digits("train"), data.digits("test")
    SHAPE = (1, 8, 8)
IMG_STEPS = utils.pick(smoke=30, cpu=3000, gpu=20000)
IMG_EMA = utils.pick(smoke=0.9, cpu=0.995, gpu=0.999)  # averages the last ~1/(1 - decay) steps
BATCH = utils.pick(smoke=64, cpu=128, gpu=256)
N_EVAL = utils.pick(smoke=100, cpu=750, gpu=5000)  # FCD needs n > feature dim (64)
FCD_REAL = images_train.subset(10_000) if GPU else images_train
STEP_COUNTS = utils.pick(smoke=[1, 10], cpu=[1, 2, 5, 10, 25, 100], gpu=[1, 2, 5, 10, 25, 100])
PREDICTION = "velocity" if GPU else "data"  # see below: what a small MLP should predict


def image_net(num_classes=None):
    if GPU:
        net = networks.UNet(
            in_ch=1, base=64, mults=(1, 2, 2), num_classes=num_classes, image_size=28
        )
        return net.to(DEV, memory_format=torch.channels_last)
    return networks.ImageMLP(SHAPE, hidden=utils.pick(smoke=64, cpu=256, gpu=256), depth=3,
                       num_classes=num_classes)  # fmt: skip


def train_images(model, data_or_pairs, steps, labels=None):
    """fit() with the data on the device and an EMA of the weights, copied in at the end."""
    batches = data.Batches(data_or_pairs.to(DEV), None if labels is None else labels.to(DEV),
                           batch_size=BATCH, device=DEV, generator=seeded(5))  # fmt: skip
    start = time.perf_counter()
    history = train.fit(model, batches, steps=steps, lr=utils.pick(smoke=2e-3, cpu=2e-3, gpu=5e-4),
                        ema=IMG_EMA, amp=GPU,
                        progress=False, device=DEV)  # fmt: skip
    seconds = time.perf_counter() - start
    history.ema.copy_to(model)
    print(f"{steps} steps in {seconds:.0f} s, final loss {history.final():.3f}")
    return seconds


x_eval0 = torch.randn(N_EVAL, *SHAPE, generator=seeded(6)).to(DEV)  # one start for every sampler


def evaluate(model, name, steps=100, solver="euler", y=None, **kwargs):
    return evaluation.evaluate(
        model, images_train, images_test, n=N_EVAL, fcd_real=FCD_REAL, y=y, name=name,
        per_sample={"x0": x_eval0}, sample_kwargs=dict(steps=steps, solver=solver, **kwargs),
        generator=seeded(7), progress=False,
    )  # fmt: skip


def straightness_of(model, n=256, steps=100):
    with torch.no_grad():
        return float(fm.straightness(model.transport(x_eval0[:n], steps=steps, record=True)).mean())


cfm_model = fm.FlowMatching(image_net(), data_shape=SHAPE, prediction=PREDICTION).to(DEV)
cfm_seconds = train_images(cfm_model, images_train.float(), IMG_STEPS)
cfm_model.eval()
cfm_rows = {(solver, k): evaluate(cfm_model, f"CFM, {solver} {k}", k, solver)
            for solver in ("euler", "heun") for k in STEP_COUNTS}  # fmt: skip
print(evaluation.table(list(cfm_rows.values())))
cfm_straightness = straightness_of(cfm_model)
print(f"straightness of the digit flow: {cfm_straightness:.4f}")

# %%
fig, ax = plt.subplots(figsize=(5, 3.5))
for solver, marker in (("euler", "o"), ("heun", "s")):
    nfe = [k * (2 if solver == "heun" else 1) for k in STEP_COUNTS]
    ax.plot(nfe, [cfm_rows[solver, k].fcd_ratio for k in STEP_COUNTS], marker=marker, label=solver)
ax.set(xscale="log", yscale="log", xlabel="network calls per sample", ylabel="FCD / floor")
ax.axhline(1, color="grey", lw=0.8)
ax.legend()
plt.show()
plot.image_grid(torch.cat([cfm_rows["euler", k].samples[:16] for k in STEP_COUNTS]), nrow=16,
                row_labels=[f"{k}" for k in STEP_COUNTS], title="Euler steps")  # fmt: skip
plt.show()

# %% [markdown]
# You should see the FCD ratio fall steeply from one step (a blurred average digit: one Euler
# step from noise lands on $\mathbb E[x_1]$, the mean image) to tens of steps: in our `cpu`
# run about 190 × the floor with one Euler step, 2.7 × with 10 and 1.9 × with 100. Heun is
# better at equal steps (2.1 × with 10) and at ten network calls (2.4 × with 5 steps), but
# not at many: 100 Heun steps, 200 calls, scored 1.97 × against Euler's 1.89 × with 100. The
# straightness is far from zero (about 0.39): the flow is curved, which is why one step fails.
#
# ### The same model as diffusion
#
# Lecture 06's variance-preserving path is another affine path, $x = \alpha_t\, x_{\text{data}} +
# \sigma_t\, \varepsilon$ with $\alpha_t = \sqrt{\bar\alpha_t}$, $\sigma_t = \sqrt{1 - \bar\alpha_t}$ and
# its own time running the other way ($t = 0$ data, $t = T-1$ noise). Every network output is a
# reparameterisation of every other through the path (`coursekit.paths`): given $x_t$, a
# velocity $u = \alpha'_t \hat x + \sigma'_t \varepsilon$ fixes the noise $\varepsilon$, the noise fixes
# the score $\nabla \log p_t = -\varepsilon / \sigma_t$ (Tweedie), and the data prediction
# $\hat x = (x_t - \sigma_t \varepsilon)/\alpha_t$. So flow matching on the VP path *is* diffusion
# training with a velocity (or data) parameterisation, and its ODE is lecture 06's probability
# flow. Below, the round trip velocity → ε → score → ε → velocity on the linear path, then one
# network trained on the VP path (`fm.FlowMatching(..., path=paths.VPPath(schedule))`, flow
# time $s = 1 - t/(T-1)$) at the same budget as the linear one.

# %%
linear_path = paths.LinearPath()
x_t = cfm_model.to_model_space(images_train.float()[:8].to(DEV)) * 0.6 + 0.4 * x_eval0[:8]
t_half = torch.full((8,), 0.6, device=DEV)
with torch.no_grad():
    u = cfm_model.net_velocity(x_t, t_half)
    eps_hat = linear_path.eps_from_velocity(x_t, t_half, u)
    score = linear_path.eps_to_score(eps_hat, t_half)
    u_back = linear_path.velocity_from_eps(x_t, t_half, linear_path.score_to_eps(score, t_half))
print(f"round trip velocity -> eps -> score -> velocity: max error {(u_back - u).abs().max():.1e}")

with torch.random.fork_rng():  # the experiments after this one draw the same numbers without it
    torch.manual_seed(12)
    vp_model = fm.FlowMatching(image_net(), data_shape=SHAPE, prediction=PREDICTION,
                               path=paths.VPPath(schedules.cosine_schedule(1000))).to(DEV)  # fmt: skip
    train_images(vp_model, images_train.float(), IMG_STEPS)
vp_model.eval()
vp_rows = {k: evaluate(vp_model, f"VP path, Euler {k}", k) for k in (10, STEP_COUNTS[-1])}
vp_straightness = straightness_of(vp_model)
print(
    evaluation.table([cfm_rows["euler", 10], cfm_rows["euler", STEP_COUNTS[-1]], *vp_rows.values()])
)
print(f"straightness: linear path {cfm_straightness:.3f}, VP path {vp_straightness:.3f}")

# %% [markdown]
# You should see the conversions agree to rounding error. The VP-path model, trained with the
# same network, loss and budget, is about 1.3 × less straight than the linear one (the VP path
# itself bends: $\alpha_t$ and $\sigma_t$ move along a quarter circle), yet in our `cpu` run it was
# better at 10 Euler steps (about 1.9 × the floor against 2.7 ×) and at 100 (1.4 × against
# 1.9 ×): straightness is one factor of few-step quality, how the steps fall on the path's time
# is another. (One run each: the training seed alone moves the 100-step figure by a few tenths.)
#
# ## 4. Rectified flow: reflow, and distillation to one step
#
# The trained ODE defines a *deterministic* coupling: each noise $x_0$ goes to one sample
# $x_1 = \text{ODE}(x_0)$. Liu et al.'s **reflow** draws such pairs and trains a new flow on
# them with the same loss. The new pairs do not cross (they come from a flow), so the new
# marginal field has little to average and its trajectories straighten; the transport cost
# $\mathbb E\|x_1 - x_0\|^2$ cannot rise (their thm. 3.5). The price is paid up front: every
# pair costs a full ODE solve (`fm.reflow_pairs`, here RK4 with 25 steps, 100 network calls).
# The pairs must come from the ODE: fresh noise and fresh data would be independent pairs
# again. We fine-tune the first model on them (`fm.PairedObjective`).

# %%
N_PAIRS = utils.pick(smoke=256, cpu=10000, gpu=50000)
REFLOW_STEPS = utils.pick(smoke=30, cpu=3000, gpu=20000)
start = time.perf_counter()
pairs = fm.reflow_pairs(cfm_model, N_PAIRS, solver="rk4", steps=25, generator=seeded(8))
pairs_seconds = time.perf_counter() - start
print(f"{N_PAIRS} pairs in {pairs_seconds:.0f} s ({100 * N_PAIRS} network calls)")
reflow_model = copy.deepcopy(cfm_model).train()
reflow_seconds = train_images(fm.PairedObjective(reflow_model), pairs, REFLOW_STEPS)
reflow_model.eval()
reflow_rows = {k: evaluate(reflow_model, f"2-rectified, Euler {k}", k) for k in STEP_COUNTS}
reflow_straightness = straightness_of(reflow_model)
print(evaluation.table(list(reflow_rows.values())))
print(f"straightness: {cfm_straightness:.4f} before reflow, {reflow_straightness:.4f} after")
shuffled = pairs[
    torch.randperm(N_PAIRS, generator=seeded(9)).to(DEV), 1
]  # same marginals, independent
print(f"transport cost E|x1 - x0|^2: independent pairs {fm.transport_cost(pairs[:, 0], shuffled):.1f}, "
      f"the ODE's pairs {fm.transport_cost(pairs[:, 0], pairs[:, 1]):.1f}")  # fmt: skip

# %% [markdown]
# **Distillation.** A 2-rectified flow is nearly straight, so one Euler step is nearly right;
# distillation makes it exactly what the student is trained for. On pairs from the reflowed
# model, train $v(x_0, 0)$ to point at $x_1$: $\| v(x_0, 0) - (x_1 - x_0)\|^2$, after which one
# step $x_0 + v(x_0, 0)$ lands on $x_1$ (`PairedObjective(model, time="zero")`; Liu et al.
# use a perceptual distance, we keep the squared error).

# %%
DISTILL_PAIRS = utils.pick(smoke=256, cpu=5000, gpu=50000)
DISTILL_STEPS = utils.pick(smoke=30, cpu=1000, gpu=10000)
distill_pairs = fm.reflow_pairs(
    reflow_model, DISTILL_PAIRS, solver="rk4", steps=25, generator=seeded(9)
)
distilled = copy.deepcopy(reflow_model).train()
train_images(fm.PairedObjective(distilled, time="zero"), distill_pairs, DISTILL_STEPS)
distilled.eval()
distill_row = evaluate(distilled, "distilled, 1 step", 1)
print(distill_row)
plot.image_grid(torch.cat([cfm_rows["euler", 1].samples[:16], reflow_rows[1].samples[:16],
                           distill_row.samples[:16], reflow_rows[STEP_COUNTS[-1]].samples[:16]]),
                nrow=16, row_labels=["CFM, 1", "reflow, 1", "distilled, 1", f"reflow, {STEP_COUNTS[-1]}"])  # fmt: skip
plt.show()

# %% [markdown]
# You should see the straightness fall after reflow (to about 0.32 × its value) and the
# one-step samples turn from a blur into digits: in our `cpu` run one Euler step went from
# 190 × to about 4.5 × the floor (42 × better), at the cost of some quality at many steps (2.5 ×
# at 100 steps: the 2-rectified model learns from its teacher's samples, errors included).
# Distillation (on half as many pairs as before, for 1000 steps) did not help here: its
# single step scored about 5.7 ×, worse than the 2-rectified model's own (4.5 ×); the pairs it
# learns from carry the 2-rectified model's errors, and 1000 steps on 5000 pairs were too few
# to gain on them.
#
# ## 5. Minibatch optimal-transport coupling
#
# Reflow straightens a flow after training; one can also make the pairs less crossed *while*
# training. Within each batch, re-pair noise and data by the assignment that minimises the
# total squared distance (`fm.ot_pair`, scipy's `linear_sum_assignment`; Pooladian et al.
# 2023, Tong et al. 2024). It is a permutation: every noise sample is used once, so the noise
# is still exactly Gaussian; sampling a pairing "with replacement" from the plan, or applying
# the inverse permutation, breaks that or pairs the wrong way (`tests/test_flow_matching.py`
# checks both against brute force and POT's `ot.emd`). The coupling is one argument,
# `FlowMatching(..., coupling="ot")`.


# %%
def cost_of_pairings(x1_all, trials=20):
    """Mean E|x1 - x0|² of a batch of BATCH: independent pairs and OT pairs."""
    g = seeded(10)
    indep, ot_ = [], []
    for _ in range(trials):
        x1 = x1_all[torch.randint(len(x1_all), (BATCH,), generator=g)]
        x0 = torch.randn(x1.shape, generator=g)
        indep.append(float(fm.transport_cost(x0, x1)))
        ot_.append(float(fm.transport_cost(*fm.ot_pair(x0, x1))))
    return sum(indep) / trials, sum(ot_) / trials


toy_costs = cost_of_pairings(data.toy_2d("8gaussians", 20_000, seed=0))
digit_costs = cost_of_pairings(images_train.float() * 2 - 1)
for what, (c_ind, c_ot) in (("8gaussians", toy_costs), ("digits", digit_costs)):
    print(f"{what}: transport cost independent {c_ind:.2f}, OT {c_ot:.2f} ({c_ot / c_ind:.2f}x)")

ot_toy = train_toy("8gaussians", coupling="ot", steps=TOY_STEPS_OT)  # fewer steps, see below
with torch.no_grad():
    ot_toy_traj = ot_toy.transport(x0_toy, steps=100, record=True)
ot_toy_straightness = float(fm.straightness(ot_toy_traj).mean())
x0_b, x1_b = x0_toy[:BATCH].cpu(), x1_toy[:BATCH].cpu()
fig, axes = plt.subplots(1, 2, figsize=(9, 4.5), sharex=True, sharey=True)
plot.trajectories(
    torch.stack(fm.ot_pair(x0_b, x1_b)), ax=axes[0], n=BATCH, title="OT pairs of one batch"
)
plot.trajectories(ot_toy_traj.xs.cpu(), ax=axes[1], n=150, title="OT-CFM trajectories")
plt.show()
toy_1step = {}
for label, m in (("independent", toy_models["8gaussians"]), ("OT", ot_toy)):
    s1 = m.sample(N_TOY, generator=seeded(2), steps=1).cpu()
    toy_1step[label] = metrics.two_sample_score(s1, functools.partial(data.toy_2d, "8gaussians"))
    print(
        f"{label}: one Euler step, energy / real p95 = {toy_1step[label].value / toy_1step[label].real_p95:.1f}"
    )
print(
    f"straightness on 8gaussians: independent {toy_straightness:.3f}, OT {ot_toy_straightness:.3f}"
)

# %% [markdown]
# The same on the digits, at the same training budget as the first model:

# %%
ot_model = fm.FlowMatching(image_net(), data_shape=SHAPE, coupling="ot", prediction=PREDICTION)
ot_model = ot_model.to(DEV)
ot_seconds = train_images(ot_model, images_train.float(), IMG_STEPS)
ot_model.eval()
ot_rows = {k: evaluate(ot_model, f"OT-CFM, Euler {k}", k) for k in STEP_COUNTS}
ot_straightness = straightness_of(ot_model)
print(evaluation.table(list(ot_rows.values())))
print(f"straightness on digits: independent {cfm_straightness:.4f}, OT {ot_straightness:.4f}; "
      f"training {cfm_seconds:.0f} s vs {ot_seconds:.0f} s")  # fmt: skip

# %% [markdown]
# You should see OT pairing cut the transport cost of a batch sharply on the 2-D toy (to about
# 0.29 ×) and much less on the 64-dimensional digits (about 0.83 ×: in high dimension a batch
# of 128 is a sparse sample and every pairing is about as long), and correspondingly a nearly
# straight flow on the toy (trained for 1500 steps, against 2500 for the independent one: the
# comparison favours independent pairing) and a straighter one on the digits (about 0.63 × the straightness of
# independent pairing), whose one-step samples are still poor (about 22 × the floor). Reflow works on the whole data set
# and all of the model's samples, which is why it straightens more; OT costs nothing extra at
# sampling time and little at training time.
#
# ## 6. Likelihood through the ODE
#
# A flow-matching model is a continuous normalising flow: the ODE is a bijection from noise to
# data, so it has a density, computed by the instantaneous change of variables (Chen et al.
# 2018): along a trajectory $\frac{d}{ds} \log p_s(x_s) = -\nabla \cdot v(x_s, s)$, hence
#
# $$\log p_1(x) = \log \mathcal N(x_0; 0, I) - \int_0^1 \nabla \cdot v(x_s, s)\, ds ,$$
#
# integrated backwards from the data point $x$ at $s = 1$ to its noise $x_0$ at $s = 0$, with
# the log-density carried along as one extra coordinate (the *augmented* ODE,
# `solvers.ode_log_prob`, behind `FlowMatching.log_prob`). The divergence is a trace of the
# Jacobian: exactly, one backward pass per dimension (fine in 2-D), or by Hutchinson's
# estimator $\mathbb E_\epsilon[\epsilon^\top (\partial v/\partial x)\, \epsilon]$ with
# Rademacher $\epsilon$, one pass per probe, unbiased (FFJORD; images). Either way the number is
# an **ODE estimate** of the model's density: it depends on the solver's accuracy, and the
# model was trained by regression, never on this quantity.
#
# On the 2-D toys we can compare with the truth: the eight Gaussians have a closed-form
# density, so the test NLL of the data-generating density itself is the best any model can do.
# The test set is lecture 04's (2000 fresh points, seed 2).

# %%
LIK_STEPS = utils.pick(smoke=4, cpu=10, gpu=20)  # RK4 steps of the augmented ODE


def eight_gaussians_log_prob(x):
    """The closed-form density of data.toy_2d("8gaussians"): 8 equal modes, std 0.5/sqrt 2."""
    angles = torch.arange(8) * (2 * torch.pi / 8)
    centres = 4.0 * torch.stack([torch.cos(angles), torch.sin(angles)], 1) / 2**0.5  # (8, 2)
    mode = torch.distributions.MultivariateNormal(centres, 0.25 / 2 * torch.eye(2))
    return torch.logsumexp(mode.log_prob(x[:, None, :]), 1) - torch.log(torch.tensor(8.0))


toy_nll = {}
for name in TOYS:
    x_toy_test = data.toy_2d(name, 2000, seed=2).to(DEV)
    with torch.no_grad():
        exact = toy_models[name].log_prob(x_toy_test, trace="exact", steps=LIK_STEPS)
        hutch = toy_models[name].log_prob(x_toy_test, trace="hutchinson", steps=LIK_STEPS,
                                          generator=seeded(13))  # fmt: skip
    toy_nll[name] = (float(-exact.mean()), float(-hutch.mean()), float((exact - hutch).std()))
    print(f"{name}: test NLL {toy_nll[name][0]:.3f} nats (exact trace), "
          f"{toy_nll[name][1]:.3f} (Hutchinson, per-point sd of the difference "
          f"{toy_nll[name][2]:.2f})")  # fmt: skip
true_nll = float(-eight_gaussians_log_prob(data.toy_2d("8gaussians", 2000, seed=2)).mean())
print(f"8gaussians: the true density's test NLL {true_nll:.3f} nats")
grid = torch.linspace(-3.5, 3.5, 80)
grid_xy = torch.stack(torch.meshgrid(grid, grid, indexing="xy"), -1).reshape(-1, 2)
with torch.no_grad():
    density = toy_models["8gaussians"].log_prob(grid_xy.to(DEV), steps=LIK_STEPS).exp()
fig, axes = plt.subplots(1, 2, figsize=(9, 4.2), sharex=True, sharey=True)
for ax, dens, title in ((axes[0], eight_gaussians_log_prob(grid_xy).exp(), "true density"),
                        (axes[1], density.cpu(), "flow matching, ODE estimate")):  # fmt: skip
    ax.imshow(dens.view(80, 80), origin="lower", extent=(-3.5, 3.5, -3.5, 3.5), cmap="magma")
    ax.set_title(title)
plt.show()

# %% [markdown]
# You should see the learned density reproduce the eight modes, a test NLL close to the true
# density's (in our `cpu` run 2.833 nats against 2.802: about 0.031 nats per point above the
# best possible), and Hutchinson's estimate agree with the exact trace on average (by −0.014
# nats on the eight Gaussians and 0.013 on the moons) while each single point's estimate
# scatters.
#
# **Images: bits/dim comparable with lectures 03 and 04.** A density of the discrete digits
# means nothing until it is turned into a mass over the 17 levels. We use lecture 04's
# convention exactly: train on uniformly dequantized $y = (k + u)/L$, $u \sim U[0, 1)^D$,
# $L = 17$, and report the bound $-\log_2 p(y)/D + \log_2 L$ on the test set's discrete
# bits/dim (lecture 04, eq. 7; one draw of $u$ per test image). So we train a separate model on
# dequantized digits, at the first model's budget. It predicts the **velocity**, not the data:
# with the data prediction the field is $(\hat x_1 - x)/(1 - s)$, its divergence near $s = 1$ is
# $(\nabla \cdot \hat x_1 - D)/(1 - s)$, and the $(1 - s)^2$ weight of that loss leaves exactly
# this region untrained, so the estimate diverges as the solver's grid gets finer. The trace is
# Hutchinson's with one probe; on a few images we also compute it exactly.


# %%
L_LEVELS = images_train.levels


def dequantize(k):
    """Uniform dequantization y = (k + u) / L of levels k, as in lecture 04."""
    return (k.float() + utils.rand(k.shape, k.float(), dequant_gen)) / L_LEVELS


def discrete_bpd(log_p):
    """Lecture 04's bound (7): -log2 p(y) / D + log2 L, from log densities of dequantized y."""
    return float(metrics.bits_per_dim(-log_p.mean(), math.prod(SHAPE)) + math.log2(L_LEVELS))


dequant_gen = seeded(14)
lik_model = fm.FlowMatching(image_net(), data_shape=SHAPE, prediction="velocity").to(DEV)
batches = data.Batches(images_train.images.to(DEV), None, batch_size=BATCH, device=DEV,
                       transform=dequantize, generator=seeded(5))  # fmt: skip
lik_history = train.fit(lik_model, batches, steps=IMG_STEPS, lr=utils.pick(smoke=2e-3, cpu=2e-3, gpu=5e-4),
                        ema=IMG_EMA, amp=GPU, progress=False,
                        device=DEV)  # fmt: skip
lik_history.ema.copy_to(lik_model)
lik_model.eval()
y_test = dequantize(images_test.images.to(DEV))
N_EXACT = utils.pick(smoke=4, cpu=16, gpu=16)  # images whose trace is also computed exactly
with torch.no_grad():
    log_p = torch.cat([lik_model.log_prob(yb, trace="hutchinson", steps=LIK_STEPS,
                                          generator=seeded(15)) for yb in y_test.split(500)])  # fmt: skip
    log_p_exact = lik_model.log_prob(y_test[:N_EXACT], trace="exact", steps=LIK_STEPS)
fm_bpd = discrete_bpd(log_p)
exact_gap = discrete_bpd(log_p_exact) - discrete_bpd(log_p[:N_EXACT])
print(f"flow matching, {lik_model.likelihood_kind} (Hutchinson, {LIK_STEPS} RK4 steps): "
      f"{fm_bpd:.3f} bits/dim on the {len(y_test)} test digits")  # fmt: skip
print(f"on the first {N_EXACT}: exact trace minus Hutchinson {exact_gap:+.3f} bits/dim")

# %% [markdown]
# You should see about 2.67 bits/dim (in our `cpu` run), an ODE estimate of a continuous
# density on dequantized data, turned into lecture 04's discrete bound. That is far from the
# likelihood models trained for this number on the same test digits: lecture 04's best flow
# (a RealNVP with variational dequantization) reached
# 1.98 and its RealNVP with uniform dequantization 2.04 (importance-weighted bounds, tighter
# than our single draw of $u$), lecture 03's gated PixelCNN an exact
# 1.83; it is even worse than lecture 03's independent pixels, 2.43. A regression on
# velocities spends its capacity where samples need it, not on the divergence near the data
# that the likelihood integrates; flow matching is a good sampler and a poor density model at
# this budget. The exact trace agreed with Hutchinson's to 0.036 bits/dim on the 16 images we
# checked.
#
# ## 7. Latent flow matching
#
# Dao et al. (2023) run flow matching on the latents $z = E(x)$ of a pretrained autoencoder,
# as latent diffusion does (lecture 06, section 7): the velocity network works on fewer
# numbers, and the decoder supplies the detail. We reuse lecture 06's set-up unchanged: a
# `vae.Autoencoder` with MLP encoder and decoder and an 8-dimensional code, wrapped with
# `latent.LatentDiffusion`, which standardises the latents and decodes the samples; its inner
# model can be any model on the shared interface with `data_range=None`, here a
# `FlowMatching` over $\mathbb R^8$, trained (on the `cpu` profile) for two thirds of the pixel
# model's steps. Every sample is a decoder output, so the decoder's blur is in each of them;
# the reconstructions' FCD is printed beside the samples'.

# %%
LATENT = utils.pick(smoke=4, cpu=8, gpu=32)
AE_STEPS = utils.pick(smoke=30, cpu=1500, gpu=10000)
LATENT_STEPS = utils.pick(smoke=[1, 10], cpu=[1, 10, 100], gpu=[1, 10, 100])
LATENT_FM_STEPS = utils.pick(smoke=30, cpu=2000, gpu=20000)  # 2/3 of the pixel model's, on cpu
D_PIX = math.prod(SHAPE)
encoder = torch.nn.Sequential(torch.nn.Flatten(), networks.MLP(D_PIX, LATENT, hidden=256, depth=2))
decoder = networks.MLP(LATENT, D_PIX, hidden=256, depth=2)
autoencoder = vae.Autoencoder(
    encoder, decoder, likelihoods.Bernoulli(), latent_dim=LATENT, x_shape=SHAPE
)
train.fit(autoencoder, images_train.float(), steps=AE_STEPS, lr=2e-3, progress=False, device=DEV)
autoencoder.eval()
recon = autoencoder.reconstruct(images_train.float()[:N_EVAL].to(DEV)).cpu()
fcd_recon = metrics.fcd(recon, FCD_REAL, classifier="fashion" if GPU else "digits")
print(f"autoencoder reconstructions: {fcd_recon}")

latent_net = networks.TimeConditionedMLP(in_dim=LATENT, hidden=utils.pick(smoke=64, cpu=256, gpu=512),
                                         depth=3)  # fmt: skip
latent_fm = latent.LatentDiffusion(
    autoencoder, fm.FlowMatching(latent_net, data_shape=(LATENT,), data_range=None)
).to(DEV)
latent_fm.fit_scaling(images_train.float().to(DEV))
train_images(latent_fm, images_train.float(), LATENT_FM_STEPS)
latent_fm.eval()
latent_rows = {}
for k in LATENT_STEPS:
    latent_rows[k] = evaluation.evaluate(
        latent_fm, images_train, images_test, n=N_EVAL, fcd_real=FCD_REAL,
        name=f"latent FM, Euler {k}", sample_kwargs=dict(steps=k), generator=seeded(7),
        progress=False,
    )  # fmt: skip
print(evaluation.table([*latent_rows.values(), *(cfm_rows["euler", k] for k in LATENT_STEPS)]))


def best_seconds_per_sample(model, steps, repeats=3):
    """The best of a few timings of N_EVAL samples (the machine is shared), per sample."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        model.sample(N_EVAL, generator=seeded(16), steps=steps)
        times.append((time.perf_counter() - start) / N_EVAL)
    return min(times)


last_latent = LATENT_STEPS[-1]
latent_cost = best_seconds_per_sample(latent_fm, last_latent)
pixel_cost = best_seconds_per_sample(cfm_model, last_latent)
count = lambda m: sum(p.numel() for p in m.parameters())
print(f"{last_latent} Euler steps: {latent_cost * 1e3:.3f} ms per sample in latent space (decoder "
      f"included), {pixel_cost * 1e3:.3f} ms in pixel space (ratio {latent_cost / pixel_cost:.2f}); "
      f"velocity network parameters {count(latent_net)} against {count(cfm_model.net)}")  # fmt: skip
plot.image_grid(torch.cat([recon[:16], latent_rows[last_latent].samples[:16],
                           cfm_rows["euler", last_latent].samples[:16]]), nrow=16,
                row_labels=["reconstructions", f"latent, {last_latent}", f"pixels, {last_latent}"])  # fmt: skip
plt.show()

# %% [markdown]
# You should see latent samples better than the pixel-space ones at the same number of steps,
# after less training (in our `cpu` run 1.52 × the floor against 2.68 × at 10 Euler steps,
# 1.18 × against 1.89 × at 100). The reconstructions of 750 training digits scored 1.61 ×,
# *worse* than the samples: FCD compares distributions, and the decoded encodings of one set of
# training digits need not match the data's statistics better than decoded draws of the flow.
# The cost per step is of the same order (a latent / pixel time ratio of about 0.92,
# parameters 0.90): with an MLP the hidden layers, not the 8 or 64 inputs, dominate a network
# call, and the decoder runs once.
# The saving is in steps: ten latent steps come close to a hundred pixel ones. The standardised
# 8-dimensional code is a simpler distribution than the pixels, so its flow is easier to learn;
# a UNet on larger images would add a per-step saving. The timings are the best of three on a
# shared machine.
#
# ## 8. Conditional generation and classifier-free guidance
#
# A class-conditional velocity $v_\theta(x, t, y)$ is trained with the labels dropped (replaced
# by a null label) 20% of the time, so the same network also learns the unconditional
# $v_\theta(x, t, \varnothing)$. Guidance extrapolates from one to the other, on the velocity
# exactly as lecture 06 did on $\varepsilon$ (the same `sampling.guided` closure):
#
# $$\tilde v = v(x, t, \varnothing) + w\,\big(v(x, t, y) - v(x, t, \varnothing)\big).$$

# %%
cond_model = fm.FlowMatching(image_net(num_classes=10), data_shape=SHAPE, num_classes=10,
                             p_uncond=0.2, prediction=PREDICTION).to(DEV)  # fmt: skip
train_images(cond_model, images_train.float(), IMG_STEPS, labels=images_train.labels)
cond_model.eval()
SCALES = [0.0, 1.0, 2.0, 3.0, 5.0]
y_eval = (torch.arange(N_EVAL) % 10).to(DEV)
GUIDED_STEPS = utils.pick(smoke=10, cpu=25, gpu=50)
guided_rows = {w: evaluate(cond_model, f"guidance {w}", GUIDED_STEPS, y=y_eval, guidance_scale=w)
               for w in SCALES}  # fmt: skip
print(evaluation.table(list(guided_rows.values())))


def show_guidance(scale):
    x = cond_model.sample(40, torch.arange(40, device=DEV) % 10, generator=seeded(11),
                          steps=GUIDED_STEPS, guidance_scale=scale)  # fmt: skip
    plot.image_grid(x.cpu(), nrow=10, title=f"guidance scale {scale}")
    plt.show()


# %%
scale_slider = widgets.SelectionSlider(options=SCALES, value=2.0, continuous_update=False)
_ = widgets.interact(show_guidance, scale=scale_slider)

# %% [markdown]
# You should see the classifier agree with the requested class for 99.6% of the samples or more
# from $w = 1$ on (near chance at $w = 0$, where labels are ignored), and FCD lowest at $w = 1$,
# about 0.23 × the unguided one: larger scales make the digits of a class look alike, which a distribution-level
# metric penalises.
#
# ## Recorded numbers

# %%
report.record("exact_flow_median_distance_to_data", nearest.median())
for name in TOYS:
    sc, seconds = toy_scores[name]
    report.record(f"toy_{name}_energy_over_real_p95", sc.value / sc.real_p95,
                  target=utils.pick(smoke=None, cpu="<= 1", gpu="<= 1"))  # fmt: skip
    report.record(f"toy_{name}_energy_over_real_p95_se", sc.value_se / sc.real_p95)
    report.record(f"toy_{name}_single_set_min_over_real_p95", min(toy_single[name]))
    report.record(f"toy_{name}_single_set_max_over_real_p95", max(toy_single[name]))
    report.record(f"toy_{name}_test_nll_exact_trace", toy_nll[name][0])
    report.record(f"toy_{name}_hutchinson_minus_exact_nll", toy_nll[name][1] - toy_nll[name][0])
    report.record(
        f"toy_{name}_seconds", seconds, target=utils.pick(smoke=None, cpu="<= 60", gpu=None)
    )
ratio = {k: cfm_rows["euler", k].fcd_ratio for k in STEP_COUNTS}
last, first = STEP_COUNTS[-1], STEP_COUNTS[0]
report.record("fcd_floor", cfm_rows["euler", last].fcd_floor)
report.record(
    f"fcd_euler{last}_over_floor", ratio[last], target=utils.pick(smoke=None, cpu="<= 2", gpu=None)
)
for k in STEP_COUNTS[:-1]:
    report.record(f"fcd_euler{k}_over_floor", ratio[k])
for k in STEP_COUNTS:
    report.record(f"fcd_heun{k}_over_floor", cfm_rows["heun", k].fcd_ratio)
reflow_1 = reflow_rows[first].fcd_ratio
report.record(
    "reflow_fcd_euler1_over_floor", reflow_1, target=utils.pick(smoke=None, cpu="<= 6", gpu=None)
)
report.record(f"reflow_fcd_euler{last}_over_floor", reflow_rows[last].fcd_ratio)
report.record(f"reflow_euler1_over_own_euler{last}", reflow_1 / reflow_rows[last].fcd_ratio,
              target=utils.pick(smoke=None, cpu="<= 2.5", gpu="<= 5"))  # fmt: skip
report.record("cfm_euler1_over_reflow_euler1", ratio[first] / reflow_1,
              target=utils.pick(smoke=None, cpu=">= 10", gpu=None))  # fmt: skip
report.record("distilled_fcd_1step_over_floor", distill_row.fcd_ratio)
report.record(f"distilled_1step_over_reflow_euler{last}", distill_row.fcd_ratio / reflow_rows[last].fcd_ratio,
              target=utils.pick(smoke=None, cpu=None, gpu="<= 2"))  # fmt: skip
report.record(f"vp_fcd_euler{last}_over_floor", vp_rows[last].fcd_ratio)
report.record("vp_fcd_euler10_over_floor", vp_rows[10].fcd_ratio)
report.record("straightness_vp_over_linear", vp_straightness / cfm_straightness)
report.record("reflow_pairs", N_PAIRS)
report.record("reflow_pairs_seconds", pairs_seconds)
report.record("straightness_cfm", cfm_straightness)
report.record("straightness_reflow", reflow_straightness)
report.record("straightness_reflow_over_cfm", reflow_straightness / cfm_straightness,
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("ot_cost_over_independent_toy", toy_costs[1] / toy_costs[0],
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("ot_cost_over_independent_digits", digit_costs[1] / digit_costs[0],
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("straightness_ot_over_independent_toy", ot_toy_straightness / toy_straightness,
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("straightness_ot_over_independent_digits", ot_straightness / cfm_straightness,
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("straightness_independent_toy", toy_straightness)
report.record("straightness_ot_toy", ot_toy_straightness)
report.record("straightness_ot_digits", ot_straightness)
for label, sc in toy_1step.items():
    report.record(f"toy_euler1_{label.lower()}_energy_over_real_p95", sc.value / sc.real_p95)
report.record("ot_fcd_euler1_over_floor", ot_rows[first].fcd_ratio)
report.record(f"ot_fcd_euler{last}_over_floor", ot_rows[last].fcd_ratio)
report.record("toy_8gaussians_true_test_nll", true_nll)
report.record("toy_8gaussians_nll_minus_true", toy_nll["8gaussians"][0] - true_nll)
report.record("digits_fm_ode_test_bpd", fm_bpd)
report.record("digits_fm_exact_minus_hutchinson_bpd", exact_gap)
report.record("latent_recon_fcd_over_floor", fcd_recon.value / fcd_recon.floor)
for k in LATENT_STEPS:
    report.record(f"latent_fcd_euler{k}_over_floor", latent_rows[k].fcd_ratio)
report.record(f"latent_memorisation_euler{last_latent}", latent_rows[last_latent].memorisation)
report.record("latent_memorisation_base_rate", latent_rows[last_latent].memorisation_base_rate)
report.record(f"latent_over_pixel_seconds_per_sample_euler{last_latent}", latent_cost / pixel_cost)
report.record("latent_over_pixel_velocity_parameters", count(latent_net) / count(cfm_model.net))
best = min(SCALES, key=lambda w: guided_rows[w].fcd)
report.record("guidance_best_scale", best)
report.record("fcd_guided_best_over_unguided", guided_rows[best].fcd / guided_rows[0.0].fcd)
for w in SCALES:
    report.record(f"fcd_guidance_{w:g}_over_floor", guided_rows[w].fcd_ratio)
    report.record(f"class_accuracy_guidance_{w:g}", guided_rows[w].class_accuracy)
