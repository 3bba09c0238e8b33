# %% [markdown]
# # Lecture 01: Divergences
#
# Every generative model in this course is trained by making a model distribution $p_\theta$
# close to the data distribution $p_d$. "Close" is measured by a **divergence**; which one we
# pick decides what the model gets right and what it gives up.
#
# After this lecture you can
#
# - say what the generative modelling problem is, and why sampling and density estimation are
#   both hard;
# - write the generator $f(u)$ of the common f-divergences (KL, reverse KL, Pearson $\chi^2$,
#   squared Hellinger, Jensen–Shannon, the GAN divergence) and estimate them by Monte Carlo;
# - show that maximum likelihood is forward-KL minimisation;
# - predict whether a fit will cover all modes (forward KL) or pick one (reverse KL);
# - estimate a divergence from samples alone with a critic network and a variational bound;
# - derive the optimal GAN discriminator $D^* = p_d/(p_d + p_m)$ and the value
#   $V(G, D^*) = 2\,\mathrm{JS} - \log 4$.

# %%
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from coursekit import divergences, networks, report, utils
from coursekit.exercises import divergences as checks

gen = utils.seed_everything(0)
print("profile:", utils.profile())

# %% [markdown]
# ## 1. The generative modelling problem
#
# We are given samples $x_1, \dots, x_N \sim p_d$ of an unknown distribution (images, molecules,
# sentences) and want a model $p_\theta$ that can do one or both of
#
# - **sampling**: produce new $x \sim p_\theta$ that look like the data;
# - **density estimation**: evaluate $p_\theta(x)$, e.g. to score how typical an $x$ is or to
#   compress it.
#
# Both are hard in high dimension. A density must be normalised, $\int p_\theta(x)\,dx = 1$, and
# for a flexible unnormalised model $\tilde p_\theta(x)$ the constant
# $Z_\theta = \int \tilde p_\theta(x)\,dx$ is an integral over all of $\mathbb{R}^D$. Sampling from
# $\tilde p_\theta$ without $Z_\theta$ needs slow Markov chains. And the classical recipe,
# counting samples in bins (a histogram), needs a number of bins exponential in $D$: with $k$
# bins per axis there are $k^D$ bins and our $N$ samples leave almost all of them empty.
# The model families of this course are different answers: autoregressive models and flows keep
# $Z_\theta = 1$ by construction, VAEs and diffusion models bound $\log p_\theta$, and GANs give up
# the density altogether and only sample.
#
# The cell below counts, for $N$ samples of a standard Gaussian in $D$ dimensions and 10 bins per
# axis on $[-3, 3]$, the fraction of samples that fall in a bin with no other sample: the
# histogram's estimate there rests on one point.

# %%
N_HIST = utils.pick(smoke=2_000, cpu=20_000, gpu=100_000)
dims = [1, 2, 3, 4, 6, 8, 10]
alone = []
for d in dims:
    x = torch.randn(N_HIST, d, generator=gen)
    bins = ((x.clamp(-3, 2.999) + 3) / 0.6).long()  # (N, D) bin index per axis, 10 bins each
    _, inverse, counts = torch.unique(bins, dim=0, return_inverse=True, return_counts=True)
    alone.append(float((counts[inverse] == 1).float().mean()))

fig, ax = plt.subplots(figsize=(5, 3))
ax.plot(dims, alone, "o-")
ax.set(xlabel="dimension D", ylabel="fraction of samples alone in their bin", ylim=(0, 1.05))
ax.set_title(f"histogram with 10^D bins, N = {N_HIST}")
plt.show()
print({d: round(a, 3) for d, a in zip(dims, alone)})

# %% [markdown]
# You should see the fraction go from 0 at $D \le 2$ to about 0.7 at $D = 6$ and 0.99 at $D = 8$
# (with $N = 20\,000$): beyond a handful of dimensions a histogram is mostly empty bins. A $28 \times 28$
# image has $D = 784$. Learned models must generalise between samples, and the divergence
# they minimise decides how.

# %% [markdown]
# ## 2. The f-divergence family
#
# A divergence $D(P \,\|\, Q) \ge 0$ is zero exactly when $P = Q$; unlike a distance it need not
# be symmetric. The **f-divergences** (Csiszár 1967; Ali & Silvey 1966) are built from a
# convex function $f$ with $f(1) = 0$, applied to the density ratio $u = p(x)/q(x)$:
#
# $$D_f(P \,\|\, Q) = \mathbb{E}_{x \sim Q}\!\left[f\!\left(\frac{p(x)}{q(x)}\right)\right]
#   = \int q(x)\, f\!\left(\frac{p(x)}{q(x)}\right) dx. \tag{1}$$
#
# $f(1) = 0$ gives $D_f(P\,\|\,P) = 0$, and Jensen's inequality with convexity gives
# $D_f \ge f(\mathbb{E}_Q[p/q]) = f(1) = 0$.
#
# | divergence | $D_f(P \,\|\, Q)$ | generator $f(u)$ |
# |---|---|---|
# | KL | $\int p \log \frac{p}{q}$ | $u \log u$ |
# | reverse KL | $\int q \log \frac{q}{p}$ | $-\log u$ |
# | Pearson $\chi^2$ | $\int \frac{(p - q)^2}{q}$ | $(u - 1)^2$ |
# | squared Hellinger | $\int (\sqrt p - \sqrt q)^2$ | $(\sqrt u - 1)^2$ |
# | Jensen–Shannon | $\tfrac12 \mathrm{KL}(P\,\|\,M) + \tfrac12 \mathrm{KL}(Q\,\|\,M)$, $M = \tfrac{P+Q}{2}$ | $\tfrac12\left[u \log u - (u + 1) \log \tfrac{u + 1}{2}\right]$ |
# | GAN | $2\,\mathrm{JS} - \log 4$ | $u \log u - (u + 1) \log (u + 1)$ |
#
# Conventions: natural logs (nats); JS is the divergence itself, so $0 \le \mathrm{JS} \le \log 2$;
# Hellinger has no factor $\frac12$. The GAN generator is the odd one out: $f(1) = -\log 4$, so the
# GAN "divergence" is a divergence shifted by a constant. Adding $c\,(u - 1)$ to any generator
# leaves $D_f$ unchanged, since $\mathbb{E}_Q[p/q - 1] = 0$: the checks accept that.
#
# **Exercises 1.1–1.6.** Write the six generators. `u` is a float tensor of positive ratios; work
# elementwise.


# %%
def kl_f(u: torch.Tensor) -> torch.Tensor:
    """KL(P || Q) generator."""
    ### BEGIN SOLUTION
    return u * torch.log(u)
    ### END SOLUTION


def reverse_kl_f(u: torch.Tensor) -> torch.Tensor:
    """KL(Q || P) generator."""
    ### BEGIN SOLUTION
    return -torch.log(u)
    ### END SOLUTION


def pearson_f(u: torch.Tensor) -> torch.Tensor:
    """Pearson chi^2 generator."""
    ### BEGIN SOLUTION
    return (u - 1) ** 2
    ### END SOLUTION


def hellinger_f(u: torch.Tensor) -> torch.Tensor:
    """Squared Hellinger generator (no factor 1/2)."""
    ### BEGIN SOLUTION
    return (torch.sqrt(u) - 1) ** 2
    ### END SOLUTION


def js_f(u: torch.Tensor) -> torch.Tensor:
    """Jensen-Shannon generator."""
    ### BEGIN SOLUTION
    return 0.5 * (u * torch.log(u) - (u + 1) * torch.log((u + 1) / 2))
    ### END SOLUTION


def gan_f(u: torch.Tensor) -> torch.Tensor:
    """GAN-divergence generator (f(1) = -log 4)."""
    ### BEGIN SOLUTION
    return u * torch.log(u) - (u + 1) * torch.log(u + 1)
    ### END SOLUTION


# %% tags=["student"]
# Hint: read each generator off the table above. For JS, write the bracket first and halve it;
# check by hand that your f gives f(1) = 0 (and -log 4 for the GAN one).

# %% [markdown]
# Each check tests $f(1)$, convexity (the slope never decreases), the values, and finally the
# Monte-Carlo estimate of (1) with your $f$ between $P = \mathcal N(1, 0.5^2)$ and
# $Q = \mathcal N(0, 1)$, from $10^5$ samples of $Q$, against the exact value.

# %%
my_generators = {
    "kl": kl_f,
    "reverse_kl": reverse_kl_f,
    "pearson": pearson_f,
    "hellinger": hellinger_f,
    "js": js_f,
    "gan": gan_f,
}
for name, f in my_generators.items():
    checks.check_generator(name, f)

# %% [markdown]
# The generators side by side (from `coursekit.divergences`, so this runs even before you
# finish the exercises). All are convex and touch zero at $u = 1$ (the GAN one is shifted down by
# $\log 4$). They differ in how hard they punish $u \to 0$ (where $p \ll q$: the model puts mass
# where the data has none) and $u \to \infty$ (where $p \gg q$: data the model misses). Reverse KL
# blows up at $u \to 0$, KL and $\chi^2$ grow fastest at large $u$.

# %%
u = torch.linspace(0.01, 4, 400, dtype=torch.float64)
fig, ax = plt.subplots(figsize=(6, 4))
for name, d in divergences.DIVERGENCES.items():
    ax.plot(u, d.f(u), label=name)
ax.axvline(1, color="grey", lw=0.5)
ax.axhline(0, color="grey", lw=0.5)
ax.set(xlabel="u = p/q", ylabel="f(u)", ylim=(-1.6, 3))
ax.legend()
plt.show()

# %% [markdown]
# ### Exact values and Monte-Carlo estimates
#
# Between two 1-D Gaussians the KL and the squared Hellinger distance have closed forms; for
# the others our "true value" is (1) integrated numerically: the trapezoidal rule in float64 on a
# grid of 40 001 points over $[-20, 20]$ (`divergences.f_divergence_quadrature`, checked against
# `scipy.integrate.quad` and the closed forms in `tests/test_divergences.py`).
#
# **Exercise 1.7.** The KL between Gaussians, which every VAE uses:
#
# $$\mathrm{KL}\big(\mathcal N(\mu_p, \sigma_p^2) \,\|\, \mathcal N(\mu_q, \sigma_q^2)\big)
#   = \log\frac{\sigma_q}{\sigma_p} + \frac{\sigma_p^2 + (\mu_p - \mu_q)^2}{2 \sigma_q^2} - \frac12 .$$


# %%
def kl_gaussian(
    mu_p: torch.Tensor, std_p: torch.Tensor, mu_q: torch.Tensor, std_q: torch.Tensor
) -> torch.Tensor:
    """KL(N(mu_p, std_p^2) || N(mu_q, std_q^2)), elementwise."""
    ### BEGIN SOLUTION
    return torch.log(std_q / std_p) + (std_p**2 + (mu_p - mu_q) ** 2) / (2 * std_q**2) - 0.5
    ### END SOLUTION


_ = checks.check_kl_gaussian(kl_gaussian)

# %% [markdown]
# Now the Monte-Carlo estimate $\frac1n \sum_i f(p(x_i)/q(x_i))$, $x_i \sim Q$, of each divergence
# as the sample size $n$ grows, against the exact value.

# %%
MU_P, STD_P, MU_Q, STD_Q = 1.0, 0.5, 0.0, 1.0


def log_p(x):
    return divergences.gaussian_log_prob(x, MU_P, STD_P)


def log_q(x):
    return divergences.gaussian_log_prob(x, MU_Q, STD_Q)


grid = divergences.grid_1d(-20.0, 20.0, 40001)
exact = {
    name: float(divergences.f_divergence_quadrature(d.f, log_p, log_q, grid))
    for name, d in divergences.DIVERGENCES.items()
}
print(
    f"closed forms: KL = {float(divergences.kl_gaussian(MU_P, STD_P, MU_Q, STD_Q)):.6f}, "
    f"H^2 = {float(divergences.hellinger_gaussian(MU_P, STD_P, MU_Q, STD_Q)):.6f}"
)
print("quadrature:  ", {k: round(v, 6) for k, v in exact.items()})

sizes = utils.pick(
    smoke=[100, 1_000],
    cpu=[100, 1_000, 10_000, 100_000],
    gpu=[100, 1_000, 10_000, 100_000, 1_000_000],
)
REPEATS = utils.pick(smoke=3, cpu=20, gpu=50)
rel_error = {name: [] for name in divergences.DIVERGENCES}
for n in sizes:
    x_q = MU_Q + STD_Q * torch.randn(REPEATS, n, generator=gen, dtype=torch.float64)  # (R, n)
    for name, d in divergences.DIVERGENCES.items():
        estimates = d.f(torch.exp(log_p(x_q) - log_q(x_q))).mean(dim=1)  # (R,)
        rel_error[name].append(float(((estimates - exact[name]).abs() / abs(exact[name])).mean()))

fig, ax = plt.subplots(figsize=(6, 4))
for name, errs in rel_error.items():
    ax.loglog(sizes, errs, "o-", label=name)
ax.loglog(sizes, [1 / math.sqrt(n) for n in sizes], "k--", label="1/sqrt(n)")
ax.set(xlabel="samples n", ylabel="mean relative error")
ax.legend(fontsize=8)
plt.show()
print({name: f"{errs[-1]:.4f}" for name, errs in rel_error.items()})

# %% [markdown]
# The errors fall like $1/\sqrt n$, as for any average of independent terms; with $10^5$ samples
# they are all below about 0.6 % (KL the largest, JS and Hellinger about 0.1 %). The constant in front differs: $f(u)$ has a larger variance
# under $Q$ for the KL and $\chi^2$ (large $u$ in the right tail of $P$) than for JS or Hellinger,
# which are bounded. Here $P$ is narrower than $Q$ so $u$ is bounded; swap them and the KL and
# $\chi^2$ estimates would have heavy tails.

# %% [markdown]
# ## 3. Maximum likelihood is forward-KL minimisation
#
# $$\mathrm{KL}(p_d \,\|\, p_\theta) = \mathbb{E}_{p_d}[\log p_d(x)] - \mathbb{E}_{p_d}[\log p_\theta(x)]
#  = -H(p_d) - \mathbb{E}_{p_d}[\log p_\theta(x)] .$$
#
# The entropy $H(p_d)$ does not depend on $\theta$, so minimising the forward KL is maximising the
# expected log-likelihood, and with samples the average log-likelihood
# $\frac1N\sum_i \log p_\theta(x_i)$ is its Monte-Carlo estimate: **maximum likelihood = forward
# KL**. We check it on data from a two-mode mixture $p_d = \frac12\mathcal N(-3, 1) + \frac12 \mathcal N(3, 1)$ and
# a Gaussian model $p_\theta = \mathcal N(\mu, \sigma^2)$: gradient descent on the negative
# log-likelihood (NLL) of the samples, with the exact forward KL (by quadrature) tracked alongside.
# Their difference should stay at $H(p_d)$.

# %%
SEPARATION = 6.0  # distance between the two modes
weights = torch.tensor([0.5, 0.5])
stds = torch.tensor([1.0, 1.0])


def modes(separation: float) -> torch.Tensor:
    return torch.tensor([-separation / 2, separation / 2])


def log_p_data(x, separation=SEPARATION):
    return divergences.mixture_log_prob(x, weights, modes(separation), stds)


N_DATA = utils.pick(smoke=2_000, cpu=20_000, gpu=100_000)
MLE_STEPS = utils.pick(smoke=100, cpu=500, gpu=1000)
x_data = divergences.mixture_sample(N_DATA, weights, modes(SEPARATION), stds, generator=gen)

fit_grid = divergences.grid_1d(-15.0, 15.0, 3001)
lp_grid = log_p_data(fit_grid)
entropy = float(-torch.trapezoid(lp_grid.exp() * lp_grid, fit_grid))

mu = torch.tensor(1.0, requires_grad=True)
log_std = torch.tensor(0.0, requires_grad=True)
opt = torch.optim.Adam([mu, log_std], lr=0.05)
nll_curve, kl_curve = [], []
for _ in range(MLE_STEPS):
    nll = -divergences.gaussian_log_prob(x_data, mu, log_std.exp()).mean()
    with torch.no_grad():  # the exact KL at the same parameters as the NLL
        lq = divergences.gaussian_log_prob(fit_grid, mu.double(), log_std.exp().double())
        kl_curve.append(float(torch.trapezoid(lp_grid.exp() * (lp_grid - lq), fit_grid)))
        nll_curve.append(nll.item())
    opt.zero_grad()
    nll.backward()
    opt.step()

fig, ax = plt.subplots(figsize=(6, 3.5))
ax.plot(nll_curve, label="NLL on the samples")
ax.plot(kl_curve, label="exact KL(p_d || p_theta)")
ax.plot([n - k for n, k in zip(nll_curve, kl_curve)], label="NLL - KL")
ax.axhline(entropy, color="k", ls="--", lw=1, label=f"H(p_d) = {entropy:.3f}")
ax.set(xlabel="gradient step", ylabel="nats")
ax.legend()
plt.show()

mle_mu, mle_std = mu.item(), log_std.exp().item()
moment_mu, moment_std = divergences.mixture_moments(weights, modes(SEPARATION), stds)
gap = [n - k for n, k in zip(nll_curve, kl_curve)]
print(
    f"MLE fit: mu = {mle_mu:.3f}, std = {mle_std:.3f};  mixture moments: {moment_mu:.3f}, {moment_std:.3f}"
)
print(f"NLL - KL over training: min {min(gap):.4f}, max {max(gap):.4f};  H(p_d) = {entropy:.4f}")

# %% [markdown]
# You should see NLL and KL fall together, offset by a constant: NLL − KL stays within about
# 0.01 nats of $H(p_d) \approx 2.11$ during the whole run (the small wobble is the sampling
# error of $N = 20\,000$ samples). The maximum-likelihood Gaussian is the one matching the
# mixture's mean and standard deviation, $\mu = 0$, $\sigma = \sqrt{1 + 3^2} \approx 3.16$, up to
# about 0.02: setting the gradient of $\mathbb{E}_{p_d}[\log p_\theta]$ to zero gives exactly
# moment matching.

# %% [markdown]
# ## 4. Forward KL covers modes, reverse KL seeks one
#
# Fit one Gaussian $q$ to the two-mode $p$ in both directions:
#
# - **forward** $\mathrm{KL}(p\,\|\,q) = \int p \log\frac{p}{q}$ is large where $p > 0$ but
#   $q \approx 0$. Missing a mode is very expensive, so $q$ stretches over both: *mode covering*
#   (and puts mass between the modes, where $p$ has none);
# - **reverse** $\mathrm{KL}(q\,\|\,p) = \int q \log\frac{q}{p}$ is large where $q > 0$ but
#   $p \approx 0$. Mass between the modes is very expensive, so $q$ sits on one mode:
#   *mode seeking*.
#
# Both fits below minimise the exact KL (by quadrature on a grid) with Adam
# (`divergences.fit_gaussian`). The reverse KL has several local minima (one per mode, and a
# broad one in the middle); we start from the middle and from the right mode and keep the better.
# Move the slider to change the separation of the two modes.

# %%
REVERSE_STEPS = utils.pick(smoke=200, cpu=400, gpu=400)


def fit_both(separation: float):
    lp = lambda x: log_p_data(x, separation)
    forward = divergences.fit_gaussian(
        lp, fit_grid, direction="forward", mu0=0.5, steps=REVERSE_STEPS
    )
    reverse = min(
        (
            divergences.fit_gaussian(lp, fit_grid, direction="reverse", mu0=m0, steps=REVERSE_STEPS)
            for m0 in (0.0, separation / 2)
        ),
        key=lambda fit: fit.kl,
    )
    return forward, reverse


def draw(separation: float = SEPARATION, fits=None) -> None:
    forward, reverse = fits if fits is not None else fit_both(separation)
    x = fit_grid
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.fill_between(x, log_p_data(x, separation).exp(), color="grey", alpha=0.3, label="p (data)")
    for fit, name in [(forward, "forward KL(p||q)"), (reverse, "reverse KL(q||p)")]:
        q = divergences.gaussian_log_prob(x, fit.mu, fit.std).exp()
        ax.plot(x, q, lw=2, label=f"{name}: mu={fit.mu:.2f}, std={fit.std:.2f}")
    ax.set(xlim=(-10, 10), xlabel="x", title=f"modes at ±{separation / 2:.1f}")
    ax.legend(fontsize=8, loc="upper left")
    plt.show()


forward_fit, reverse_fit = fit_both(SEPARATION)
draw(SEPARATION, (forward_fit, reverse_fit))  # the static figure, at the default separation
print(f"forward: KL(p||q) = {forward_fit.kl:.4f};  reverse: KL(q||p) = {reverse_fit.kl:.4f}")

# %%
_ = widgets.interact(
    draw,
    fits=widgets.fixed(None),
    separation=widgets.FloatSlider(
        value=SEPARATION, min=0.0, max=10.0, step=0.5, continuous_update=False
    ),
)

# %% [markdown]
# At separation 6 you should see the forward fit at $\mu \approx 0$, $\sigma \approx 3.16$ (the
# moment-matching optimum, to within $10^{-8}$) with its peak where the data has almost no mass,
# and the reverse fit on the right mode, $\mu \approx 2.98$, $\sigma \approx 1.02$, with
# $\mathrm{KL}(q\,\|\,p) \approx 0.69 \approx \log 2$: on one of two equal, well separated modes
# the reverse KL costs exactly the $\log 2$ of ignoring half the mass. Slide the separation
# down: below about 5.6 (between the slider's 5.5 and 6) a broad Gaussian in the middle becomes
# the better reverse-KL fit, and at separation 0 all fits coincide. Maximum likelihood (forward KL)
# gives blurry, mass-covering models; reverse-KL-like objectives (GANs behave partly like this)
# give sharp samples but can drop modes.

# %% [markdown]
# ## 5. Estimating a divergence from samples: variational bounds
#
# Section 2 needed both densities. A GAN has only samples of $p_d$ and of the generator. The
# trick (Nguyen, Wainwright & Jordan 2010; f-GAN, Nowozin et al. 2016) is the **convex
# conjugate** $f^*(t) = \sup_u \{u t - f(u)\}$. Since $f$ is convex, $f(u) = \sup_t \{t u - f^*(t)\}$,
# and putting this inside (1) with a function $T(x)$ in place of each pointwise $t$:
#
# $$D_f(P\,\|\,Q) \;\ge\; \sup_T \; \mathbb{E}_{x\sim P}[T(x)] - \mathbb{E}_{x\sim Q}[f^*(T(x))] ,\tag{2}$$
#
# with equality at $T^*(x) = f'\big(p(x)/q(x)\big)$. The right side needs only samples, and $T$
# can be a neural network (a *critic*) trained by gradient ascent. For the KL,
# $f^*(t) = e^{t - 1}$ (the NWJ bound). A tighter bound for the KL is Donsker–Varadhan:
#
# $$\mathrm{KL}(P\,\|\,Q) \ge \sup_T \; \mathbb{E}_P[T(x)] - \log \mathbb{E}_Q\big[e^{T(x)}\big] ,\tag{3}$$
#
# optimal at $T = \log\frac{p}{q} + c$ for any constant $c$.
#
# **Exercise 1.8.** The bound (2) from critic values `t_p` $= T(x_i)$, $x_i \sim P$, and `t_q`,
# given the conjugate `f_star`. **Exercise 1.9.** The bound (3); use `torch.logsumexp` for the
# log of a mean of exponentials, stably.


# %%
def fgan_bound(t_p: torch.Tensor, t_q: torch.Tensor, f_star) -> torch.Tensor:
    """E_P[T] - E_Q[f*(T)]; t_p (N,), t_q (M,) -> scalar."""
    ### BEGIN SOLUTION
    return t_p.mean() - f_star(t_q).mean()
    ### END SOLUTION


def donsker_varadhan(t_p: torch.Tensor, t_q: torch.Tensor) -> torch.Tensor:
    """E_P[T] - log E_Q[exp T]; t_p (N,), t_q (M,) -> scalar."""
    ### BEGIN SOLUTION
    return t_p.mean() - (torch.logsumexp(t_q, dim=0) - math.log(t_q.shape[0]))
    ### END SOLUTION


checks.check_fgan_bound(fgan_bound)
_ = checks.check_donsker_varadhan(donsker_varadhan)

# %% tags=["student"]
# Hint: log E_Q[exp T] over M samples is logsumexp(t_q) - log M. A stray exp overflows for
# large T; logsumexp does not.

# %% [markdown]
# Now train three small critics, an MLP $\mathbb{R} \to \mathbb{R}$, on samples of
# $P = \mathcal N(1, 0.5^2)$ and $Q = \mathcal N(0, 1)$ only: the KL by the f-GAN/NWJ bound (2), the KL
# by Donsker–Varadhan (3), and the JS by (2). The raw network output $v$ goes through the output
# activation $T = g(v)$ of f-GAN's Table 2, which maps $\mathbb{R}$ into the domain of $f^*$ (for JS,
# $g(v) = \frac12(\log 2 + \log\sigma(v))$). The curves are each bound on a fixed held-out sample,
# and the dashed lines the exact values.

# %%
CRITIC_STEPS = utils.pick(smoke=40, cpu=600, gpu=2000)
EVAL_SIZE = utils.pick(smoke=4_096, cpu=100_000, gpu=200_000)


def sample_p(n, generator):
    return MU_P + STD_P * torch.randn(n, 1, generator=generator)


def sample_q(n, generator):
    return MU_Q + STD_Q * torch.randn(n, 1, generator=generator)


bounds = {
    "KL, f-GAN / NWJ (2)": (
        lambda a, b: divergences.fgan_bound(divergences.get("kl"), a, b),
        exact["kl"],
    ),
    "KL, Donsker-Varadhan (3)": (divergences.donsker_varadhan_bound, exact["kl"]),
    "JS, f-GAN (2)": (
        lambda a, b: divergences.fgan_bound(divergences.get("js"), a, b),
        exact["js"],
    ),
}
critics, traces = {}, {}
for label, (bound, _) in bounds.items():
    critics[label] = networks.MLP(1, 1, hidden=64, depth=2)
    traces[label] = divergences.train_critic(
        critics[label], bound, sample_p, sample_q, steps=CRITIC_STEPS, batch_size=256, lr=2e-3,
        eval_every=max(1, CRITIC_STEPS // 50), eval_size=EVAL_SIZE, generator=gen,
    )  # fmt: skip

fig, ax = plt.subplots(figsize=(7, 4))
for (label, (_, truth)), color in zip(bounds.items(), ["C0", "C1", "C2"]):
    ax.plot(traces[label].steps, traces[label].estimates, color=color, label=label)
    ax.axhline(truth, color=color, ls="--", lw=1)
ax.set(xlabel="critic step", ylabel="bound (nats)", ylim=(-0.2, 1.0))
ax.legend()
plt.show()
final = {label: traces[label].estimates[-1] for label in bounds}
for label, (_, truth) in bounds.items():
    print(f"{label:28s} estimate {final[label]:.4f}   exact {truth:.4f}   "
          f"rel. error {abs(final[label] - truth) / truth:.3f}   ({traces[label].seconds:.1f} s)")  # fmt: skip

# %% [markdown]
# You should see all three bounds start near or below 0 and reach their exact values (KL ≈ 0.818,
# JS ≈ 0.224) within about 100 steps, then stay within 1 % of them (NWJ 0.824, DV 0.816,
# JS 0.223 in our run). They climb from below because (2) and (3) are lower bounds: a better
# critic can only raise them. A value slightly *above* the truth, like NWJ's here, is Monte-Carlo
# error of the held-out average, not a violated bound. Let us compare the learned critics with the
# optimal ones, $T^* = f'(p/q)$, i.e. $1 + \log\frac pq$ for NWJ and $\frac12\log\frac{2p}{p+q}$
# for JS (DV's optimum is only defined up to a constant, so we shift it to match at $x = 1$).

# %%
x_plot = torch.linspace(-3, 3, 200)
u_plot = torch.exp(log_p(x_plot) - log_q(x_plot))
with torch.no_grad():
    learned = {label: critic(x_plot[:, None]).squeeze(-1) for label, critic in critics.items()}
fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
kl_div, js_div = divergences.get("kl"), divergences.get("js")
optimal = {
    "KL, f-GAN / NWJ (2)": (kl_div.g(learned["KL, f-GAN / NWJ (2)"]), kl_div.f_prime(u_plot)),
    "KL, Donsker-Varadhan (3)": (learned["KL, Donsker-Varadhan (3)"], torch.log(u_plot)),
    "JS, f-GAN (2)": (js_div.g(learned["JS, f-GAN (2)"]), js_div.f_prime(u_plot)),
}
for ax, (label, (t_learned, t_star)) in zip(axes, optimal.items()):
    if "Donsker" in label:  # DV is invariant to a constant shift of T
        t_star = t_star - t_star[133] + t_learned[133]  # x_plot[133] ~ 1
    ax.plot(x_plot, t_star, "k--", label="optimal T* = f'(p/q)")
    ax.plot(x_plot, t_learned, label="learned T")
    ax.set(title=label, xlabel="x")
    ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# The learned critics should follow $T^*$ where the samples are (roughly $x \in [-1.5, 2.5]$) and
# drift from it in the tails, where neither $P$ nor $Q$ puts samples to learn from. That is the
# general picture: a critic only knows the density ratio where it has data.

# %% [markdown]
# ## 6. The optimal discriminator of a GAN
#
# A GAN's discriminator $D(x) \in (0, 1)$ maximises
#
# $$V(G, D) = \mathbb{E}_{x\sim p_d}[\log D(x)] + \mathbb{E}_{x \sim p_m}[\log(1 - D(x))] ,$$
#
# where $p_m$ is the generator's distribution. Pointwise, $a \log D + b \log(1 - D)$ with
# $a = p_d(x)$, $b = p_m(x)$ is maximised at $D = a/(a + b)$, so (Goodfellow et al. 2014, Prop. 1)
#
# $$D^*(x) = \frac{p_d(x)}{p_d(x) + p_m(x)} = \sigma\big(\log p_d(x) - \log p_m(x)\big) .$$
#
# Putting it back, with $M = \frac{p_d + p_m}{2}$:
# $V(G, D^*) = \mathbb{E}_{p_d}\big[\log\frac{p_d}{2M}\big] + \mathbb{E}_{p_m}\big[\log\frac{p_m}{2M}\big] = 2\,\mathrm{JS}(p_d\,\|\,p_m) - \log 4$.
# So a generator trained against a perfect discriminator minimises the JS divergence; this is
# also the GAN generator of Section 2 and the f-GAN bound (2) with $T = \log D$.
#
# **Exercise 1.10.** $D^*$ from the two log-densities. Work in log space: the sigmoid form is
# stable where both densities underflow.


# %%
def optimal_discriminator(log_p_data: torch.Tensor, log_p_model: torch.Tensor) -> torch.Tensor:
    """D*(x) = p_d / (p_d + p_m) from log-densities (N,) -> (N,)."""
    ### BEGIN SOLUTION
    return torch.sigmoid(log_p_data - log_p_model)
    ### END SOLUTION


_ = checks.check_optimal_discriminator(optimal_discriminator)

# %% [markdown]
# Check $V(G, D^*) = 2\,\mathrm{JS} - \log 4$ with $p_d$ the two-mode mixture and $p_m$ the
# forward-KL Gaussian of Section 4: $V$ by Monte Carlo with $D^*$, the JS by quadrature.

# %%
N_GAN = utils.pick(smoke=20_000, cpu=400_000, gpu=2_000_000)


def log_p_model(x):
    return divergences.gaussian_log_prob(x, forward_fit.mu, forward_fit.std)


x_d = divergences.mixture_sample(N_GAN, weights, modes(SEPARATION), stds, generator=gen).double()
x_m = forward_fit.mu + forward_fit.std * torch.randn(N_GAN, generator=gen, dtype=torch.float64)
v_star = float(
    divergences.gan_value(
        divergences.optimal_discriminator_logit(log_p_data(x_d), log_p_model(x_d)),
        divergences.optimal_discriminator_logit(log_p_data(x_m), log_p_model(x_m)),
    )
)
js_gan = float(
    divergences.f_divergence_quadrature(divergences.js_f, log_p_data, log_p_model, fit_grid)
)
print(
    f"V(G, D*) by Monte Carlo = {v_star:.4f};  2 JS - log 4 = {2 * js_gan - math.log(4):.4f}  (JS = {js_gan:.4f})"
)

x = fit_grid
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.fill_between(x, log_p_data(x).exp(), alpha=0.3, color="grey", label="p_d")
ax.plot(x, log_p_model(x).exp(), label="p_m (forward-KL Gaussian)")
d_star = torch.sigmoid(divergences.optimal_discriminator_logit(log_p_data(x), log_p_model(x)))
ax.plot(x, d_star, label="D*(x)")
ax.set(xlim=(-10, 10), xlabel="x")
ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# You should see $V(G, D^*)$ and $2\,\mathrm{JS} - \log 4$ agree to about 0.001 (the Monte-Carlo
# error), both about −1.13 ($\mathrm{JS} \approx 0.128$ nats, well below its maximum
# $\log 2 \approx 0.693$). $D^*$ rises to about 0.72 on the modes, which the model under-weights,
# and drops to about 0.03 between them and to 0 far out, where the broad Gaussian puts mass the
# data does not have; it is exactly ½ where the two densities cross. A real discriminator is a network trained towards this $D^*$, like the JS
# critic of Section 5.

# %% [markdown]
# ## Summary
#
# - An f-divergence is $\mathbb{E}_Q[f(p/q)]$ with $f$ convex, $f(1) = 0$; KL, reverse KL, $\chi^2$,
#   Hellinger and JS differ only in $f$.
# - Maximum likelihood minimises the forward KL: it covers every mode. The reverse KL seeks one.
# - Convex duality turns any f-divergence into a maximisation over critics that needs only
#   samples; a small network gets within a few percent of the exact value here.
# - The optimal GAN discriminator is $p_d/(p_d + p_m)$, and against it the generator minimises
#   $2\,\mathrm{JS} - \log 4$.
#
# ## Recorded numbers


# %%
def rel_error(label: str, truth: float) -> float:
    return abs(final[label] - truth) / truth


mle_error = max(abs(mle_mu - moment_mu), abs(mle_std - moment_std))
forward_error = max(abs(forward_fit.mu - moment_mu), abs(forward_fit.std - moment_std))
mode_distance = abs(abs(reverse_fit.mu) - SEPARATION / 2)  # to the nearest mode
gan_error = abs(v_star - (2 * js_gan - math.log(4)))

report.record(
    "variational_kl_nwj_rel_error", rel_error("KL, f-GAN / NWJ (2)", exact["kl"]), "<= 0.10"
)
report.record(
    "variational_kl_dv_rel_error", rel_error("KL, Donsker-Varadhan (3)", exact["kl"]), "<= 0.10"
)
report.record("variational_js_rel_error", rel_error("JS, f-GAN (2)", exact["js"]), "<= 0.10")
report.record("mle_fit_abs_error", mle_error, target="<= 0.10")
report.record("forward_kl_fit_abs_error", forward_error, target="<= 0.01")
report.record("reverse_kl_fit_mode_distance", mode_distance, target="<= 0.10")
report.record("reverse_kl_fit_std_error", abs(reverse_fit.std - 1.0), target="<= 0.10")
_ = report.record("gan_value_vs_2js_minus_log4", gan_error, target="<= 0.02")
