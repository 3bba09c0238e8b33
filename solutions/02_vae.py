# %% [markdown]
# # Lecture 02: Latent variable models, the VAE and the ELBO
#
# A latent variable model explains each data point $x$ by an unobserved cause $z$:
# $p_\theta(x) = \int p_\theta(x \mid z)\, p(z)\, dz$. Sampling is easy (draw $z$, then $x$);
# the likelihood is an intractable integral. The variational autoencoder (Kingma & Welling
# 2014; Rezende et al. 2014) trains such a model through a lower bound on $\log p_\theta(x)$,
# the ELBO, with an encoder $q_\phi(z \mid x)$ that guesses which $z$ explains $x$.
#
# After this lecture you can
#
# - say why an autoencoder is not a generative model, and what a VAE adds;
# - derive $\log p(x) = \mathrm{ELBO} + \mathrm{KL}(q(z\mid x)\,\|\,p(z\mid x))$ and write the
#   closed-form KL of a diagonal Gaussian to $\mathcal N(0, I)$;
# - explain the reparameterization trick and measure why it beats the score-function estimator;
# - pick a decoder likelihood that fits the data and report bits/dim honestly;
# - diagnose posterior collapse (active units) and fix it with KL annealing or free bits;
# - train a $\beta$-VAE and score its disentanglement against known factors;
# - tighten the bound with importance weighting (IWAE) and estimate $\log p(x)$;
# - condition a VAE on a class label.

# %%
import math

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch

from coursekit import data, likelihoods, metrics, networks, plot, report, train, utils, vae
from coursekit.exercises import vae as checks
from coursekit.metrics import disentanglement as disentanglement

gen = utils.seed_everything(0)
DEV = utils.device()
print("profile:", utils.profile(), "| device:", utils.describe_device(DEV))


def mlp_vae(likelihood, x_shape, latent_dim, hidden, *, num_classes=0, **kwargs):
    """A VAE (or, with num_classes, a conditional VAE) with two-hidden-layer MLPs."""
    D, P = math.prod(x_shape), math.prod(likelihood.param_shape(x_shape))
    encoder = torch.nn.Sequential(
        torch.nn.Flatten(), networks.MLP(D + num_classes, 2 * latent_dim, hidden, depth=2)
    )
    decoder = networks.MLP(latent_dim + num_classes, P, hidden, depth=2)
    if num_classes:
        return vae.ConditionalVAE(
            encoder, decoder, likelihood, num_classes=num_classes,
            latent_dim=latent_dim, x_shape=x_shape, **kwargs,
        )  # fmt: skip
    return vae.VAE(encoder, decoder, likelihood, latent_dim=latent_dim, x_shape=x_shape, **kwargs)


def test_bpd(model, x, y=None):
    """-ELBO on x in bits/dim (one reparameterized sample per image; the KL is exact).

    A discrete figure for a mass decoder; for a Gaussian (a density) the continuous one.
    """
    model.eval()
    with torch.no_grad():
        elbo = model.elbo(x.to(DEV), None if y is None else y.to(DEV), generator=gen).elbo
    return float(metrics.bits_per_dim(-elbo.mean(), model.dims))


# %% [markdown]
# We work on sklearn's 8×8 digits: 1501 training and 296 test images with 17 grey levels
# $0..16$, shown as $x = k/16 \in [0, 1]$. They are small enough to train every model of this
# lecture on a laptop CPU in seconds.

# %%
digits_train, digits_test = data.digits("train"), data.digits("test")
x_train, x_test = digits_train.float(), digits_test.float()  # (N, 1, 8, 8) in [0, 1]
plot.image_grid(x_train[:32], nrow=16, title="8x8 digits")
plt.show()

# %% [markdown]
# ## 1. An autoencoder is not a generative model
#
# An autoencoder compresses $x$ into a code $z = f(x)$ and decodes it back, trained to
# reconstruct. We train one with an 8-dimensional code, using the same decoder likelihood as
# the VAE below (so the only difference is that $z$ is a point, not a distribution).

# %%
AE_STEPS = utils.pick(smoke=20, cpu=1000, gpu=3000)
LATENT = 8
HIDDEN = utils.pick(smoke=32, cpu=256, gpu=256)
ae = vae.Autoencoder(
    torch.nn.Sequential(torch.nn.Flatten(), networks.MLP(64, LATENT, HIDDEN, depth=2)),
    networks.MLP(
        LATENT,
        math.prod(likelihoods.DiscretizedLogistic(17).param_shape((1, 8, 8))),
        HIDDEN,
        depth=2,
    ),
    likelihoods.DiscretizedLogistic(17),
    latent_dim=LATENT,
    x_shape=(1, 8, 8),
)
ae_history = train.fit(ae, x_train, steps=AE_STEPS, lr=2e-3, progress=False, generator=gen)
ae.eval()
with torch.no_grad():
    codes = ae.encode(x_test.to(DEV))  # (N, 8)
    ae_random = ae.decode_to_x(torch.randn(64, LATENT, generator=gen).to(DEV))
    a, b = codes[0], codes[1]
    ts = torch.linspace(0, 1, 10, device=DEV).view(-1, 1)
    ae_path = ae.decode_to_x((1 - ts) * a + ts * b)  # (10, 1, 8, 8)

fig, axes = plt.subplots(1, 4, figsize=(14, 3.5))
plot.image_grid(x_test[:16], nrow=4, ax=axes[0], title="test images")
plot.image_grid(
    ae.reconstruct(x_test[:16].to(DEV)).cpu(), nrow=4, ax=axes[1], title="reconstructions"
)
plot.image_grid(ae_random[:16].cpu(), nrow=4, ax=axes[2], title="decoded z ~ N(0, I)")
plot.image_grid(ae_path.cpu(), nrow=5, ax=axes[3], title="straight path between two codes")
plt.show()
print("code std per dimension:", codes.std(0).cpu().numpy().round(1))
ae_fcd = metrics.fcd(
    ae.decode_to_x(torch.randn(len(x_test), LATENT, generator=gen).to(DEV)).cpu(), digits_test
)
print("FCD of decoded N(0, I) codes:", ae_fcd)

# %% [markdown]
# You should see sharp reconstructions, but random codes decode to smudges (their FCD is
# about 250, 15 times the real-vs-real floor of 16, in the cpu profile) and the straight path between two
# codes passes through shapes that are not digits. The codes spread over an arbitrary region
# of $\mathbb R^8$ (look at their standard deviations) with holes in it, and nothing told the
# decoder what to do outside the training codes. **What should $z$ be at test time?** A
# generative model needs a distribution $p(z)$ to sample from, and a decoder that makes sense
# of everything that distribution produces.

# %% [markdown]
# ## 2. The evidence lower bound
#
# Fix a prior $p(z) = \mathcal N(0, I)$ and a decoder $p_\theta(x \mid z)$. The likelihood
# $p_\theta(x) = \int p_\theta(x\mid z)p(z)\,dz$ is intractable, and so is the posterior
# $p_\theta(z\mid x) = p_\theta(x\mid z)p(z)/p_\theta(x)$. Take *any* distribution
# $q_\phi(z \mid x)$ (the encoder). Since $\log p_\theta(x)$ does not depend on $z$,
#
# $$\log p_\theta(x) = \mathbb E_{q}\Big[\log \frac{p_\theta(x, z)}{q_\phi(z\mid x)}\Big]
#   + \mathbb E_{q}\Big[\log \frac{q_\phi(z \mid x)}{p_\theta(z\mid x)}\Big]
#   = \mathrm{ELBO}(x) + \mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p_\theta(z\mid x)\big). \tag{1}$$
#
# The KL is $\ge 0$, so the ELBO is a lower bound, tight exactly when $q$ is the true
# posterior. Maximizing it over $\theta$ and $\phi$ together raises the likelihood *and*
# pulls $q$ towards the posterior. Splitting $p_\theta(x, z) = p_\theta(x\mid z)p(z)$:
#
# $$\mathrm{ELBO}(x) = \underbrace{\mathbb E_{q_\phi(z\mid x)}[\log p_\theta(x \mid z)]}_{\text{reconstruction}}
#   - \underbrace{\mathrm{KL}\big(q_\phi(z\mid x)\,\|\,p(z)\big)}_{\text{prior matching}}. \tag{2}$$
#
# The first term is an autoencoder's objective with a noisy code; the second keeps every
# posterior close to $\mathcal N(0, I)$, so that samples of the prior land where the decoder
# was trained: the answer to section 1's question.
#
# With $q_\phi(z \mid x) = \mathcal N(\mu, \operatorname{diag}\sigma^2)$ (the encoder outputs
# $\mu$ and $\log\sigma^2$, `logvar`) the prior-matching term has a closed form:
#
# $$\mathrm{KL}\big(\mathcal N(\mu, \operatorname{diag}\sigma^2)\,\|\,\mathcal N(0, I)\big)
#   = \tfrac12 \sum_{j=1}^{d} \left(\mu_j^2 + \sigma_j^2 - \log \sigma_j^2 - 1\right). \tag{3}$$
#
# **Exercise 2.1.** Write eq. (3). `mu` and `logvar` are `(B, d)`; return one KL per example, `(B,)`.


# %%
def kl_diag_gaussian(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, diag(exp(logvar))) || N(0, I)), (B,)."""
    ### BEGIN SOLUTION
    return 0.5 * (mu.pow(2) + logvar.exp() - logvar - 1).sum(-1)
    ### END SOLUTION


checks.check_kl_diag_gaussian(kl_diag_gaussian)

# %% [markdown]
# ## 3. The reparameterization trick
#
# The reconstruction term is an expectation over $q_\phi$, whose parameters we differentiate.
# Writing the sample as a deterministic, differentiable function of $\phi$ and parameter-free
# noise, $z = \mu + \sigma \odot \varepsilon$ with $\varepsilon \sim \mathcal N(0, I)$, moves
# $\phi$ inside the expectation:
# $\nabla_\phi \mathbb E_{q_\phi}[f(z)] = \mathbb E_{\varepsilon}[\nabla_\phi f(\mu + \sigma\varepsilon)]$.
#
# **Exercise 2.2.** Write the reparameterized sample from `mu`, `logvar` and the noise `eps`.


# %%
def reparameterize(mu: torch.Tensor, logvar: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, differentiable in mu and logvar."""
    ### BEGIN SOLUTION
    return mu + torch.exp(0.5 * logvar) * eps
    ### END SOLUTION


checks.check_reparameterize(reparameterize)

# %% [markdown]
# The alternative, which works for any $q$ (even discrete), is the **score-function**
# (REINFORCE) estimator: $\nabla_\phi \mathbb E_{q_\phi}[f(z)] = \mathbb E_{q_\phi}[f(z)\,
# \nabla_\phi \log q_\phi(z)]$. Both are unbiased. We compare their variance on one
# objective, $\mathbb E_{z\sim\mathcal N(\mu, \sigma^2)}[(z - 2)^2]$ at $\mu = 0, \sigma = 1$,
# whose gradient in $\mu$ is exactly $2(\mu - 2) = -4$. Each estimate averages $n$ samples; we
# repeat it many times and measure the spread. Both are computed by autograd: the score
# function through the surrogate $f(z)_{\text{detached}} \log q(z)$.

# %%
REPEATS = utils.pick(smoke=50, cpu=2000, gpu=2000)
f = lambda z: (z - 2) ** 2
variances = {"reparameterization": [], "score function": []}
ns = [1, 4, 16, 64, 256, 1024]
for n in ns:
    mu = torch.zeros(REPEATS, 1, requires_grad=True)  # one independent estimate per row
    eps = torch.randn(REPEATS, n, generator=gen)
    z = vae.reparameterize(mu, torch.zeros(REPEATS, 1), eps)  # (R, n), the reference version
    (g_rep,) = torch.autograd.grad(f(z).mean(1).sum(), mu)
    log_q = -0.5 * (z.detach() - mu) ** 2  # log N(z; mu, 1) up to a constant
    (g_sf,) = torch.autograd.grad((f(z.detach()) * log_q).mean(1).sum(), mu)
    variances["reparameterization"].append(g_rep.var().item())
    variances["score function"].append(g_sf.var().item())
    print(f"n={n:5d}  mean grad: reparam {g_rep.mean():+.2f}, score {g_sf.mean():+.2f}  (exact -4)")

fig, ax = plt.subplots(figsize=(5, 3.5))
for name, v in variances.items():
    ax.loglog(ns, v, "o-", label=name)
ax.set(xlabel="samples per estimate n", ylabel="variance of the gradient estimate")
ax.legend()
plt.show()
ratio = variances["score function"][0] / variances["reparameterization"][0]
print(f"variance ratio score / reparam: {ratio:.1f}")

# %% [markdown]
# You should see both estimators centred on $-4$ and both variances falling as $1/n$, with
# the score function about 20 times noisier at every $n$. Here we can check it by hand: at
# $n = 1$ the reparameterized estimate $2(z - 2)$ has variance 4, the score-function estimate
# $(z-2)^2 z$ has variance $\mathbb E[(z-2)^4z^2] - 16 = 87$. To match the reparameterized
# gradient's accuracy, the score function needs about 20 times the samples: this is why VAEs
# reparameterize.

# %% [markdown]
# ## 4. Decoders and likelihoods
#
# The reconstruction term $\log p_\theta(x\mid z)$ needs a likelihood that fits the data.
# `coursekit.likelihoods` has four:
#
# - **Bernoulli** for binary images: a probability mass.
# - **Categorical** over the 17 grey levels of every pixel: a mass, 17 logits per pixel.
# - **Discretized logistic** (Salimans et al. 2017): a logistic density with mean $m$ and scale
#   $s$ integrated over each grey level's bin $[x - \tfrac1{32}, x + \tfrac1{32}]$, the end
#   bins stretched to $\pm\infty$: a mass with two parameters per pixel that knows that
#   level 7 is close to level 8.
# - **Gaussian** $\mathcal N(x; m, \sigma^2)$ for continuous data: a *density*. With a fixed
#   $\sigma$, $-\log p = \|x - m\|^2/2\sigma^2 + \text{const}$: a squared error, whose best $m$
#   is the *average* of the images compatible with $z$, hence blur. A small fixed $\sigma$
#   makes reconstruction dominate the KL; a large one lets the KL win and $z$ carry little.
#
# **Units.** All numbers are in bits per dimension: $-\log_2 P(x)/D$ with $D = 64$. For the
# masses (categorical, discretized logistic) $P(x)$ is the probability of the discrete image
# itself, directly comparable with independent pixels (2.43 bits/dim) and a linear
# autoregressive model (2.04) on the same data. A density is not a probability: for the
# Gaussian we train on **uniformly dequantized** data $x + u$, $u \sim U(-\tfrac1{32},
# \tfrac1{32})$, and report $-(\log p(x + u) + D \log \tfrac1{16})/(D\ln 2)$, which upper-bounds
# the discrete negative log-likelihood (Theis et al. 2016). The density's own figure,
# $-\log p(x + u)/(D\ln 2)$ (logged as `bpd_continuous` during training), is $\log_2 16 = 4$
# bits/dim lower and is *not* a bits/dim of the digits: never compare it with the masses.

# %%
LIK_STEPS = utils.pick(smoke=20, cpu=1000, gpu=3000)


def dequantize(x):  # uniform noise inside each grey level's bin of width 1/16
    return x + (torch.rand(x.shape, generator=gen) - 0.5).to(x.device) / 16


def dequantized_batches(x, batch_size=128):
    while True:
        idx = torch.randint(0, len(x), (batch_size,), generator=gen)
        yield dequantize(x[idx]), None


decoders = {
    "categorical": likelihoods.Categorical(17),
    "discretized logistic": likelihoods.DiscretizedLogistic(17),
    "Gaussian, sigma = 0.2": likelihoods.Gaussian(std=0.2),
    "Gaussian, learned sigma": likelihoods.Gaussian(std=None, min_std=0.01),
}
lik_models, lik_bpd = {}, {}
for name, lik in decoders.items():
    model = mlp_vae(lik, (1, 8, 8), LATENT, HIDDEN)
    gaussian = isinstance(lik, likelihoods.Gaussian)
    source = dequantized_batches(x_train) if gaussian else x_train
    train.fit(model, source, steps=LIK_STEPS, lr=2e-3, progress=False, generator=gen)
    x_eval = dequantize(x_test) if gaussian else x_test
    # a density's figure is continuous; with the bin width, log P(bin) >= log p(x + u) + D log(1/16)
    lik_bpd[name] = test_bpd(model, x_eval) + (math.log2(16) if gaussian else 0.0)
    lik_models[name] = model

fig, axes = plt.subplots(1, len(decoders), figsize=(14, 3.5))
z = torch.randn(25, LATENT, generator=gen).to(DEV)
for ax, (name, model) in zip(axes, lik_models.items()):
    plot.image_grid(
        model.decode_to_x(z).cpu(), nrow=5, ax=ax, title=f"{name}\n{lik_bpd[name]:.2f} bits/dim"
    )
plt.show()
print({k: round(v, 3) for k, v in lik_bpd.items()})

# %% [markdown]
# Shown are the decoder means $\mathbb E[x\mid z]$ for the same 25 prior samples. In the cpu
# profile you should see the learned-$\sigma$ Gaussian give the blurriest, greyest digits
# (about 2.6 bits/dim), the fixed-$\sigma$ Gaussian by far the worst bound (about 3.5) with
# bright but blotchy strokes, the categorical decoder about 2.3 (17 logits per pixel overfit
# 1501 images: its training loss keeps falling while the test bound rises), and the discretized
# logistic about 2.0, already below the linear autoregressive model's 2.04. The discretized
# logistic wins with 8.5 times fewer outputs than the categorical one, because it knows that
# neighbouring grey levels are close. We use it from now on.

# %% [markdown]
# ## 5. Training a VAE
#
# The cpu profile trains on the 8×8 digits, the gpu profile on Fashion-MNIST (28×28, 256
# levels). The loss is the negative ELBO; we log its two terms separately: `recon`
# ($-\log p(x\mid z)$ at one sample) and `kl` (eq. 3), both in nats per image.

# %%
DATASET = utils.pick(smoke="digits", cpu="digits", gpu="fashion-mnist")
if DATASET == "digits":
    main_train, main_test, LEVELS, CLASSIFIER = digits_train, digits_test, 17, "digits"
else:
    main_train, main_test = data.fashion_mnist("train"), data.fashion_mnist("test")
    LEVELS, CLASSIFIER = 256, "fashion"
X_SHAPE = tuple(main_train.images.shape[1:])
MAIN_STEPS = utils.pick(smoke=30, cpu=2000, gpu=30000)
MAIN_LATENT = utils.pick(smoke=4, cpu=16, gpu=32)
MAIN_HIDDEN = utils.pick(smoke=32, cpu=256, gpu=1024)

model = mlp_vae(likelihoods.DiscretizedLogistic(LEVELS), X_SHAPE, MAIN_LATENT, MAIN_HIDDEN)
history = train.fit(model, main_train, steps=MAIN_STEPS, lr=1e-3, progress=False, generator=gen)
model.eval()
xt = main_test.float().to(DEV)

fig, axes = plt.subplots(1, 4, figsize=(15, 3.5))
plot.loss_curves(history, keys=["recon", "kl"], ax=axes[0], title="the two terms of -ELBO (nats)")
plot.image_grid(
    torch.cat([xt[:8], model.reconstruct(xt[:8])]).cpu(),
    nrow=8,
    ax=axes[1],
    title="test images / reconstructions",
)
plot.image_grid(
    model.sample(32, generator=gen, mean=True).cpu(),
    nrow=8,
    ax=axes[2],
    title="samples: E[x | z], z ~ p(z)",
)
plot.image_grid(
    model.sample(32, generator=gen).cpu(), nrow=8, ax=axes[3], title="samples: x ~ p(x | z)"
)
plt.show()
main_elbo_bpd = test_bpd(model, xt)
print(f"test -ELBO: {main_elbo_bpd:.3f} bits/dim; final train kl {history.final('kl'):.1f} nats")

# %% [markdown]
# You should see the reconstruction term fall while the KL rises: the code carries more and
# more information about each image (about 13 nats by the end of the cpu profile), and every
# nat of KL buys more than a nat of reconstruction. The test −ELBO is about 1.96 bits/dim. The decoder means are smooth digits; samples of $p(x\mid z)$ add
# independent per-pixel noise, since this decoder models pixels as independent given $z$.
#
# **The latent space.** A VAE with a 2-dimensional latent lets us look at the whole code
# space: the encoder means of the test set, coloured by class, and the decoder's picture of a
# grid of $z$ over $[-2.5, 2.5]^2$.

# %%
vae2d = mlp_vae(likelihoods.DiscretizedLogistic(LEVELS), X_SHAPE, 2, MAIN_HIDDEN)
train.fit(vae2d, main_train, steps=MAIN_STEPS // 2, lr=1e-3, progress=False, generator=gen)
vae2d.eval()
with torch.no_grad():
    mu2d, _ = vae2d.encode(xt)
    grid = torch.linspace(-2.5, 2.5, 12)
    zz = torch.stack(torch.meshgrid(grid, -grid, indexing="xy"), -1).view(-1, 2).to(DEV)  # (144, 2)
fig, axes = plt.subplots(1, 2, figsize=(11, 5))
points = axes[0].scatter(*mu2d.cpu().T, c=main_test.labels, cmap="tab10", s=6)
axes[0].legend(*points.legend_elements(), fontsize=7, loc="upper right")
axes[0].set_title("encoder means of the test set")
plot.image_grid(vae2d.decode_to_x(zz).cpu(), nrow=12, ax=axes[1], title="decoded grid of z")
plt.show()

# %% [markdown]
# You should see the classes in separate regions of one roughly Gaussian blob, with no holes:
# every $z$ of the grid decodes to something digit-like. Two dimensions are few (this model's
# −ELBO is worse than the 16-dimensional one's), but the prior is filled.
#
# **Interpolation.** Move the slider to walk on the straight line between the codes (encoder
# means) of two test images; compare with the autoencoder's path in section 1.

# %%
with torch.no_grad():
    mu_a, _ = model.encode(xt[:1])
    mu_b, _ = model.encode(xt[1:2])


def show_interpolation(t=0.5):
    with torch.no_grad():
        ts = torch.linspace(0, 1, 9, device=DEV).view(-1, 1)
        path = model.decode_to_x((1 - ts) * mu_a + ts * mu_b)  # (9, *X_SHAPE)
        here = model.decode_to_x((1 - t) * mu_a + t * mu_b)
    fig, axes = plt.subplots(1, 2, figsize=(9, 2.5), gridspec_kw={"width_ratios": [4, 1]})
    plot.image_grid(path.cpu(), nrow=9, ax=axes[0], title="VAE: path between two test codes")
    plot.image_grid(here.cpu(), nrow=1, ax=axes[1], title=f"t = {t:.2f}")
    plt.show()


show_interpolation(0.5)  # a static figure, so the notebook reads without a kernel
_ = widgets.interact(show_interpolation, t=widgets.FloatSlider(0.5, min=0, max=1, step=0.05))

# %% [markdown]
# You should see every point of the path decode to a plausible digit morphing from one into
# the other, unlike the autoencoder's path.

# %% [markdown]
# ## 6. Posterior collapse
#
# If the decoder can model $x$ on its own, the ELBO's cheapest optimum may ignore $z$: then
# $q(z\mid x) = p(z)$ for every $x$, the KL term is zero, and the "VAE" is just its decoder.
# This is **posterior collapse** (Bowman et al. 2016; Chen et al. 2017). We give the VAE a
# powerful decoder: an autoregressive one (a MADE over the pixels, `AutoregressiveCategorical`),
# where each pixel's distribution sees the pixels before it as well as $z$.
#
# We count **active units** (Burda et al. 2016): latent dimension $u$ is active when its
# posterior mean moves with the data, $A_u = \operatorname{Cov}_x(\mathbb E_{q}[z_u]) > 0.01$.
#
# Two remedies act on the KL term during training only:
#
# - **KL annealing** (Bowman et al. 2016): weight the KL by $\beta_t$ rising from 0 to 1 over
#   the first steps, so the encoder learns to carry information before the prior pulls;
# - **free bits** (Kingma et al. 2016): replace the KL of each latent dimension $j$ by
#   $\max(\lambda, \mathbb E_x \mathrm{KL}_j)$; below $\lambda$ nats there is nothing to gain
#   from closing dimension $j$.

# %%
COLLAPSE_STEPS = utils.pick(smoke=20, cpu=1000, gpu=4000)
remedies = {
    "plain": {},
    "KL annealing": {"kl_warmup": COLLAPSE_STEPS // 2},
    "free bits (0.5 nats/dim)": {"free_bits": 0.5},
}
collapse = {}
for name, kwargs in remedies.items():
    lik = likelihoods.AutoregressiveCategorical(17, (1, 8, 8), hidden=HIDDEN)
    m = mlp_vae(lik, (1, 8, 8), LATENT, HIDDEN, **kwargs)
    h = train.fit(m, x_train, steps=COLLAPSE_STEPS, lr=2e-3, progress=False, generator=gen)
    m.eval()
    units, _ = vae.active_units(m, x_test.to(DEV))
    kl = m.elbo(x_test.to(DEV), generator=gen).kl.mean().item()
    collapse[name] = {"kl": kl, "active": units, "bpd": test_bpd(m, x_test), "history": h}
    print(
        f"{name:26s} test KL {kl:5.2f} nats, active units {units}/{LATENT}, -ELBO {collapse[name]['bpd']:.3f} bits/dim"
    )

fig, ax = plt.subplots(figsize=(6, 3.5))
for name, r in collapse.items():
    ax.plot(r["history"].steps, r["history"].logs["kl"], label=name)
ax.set(xlabel="step", ylabel="KL(q || p) (nats)", title="autoregressive decoder")
ax.legend()
plt.show()

# %% [markdown]
# In the cpu profile you should see a *partial* collapse: the plain model keeps only about 3
# of 8 units active and a KL of about 5 nats (the 16-dimensional VAE of section 5, with its
# independent-pixel decoder, uses about 13). KL annealing raises that to about 4 units and 8 nats,
# free bits to all 8 units and about 10.5 nats. Note the price: the test −ELBO gets *worse*
# (about 2.09, 2.22 and 2.29 bits/dim): with a decoder this strong, putting information in $z$
# costs more KL than it saves in reconstruction, so the ELBO itself favours collapse. The
# likelihood alone cannot tell you whether the latent is used, which is why active units are
# worth counting.

# %% [markdown]
# ## 7. β-VAE and disentanglement
#
# Weighting the KL by $\beta > 1$ (Higgins et al. 2017) presses every posterior harder towards
# the factorized prior $\mathcal N(0, I)$; the hope is that the few dimensions that survive
# each capture one independent *factor of variation*. We test it where the factors are
# known: `data.shapes` draws squares, ellipses and triangles from five independent factors
# (shape, scale, rotation, x, y), reproducibly from a seed, like dSprites.
#
# The **mutual information gap** (MIG; Chen et al. 2018) scores a code: for each factor, the
# mutual information of the best latent minus that of the second best, divided by the
# factor's entropy, averaged over factors. 1 means each factor sits in exactly one latent.

# %%
SHAPE_SIZE = utils.pick(smoke=16, cpu=16, gpu=32)
shapes_train = data.shapes(utils.pick(smoke=512, cpu=10_000, gpu=50_000), size=SHAPE_SIZE, seed=0)
shapes_test = data.shapes(utils.pick(smoke=256, cpu=2_000, gpu=5_000), size=SHAPE_SIZE, seed=1)
BETAS = utils.pick(smoke=[1.0, 4.0], cpu=[1.0, 4.0, 16.0], gpu=[1.0, 2.0, 4.0, 8.0, 16.0])
BETA_STEPS = utils.pick(smoke=20, cpu=2500, gpu=10_000)
SHAPE_LATENT = 6
plot.image_grid(
    shapes_train.float()[:24], nrow=12, title="shapes: " + ", ".join(shapes_train.factor_names)
)
plt.show()

beta_models, mig = {}, {}
for beta in BETAS:
    m = mlp_vae(
        likelihoods.Bernoulli(),
        (1, SHAPE_SIZE, SHAPE_SIZE),
        SHAPE_LATENT,
        utils.pick(smoke=32, cpu=200, gpu=512),
        beta=beta,
    )
    train.fit(
        m, shapes_train, steps=BETA_STEPS, lr=2e-3, batch_size=128, progress=False, generator=gen
    )
    m.eval()
    with torch.no_grad():
        mu_shapes, _ = m.encode(shapes_test.float().to(DEV))
    mig[beta] = disentanglement.mutual_information_gap(mu_shapes, shapes_test.factors)
    beta_models[beta] = m
    gaps = {k: round(float(g), 2) for k, g in zip(shapes_test.factor_names, mig[beta].per_factor)}
    print(f"beta = {beta:4.1f}: {mig[beta]}, per factor {gaps}")
best_beta = max(mig, key=lambda b: mig[b].value)

fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
axes[0].plot(BETAS, [mig[b].value for b in BETAS], "o-")
axes[0].set(xscale="log", xlabel="beta", ylabel="MIG", title="disentanglement against beta")
plot.plain_log_axis(axes[0], "x")
im = axes[1].imshow(mig[best_beta].mutual_info, cmap="viridis", vmin=0, vmax=1)
axes[1].set(
    yticks=range(5),
    yticklabels=shapes_test.factor_names,
    xlabel="latent",
    title=f"I(z_j; v_k) / H(v_k), beta = {best_beta:g}",
)
fig.colorbar(im, ax=axes[1])
plt.show()

# %% [markdown]
# **Latent traversal.** Pick a latent dimension and move it from −2.5 to 2.5 with the others
# at the code of one test image. A disentangled dimension changes one factor only.

# %%
traversal_model = beta_models[best_beta]
with torch.no_grad():
    z_base, _ = traversal_model.encode(shapes_test.float()[:1].to(DEV))


def show_traversal(dim=0):
    with torch.no_grad():
        values = torch.linspace(-2.5, 2.5, 9, device=DEV)
        z = z_base.repeat(9, 1)
        z[:, dim] = values
        imgs = traversal_model.decode_to_x(z)
    plot.image_grid(
        imgs.cpu(), nrow=9, title=f"beta = {best_beta:g}: latent {dim} from -2.5 to 2.5"
    )
    plt.show()


show_traversal(int(mig[best_beta].mutual_info.argmax(1)[3]))  # the latent that holds x best
_ = widgets.interact(show_traversal, dim=widgets.IntSlider(0, min=0, max=SHAPE_LATENT - 1))

# %% [markdown]
# In the cpu profile you should see the MIG rise from about 0.07 at β = 1 to about 0.17 at
# β = 4, where the x and y positions each move mostly into one latent (gaps of about 0.37 and
# 0.26), and collapse to about 0.02 at β = 16, where the KL pressure closes almost every
# latent and the reconstructions lose the shapes. Shape and rotation stay entangled or
# unused at this budget: a small MLP sees a 16×16 triangle and square as nearly the same blob.
# Expect the numbers to move with the seed: disentanglement scores are notoriously noisy
# across runs (Locatello et al. 2019), and β buys them with worse reconstructions.

# %% [markdown]
# ## 8. Tighter bounds: importance weighting
#
# `model.log_prob(x)` does not exist for a VAE: the integral over $z$ has no closed form.

# %%
try:
    model.log_prob(xt[:2])
except NotImplementedError as e:
    print("NotImplementedError:", e)

# %% [markdown]
# What we can do is **importance sampling** with $q$ as the proposal:
# $p(x) = \mathbb E_{z\sim q}[p(x, z)/q(z\mid x)]$. The log of a $k$-sample average of these
# weights is the IWAE bound (Burda et al. 2016):
#
# $$\mathcal L_k(x) = \mathbb E_{z_{1..k}\sim q}\Big[\log \frac1k \sum_{i=1}^{k} w_i\Big], \qquad
#   w_i = \frac{p_\theta(x, z_i)}{q_\phi(z_i \mid x)}. \tag{4}$$
#
# By Jensen's inequality $\mathcal L_k \le \log p(x)$; $\mathcal L_1$ is the ELBO;
# $\mathcal L_k \le \mathcal L_{k+1}$; and $\mathcal L_k \to \log p(x)$ as $k \to \infty$. With
# $k = 1000$ it is the standard estimate of a VAE's test log-likelihood.
#
# **Exercise 2.3.** Given the log-weights $\log w_i$ as a `(k, B)` tensor, return
# $\log \frac1k\sum_i w_i$, `(B,)`. The weights are tiny ($\log w < -1000$ on Fashion-MNIST
# is common): exponentiating them directly gives $\log 0$.


# %%
def iwae_from_log_weights(log_w: torch.Tensor) -> torch.Tensor:
    """log (1/k) sum_i exp(log_w[i]), (B,), without overflow or underflow."""
    ### BEGIN SOLUTION
    return torch.logsumexp(log_w, dim=0) - math.log(log_w.shape[0])
    ### END SOLUTION


checks.check_iwae_bound(iwae_from_log_weights)

# %%
KS = utils.pick(smoke=[1, 5, 50], cpu=[1, 5, 50, 200, 1000], gpu=[1, 5, 50, 200, 1000])
to_bpd = lambda log_p: float(metrics.bits_per_dim(-log_p.mean(), model.dims))
iwae_bpd = {}
with torch.no_grad():
    for k in KS:
        iwae_bpd[k] = to_bpd(
            model.log_likelihood(
                xt, k=k, generator=gen, batch_size=utils.pick(smoke=256, cpu=296, gpu=500)
            )
        )
        print(f"k = {k:5d}: -IWAE_k = {iwae_bpd[k]:.4f} bits/dim")
elbo_bpd = iwae_bpd[1]

fig, ax = plt.subplots(figsize=(5, 3.5))
ax.semilogx(KS, list(iwae_bpd.values()), "o-", label="-IWAE_k")
ax.axhline(elbo_bpd, color="gray", ls="--", label="-ELBO (k = 1)")
ax.set(xlabel="k", ylabel="bits/dim (test)", title="the bound tightens with k")
ax.legend()
plt.show()

# %% [markdown]
# You should see the negative bound fall with $k$ (the bound itself rises), quickly at first:
# in the cpu profile from about 1.96 bits/dim at $k = 1$ to about 1.88 at $k = 50$ and 1.87 at
# $k = 1000$. The estimate is well below the linear autoregressive baseline (2.04) and
# independent pixels (2.43). The gap between ELBO and $\log p(x)$ is
# $\mathrm{KL}(q\,\|\,p(z\mid x))$ of eq. (1): about 0.08 bits/dim, or 4 nats per image, is lost
# to the encoder's imperfect posterior.

# %% [markdown]
# ## 9. Conditional VAE
#
# Giving both the encoder and the decoder the class label $y$ (Sohn et al. 2015) models
# $p(x \mid y) = \int p(x\mid z, y)p(z)\,dz$: the latent is free to describe *style* while
# the label fixes the class. Choose a class with the slider.

# %%
cvae = mlp_vae(
    likelihoods.DiscretizedLogistic(LEVELS),
    X_SHAPE,
    MAIN_LATENT,
    MAIN_HIDDEN,
    num_classes=len(main_train.classes),
)
train.fit(
    cvae,
    main_train,
    steps=utils.pick(smoke=20, cpu=1500, gpu=20000),
    lr=1e-3,
    progress=False,
    generator=gen,
)
cvae.eval()
z_style = torch.randn(16, MAIN_LATENT, generator=gen).to(DEV)


def show_class(label=3):
    y = torch.full((16,), label, device=DEV)
    plot.image_grid(
        cvae.decode_to_x(z_style, y).cpu(),
        nrow=16,
        title=f"class {main_train.classes[label]!r}, 16 styles z",
    )
    plt.show()


show_class(3)
_ = widgets.interact(show_class, label=widgets.IntSlider(3, min=0, max=len(main_train.classes) - 1))

with torch.no_grad():
    labels = torch.arange(500, device=DEV) % len(main_train.classes)
    cvae_samples = cvae.sample(500, labels, generator=gen, mean=True)
    accuracy = metrics.classifier_accuracy(cvae_samples.cpu(), labels.cpu(), classifier=CLASSIFIER)
print(f"the {CLASSIFIER} classifier recognizes the requested class in {accuracy:.0%} of samples")

# %% [markdown]
# You should see the same 16 styles (slant, thickness) redrawn as whichever class you pick,
# and the classifier agree with the requested class for nearly all samples (100% in the cpu
# profile).

# %% [markdown]
# ## Numbers to record
#
# Test set, bits/dim with the discretized logistic likelihood over the data's grey levels.
# FCD (Fréchet classifier distance) uses the course's small classifier for the data set, beside
# the real-vs-real floor at the same sample size.

# %%
N_FCD = len(main_test) // 2  # the real test set is split in two halves for the floor
# FCD from 148 samples is noisy: average it over 5 independent batches of samples
scores = [
    metrics.fcd(
        model.sample(N_FCD, generator=gen, mean=True).cpu(), main_test, classifier=CLASSIFIER
    )
    for _ in range(5)
]
score = metrics.FCDScore(
    value=sum(s.value for s in scores) / 5, floor=scores[0].floor, n=N_FCD, classifier=CLASSIFIER
)
print(score, "| the 5 batches:", [round(s.value, 1) for s in scores])

report.record(
    "iwae1000_test_bpd", iwae_bpd[KS[-1]], target=utils.pick(smoke=None, cpu="<= 2.10", gpu=None)
)
report.record(
    "iwae50_gain_over_elbo_bpd",
    elbo_bpd - iwae_bpd[50],
    target=utils.pick(smoke=None, cpu=">= 0.05", gpu=">= 0.05"),
)
report.record("fcd_samples", score.value)
report.record("fcd_real_floor", score.floor)
report.record("mig_beta1", mig[1.0].value)
report.record("mig_best", mig[best_beta].value)
report.record("mig_best_beta", best_beta)

# %% [markdown]
# In the cpu profile you should see an IWAE-1000 estimate of about 1.87 bits/dim (target
# ≤ 2.10), an IWAE-50 bound about 0.07 bits/dim better than the ELBO, and samples with an FCD
# of about 29 against a real-vs-real floor of about 16: close to, but measurably short of, the
# real data.
