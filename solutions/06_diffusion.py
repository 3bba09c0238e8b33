# %% [markdown]
# # Lecture 06: Diffusion models: DDPM, score matching, DDIM, guidance, latent diffusion
#
# A diffusion model learns to undo a fixed process that turns data into noise one small
# Gaussian step at a time. Each reverse step is a denoising problem, which a network learns by
# plain regression; a chain of them turns pure noise into data (Sohl-Dickstein et al. 2015;
# Ho et al. 2020). The same network estimates the *score* $\nabla_x \log p_t(x)$ of the noised
# data (Song & Ermon 2019), which is why diffusion and score-based models are one family.
#
# Convention throughout (Ho et al.): $x_0$ is data and large $t$ is noise. Time is the index
# $t = 0, \dots, T-1$ of a schedule's tables.
#
# After this lecture you can
#
# - write the forward process $q(x_t \mid x_{t-1})$ and its closed form $q(x_t \mid x_0)$, and
#   compare noise schedules by $\bar\alpha_t$ and the signal-to-noise ratio;
# - derive the Gaussian posterior $q(x_{t-1} \mid x_t, x_0)$, train a network with the
#   simplified $\varepsilon$-loss and sample with the ancestral DDPM step;
# - relate $\varepsilon_\theta$ to the score, train a score model by denoising score matching
#   and sample it with Langevin dynamics;
# - sample deterministically with DDIM and trade steps for quality;
# - train a class-conditional model with label dropout and steer it with classifier-free
#   guidance;
# - run diffusion in an autoencoder's latent space and say what it costs and saves.
#
# **Profiles.** The `cpu` profile trains small MLPs (a few thousand steps each, a few seconds
# to half a minute per model) on 2-D toys and on the 8×8 digits: the whole lecture took about
# 400 s on a 2-core machine with one thread (`make course`). Its numbers are meaningful but far from the state
# of the art. The `gpu` profile trains the small
# UNet of `coursekit.networks` on Fashion-MNIST 28×28 with bf16, EMA and `torch.compile`; it has
# not been run yet, so its numbers are unmeasured.

# %%
import functools
import math
import time

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from coursekit import data, likelihoods, metrics, networks, plot, report, train, utils, vae
from coursekit.diffusion import ddpm, latent, sampling, schedules, score
from coursekit.exercises import diffusion as checks

gen = utils.seed_everything(0)
DEV = utils.device()
PROFILE = utils.profile()
GPU = PROFILE == "gpu"
print("profile:", PROFILE, "| device:", utils.describe_device(DEV))


def seeded(seed: int) -> torch.Generator:
    """A fresh generator, so each experiment is repeatable on its own."""
    return torch.Generator().manual_seed(seed)


# %% [markdown]
# ## 1. The forward process
#
# Fix a schedule $\beta_1, \dots, \beta_T \in (0, 1)$ and add a little Gaussian noise at each
# step, shrinking the signal so the variance stays bounded:
#
# $$q(x_t \mid x_{t-1}) = \mathcal N\big(\sqrt{1-\beta_t}\, x_{t-1},\ \beta_t I\big).$$
#
# A sum of independent Gaussians is Gaussian, so $t$ steps collapse into one. With
# $\alpha_t = 1 - \beta_t$ and $\bar\alpha_t = \prod_{s \le t} \alpha_s$
# (Ho et al., eq. 4):
#
# $$q(x_t \mid x_0) = \mathcal N\big(\sqrt{\bar\alpha_t}\, x_0,\ (1 - \bar\alpha_t) I\big),
# \qquad x_t = \sqrt{\bar\alpha_t}\, x_0 + \sqrt{1-\bar\alpha_t}\, \varepsilon,\quad
# \varepsilon \sim \mathcal N(0, I).$$
#
# (Induction: if $x_{t-1} = \sqrt{\bar\alpha_{t-1}} x_0 + \sqrt{1-\bar\alpha_{t-1}}\,\varepsilon'$,
# then $x_t$ has mean $\sqrt{\alpha_t \bar\alpha_{t-1}}\, x_0$ and noise variance
# $\alpha_t (1 - \bar\alpha_{t-1}) + \beta_t = 1 - \bar\alpha_t$.) Training never runs the
# chain: it jumps to any $t$ directly.
#
# **Exercise 6.1.** Write `q_sample`. `alpha_bar` is the table $(\bar\alpha_t)_t$ of shape
# `(T,)`, `t` holds one integer time per example, so reshape $\bar\alpha_t$ to broadcast
# against images `(B, C, H, W)`. The check compares with the closed form for fixed noise, and
# with 300 steps of the chain in distribution.


# %%
def q_sample(x0, t, alpha_bar, eps):
    """x_t = sqrt(ᾱ_t) x_0 + sqrt(1 − ᾱ_t) ε; x0, eps (B, ...), t int64 (B,)."""
    ### BEGIN SOLUTION
    a = alpha_bar[t].view(-1, *([1] * (x0.ndim - 1)))  # (B, 1, ..., 1)
    return a.sqrt() * x0 + (1 - a).sqrt() * eps
    ### END SOLUTION


checks.check_q_sample(q_sample)

# %% [markdown]
# ## 2. Noise schedules
#
# A schedule is fully described by $\bar\alpha_t$, or by the signal-to-noise ratio
# $\mathrm{SNR}(t) = \bar\alpha_t / (1 - \bar\alpha_t)$. Ho et al. take $\beta_t$ linear
# from $10^{-4}$ to $0.02$ over $T = 1000$ steps. Nichol & Dhariwal (2021) noticed that this
# destroys the signal long before $t = T$, so the last few hundred steps are wasted on pure
# noise, and proposed $\bar\alpha_t = \cos^2\!\big(\tfrac{t/T + s}{1+s}\tfrac{\pi}{2}\big)$,
# whose log-SNR falls almost linearly. `coursekit.diffusion.schedules` keeps the tables as
# buffers of a `NoiseSchedule`.

# %%
T = 1000
linear, cosine = schedules.linear_schedule(T), schedules.cosine_schedule(T)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.5))
for sch in (linear, cosine):
    axes[0].plot(sch.alpha_bar, label=sch.name)
    axes[1].plot(sch.log_snr(), label=sch.name)
axes[0].set(xlabel="t", ylabel=r"$\bar\alpha_t$", title="signal kept")
axes[1].set(xlabel="t", ylabel="log SNR", title="signal-to-noise ratio", ylim=(-15, 12))
for ax in axes:
    ax.legend()
plt.show()

# %% [markdown]
# What does an image look like along $t$? Below, one digit noised with the same $\varepsilon$
# under both schedules (the reference `ddpm.q_sample`, so this runs even before Exercise 6.1).

# %%
digits_train = data.digits("train")
x_digits = digits_train.float()  # (N, 1, 8, 8) in [0, 1]
x0 = x_digits[:1] * 2 - 1  # (1, 1, 8, 8) in [-1, 1], the range the model works in
ts = torch.tensor([0, 50, 100, 200, 300, 400, 500, 700, 999])
eps = torch.randn(1, 1, 8, 8, generator=seeded(1)).expand(len(ts), -1, -1, -1)
rows = [ddpm.q_sample(x0.expand(len(ts), -1, -1, -1), ts, sch, eps=eps) for sch in (linear, cosine)]
plot.image_grid((torch.cat(rows) + 1) / 2, nrow=len(ts), row_labels=[linear.name, cosine.name],
                col_labels=[str(t) for t in ts.tolist()], title="t")  # fmt: skip
plt.show()
for t in (300, 500):
    print(f"ᾱ at t = {t}: linear {linear.alpha_bar[t]:.3f}, cosine {cosine.alpha_bar[t]:.3f}")

# %% [markdown]
# You should see the digit vanish into the noise by about $t = 300$ under the linear schedule
# (top row, $\bar\alpha_{300} \approx 0.39$), while under the cosine schedule (bottom row) it
# is still visible at $t = 300$ ($\bar\alpha_{300} \approx 0.79$) and gone by about $t = 500$
# ($\bar\alpha_{500} \approx 0.49$; linear: 0.08). The images below use the cosine schedule; for
# the 2-D toys, whose modes are narrow and far apart, Ho et al.'s linear schedule worked
# better in our tests (try swapping them).
#
# ## 3. The reverse process and the $\varepsilon$-loss
#
# Sampling needs the reverse steps $q(x_{t-1} \mid x_t)$, which depend on the unknown data
# distribution. But *given* $x_0$ the reverse step is Gaussian: by Bayes,
# $q(x_{t-1} \mid x_t, x_0) \propto q(x_t \mid x_{t-1})\, q(x_{t-1} \mid x_0)$ is a product
# of two Gaussians in $x_{t-1}$, hence Gaussian (Ho et al., eq. 6-7):
#
# $$q(x_{t-1} \mid x_t, x_0) = \mathcal N(\tilde\mu_t, \tilde\beta_t I),\quad
# \tilde\mu_t = \frac{\sqrt{\bar\alpha_{t-1}}\beta_t}{1-\bar\alpha_t} x_0
# + \frac{\sqrt{\alpha_t}(1-\bar\alpha_{t-1})}{1-\bar\alpha_t} x_t,\quad
# \tilde\beta_t = \frac{1-\bar\alpha_{t-1}}{1-\bar\alpha_t}\beta_t.$$
#
# The model $p_\theta(x_{t-1} \mid x_t) = \mathcal N(\mu_\theta(x_t, t), \sigma_t^2 I)$ plugs in
# a *guess* of $x_0$. Writing $x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon)/\sqrt{\bar\alpha_t}$
# and predicting $\varepsilon$ instead gives
#
# $$\mu_\theta(x_t, t) = \frac{1}{\sqrt{\alpha_t}}\Big(x_t -
# \frac{\beta_t}{\sqrt{1-\bar\alpha_t}}\,\varepsilon_\theta(x_t, t)\Big).$$
#
# Each KL term of the ELBO between two Gaussians with the same variance is then a weighted
# squared error between $\varepsilon$ and $\varepsilon_\theta$. Ho et al. drop the weights
# (eq. 14) and train on
#
# $$L_\text{simple} = \mathbb E_{t, x_0, \varepsilon}\,
# \big\|\varepsilon - \varepsilon_\theta(\sqrt{\bar\alpha_t} x_0 + \sqrt{1-\bar\alpha_t}\,
# \varepsilon,\ t)\big\|^2 .$$
#
# **Exercise 6.2.** Write the loss for given `x0`, `t` and `eps` (averaged over every entry,
# as `F.mse_loss` does). Use your `q_sample`.


# %%
def diffusion_loss(eps_model, x0, t, eps, alpha_bar):
    """Mean of (ε − ε_θ(x_t, t))² over all entries; a scalar."""
    ### BEGIN SOLUTION
    x_t = q_sample(x0, t, alpha_bar, eps)
    return ((eps - eps_model(x_t, t)) ** 2).mean()
    ### END SOLUTION


checks.check_diffusion_loss(diffusion_loss)

# %% [markdown]
# **Exercise 6.3.** Write one ancestral sampling step (Ho et al., Algorithm 2):
# $x_{t-1} = \mu_\theta(x_t, t) + \sigma_t z$ with $\sigma_t^2 = \tilde\beta_t$
# (`schedule.posterior_variance[t]`), and no noise at the last step $t = 0$. Here `t` is a
# Python `int`; the tables are `schedule.betas`, `schedule.alphas`, `schedule.alpha_bar`.


# %%
def ddpm_step(x_t, eps, t, schedule, z):
    """x_{t-1} from x_t and the predicted noise eps (both (B, ...)); z ~ N(0, I) like x_t."""
    ### BEGIN SOLUTION
    beta, alpha, alpha_bar = schedule.betas[t], schedule.alphas[t], schedule.alpha_bar[t]
    mean = (x_t - beta / (1 - alpha_bar).sqrt() * eps) / alpha.sqrt()
    if t == 0:
        return mean
    return mean + schedule.posterior_variance[t].sqrt() * z
    ### END SOLUTION


checks.check_ddpm_step(ddpm_step)

# %% [markdown]
# ### DDPM on 2-D toys
#
# `ddpm.Diffusion(net, schedule)` wraps any network `net(x_t, t, y)` with exactly this loss and
# sampler (`sampling.ddpm_sample` runs `sampling.ddpm_step` from $t = T-1$ down to $0$). For
# 2-D data the network is `networks.TimeConditionedMLP`, which adds a time embedding to every hidden
# layer; it sees time as $t/T$. We train on two toys, sample with the exponential moving
# average (EMA) of the weights, and compare samples with fresh data by the energy distance,
# beside its real-vs-real floor.

# %%
TOYS = ("moons", "8gaussians")
TOY_STEPS = utils.pick(smoke=30, cpu=5000, gpu=10000)
TOY_T = utils.pick(smoke=50, cpu=1000, gpu=1000)
N_TOY = utils.pick(smoke=200, cpu=2000, gpu=5000)
TOY_EMA = utils.pick(smoke=0.9, cpu=0.999, gpu=0.999)


def toy_diffusion(hidden=128, depth=3, prediction="eps"):
    net = networks.TimeConditionedMLP(in_dim=2, hidden=hidden, depth=depth)
    return ddpm.Diffusion(net, schedules.linear_schedule(TOY_T), data_shape=(2,),
                          data_range=None, prediction=prediction)  # fmt: skip


toy_models, toy_scores = {}, {}
for name in TOYS:
    start = time.perf_counter()
    model = toy_diffusion()
    history = train.fit(model, data.toy_2d(name, 20_000, seed=0), steps=TOY_STEPS, lr=2e-3,
                        batch_size=256, ema=TOY_EMA, progress=False, device=DEV)  # fmt: skip
    history.ema.copy_to(model)  # the running average of the weights samples better
    samples = model.eval().sample(N_TOY, generator=seeded(2)).cpu()
    seconds = time.perf_counter() - start
    toy_models[name] = model
    toy_scores[name] = (
        metrics.two_sample_score(samples, functools.partial(data.toy_2d, name)),
        seconds,
    )
    plot.compare_2d(
        data.toy_2d(name, N_TOY, seed=1), samples, titles=(name, f"DDPM, {TOY_T} steps")
    )
    plt.show()
    print(f"{name}: {toy_scores[name][0]}  [{seconds:.0f} s for training and sampling]")

# %% [markdown]
# You should see samples that cover both moons and all eight Gaussians. In our `cpu` run the
# energy distance was about −0.52 × the real-vs-real 95th percentile on the moons and
# −0.10 × on the eight Gaussians (below 1: as close to the data as fresh data; below 0
# happens, the estimator is unbiased and noisy), in 57 s (moons) and
# 57 s (eight Gaussians) for training and sampling on one CPU thread of a machine shared
# with other runs (about 40 s each on an idle one). The eight Gaussians are the harder test: the model must split
# its mass evenly between far-apart modes.
#
# ## 4. Scores
#
# The *score* of a density is $\nabla_x \log p(x)$: a vector field pointing towards more
# likely points. For the noised data $p_t(x_t) = \int q(x_t \mid x_0)\, p(x_0)\, dx_0$,
# Tweedie's formula gives $\nabla \log p_t(x_t) = -\mathbb E[\varepsilon \mid x_t] /
# \sqrt{1 - \bar\alpha_t}$, and the minimizer of $L_\text{simple}$ is exactly
# $\mathbb E[\varepsilon \mid x_t]$. So
#
# $$\varepsilon_\theta(x_t, t) \approx -\sigma_t\, \nabla_{x_t} \log p_t(x_t), \qquad
# \sigma_t = \sqrt{1-\bar\alpha_t}:$$
#
# a noise predictor is a score estimator (`Diffusion.path.eps_to_score`). Below, the score of the
# moons model at a small and a middle noise level, over the data.


# %%
def learned_score(model, t):
    """x (N, 2) -> ∇ log p_t(x) = −ε_θ(x, t) / σ_t at one integer time t."""

    def field(x):
        x = x.to(DEV)
        t_batch = torch.full((len(x),), t, dtype=torch.long, device=DEV)
        return model.path.eps_to_score(model.eps(x, t_batch), t_batch).cpu()

    return field


def share_towards_data(field, points, x):
    """Fraction of the arrows field(points) (N, 2) that point towards the nearest point of x."""
    nearest = x[torch.cdist(points, x).argmin(dim=1)]  # (N, 2)
    return (torch.cosine_similarity(field(points), nearest - points) > 0).float().mean()


model = toy_models["moons"]
sigma_t = lambda t: (1 - model.schedule.alpha_bar[t]).sqrt().item()
moons = data.toy_2d("moons", 1000, seed=3)
lims = plot.padded_lims(moons, margin=0.1, q=0)  # the arrows cover all of the data, and more
lo, hi = torch.tensor(lims).T  # (2,) corners of the picture
fig, axes = plt.subplots(1, 2, figsize=(12, 4))
for ax, t_show in zip(axes, (int(0.05 * TOY_T), int(0.3 * TOY_T))):
    field = learned_score(model, t_show)
    plot.scatter_2d(moons, ax=ax, c="lightgrey", alpha=0.8)
    plot.vector_field(field, lims=lims, ax=ax, n=(25, 13),
                      title=f"learned score, t = {t_show}, σ_t = {sigma_t(t_show):.2f}")  # fmt: skip
    far = lo + torch.rand(2000, 2, generator=seeded(3)) * (hi - lo)  # (2000, 2) on the picture
    far = far[torch.cdist(far, moons).min(dim=1).values > 0.5]  # off the data
    print(f"t = {t_show}: {share_towards_data(field, far, moons):.3f} of the arrows off the data "
          "point towards the nearest data point")  # fmt: skip
plt.show()

# %% [markdown]
# You should see the arrows cover the whole data set and point towards the moons, longest far
# from them. At the small noise level they converge onto the two thin arcs; at the larger one
# they point towards a blurred band around both moons. Of the arrows more than 0.5 away from
# every data point, 0.997 (small noise) and 0.974 (larger noise) point towards the nearest
# one in our `cpu` run.

# %% [markdown]
# ### Denoising score matching and Langevin dynamics
#
# Song & Ermon (2019) learn the score directly. For $\tilde x = x + \sigma z$, the regression
# $\mathbb E\,\|s_\theta(\tilde x, \sigma) + z/\sigma\|^2$ is minimized by the score of the
# noised density (denoising score matching, Vincent 2011); weighting each noise level by
# $\sigma^2$ turns it into $\mathbb E\,\|\sigma s_\theta(\tilde x, \sigma) + z\|^2$, our
# $\varepsilon$-loss again. A single small $\sigma$ leaves the score unknown far from the data,
# so they train on a geometric ladder $\sigma_1 > \dots > \sigma_L$ and sample with *annealed*
# Langevin dynamics, $x \leftarrow x + \tfrac{a}{2} s_\theta(x, \sigma_i) + \sqrt{a}\, z$,
# at each level in turn with $a \propto \sigma_i^2$ (`score.annealed_langevin`, which calls
# `coursekit.solvers.langevin`). `score.ScoreModel` is that noise-conditional score network.

# %%
SCORE_STEPS = utils.pick(smoke=30, cpu=3000, gpu=10000)
start = time.perf_counter()
net = networks.TimeConditionedMLP(in_dim=2, hidden=128, depth=3)
score_model = score.ScoreModel(net, score.geometric_sigmas(3.0, 0.02, 10),
                               steps_per_level=utils.pick(smoke=5, cpu=100, gpu=200),
                               step_scale=2e-4)  # fmt: skip
history = train.fit(score_model, data.toy_2d("8gaussians", 20_000, seed=0), steps=SCORE_STEPS,
                    lr=2e-3, batch_size=256, ema=TOY_EMA, progress=False, device=DEV)  # fmt: skip
history.ema.copy_to(score_model)
score_model.eval()
langevin_samples = score_model.sample(N_TOY, generator=seeded(4)).cpu()
langevin_score = metrics.two_sample_score(
    langevin_samples, functools.partial(data.toy_2d, "8gaussians")
)
print(f"annealed Langevin: {langevin_score}  [{time.perf_counter() - start:.0f} s]")


def eight_gaussians_log_density(x):
    """log p(x) of data.toy_2d("8gaussians"): 8 equal modes of std 0.5/√2 at radius 4/√2."""
    angles = torch.arange(8) * (2 * math.pi / 8)
    centers = 4 / math.sqrt(2) * torch.stack([angles.cos(), angles.sin()], dim=1)  # (8, 2)
    var = 0.25 / 2
    sq = (x[:, None, :] - centers[None]).pow(2).sum(-1)  # (N, 8)
    return torch.logsumexp(-sq / (2 * var), dim=1) - math.log(8 * 2 * math.pi * var)


level = len(score_model.sigmas) - 4  # a small noise level, σ ≈ 0.1
fig, axes = plt.subplots(1, 2, figsize=(10, 5))
plot.density_2d(eight_gaussians_log_density, lims=(-4, 4), ax=axes[0])
plot.vector_field(lambda x: score_model.score(x.to(DEV), level).cpu(), lims=(-4, 4), ax=axes[0],
                  n=21, title=f"s_θ, σ = {score_model.sigmas[level]:.2f}, over p(x)")  # fmt: skip
plot.scatter_2d(langevin_samples, ax=axes[1], lims=(-4, 4), c="tab:orange",
                title="annealed Langevin samples")  # fmt: skip
plt.show()

# %% [markdown]
# You should see arrows pointing into the eight modes and Langevin samples on all eight, as
# close to the data as DDPM's: the energy distance was about −0.76 × the real-vs-real 95th
# percentile in our `cpu` run (against −0.10 × for DDPM; both are within the noise of fresh
# data). That took tuning: annealed Langevin has two hand-picked knobs (the step size and the
# steps per level) and is unadjusted (no Metropolis correction), so it is biased for any
# finite step; the diffusion sampler of section 3 is the same idea with steps and noise levels
# derived from the forward process. (An earlier run scored 9 × here: the score model's weight
# average still held 5% of its random initial weights, see `train.EMA`.)
#
# ## 5. DDIM: a deterministic sampler
#
# Song, Meng & Ermon (2021) observed that $L_\text{simple}$ only involves the marginals
# $q(x_t \mid x_0)$, not the Markov chain, so the *same* trained network fits a family of
# non-Markovian forward processes, one per noise level $\eta$. Their reverse step
# (eq. 12) first predicts
# $\hat x_0 = (x_t - \sqrt{1-\bar\alpha_t}\,\varepsilon_\theta)/\sqrt{\bar\alpha_t}$, then
# re-noises it to an earlier time $s < t$:
#
# $$x_s = \sqrt{\bar\alpha_s}\,\hat x_0 + \sqrt{1 - \bar\alpha_s - \sigma^2}\;
# \varepsilon_\theta(x_t, t) + \sigma z .$$
#
# With $\eta = 1$ and $s = t-1$ it is DDPM; with $\eta = 0$ ($\sigma = 0$) it is
# deterministic, a discretization of the probability-flow ODE, and $s$ can jump many steps at
# once: 50 network calls instead of 1000.
#
# **Exercise 6.4.** Write the deterministic DDIM step ($\sigma = 0$). `t_prev = -1` stands for
# "the end", where $\bar\alpha = 1$ (so $x_s = \hat x_0$).


# %%
def ddim_step(x_t, eps, t, t_prev, schedule):
    """x_{t_prev} from x_t and the predicted noise (η = 0); t, t_prev Python ints."""
    ### BEGIN SOLUTION
    a_t = schedule.alpha_bar[t]
    a_prev = schedule.alpha_bar[t_prev] if t_prev >= 0 else torch.tensor(1.0)
    x0_hat = (x_t - (1 - a_t).sqrt() * eps) / a_t.sqrt()
    return a_prev.sqrt() * x0_hat + (1 - a_prev).sqrt() * eps
    ### END SOLUTION


checks.check_ddim_step(ddim_step)

# %% [markdown]
# ### Images
#
# In the `cpu` profile the images are the 8×8 digits and the network an MLP on the 64 pixels
# (`networks.ImageMLP`); in the `gpu` profile, Fashion-MNIST 28×28 and `networks.UNet`.
# Sample quality is the Fréchet classifier distance (FCD: FID with a small classifier trained
# on the data set), printed beside its floor, the FCD between two halves of the real data.
#
# The `gpu` path (bf16 autocast, channels-last, data kept on the GPU, `torch.compile`) was
# written without a GPU at hand: its numbers are unmeasured until someone runs it.


# %%
from coursekit import evaluation  # one harness: samples, FCD and its floor, memorisation, cost

if GPU:
    images_train, images_test = data.fashion_mnist("train"), data.fashion_mnist("test")
    CLASSIFIER, SHAPE = "fashion", (1, 28, 28)
else:
    images_train, images_test = digits_train, data.digits("test")
    CLASSIFIER, SHAPE = "digits", (1, 8, 8)
IMG_STEPS = utils.pick(smoke=30, cpu=4000, gpu=10000)
BATCH = utils.pick(smoke=64, cpu=128, gpu=256)
N_EVAL = utils.pick(smoke=100, cpu=750, gpu=5000)  # FCD needs n > feature dim (64)
# FCD compares with real training images: all 1501 digits, or 10000 of Fashion-MNIST's 60000
FCD_REAL = images_train.subset(10_000) if GPU else images_train


def image_net(num_classes=None):
    if GPU:
        net = networks.UNet(
            in_ch=1, base=64, mults=(1, 2, 2), num_classes=num_classes, image_size=28
        )
        return net.to(DEV, memory_format=torch.channels_last)
    hidden = utils.pick(smoke=64, cpu=256, gpu=256)
    return networks.ImageMLP(SHAPE, hidden=hidden, depth=3, num_classes=num_classes)


def train_images(model, steps, labels=False):
    """fit() with the data kept on the device; the EMA weights are copied in at the end."""
    x = images_train.float().to(DEV)
    y = images_train.labels.to(DEV) if labels else None
    batches = data.Batches(x, y, batch_size=BATCH, device=DEV, generator=seeded(5))
    if GPU:  # compiled on one batch now, so that a failure falls back to eager here
        t = torch.zeros(BATCH, device=DEV)
        model.net = utils.maybe_compile(model.net, x[:BATCH], t, None if y is None else y[:BATCH])
    start = time.perf_counter()
    history = train.fit(model, batches, steps=steps, lr=utils.pick(smoke=2e-3, cpu=2e-3, gpu=5e-4),
                        ema=utils.pick(smoke=0.9, cpu=0.999, gpu=0.999), amp=GPU,
                        progress=False, device=DEV)  # fmt: skip
    seconds = time.perf_counter() - start
    history.ema.copy_to(model)
    print(f"{steps} steps in {seconds:.0f} s: {steps * BATCH / seconds:.0f} images/s, "
          f"final loss {history.final():.3f}")  # fmt: skip
    return history, steps * BATCH / seconds


PREDICTION = "eps" if GPU else "x0"


def evaluate_images(model, name, x_T=None, y=None, generator=None, **sample_kwargs):
    """evaluation.evaluate on N_EVAL samples drawn in chunks of CHUNK from the starts x_T;
    FCD against FCD_REAL, memorisation against the training images."""
    return evaluation.evaluate(
        model, images_train, images_test, n=N_EVAL, fcd_real=FCD_REAL, y=y, chunk=CHUNK,
        per_sample=None if x_T is None else {"x_T": x_T}, sample_kwargs=sample_kwargs,
        generator=generator, name=name, progress=False,
    )  # fmt: skip


CHUNK = utils.pick(smoke=1000, cpu=1000, gpu=1000)  # keeps a 28x28 UNet's activations small
pixel_model = ddpm.Diffusion(image_net(), schedules.cosine_schedule(T), data_shape=SHAPE,
                             prediction=PREDICTION).to(DEV)  # fmt: skip
pixel_history, images_per_s = train_images(pixel_model, IMG_STEPS)
pixel_model.eval()
pixel_history.plot()
plt.show()

# %% [markdown]
# First, 1000 ancestral steps, the reference sampler. Each network call sees the whole batch.

# %%
x_T = torch.randn(N_EVAL, *SHAPE, generator=seeded(6)).to(DEV)  # one start for every sampler
ddpm_row = evaluate_images(pixel_model, f"DDPM, {T} steps", x_T, generator=seeded(7))
ddpm_samples, fcd_ddpm = ddpm_row.samples, ddpm_row.fcd_score
print(ddpm_row)
plot.image_grid(ddpm_samples[:64], nrow=16, title=f"DDPM, {T} steps")
plt.show()

# %% [markdown]
# You should see recognisable digits; in our `cpu` run the FCD was about 5.7
# against a floor of about 2.7 (ratio 2.1), in about 10 s for
# 750 samples (14 ms each on one thread of a shared machine). The row's memorisation score is about 0.25: a quarter of the samples sit
# closer to a training digit than 95% of the held-out test digits do (a model that does not
# copy scores about 0.05), so part of this FCD is bought by reproducing the 1501 training
# digits closely.
#
# *Why predict $x_0$ here?* In the `cpu` profile the network predicts $\hat x_0$
# (`prediction="x0"`) and `Diffusion` converts it to $\hat\varepsilon$; the loss is then
# $L_\text{simple}$ weighted by $(1-\bar\alpha_t) / \bar\alpha_t$ (section 8). With our
# small MLP and a few thousand steps, $\varepsilon$-prediction gave far noisier digits: at
# large $t$ an error $\delta$ in $\hat\varepsilon$ becomes an error
# $\delta \sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$ in $\hat x_0$. Try it: set
# `PREDICTION = "eps"` and rerun. The UNet of the `gpu` profile predicts $\varepsilon$, as in
# Ho et al.
#
# Now DDIM from the same starting noise, with fewer and fewer network calls.

# %%
DDIM_STEPS = (5, 10, 20, 50, 100, 250)
print("the 10 times DDIM-10 visits:", sampling.ddim_timesteps(T, 10))
ddim_results = {}
for k in DDIM_STEPS:
    row = evaluate_images(pixel_model, f"DDIM, {k} steps", x_T, sampler="ddim", steps=k)
    seconds = row.ms_per_sample * N_EVAL / 1000
    ddim_results[k] = (row.samples, row.fcd_score, seconds)
    print(f"DDIM {k:4d} steps: {row.fcd_score}, memorisation {row.memorisation:.3f}  "
          f"[{seconds:.2f} s, {row.nfe_per_sample:.0f} network calls per sample]")  # fmt: skip


def show_ddim(steps=50):
    samples, fcd_k, _ = ddim_results[steps]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    axes[0].plot(DDIM_STEPS, [ddim_results[k][1].value for k in DDIM_STEPS], "o-", label="DDIM")
    axes[0].axhline(fcd_ddpm.value, color="tab:red", ls="--", label=f"DDPM, {T} steps")
    axes[0].axhline(fcd_ddpm.floor, color="grey", ls=":", label="real-vs-real floor")
    axes[0].plot([steps], [fcd_k.value], "o", ms=12, mfc="none", color="k")
    axes[0].set(
        xscale="log",
        yscale="log",
        xlabel="network calls",
        ylabel="FCD",
        title="quality against steps",
    )
    plot.plain_log_axis(axes[0], "both")
    axes[0].legend()
    plot.image_grid(
        samples[:48], nrow=12, ax=axes[1], title=f"DDIM, {steps} steps: FCD {fcd_k.value:.2f}"
    )
    plt.show()


show_ddim(50)

# %%
steps_slider = widgets.SelectionSlider(options=DDIM_STEPS, value=50, continuous_update=False)
_ = widgets.interact(show_ddim, steps=steps_slider)

# %% [markdown]
# You should see quality improve quickly with the number of DDIM steps and then flatten: in
# our `cpu` run FCD was about 11 with 5 steps, 4.9 with 10, 4.3 with 50 and
# 4.5 with 250, against 5.7 for 1000 DDPM steps. (Here DDIM-50 even beats
# DDPM-1000: each DDPM step re-injects noise that the small network must remove again
# perfectly.) Each DDIM step costs one network call, so 50 steps are 20× cheaper than DDPM.
#
# The same noise through both samplers: DDIM is a deterministic map from $x_T$ to an image, so
# its samples from one $x_T$ barely change with the number of steps, whereas DDPM adds fresh
# noise at every step and lands elsewhere.

# %%
rows = [ddpm_samples[:12]] + [ddim_results[k][0][:12] for k in (10, 50, 250)]
plot.image_grid(
    torch.cat(rows), nrow=12, title="same x_T: DDPM 1000 | DDIM 10 | DDIM 50 | DDIM 250"
)
plt.show()
d = lambda a, b: (a - b).pow(2).mean().sqrt().item()
print(f"RMS difference DDIM-50 vs DDIM-250: {d(ddim_results[50][0], ddim_results[250][0]):.3f}; "
      f"DDPM vs DDIM-250: {d(ddpm_samples, ddim_results[250][0]):.3f}")  # fmt: skip

# %% [markdown]
# You should see the DDIM rows agree with each other (the RMS difference between 50 and 250
# steps was about 0.018 in our run, on images in [0, 1]) while DDPM from the same
# $x_T$ gives different digits (RMS about 0.36). A deterministic sampler gives each
# sample a fixed "latent code" $x_T$: interpolating between two $x_T$ interpolates images.
#
# ## 6. Classifier-free guidance
#
# A class-conditional model $\varepsilon_\theta(x_t, t, y)$ is trained like the unconditional
# one, on pairs $(x_0, y)$. Ho & Salimans (2022) drop the label with probability
# $p_\text{uncond}$ (replace it by a "null" label), so the same network also learns the
# unconditional $\varepsilon_\theta(x_t, t, \varnothing)$. At sampling time they extrapolate
# from the unconditional towards the conditional prediction:
#
# $$\tilde\varepsilon = \varepsilon_\theta(x_t, t, \varnothing)
# + s\,\big(\varepsilon_\theta(x_t, t, y) - \varepsilon_\theta(x_t, t, \varnothing)\big).$$
#
# **Convention:** $s = 0$ is the unconditional model, $s = 1$ the conditional one, $s > 1$
# guided. (Ho & Salimans write $w = s - 1$.) In score terms, $s > 1$ samples from
# $p(x)\,p(y \mid x)^s$: an implicit classifier, sharpened.
#
# **Exercise 6.5.** Write the guided prediction.


# %%
def guided_eps(eps_uncond, eps_cond, scale):
    """ε_u + s (ε_c − ε_u)."""
    ### BEGIN SOLUTION
    return eps_uncond + scale * (eps_cond - eps_uncond)
    ### END SOLUTION


checks.check_guidance(guided_eps)

# %%
P_UNCOND = 0.2
cond_model = ddpm.Diffusion(image_net(num_classes=10), schedules.cosine_schedule(T),
                            data_shape=SHAPE, prediction=PREDICTION, num_classes=10,
                            p_uncond=P_UNCOND).to(DEV)  # fmt: skip
cond_history, cond_images_per_s = train_images(cond_model, IMG_STEPS, labels=True)
cond_model.eval()

SCALES = (0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0)
GUIDE_STEPS = 50
y_eval = (torch.arange(N_EVAL) % 10).to(DEV)
guided_results = {}
for s in SCALES:
    row = evaluate_images(cond_model, f"guidance {s}", x_T, y_eval, sampler="ddim",
                          steps=GUIDE_STEPS, guidance_scale=s)  # fmt: skip
    samples, fcd_s, acc_s = row.samples, row.fcd_score, row.class_accuracy
    guided_results[s] = (samples, fcd_s, acc_s)
    print(f"s = {s:3.1f}: {fcd_s}, classifier accuracy {acc_s:.3f}")


def show_guidance(scale=2.0):
    samples, fcd_s, acc_s = guided_results[scale]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(SCALES, [guided_results[s][1].value for s in SCALES], "o-")
    axes[0].axhline(guided_results[0.0][1].floor, color="grey", ls=":", label="real-vs-real floor")
    axes[0].set(xlabel="guidance scale s", ylabel="FCD", yscale="log", title="quality")
    plot.plain_log_axis(axes[0])
    axes[0].legend()
    axes[1].plot(SCALES, [guided_results[s][2] for s in SCALES], "o-", color="tab:green")
    axes[1].set(xlabel="guidance scale s", ylabel="accuracy", title="classifier agrees with y")
    for ax, values in ((axes[0], fcd_s.value), (axes[1], acc_s)):
        ax.plot([scale], [values], "o", ms=12, mfc="none", color="k")
    order = torch.argsort(y_eval.cpu()[:100], stable=True)[:60]  # (60,) sorted by class
    plot.image_grid(samples[:100][order], nrow=10, ax=axes[2],
                    title=f"s = {scale}: FCD {fcd_s.value:.2f}, acc {acc_s:.2f}")  # fmt: skip
    plt.show()


show_guidance(2.0)

# %%
scale_slider = widgets.SelectionSlider(options=SCALES, value=2.0, continuous_update=False)
_ = widgets.interact(show_guidance, scale=scale_slider)

# %% [markdown]
# You should see, as $s$ grows from 0, the classifier agree with the requested label almost
# at once (about 0.09 at $s = 0$, where labels are ignored, 1.00 at $s = 1$) while FCD
# first falls and then rises: in our `cpu` run about 7.0 at $s = 0$, 1.8 at $s = 1$
# (0.25 × the unguided FCD), 3.0 at $s = 2$ and 13 at $s = 5$. Large scales trade diversity
# for fidelity: the digits of a class look ever more alike (and too bold), which FCD, a
# measure of the whole distribution, penalizes. This small model's conditional samples are
# already good, so the best scale is near 1; larger models on harder data (ImageNet) peak at
# larger $s$.
#
# **Why $s = 1$ scores below the real-vs-real floor** (about 2.3 against 2.7). The floor is
# not a bound: it is the FCD between two random halves of the training digits, averaged over
# three splits. `benchmarks/bench_guidance_floor.py` retrains this model and tests three
# causes. *A small real set:* over 50 splits the floor is 2.9 ± 0.9 (1.2 to 5.3), and the
# samples, at 2.7 ± 0.3 against the same halves, beat it in 58% of the splits: below-floor
# and at-floor cannot be told apart here. *Class balance:* the samples ask for exactly 75 of
# each class, while a random half of the training digits holds between about 69 and 86 of a
# class, and FCD, a distance between a classifier's features, counts that as a difference:
# with the second half drawn class-balanced, the floor falls from 5.1 to 2.8 (halves of
# 500). *Memorisation, a little:* the samples lie closer to their nearest training digit than
# held-out test digits do (median distance 0.72 against 1.03, on 64 pixels in [0, 1]), and
# against the 296 held-out test digits instead of the training set they score above the
# floor (5.0 against 4.1). So the model is not better than data: balanced classes and a
# noisy floor put it level with the training set, to which it is a little too close.
#
# ## 7. Latent diffusion
#
# Rombach et al. (2022) run diffusion on the latents $z = E(x)$ of a pretrained autoencoder
# instead of on pixels: every one of the many sampling steps then handles fewer numbers, and
# the decoder $D(z)$ adds the fine detail. The latents are standardized per dimension so that
# the schedule's "unit variance" assumption holds. The price is a floor on quality: a sample
# can be no better than the autoencoder's reconstructions.
#
# We reuse `vae.Autoencoder` from lecture 02 (an MLP encoder and decoder) and wrap it with a
# diffusion model over its latents, `latent.LatentDiffusion(autoencoder, diffusion)`.

# %%
LATENT = utils.pick(smoke=4, cpu=8, gpu=32)
AE_STEPS = utils.pick(smoke=30, cpu=3000, gpu=10000)
D = math.prod(SHAPE)
encoder = torch.nn.Sequential(torch.nn.Flatten(), networks.MLP(D, LATENT, hidden=256, depth=2))
decoder = networks.MLP(LATENT, D, hidden=256, depth=2)
autoencoder = vae.Autoencoder(
    encoder, decoder, likelihoods.Bernoulli(), latent_dim=LATENT, x_shape=SHAPE
)
start = time.perf_counter()
train.fit(autoencoder, images_train.float(), steps=AE_STEPS, lr=2e-3, progress=False, device=DEV)
ae_seconds = time.perf_counter() - start
autoencoder.eval()
recon = autoencoder.reconstruct(images_train.float()[:N_EVAL].to(DEV)).cpu()
fcd_recon = metrics.fcd(recon, FCD_REAL, classifier=CLASSIFIER)
print(f"autoencoder ({ae_seconds:.0f} s): reconstructions {fcd_recon}")

latent_net = networks.TimeConditionedMLP(
    in_dim=LATENT, hidden=utils.pick(smoke=64, cpu=256, gpu=512), depth=3
)
latent_diffusion = ddpm.Diffusion(latent_net, schedules.cosine_schedule(T), data_shape=(LATENT,),
                                  data_range=None, prediction="v")  # fmt: skip
latent_model = latent.LatentDiffusion(autoencoder, latent_diffusion).to(DEV)
latent_model.fit_scaling(images_train.float().to(DEV))
start = time.perf_counter()
latent_history = train.fit(latent_model, images_train.float(), steps=IMG_STEPS, lr=2e-3,
                           batch_size=BATCH, ema=utils.pick(smoke=0.9, cpu=0.999, gpu=0.999),
                           progress=False, device=DEV)  # fmt: skip
latent_history.ema.copy_to(latent_model)
latent_model.eval()
print(f"latent diffusion trained in {time.perf_counter() - start:.0f} s")


def seconds_per_sample(model, **kwargs):
    """N_EVAL samples (in chunks of CHUNK) on the CPU, and the wall time per sample."""
    start = time.perf_counter()
    samples = evaluation.sample_in_chunks(model, N_EVAL, chunk=CHUNK, generator=seeded(8), **kwargs)
    return samples, (time.perf_counter() - start) / N_EVAL


# One timing is at the mercy of whatever else the machine runs; take the best of a few,
# alternating the two models so that a busy spell slows both (the samples are the same each time).
latent_costs, pixel_costs = [], []
for _ in range(utils.pick(smoke=1, cpu=5, gpu=5)):
    latent_samples, seconds = seconds_per_sample(latent_model, sampler="ddim", steps=50)
    latent_costs.append(seconds)
    pixel_samples, seconds = seconds_per_sample(pixel_model, sampler="ddim", steps=50)
    pixel_costs.append(seconds)
latent_cost, pixel_cost = min(latent_costs), min(pixel_costs)
count = lambda m: sum(p.numel() for p in m.parameters())
print(f"parameters of the network run at every step: latent {count(latent_net)}, "
      f"pixel {count(pixel_model.net)} (ratio {count(latent_net) / count(pixel_model.net):.2f})")  # fmt: skip
fcd_latent = metrics.fcd(latent_samples, FCD_REAL, classifier=CLASSIFIER)
fcd_pixel = ddim_results[50][1]
print(f"pixel space:  {fcd_pixel}, {pixel_cost * 1e3:.3f} ms per sample (DDIM-50)")
print(
    f"latent space: {fcd_latent}, {latent_cost * 1e3:.3f} ms per sample (DDIM-50, decoder included)"
)
ratios = [a / b for a, b in zip(latent_costs, pixel_costs)]  # one per pair of timings
print(f"cost per sample, latent / pixel: {latent_cost / pixel_cost:.2f} (best times of "
      f"{len(ratios)}; the pairs alone gave {min(ratios):.2f} to {max(ratios):.2f})")  # fmt: skip
fig, axes = plt.subplots(1, 3, figsize=(14, 4))
plot.image_grid(
    recon[:48], nrow=12, ax=axes[0], title=f"reconstructions: FCD {fcd_recon.value:.2f}"
)
plot.image_grid(
    pixel_samples[:48], nrow=12, ax=axes[1], title=f"pixel DDIM-50: FCD {fcd_pixel.value:.2f}"
)
plot.image_grid(
    latent_samples[:48], nrow=12, ax=axes[2], title=f"latent DDIM-50: FCD {fcd_latent.value:.2f}"
)
plt.show()

# %% [markdown]
# You should see latent samples as good as the pixel-space ones or better (FCD about 4.1
# against 4.3 in our `cpu` run; reconstructions alone score about 2.5), at about the same
# cost per sample: a latent / pixel ratio of about 0.9 (0.94 in the recorded run, 0.90 in an
# earlier one). The cell takes the best of five alternating timings, since a single pair of
# timings on a busy machine gave anything from 0.63 to 1.01. The parameter count agrees
# (0.90): with an MLP on 64 pixels, the hidden layers, not the input, dominate the cost. The
# saving is real when the network is a UNet whose every layer scales with the number of
# pixels: 28×28 images encoded to 7×7 latents would make each step roughly 16× cheaper. The
# latent model predicts $v$ (section 8): with $\varepsilon$ and DDIM it diverged in our tests.
#
# ## 8. Other parameterizations
#
# The network may predict $x_0$ or the "velocity" $v = \sqrt{\bar\alpha_t}\,\varepsilon -
# \sqrt{1-\bar\alpha_t}\, x_0$ (Salimans & Ho 2022) instead of $\varepsilon$. All three are
# linear in $(x_t, x_0, \varepsilon)$ given $\bar\alpha_t$, so any one determines the others
# (`Diffusion.path.eps_to_x0`, `.v_to_eps`, ...: one `paths.VPPath` holds every conversion),
# and `Diffusion(prediction=...)` converts to $\varepsilon$ before sampling. What changes is the loss weighting over $t$:
# $\|x_0 - \hat x_0\|^2 = \tfrac{1-\bar\alpha_t}{\bar\alpha_t}\|\varepsilon - \hat\varepsilon\|^2$
# and $\|v - \hat v\|^2 = \tfrac{1}{\bar\alpha_t}\|\varepsilon - \hat\varepsilon\|^2$.
# The toy below trains the three on the moons with the same budget.

# %%
PARAM_STEPS = utils.pick(smoke=30, cpu=2000, gpu=10000)
param_scores = {}
for prediction in ("eps", "x0", "v"):
    model = toy_diffusion(prediction=prediction)
    history = train.fit(model, data.toy_2d("moons", 20_000, seed=0), steps=PARAM_STEPS, lr=2e-3,
                        batch_size=256, ema=TOY_EMA, progress=False, device=DEV)  # fmt: skip
    history.ema.copy_to(model)
    model.eval()
    for sampler in ("ddpm", "ddim"):
        samples = model.sample(N_TOY, sampler=sampler, steps=50, generator=seeded(9)).cpu()
        sc = metrics.two_sample_score(samples, functools.partial(data.toy_2d, "moons"))
        param_scores[prediction, sampler] = sc.value / sc.real_p95
    ddpm_score, ddim_score = param_scores[prediction, "ddpm"], param_scores[prediction, "ddim"]
    print(f"{prediction:>3}-prediction: energy / real p95 = {ddpm_score:.2f} "
          f"(DDPM, {TOY_T} steps), {ddim_score:.2f} (DDIM, 50 steps)")  # fmt: skip

# %% [markdown]
# The three networks have the same size and training budget (2000 steps, fewer than in
# section 3); only the target differs. You should see that the target matters more than the
# sampler here. In our `cpu` run (energy distance over the real 95th percentile, lower is
# better): ε-prediction about 1.3 with DDPM and 1.0 with DDIM; $v$-prediction about 1.9 and
# 1.4; $x_0$-prediction about 15 and 7.9. $x_0$-prediction down-weights small $t$, where the
# narrow moons are resolved, yet it was the best choice for the digits MLP of section 5.
# With $\bar\alpha_{T-1} \approx 0$, $\varepsilon$-prediction leaves $\hat x_0$ almost
# undetermined at the first steps (Lin et al. 2024), an error a deterministic DDIM step
# carries all the way to $x_0$; at this budget it did not hurt. (An earlier version of this
# lecture saw ε with DDIM at 340 ×: its 2000-step runs' weight average still held 14% of
# the random initial weights, see `train.EMA`; a sampler that amplifies errors amplified
# those.) There is no universal winner; $v$ is well defined at every $t$ and was never far
# off, which is why many recent models (and our latent model) use it.
#
# **The probability-flow ODE.** DDIM with $\eta = 0$ is a first-order solver of the ODE
# $\frac{d\bar x}{d\sigma} = \hat\varepsilon$ in the variables
# $\bar x = x_t / \sqrt{\bar\alpha_t}$, $\sigma = \sqrt{1-\bar\alpha_t}/\sqrt{\bar\alpha_t}$
# (Song et al. 2021, eq. 14), whose marginals are those of the forward process. Any ODE solver
# can replace it: `sampling.probability_flow_sample` hands the ODE to `coursekit.solvers`
# (`Diffusion.sample(sampler="ode")`: 25 second-order Heun steps), and with `method="euler"`
# on DDIM's times it is DDIM to rounding error. The grid matters as much as the solver: its
# default, `sampling.ode_timesteps`, is uniform in log SNR from σ = 80 down to the data,
# whereas DDIM's grid, uniform in $t$, starts the cosine schedule at σ ≈ 2·10⁴ and then takes
# huge steps near the data (`tests/test_diffusion.py` measures both on Gaussian data, where
# the exact ε is known: within 3% of the right std with 25 Heun steps on either schedule, and
# about 50% off on DDIM's grid with the cosine schedule). The same ODE gives likelihoods
# through the instantaneous change of variables (`solvers.ode_log_prob`), which is what
# `log_prob` points to.
#
# ## 9. ControlNet: steering a frozen model
#
# A trained unconditional model knows what digits look like; ControlNet (Zhang, Rao &
# Agrawala 2023) teaches it to follow a control signal $c$ (an edge map, a pose, here the
# digit averaged down to 4×4 pixels) *without changing a single weight of it*. The pretrained
# network $F(\cdot;\Theta)$ is frozen; a trainable copy $\Theta_c$ of its encoder reads $x_t$ and
# $c$, and its features are added to the frozen network through layers $Z$ whose weights and
# biases start at zero (a 1×1 convolution for a UNet, a linear layer for our MLP):
#
# $$\varepsilon_{\Theta,\Theta_c}(x_t, t, c) = F(x_t;\Theta)\ \text{with}\ Z\big(F_\text{enc}(x_t +
# Z(c);\Theta_c)\big)\ \text{added to its decoder's inputs}.$$
#
# At initialisation every $Z$ outputs exactly $0$, so the model *is* the base model: training
# starts from a good sampler, and the copy (initialised with the base's own weights) only has to
# learn how to read $c$. `controlnet.ControlNet(base_net, control_channels)` builds it for
# `networks.UNet` (copy of the down path and bottleneck, zero convs into the skips) and for
# `networks.TimeConditionedMLP` (copy of the input and first half of the hidden layers, zero
# linear layers into the rest), and `controlnet.ControlledDiffusion` trains it with the base's
# own objective, with the control computed from each training image.

# %%
from coursekit.diffusion import controlnet, editing

CONTROL_SIZE = utils.pick(smoke=4, cpu=4, gpu=7)  # the control: the image averaged to 4×4 (7×7)
CONTROL_STEPS = utils.pick(smoke=30, cpu=2000, gpu=5000)
images_test = data.fashion_mnist("test") if GPU else data.digits("test")
idx = torch.arange(N_EVAL) % len(images_test)  # every test image, repeated up to N_EVAL
x_ref, y_ref = images_test.float()[idx].to(DEV), images_test.labels[idx]


def control_fn(x):
    """x (B, C, H, W) in [0, 1] -> the control (B, C, CONTROL_SIZE, CONTROL_SIZE)."""
    return controlnet.low_resolution(x, CONTROL_SIZE)


frozen_net = getattr(pixel_model.net, "mlp", pixel_model.net)  # the MLP inside ImageMLP (cpu)
control_channels = SHAPE[0] if GPU else SHAPE[0] * CONTROL_SIZE**2  # an MLP sees it flattened
controlled = controlnet.ControlledDiffusion(
    pixel_model, controlnet.ControlNet(frozen_net, control_channels), control_fn
).to(DEV)
x_t = torch.randn(64, *SHAPE, generator=seeded(20)).to(DEV)
t_check = torch.randint(0, T, (64,), generator=seeded(21)).to(DEV)
with torch.no_grad():
    init_gap = controlled.eps(x_t, t_check, control_fn(x_ref[:64])) - pixel_model.eps(x_t, t_check)
init_gap = init_gap.abs().max().item()
n_trainable = sum(p.numel() for p in controlled.net.trainable_parameters())
print(f"at initialisation: max |ε_ControlNet − ε_base| = {init_gap:.3g}; base frozen: "
      f"{not any(p.requires_grad for p in frozen_net.parameters())}; trainable parameters "
      f"{n_trainable} beside {sum(p.numel() for p in frozen_net.parameters())} frozen")  # fmt: skip

start = time.perf_counter()
control_history = train.fit(controlled, images_train.float(), steps=CONTROL_STEPS, lr=2e-3,
                            batch_size=BATCH, ema=utils.pick(smoke=0.9, cpu=0.999, gpu=0.999),
                            progress=False, device=DEV)  # fmt: skip
control_history.ema.copy_to(controlled)
controlled.eval()
control_seconds = time.perf_counter() - start
print(f"ControlNet trained in {control_seconds:.0f} s, final loss {control_history.final():.3f}")

# %% [markdown]
# Does the model obey? For every test image we sample once from the ControlNet given that
# image's 4×4 control, and once from the base model (the DDIM-50 samples of section 5, which
# never saw a control). Three measures: how far the sample's own 4×4 version is from the
# control (RMS, on pixels in [0, 1]), whether the digit classifier recognises the class of the
# image the control came from, and FCD for realism.

# %%
c_ref = control_fn(x_ref)
chunks = [controlled.sample(len(x_T[i : i + CHUNK]), c_ref[i : i + CHUNK], x_T=x_T[i : i + CHUNK],
                            sampler="ddim", steps=50).cpu()
          for i in range(0, N_EVAL, CHUNK)]  # fmt: skip
controlled_samples, base_samples = torch.cat(chunks), ddim_results[50][0]


def control_rms(samples):
    return (control_fn(samples) - c_ref.cpu()).pow(2).mean().sqrt().item()


control_scores = {}
for name, samples in (("ControlNet", controlled_samples), ("base", base_samples)):
    control_scores[name] = (
        control_rms(samples),
        metrics.classifier_accuracy(samples, y_ref, classifier=CLASSIFIER),
        metrics.fcd(samples, FCD_REAL, classifier=CLASSIFIER),
    )
    rms, acc, fcd_c = control_scores[name]
    print(f"{name:>10}: control RMS {rms:.3f}, class of the control's image {acc:.3f}, {fcd_c}")
fcd_controls = metrics.fcd(x_ref.cpu(), FCD_REAL, classifier=CLASSIFIER)
print(f"the test images the controls come from: {fcd_controls}")
upsample = functools.partial(torch.nn.functional.interpolate, size=SHAPE[1:], mode="nearest")
again = controlled.sample(12, c_ref[:12], sampler="ddim", steps=50, generator=seeded(24)).cpu()
plot.image_grid(torch.cat([x_ref[:12].cpu(), upsample(c_ref[:12]).cpu(), controlled_samples[:12],
                           again, base_samples[:12]]),
                nrow=12, title="test image | its 4×4 control | two ControlNet samples | base")  # fmt: skip
plt.show()

# %% [markdown]
# You should see the ControlNet samples follow their controls and the base's not. In our
# `cpu` run (one thread) the ControlNet started exactly at the base (max
# $|\varepsilon_\text{ControlNet} - \varepsilon_\text{base}| = 0$ on 64 inputs, with the frozen
# MLP's 289k parameters untouched) and trained its 392k parameters (the copy, its time
# embedding, the hint and the zero layers) for 2000 steps in 42 s (on a machine shared with
# other runs; about 26 s idle). Then the 4×4 version of a sample was 0.067 (RMS, pixels in
# [0, 1]) from its control, against 0.25 for the base (0.27×), and the classifier found the
# class of the control's digit in 0.87 of the samples, against 0.10 for the base. Realism is
# kept: FCD 2.7, against 4.3 for the base's DDIM-50 samples and 1.7 for the test digits the
# controls came from; a control that fixes the coarse layout leaves the model less to get
# wrong. (An earlier run measured FCD 35 here: after 2000 steps the weight average still held
# 14% of the ControlNet's initial weights, see `train.EMA`.)
#
# ## 10. Image-to-image: SDEdit and inpainting
#
# An unconditional model can also *edit*. **SDEdit** (Meng et al. 2022) noises an input $x$ to
# a level $t_0$ with $q(x_{t_0} \mid x)$ and runs the reverse chain from there. Noise erases
# detail before it erases the coarse layout, so the reverse chain keeps the layout and
# invents realistic detail: small $t_0$ stays faithful to the input, large $t_0$ forgets it
# ($t_0 = T$ is plain sampling). `editing.sdedit(eps_fn, schedule, x, t0)` counts $t_0$ in
# noising steps, $t_0 = 0$ returns the input; it reuses `sampling.ddpm_step`. Our inputs are
# crude "paintings": test digits averaged to 4×4 blocks and blown up again, the kind of input
# SDEdit was made for. We measure faithfulness by the RMS distance to the input, realism by
# FCD, and whether the edit kept the digit by the classifier.

# %%
T0S = (0, 100, 200, 300, 400, 500, 600, 800, 1000)
SDEDIT_STEPS = utils.pick(smoke=None, cpu=None, gpu=50)  # None: every DDPM step from t0 down
sketches = upsample(control_fn(x_ref))  # (N_EVAL, C, H, W) blocky inputs in [0, 1]
eps_fn = lambda x, t: pixel_model.eps(x, t)  # noqa: E731 - model space, as the samplers want
sdedit_results, g = {}, seeded(22)
start = time.perf_counter()
for t0 in T0S:
    edited = torch.cat([pixel_model.to_data_space(editing.sdedit(
        eps_fn, pixel_model.schedule, pixel_model.to_model_space(sketches[i : i + CHUNK]), t0,
        steps=SDEDIT_STEPS, generator=g, clip=pixel_model.clip)).cpu()
        for i in range(0, N_EVAL, CHUNK)])  # fmt: skip
    sdedit_results[t0] = (
        edited,
        (edited - sketches.cpu()).pow(2).mean().sqrt().item(),
        metrics.fcd(edited, FCD_REAL, classifier=CLASSIFIER),
        metrics.classifier_accuracy(edited, y_ref, classifier=CLASSIFIER),
    )
    _, rms, fcd_t0, acc = sdedit_results[t0]
    print(f"t0 = {t0:4d}: RMS to the input {rms:.3f}, {fcd_t0}, class kept {acc:.3f}")
print(f"[{time.perf_counter() - start:.0f} s]")


def show_sdedit(t0=400):
    edited, rms, fcd_t0, acc = sdedit_results[t0]
    fig, axes = plt.subplots(1, 3, figsize=(14, 4))
    axes[0].plot(T0S, [sdedit_results[s][1] for s in T0S], "o-", label="RMS to the input")
    axes[0].plot(T0S, [sdedit_results[s][3] for s in T0S], "s-", label="class kept")
    axes[0].set(xlabel="noise level t0", title="faithfulness")
    axes[1].plot(T0S, [sdedit_results[s][2].value for s in T0S], "o-", color="tab:red")
    axes[1].axhline(fcd_ddpm.floor, color="grey", ls=":", label="real-vs-real floor")
    axes[1].set(xlabel="noise level t0", ylabel="FCD", yscale="log", title="realism")
    for ax in axes[:2]:
        ax.axvline(t0, color="k", lw=0.8)
        ax.legend()
    plot.image_grid(torch.cat([sketches[:10].cpu(), edited[:30]]), nrow=10, ax=axes[2],
                    title=f"inputs | SDEdit, t0 = {t0}: RMS {rms:.2f}, FCD {fcd_t0.value:.1f}")  # fmt: skip
    plt.show()


show_sdedit(400)

# %%
t0_slider = widgets.SelectionSlider(options=T0S, value=400, continuous_update=False)
_ = widgets.interact(show_sdedit, t0=t0_slider)

# %% [markdown]
# You should see the trade-off in both panels. In our `cpu` run, as $t_0$ grows the edit moves
# away from its input (RMS 0 at $t_0 = 0$, 0.25 at 400, 0.33 at $T$, where the output no
# longer depends on it) and becomes realistic (FCD 144 for the blocky inputs themselves, 16 at
# $t_0 = 400$, 3.8 at 600 and 4.9 at $T$, against a floor of 2.7), while the classifier finds
# the input digit's class less and less often (0.70 on the blocky inputs, 0.46 at 400, 0.28 at
# 600, chance 0.11 from 800 on). On 8×8 digits no $t_0$ is both faithful and realistic: by the
# time FCD is near the plain samples' (at $t_0 = 600$) most digits have lost their class. (The
# `gpu` profile runs 50 DDIM steps from $t_0$ instead of every DDPM step.)
#
# ### Inpainting by replacement
#
# To fill in missing pixels, run the ordinary reverse chain from noise, and after every step
# overwrite the pixels we know with a fresh draw of $q(x_{t-1} \mid x_\text{known})$, the
# known image noised to the level the chain has just reached; after the last step, with the
# known image itself (Lugmayr et al. 2022, RePaint, eq. 8, without its resampling). The
# unknown pixels see the known ones only through the network, so the chain pulls them
# towards something consistent.
#
# **Exercise 6.6.** Write the replacement step. `mask` is 1 where the pixel is known; `t` is
# the index of the reverse step just taken (which produced $x_{t-1}$), so the known pixels
# get $\sqrt{\bar\alpha_{t-1}}\, x_\text{known} + \sqrt{1-\bar\alpha_{t-1}}\,\varepsilon$, and
# at $t = 0$ (the step to data) $x_\text{known}$ itself.


# %%
def replace_known(x, x_known, mask, t, alpha_bar, eps):
    """x with its known pixels (mask = 1) replaced; all tensors (B, C, H, W), t a Python int."""
    ### BEGIN SOLUTION
    if t == 0:
        known = x_known
    else:
        a = alpha_bar[t - 1]
        known = a.sqrt() * x_known + (1 - a).sqrt() * eps
    return mask * known + (1 - mask) * x
    ### END SOLUTION


checks.check_replace_known(replace_known)

# %% [markdown]
# We hide the bottom half of every test digit and inpaint it with the reference
# `editing.inpaint` (1000 DDPM steps with `editing.replace_known` after each). As a baseline,
# the bottom half is taken from an unconditional sample instead, which ignores the top.

# %%
mask = torch.zeros(1, *SHAPE, device=DEV)
mask[..., : SHAPE[1] // 2, :] = 1.0  # the top half is known
known = pixel_model.to_model_space(x_ref)
start = time.perf_counter()
inpainted = torch.cat([editing.inpaint(eps_fn, pixel_model.schedule, known[i : i + CHUNK], mask,
                                       generator=seeded(23), clip=pixel_model.clip)
                       for i in range(0, N_EVAL, CHUNK)])  # fmt: skip
known_gap = ((inpainted - known) * mask).abs().max().item()
inpainted = pixel_model.to_data_space(inpainted).cpu()
pasted = mask.cpu() * x_ref.cpu() + (1 - mask.cpu()) * ddpm_samples
unknown_rms = lambda x: ((x - x_ref.cpu()) * (1 - mask.cpu())).pow(2).sum().div(  # noqa: E731
    (1 - mask).sum() * N_EVAL).sqrt().item()  # fmt: skip
inpaint_scores = {}
for name, x in (("inpainted", inpainted), ("pasted sample", pasted)):
    inpaint_scores[name] = (metrics.classifier_accuracy(x, y_ref, classifier=CLASSIFIER),
                            unknown_rms(x), metrics.fcd(x, FCD_REAL, classifier=CLASSIFIER))  # fmt: skip
    acc, rms, fcd_i = inpaint_scores[name]
    print(f"{name:>13}: class of the original {acc:.3f}, RMS on the hidden half {rms:.3f}, {fcd_i}")
print(
    f"known pixels changed by at most {known_gap:.2g} (model space); "
    f"[{time.perf_counter() - start:.0f} s]"
)
plot.image_grid(torch.cat([x_ref[:12].cpu(), (mask.cpu() * x_ref[:12].cpu()), inpainted[:12],
                           pasted[:12]]),
                nrow=12, title="original | known top half | inpainted | top + a free sample")  # fmt: skip
plt.show()

# %%
report.record("controlnet_init_max_abs_gap", init_gap,
              target=utils.pick(smoke="<= 0", cpu="<= 0", gpu=None))  # fmt: skip
rms_c, acc_c, fcd_c = control_scores["ControlNet"]
rms_b, acc_b, _ = control_scores["base"]
report.record("controlnet_control_rms", rms_c)
report.record("controlnet_control_rms_over_base", rms_c / rms_b,
              target=utils.pick(smoke=None, cpu="<= 0.5", gpu="<= 0.5"))  # fmt: skip
report.record("controlnet_class_accuracy", acc_c,
              target=utils.pick(smoke=None, cpu=">= 0.6", gpu=None))  # fmt: skip
report.record("controlnet_base_class_accuracy", acc_b)
report.record("controlnet_fcd", fcd_c.value)
report.record("controlnet_seconds", control_seconds,
              target=utils.pick(smoke=None, cpu="<= 30", gpu=None))  # fmt: skip
for t0 in (0, 400, 1000):
    report.record(f"sdedit_t0_{t0}_rms_to_input", sdedit_results[t0][1])
    report.record(f"sdedit_t0_{t0}_fcd", sdedit_results[t0][2].value)
report.record("inpaint_known_max_abs_gap", known_gap, target="<= 0")
report.record("inpaint_class_accuracy", inpaint_scores["inpainted"][0])
report.record("inpaint_pasted_class_accuracy", inpaint_scores["pasted sample"][0])
report.record("inpaint_fcd", inpaint_scores["inpainted"][2].value)

# %% [markdown]
# You should see completions that continue the strokes of the top half. In our `cpu` run the
# known pixels came back exactly (max change 0), the classifier found the original digit's
# class in 0.68 of the inpainted digits against 0.37 when the bottom half comes from a free
# sample, the hidden half was closer to the truth (RMS 0.26 against 0.38), and the inpainted
# digits were realistic (FCD 5.2 against 19 for the pasted halves, which do not fit).
# Replacement is not exact conditioning, though: on Gaussian data, where the conditional is
# known in closed form, the unknown coordinate moved only about 62 % of the way from its
# marginal to its conditional mean (`tests/test_editing.py`). The known pixels are re-drawn
# independently at every step, so the unknown ones, computed to fit the previous draw, never
# quite agree with them; RePaint's resampling (stepping back from $t-1$ to $t$ and denoising
# again, several times) is the remedy.
#
# ## Numbers of this lecture

# %%
for name, (sc, seconds) in toy_scores.items():
    report.record(f"toy_{name}_energy_over_real_p95", sc.value / sc.real_p95,
                  target=utils.pick(smoke=None, cpu="<= 1", gpu="<= 1"))  # fmt: skip
    report.record(
        f"toy_{name}_seconds", seconds, target=utils.pick(smoke=None, cpu="<= 60", gpu=None)
    )
report.record(
    "langevin_8gaussians_energy_over_real_p95", langevin_score.value / langevin_score.real_p95
)
report.record("fcd_ddpm1000", ddpm_row.fcd)
report.record("fcd_floor", ddpm_row.fcd_floor)
report.record("fcd_ddpm1000_over_floor", ddpm_row.fcd_ratio,
              target=utils.pick(smoke=None, cpu="<= 3", gpu=None))  # fmt: skip
report.record("memorisation_ddpm1000", ddpm_row.memorisation)
report.record("fcd_ddim50", ddim_results[50][1].value)
report.record("fcd_ddim50_over_ddpm1000", ddim_results[50][1].value / fcd_ddpm.value,
              target=utils.pick(smoke=None, cpu=None, gpu="<= 1.5"))  # fmt: skip
best_scale = min(SCALES, key=lambda s: guided_results[s][1].value)
report.record("guidance_best_scale", best_scale)
fcd_best, fcd_uncond = guided_results[best_scale][1].value, guided_results[0.0][1].value
report.record("fcd_guided_best_over_unconditional", fcd_best / fcd_uncond,
              target=utils.pick(smoke=None, cpu="<= 0.75", gpu="<= 0.75"))  # fmt: skip
report.record("classifier_accuracy_best_scale", guided_results[best_scale][2])
report.record("classifier_accuracy_unconditional", guided_results[0.0][2])
report.record("fcd_latent_ddim50", fcd_latent.value)
report.record("latent_over_pixel_cost_per_sample", latent_cost / pixel_cost)
report.record("train_images_per_s", images_per_s)
