# %% [markdown]
# # Lecture 05: Generative adversarial networks
#
# A GAN learns a sampler $x = G(z)$, $z \sim \mathcal N(0, I)$, without ever writing down a
# density: a second network, the discriminator (or critic) $D$, is trained to tell real
# samples from generated ones, and the generator is trained to fool it. Where the previous
# lectures maximised a likelihood, here the training signal is a learned two-sample test.
#
# After this lecture you can
#
# - say why a high likelihood does not imply good samples, and the reverse;
# - write both players' losses with the `detach` in the right place, and explain why the
#   generator uses the non-saturating loss $-\log D(G(z))$;
# - measure mode collapse (modes covered, high-quality fraction) and remove it by unrolling
#   the discriminator;
# - build a DCGAN for digits and say why it is fragile;
# - train a Wasserstein GAN with weight clipping and with the gradient penalty, and read the
#   critic's estimate of the Wasserstein distance as a training curve;
# - use StyleGAN's ideas (mapping network, modulation, noise, mixing, truncation) at small scale;
# - invert a generator (optimisation from an encoder's guess), inpaint and edit through its
#   latent space (stroke thickness along a learned direction), and watch the latent drift off
#   the prior;
# - translate edge maps into digits with pix2pix (L1 + a patch discriminator), get several
#   outputs per edge map with BicycleGAN's noise input, and translate between two unpaired
#   image domains with CycleGAN's cycle-consistency loss;
# - train a voxel GAN, and a Platonic GAN that learns 3-D shapes from 2-D renderings alone.
#
# Everything trains through `train.fit`: `train.Adversarial` (one critic update per step, a
# generator update every `n_critic` steps, each player with its own optimizer), its unrolled
# variant `gan.UnrolledAdversarial`, and `gan.Pix2Pix` and `gan.CycleGAN`, which bring their own
# `train_step`.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from coursekit import data, evaluation, gan, metrics, plot, report, train, utils
from coursekit.exercises import gans as checks

gen = utils.seed_everything(0)
DEV = utils.device()
print("profile:", utils.profile(), "| device:", utils.describe_device(DEV))
LECTURE_START = time.perf_counter()
SMOKE = utils.profile() == "smoke"

# %% [markdown]
# ## 1. Why likelihood is not enough
#
# Likelihood and sample quality can disagree in both directions (Theis et al. 2016). Take the
# 8-gaussians toy with its true density $p$. Model A is the mixture $0.99\,\mathcal N(0, 8^2 I)
# + 0.01\,p$: its log-likelihood is never more than $\log 100 \approx 4.6$ nats below the
# truth's, yet 99% of its samples are noise. Model B is a kernel density estimate of the
# training points with a tiny bandwidth: its samples are (almost) training points, so they look
# perfect, but its log-likelihood on fresh test points is terrible.

# %%
N_TOY = utils.pick(smoke=500, cpu=2000, gpu=2000)
CENTERS, STD = gan.ring_centers(8), 0.5 / math.sqrt(2)
toy_train, toy_test = (
    data.toy_2d("8gaussians", N_TOY, seed=0),
    data.toy_2d("8gaussians", N_TOY, seed=1),
)


def log_true(x):
    d = torch.cdist(x, CENTERS) ** 2
    return torch.logsumexp(-d / (2 * STD**2), 1) - math.log(8) - math.log(2 * math.pi * STD**2)


def log_gauss(x, centers, s):
    d = torch.cdist(x, centers) ** 2
    return (
        torch.logsumexp(-d / (2 * s**2), 1) - math.log(len(centers)) - math.log(2 * math.pi * s**2)
    )


def log_a(x):  # 0.99 broad noise + 0.01 truth
    return torch.logaddexp(
        math.log(0.99) + log_gauss(x, torch.zeros(1, 2), 8.0), math.log(0.01) + log_true(x)
    )


def log_b(x, h=0.01):  # KDE of the training points, bandwidth h
    return log_gauss(x, toy_train, h)


g_toy = torch.Generator().manual_seed(2)
pick_a = torch.rand(N_TOY, generator=g_toy) < 0.01
samples_a = torch.where(
    pick_a[:, None],
    data.toy_2d("8gaussians", N_TOY, seed=3),
    8.0 * torch.randn(N_TOY, 2, generator=g_toy),
)
samples_b = toy_train[torch.randint(0, N_TOY, (N_TOY,), generator=g_toy)] + 0.01 * torch.randn(
    N_TOY, 2, generator=g_toy
)
nll = {k: -f(toy_test).mean().item() for k, f in [("truth", log_true), ("A", log_a), ("B", log_b)]}
hq = {
    k: gan.mode_coverage(s, CENTERS, STD)["high_quality"]
    for k, s in [("truth", toy_test), ("A", samples_a), ("B", samples_b)]
}
for k in nll:
    print(f"{k:>5}: test NLL {nll[k]:10.2f} nats | high-quality samples {hq[k]:.2f}")
fig, axes = plt.subplots(1, 3, figsize=(10, 3.3))
for ax, (k, s) in zip(
    axes,
    [
        ("truth", toy_test),
        ("A: good NLL, bad samples", samples_a),
        ("B: good samples, bad NLL", samples_b),
    ],
):
    plot.scatter_2d(s, ax=ax, title=k, lims=((-6, 6), (-6, 6)))
plt.show()

# %% [markdown]
# You should see model A's test NLL 2.9 nats above the truth's (within the $\log 100$ bound)
# while only 7% of its samples are high quality, and model B with 99% of its samples high quality
# but a test NLL 22.6 nats worse: the test points fall between its tiny kernels. Neither
# number alone ranks models: GANs give up the likelihood and are judged by sample metrics
# (FCD, precision/recall, memorisation).
#
# ## 2. The minimax game
#
# The discriminator $D(x) = \sigma(\ell(x))$ outputs the probability that $x$ is real. The
# value of the game is
#
# $$V(G, D) = \mathbb E_{p}[\log D(x)] + \mathbb E_{z}[\log(1 - D(G(z)))].$$
#
# For a fixed $G$ with sample density $q$, the best discriminator is $D^* = p / (p + q)$ and
# $V(G, D^*) = 2\,\mathrm{JS}(p \,\|\, q) - \log 4$: this is lecture 01's optimal
# discriminator and its link to the Jensen–Shannon divergence. The discriminator maximises $V$
# (it minimises the cross-entropy `gan.d_gan`); the generator minimises it.
#
# Each player's step must move only its own weights. In the discriminator's step the fakes are
# **detached**: no gradient should flow into $G$. In the generator's step they are **not**:
# the generator learns only through $D(G(z))$. Write both losses from the logits
# ($\log \sigma(\ell) = -\mathrm{softplus}(-\ell)$ is the stable form).


# %%
import torch.nn.functional as F  # noqa: E402, F401 (for your losses below)


def discriminator_loss(D, G, x, z):
    """-E log D(x) - E log(1 - D(G(z))), from logits, with the fakes detached."""
    ### BEGIN SOLUTION
    fake = G(z).detach()
    return F.softplus(-D(x)).mean() + F.softplus(D(fake)).mean()
    ### END SOLUTION


def generator_loss(D, G, z):
    """The non-saturating generator loss -E log D(G(z)), gradient through D into G."""
    ### BEGIN SOLUTION
    return F.softplus(-D(G(z))).mean()
    ### END SOLUTION


checks.check_discriminator_loss(discriminator_loss)
checks.check_generator_loss(generator_loss)

# %% [markdown]
# The original minimax generator minimises $\log(1 - D(G(z)))$. Its gradient with respect to
# the logit is $-D(G(z))$: early in training, when the discriminator easily rejects the fakes
# ($D(G(z)) \to 0$), the generator gets almost no signal. The non-saturating loss
# $-\log D(G(z))$ has the same fixed point and the gradient $-(1 - D(G(z)))$, largest exactly
# there.

# %%
d_axis = torch.linspace(0.001, 0.999, 200)
fig, ax = plt.subplots(figsize=(5, 3.3))
ax.plot(d_axis, gan.generator_grad_vs_d(d_axis, "saturating"), label="saturating log(1 - D)")
ax.plot(d_axis, gan.generator_grad_vs_d(d_axis, "nonsaturating"), label="non-saturating -log D")
ax.set(xlabel="D(G(z))", ylabel="|d loss / d logit|", title="the generator's gradient")
ax.legend()
plt.show()

# %% [markdown]
# A run shows the stall. Data $\mathcal N(4, 0.5^2)$ in 1-D, a generator that starts at
# $\mathcal N(0, 1)$ and a discriminator that gets five updates per generator update: the
# discriminator quickly wins, and only the non-saturating generator escapes. The generator
# steps with plain SGD here. Adam divides each gradient by its running RMS, which undoes a
# uniformly small gradient: the third run below gives the saturating generator Adam, and the
# stall disappears (error 0.01; on real problems it shows as slower, noisier progress).

# %%
STALL_STEPS = utils.pick(smoke=100, cpu=1500, gpu=3000)
stall_data = 4.0 + 0.5 * torch.randn(8192, 1, generator=torch.Generator().manual_seed(1))


def gaussian_gan(g_loss, g_opt="sgd", seed=0, steps=STALL_STEPS):
    torch.manual_seed(seed)
    G = gan.MLPGenerator(4, (1,), hidden=32, depth=2)
    D = gan.MLPCritic(1, hidden=32, depth=2)
    adv = train.Adversarial(
        G,
        D,
        g_loss,
        gan.d_gan,
        n_critic=5,
        noise=train.gaussian_noise(4),
        g_opt=(
            torch.optim.SGD(G.parameters(), 1e-2)  # no rescaling of small gradients
            if g_opt == "sgd"
            else torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999))
        ),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
    )
    hist = train.fit(adv, stall_data, steps=steps, batch_size=128, progress=False, device=DEV)
    with torch.no_grad():
        return G(torch.randn(5000, 4, device=DEV)).mean().item(), hist


stall = {}
for name, loss, opt in [
    ("saturating", gan.g_saturating, "sgd"),
    ("non-saturating", gan.g_nonsaturating, "sgd"),
    ("saturating, Adam", gan.g_saturating, "adam"),
]:
    mean, hist = gaussian_gan(loss, opt)
    stall[name] = abs(mean - 4.0)
    print(f"{name:>16}: generated mean {mean:.2f} (data 4.00), |error| {stall[name]:.2f}")

# %% [markdown]
# You should see the saturating generator stay far from the data's mean of 4 (its error
# stays at 3.8) while the non-saturating one reaches it (error 0.047): same game, same
# fixed point, different gradients.
#
# ## 3. Mode collapse
#
# The generator is rewarded for samples the *current* discriminator accepts, not for covering
# the data. Suppose its samples sit on one mode. The discriminator learns to reject that mode,
# and the generator's best reply to *this* discriminator is to move all its mass to a mode
# the discriminator now rates higher; the discriminator follows, and the two chase each other
# round the modes (mode hopping). Nothing in one alternating step asks the generator to spread
# out: it optimises against a fixed opponent, $\min_G \max_D$ played as if it were
# $\max_D \min_G$, whose best reply is a single point.
#
# The setting is the unrolled-GAN experiment (Metz et al. 2017): a ring of 8 narrow gaussians
# (radius 2, std 0.1, so neighbouring modes are 15 std apart), a generator with two hidden
# layers of 128, a discriminator with one, Adam with $\beta_1 = 0.5$. We count the **modes
# covered** (a mode holding at least a fifth of its fair share of samples within 3 std of it)
# and the **high-quality fraction** (samples within 3 std of some mode), over three seeds.
#
# The remedy: **unroll the discriminator**. The generator's loss is taken at the
# discriminator's parameters after $k$ further updates, $\theta_D^{j+1} = \theta_D^j - \eta
# \nabla_\theta \mathcal L_D(\theta_D^j)$, and differentiated through all $k$ of them
# (`torch.func.functional_call` evaluates the critic at the look-ahead parameters). A
# generator that piles onto one mode is now charged for the discriminator's *answer* to it,
# so spreading out pays. Only the generator sees the look-ahead; the discriminator is updated
# as usual. `gan.UnrolledAdversarial` is `train.Adversarial` with this generator step
# (`unroll_steps=0` is the plain GAN); the look-ahead itself is `gan.unrolled_params`.

# %%
MODE_STEPS = utils.pick(smoke=40, cpu=1300, gpu=5000)
SEEDS = utils.pick(smoke=[0], cpu=[0, 1, 2], gpu=[0, 1, 2])
UNROLL = utils.pick(smoke=2, cpu=5, gpu=10)
RING_STD, RING_LATENT = 0.1, 16
RING_CENTERS = gan.ring_centers(8, radius=2.0)
ring = gan.ring_of_gaussians(20_000, k=8, radius=2.0, std=RING_STD, seed=4)


def ring_gan(unroll_steps, seed):
    torch.manual_seed(seed)
    G = gan.MLPGenerator(RING_LATENT, (2,), hidden=128, depth=2)
    D = gan.MLPCritic(2, hidden=128, depth=1)
    adv = gan.UnrolledAdversarial(
        G,
        D,
        gan.g_nonsaturating,
        gan.d_gan,
        noise=train.gaussian_noise(RING_LATENT),
        g_opt=torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
        unroll_steps=unroll_steps,
        unroll_lr=1e-2,
    )
    train.fit(adv, ring, steps=MODE_STEPS, batch_size=256, progress=False, device=DEV)
    with torch.no_grad():
        x = G(torch.randn(2500, RING_LATENT, generator=torch.Generator().manual_seed(9)).to(DEV))
    return x.cpu(), gan.mode_coverage(x.cpu(), RING_CENTERS, RING_STD)


ring_runs = {k: [ring_gan(k, s) for s in SEEDS] for k in (0, UNROLL)}
fig, axes = plt.subplots(2, len(SEEDS), figsize=(3.2 * len(SEEDS), 6.4), squeeze=False)
for row, (k, runs) in enumerate(ring_runs.items()):
    name = "plain" if k == 0 else f"unrolled, k = {k}"
    for col, (seed, (x, cov)) in enumerate(zip(SEEDS, runs)):
        plot.scatter_2d(ring[:2500], ax=axes[row, col], alpha=0.1)
        plot.scatter_2d(
            x,
            ax=axes[row, col],
            lims=((-3, 3), (-3, 3)),
            title=f"{name}, seed {seed}: {cov['modes']} modes",
        )
    print(
        f"{name:>16}: modes {[c['modes'] for _, c in runs]}, high quality "
        f"{[round(c['high_quality'], 2) for _, c in runs]}"
    )
plt.show()
modes = {k: [c["modes"] for _, c in runs] for k, runs in ring_runs.items()}
quality = {k: float(np.mean([c["high_quality"] for _, c in runs])) for k, runs in ring_runs.items()}

# %% [markdown]
# You should see the plain GAN on one or two modes at a time: at most 2 modes covered on
# any seed (1.0 on average; a mean high-quality fraction of 0.09), its samples hopping from
# mode to mode as training goes on. The unrolled GAN covers all 8 modes on every seed (a mean
# high-quality fraction of 0.58): the
# look-ahead has removed the incentive to collapse. It costs about $k + 1$ discriminator
# passes, with second derivatives, per generator step (here about four times the plain
# GAN's time). On the wider 8-gaussians of section 1 (std 0.35 at radius 2.8) a plain GAN of
# this size usually covers every mode: collapse depends on how far apart the modes are
# relative to their width, on the learning rates and on the networks, which is why it is
# measured here over seeds. Minibatch discrimination, minibatch standard deviation and
# PacGAN (the critic judges packs of samples, `gan.MLPCritic(pack=4)`) attack the same
# problem by letting the discriminator see a batch's diversity.
#
# ## 4. DCGAN on digits
#
# DCGAN (Radford et al. 2016) fixed the architecture that made convolutional GANs train:
# strided (transposed) convolutions instead of pooling, batch norm in the generator, LeakyReLU
# in the discriminator, Adam with $\beta_1 = 0.5$. On 8×8 digits we train it with the
# non-saturating loss alone and evaluate with `evaluation.evaluate` (FCD against the
# real-vs-real floor, precision/recall, the near-copy fraction).

# %%
digits_train, digits_test = data.digits("train"), data.digits("test")
SHAPE = (1, 8, 8)
IMG_STEPS = utils.pick(smoke=40, cpu=2000, gpu=6000)
MLP_STEPS = utils.pick(smoke=40, cpu=1200, gpu=6000)
N_EVAL = utils.pick(smoke=100, cpu=750, gpu=2000)
LATENT = 32


def image_gan(
    G,
    D,
    *,
    d_loss=gan.d_gan,
    g_loss=gan.g_nonsaturating,
    penalty=None,
    n_critic=1,
    lr=2e-4,
    betas=(0.5, 0.999),
    steps=IMG_STEPS,
    clip=None,
    opt=torch.optim.Adam,
    seed=0,
    chunks=1,
    on_chunk=None,
):
    torch.manual_seed(seed)
    model = gan.GAN(G, D, latent=LATENT, data_shape=SHAPE, d_loss=d_loss, g_loss=g_loss).to(DEV)
    kw = {"betas": betas} if opt is torch.optim.Adam else {}
    d_opt = opt(D.parameters(), lr, **kw)
    if clip is not None:
        gan.clip_weights_after_step(d_opt, clip)
    adv = train.Adversarial(
        G,
        D,
        g_loss,
        d_loss,
        g_opt=opt(G.parameters(), lr, **kw),
        d_opt=d_opt,
        noise=train.gaussian_noise(LATENT),
        n_critic=n_critic,
        gradient_penalty=penalty,
    )
    for _ in range(chunks):
        hist = train.fit(adv, digits_train, steps=steps // chunks, batch_size=128, device=DEV)
        if on_chunk is not None:
            on_chunk(model, hist)
    model.eval()
    return model


def evaluate(model, name, psi=1.0):
    return evaluation.evaluate(
        model,
        digits_train,
        digits_test,
        n=N_EVAL,
        name=name,
        generator=torch.Generator().manual_seed(7),
        progress=False,
        sample_kwargs={"psi": psi} if psi != 1.0 else None,
    )


rows = {}
dcgan = image_gan(
    gan.DCGenerator(LATENT, 1, 8, width=32), gan.DCCritic(1, 8, width=32, norm="batch")
)
rows["DCGAN"] = evaluate(dcgan, "DCGAN (batch norm in D)")
print(rows["DCGAN"])
plot.image_grid(dcgan.sample(64, generator=torch.Generator().manual_seed(0)), title="DCGAN")
plt.show()

# %% [markdown]
# You should see the DCGAN at 0.87× the real-vs-real floor with recall 0.98 and a near-copy
# fraction of 0.009: on this run the best GAN of the lecture, with no penalty at all. The
# architecture is doing the work: batch norm in the generator keeps its features scaled,
# and the strided convolutions share weights across positions, so the discriminator cannot
# single out pixels. Nothing *guarantees* it, though: nothing keeps the discriminator's
# gradients well behaved, and small DCGANs are known to collapse from one seed to the next.
# Section 5 takes the architecture away (MLPs for both players) and shows what the losses
# and penalties do on their own.
#
# ## 5. Wasserstein GANs: clipping, then the gradient penalty
#
# The Wasserstein-1 distance has the dual form
# $W_1(p, q) = \sup_{\|f\|_L \le 1} \mathbb E_p f - \mathbb E_q f$. WGAN (Arjovsky et al. 2017)
# trains a **critic** $f$ (no sigmoid) to maximise that difference and the generator to
# minimise it; unlike JS it gives a useful gradient even when $p$ and $q$ do not overlap. The
# Lipschitz constraint was first enforced by **clipping** every weight to $[-c, c]$: crude, it
# either limits the critic's capacity or (for larger $c$) barely constrains it.
#
# WGAN-GP (Gulrajani et al. 2017) instead penalises $(\|\nabla_x f(\hat x)\| - 1)^2$ at random
# interpolates $\hat x = \epsilon x + (1 - \epsilon) G(z)$, with **one $\epsilon$ per
# sample** and the norm over **all non-batch dimensions** of that sample (for images:
# channels, height and width together). The critic must have **no batch norm**: batch norm
# makes each sample's score depend on the others in its batch, and the per-sample gradient
# is then not what the penalty is meant to control (use layer norm, or none). Spectral
# normalisation (Miyato et al. 2018) is the alternative: divide each weight matrix by its
# largest singular value (`torch.nn.utils.parametrizations.spectral_norm`).
#
# Exercise: the penalty (weight 1), given `eps` of shape `(B,)`.


# %%
def gradient_penalty(critic, real, fake, eps):
    """E[(||grad critic(x_hat)||_2 - 1)^2], x_hat = eps x + (1 - eps) fake, eps one per sample."""
    ### BEGIN SOLUTION
    e = eps.view(-1, *([1] * (real.dim() - 1)))
    x_hat = (e * real + (1 - e) * fake).requires_grad_(True)
    (grad,) = torch.autograd.grad(critic(x_hat).sum(), x_hat, create_graph=True)
    return ((grad.flatten(1).norm(dim=1) - 1) ** 2).mean()
    ### END SOLUTION


checks.check_gradient_penalty(gradient_penalty)

# %% [markdown]
# Now five MLP GANs on digits, same networks: the non-saturating loss alone, the same with an
# R1 penalty on the real data (Mescheder et al. 2018), WGAN with clipping, WGAN-GP with
# five critic updates per generator update, and the non-saturating loss again with every
# linear layer of the critic spectrally normalised (the weight divided by its largest singular
# value, estimated by one power iteration per step: each layer is then 1-Lipschitz, so the
# whole critic is, at the cost of one matrix-vector product per layer instead of a second
# backward pass). For WGAN-GP we also follow the critic's estimate
# $\hat W = \mathbb E f(x) - \mathbb E f(G(z))$ and the FCD during training.


# %%
def mlp_players(hidden=256):
    return (
        gan.MLPGenerator(LATENT, SHAPE, hidden=hidden, depth=3, out="sigmoid"),
        gan.MLPCritic(64, hidden=hidden, depth=3),
    )


CURVE_CHUNKS = utils.pick(smoke=2, cpu=6, gpu=10)
N_CURVE = utils.pick(smoke=100, cpu=300, gpu=1000)
curve = {"w": [], "fcd_ratio": []}


def log_curve(model, hist):
    curve["w"].append(hist.final("d_w"))
    row = evaluation.evaluate(
        model,
        digits_train,
        digits_test,
        n=N_CURVE,
        progress=False,
        generator=torch.Generator().manual_seed(3),
    )
    curve["fcd_ratio"].append(row.fcd_ratio)


mlp_runs = {
    "non-saturating": dict(),
    "non-saturating + R1": dict(penalty=gan.r1_penalty(1.0)),
    "WGAN, clipping": dict(
        d_loss=gan.d_wasserstein,
        g_loss=gan.g_wasserstein,
        n_critic=5,
        clip=0.01,
        opt=torch.optim.RMSprop,
        lr=5e-5,
    ),
    "WGAN-GP": dict(
        d_loss=gan.d_wasserstein,
        g_loss=gan.g_wasserstein,
        n_critic=5,
        lr=1e-4,
        betas=(0.5, 0.9),
        penalty=gan.wgan_gp(10.0),
        chunks=CURVE_CHUNKS,
        on_chunk=log_curve,
    ),
}


def spectral_normed(module):
    """Every linear layer's weight divided by its largest singular value (power iteration)."""
    for name, child in module.named_children():
        if isinstance(child, torch.nn.Linear):
            setattr(module, name, torch.nn.utils.parametrizations.spectral_norm(child))
        else:
            spectral_normed(child)
    return module


mlp_runs["spectral norm"] = dict()  # the non-saturating GAN again, its critic spectrally normed
mlp_models = {}
for name, kw in mlp_runs.items():
    G_mlp, D_mlp = mlp_players()
    if name == "spectral norm":
        D_mlp = spectral_normed(D_mlp)
    mlp_models[name] = image_gan(G_mlp, D_mlp, steps=MLP_STEPS, **kw)
    rows[name] = evaluate(mlp_models[name], name)
print(evaluation.table(list(rows.values())))
fig, axes = plt.subplots(1, len(mlp_models), figsize=(3 * len(mlp_models), 3.2))
for ax, (name, m) in zip(axes, mlp_models.items()):
    plot.image_grid(m.sample(36, generator=torch.Generator().manual_seed(0)), title=name, ax=ax)
plt.show()

# %% [markdown]
# You should see the R1-penalised GAN well ahead: 2.82× the floor (recall 0.78), after 1200
# steps each. Spectral normalisation comes second, 13.0× (recall 0.01): the same
# non-saturating GAN is at 43.9× with recall 0 without it (collapsed, its samples a handful
# of shapes), so bounding the critic's Lipschitz constant removes part of the damage, but it
# bounds it everywhere, which also limits how sharp the critic can be, where R1 only
# penalises the gradient at the data. WGAN-GP is still on its way at this budget, 18.8×
# (recall 0): it updates the generator only once per five critic steps, so it has had a
# fifth of the generator updates (240). The clipped WGAN is no better, 31× with recall 0:
# clipping every weight to 0.01 leaves a critic too weak to tell digits apart.
# The critic's estimate of $W_1$ against the FCD during WGAN-GP training:

# %%
fig, ax = plt.subplots(figsize=(5, 3.3))
ax.plot(curve["w"], curve["fcd_ratio"], "o-")
for i, (w, f) in enumerate(zip(curve["w"], curve["fcd_ratio"])):
    ax.annotate(str(i + 1), (w, f))
ax.set(
    xlabel="critic's W estimate (end of chunk)",
    ylabel="FCD / floor",
    title="WGAN-GP: W estimate vs quality",
)
plt.show()
w_fcd_corr = (
    float(np.corrcoef(curve["w"], curve["fcd_ratio"])[0, 1]) if len(curve["w"]) > 2 else 0.0
)
print(f"correlation of the W estimate with the FCD ratio over training: {w_fcd_corr:.2f}")

# %% [markdown]
# You should see the points (numbered in training order) move down and to the left: as the
# critic's Wasserstein estimate falls, so does the FCD. Unlike the JS-based discriminator
# loss, which sits near $2 \log 2$ whatever the sample quality, $\hat W$ is a usable
# training curve (a correlation of 0.83 on this run).
#
# ## 6. StyleGAN ideas at small scale
#
# StyleGAN (Karras et al. 2019, 2020) keeps the adversarial game and changes the generator:
#
# - a **mapping network** $f: z \mapsto w$ (an MLP). $z \sim \mathcal N(0, I)$ must fill a
#   fixed shape; $w$ need not, so the generator can give the data's factors of variation
#   their own directions ("disentanglement" in $\mathcal W$);
# - the synthesis network starts from a **learned constant** and each layer $\ell$ receives
#   its **style** $s_\ell = A_\ell(w)$, one scale per input channel, by **weight
#   modulation** $w'_{ijk} = s_i\, w_{ijk}$ and **demodulation**
#   $w''_{ijk} = w'_{ijk} / \sqrt{\sum_{i,k} w'^2_{ijk}}$ (StyleGAN2; the first StyleGAN used
#   AdaIN, which normalises the activations instead);
# - **noise injection**: per-pixel Gaussian noise, with a learned weight per channel, after
#   every convolution, for the stochastic detail that the style does not need to explain;
# - **style mixing**: the layers before a crossover take $w_1$, the others $w_2$; done at random
#   during training, it stops neighbouring layers from relying on each other's styles;
# - the **truncation trick**: $w' = \bar w + \psi (w - \bar w)$ with $\bar w$ the running mean
#   of $w$; $\psi < 1$ pulls samples towards the "average" image: better quality, less
#   diversity.
#
# At 8×8 the synthesis network has one layer at 4×4 (coarse: the digit's shape) and three at
# 8×8 (fine: strokes and contrast), so `num_ws = 4` styles. The critic is the DCGAN critic of
# section 4; the game is the non-saturating loss.

# %%
import ipywidgets as widgets  # noqa: E402

STYLE_STEPS = utils.pick(smoke=30, cpu=600, gpu=4000)
torch.manual_seed(0)
style_G = gan.StyleGenerator(LATENT, 1, w_dim=64, width=32, mapping_depth=3)
style_D = gan.DCCritic(1, 8, width=32, norm="batch")
stylegan = gan.StyleGAN(style_G, style_D, latent=LATENT, data_shape=SHAPE).to(DEV)
style_adv = train.Adversarial(
    style_G,
    style_D,
    gan.g_nonsaturating,
    gan.d_gan,
    g_opt=torch.optim.Adam(style_G.parameters(), 2e-4, betas=(0.5, 0.999)),
    d_opt=torch.optim.Adam(style_D.parameters(), 2e-4, betas=(0.5, 0.999)),
    noise=train.gaussian_noise(LATENT),
)
train.fit(style_adv, digits_train, steps=STYLE_STEPS, batch_size=128, device=DEV)
stylegan.eval()
PSIS = (0.5, 0.7, 1.0)
trunc_rows = {psi: evaluate(stylegan, f"StyleGAN, psi = {psi}", psi=psi) for psi in PSIS}
print(evaluation.table(list(trunc_rows.values())))
fig, ax = plt.subplots(figsize=(5, 3.3))
ax.plot(PSIS, [trunc_rows[p].fcd_ratio for p in PSIS], "o-", label="FCD / floor")
ax2 = ax.twinx()
ax2.plot(PSIS, [trunc_rows[p].recall for p in PSIS], "s--", color="C1", label="recall")
ax.set(xlabel="truncation psi", ylabel="FCD / floor", title="the truncation trade")
ax2.set_ylabel("recall")
fig.legend(loc="upper center")
plt.show()

# %% [markdown]
# You should see the truncation trade in the table. From $\psi = 1$ to 0.7, precision rises
# from 0.77 to 0.81 while recall falls from 0.76 to 0.66; at $\psi = 0.5$ recall is down to
# 0.35 and the FCD ratio, which punishes lost diversity, climbs from 2.41 (at $\psi = 1$)
# to 7.14: the samples crowd around the average digit. The widget below redraws the same
# latents at the $\psi$ you choose ($\psi = 0$ gives the one average digit $G(\bar w)$ for
# every latent).


# %%
def show_truncation(psi=0.7):
    x = stylegan.sample(36, generator=torch.Generator().manual_seed(0), psi=psi)
    plot.image_grid(x, title=f"psi = {psi:.1f}")
    plt.show()


_ = widgets.interact(show_truncation, psi=widgets.FloatSlider(0.7, min=0.0, max=1.0, step=0.1))

# %% [markdown]
# **Style mixing.** Row $i$, column $j$ of the grid below takes the coarse (4×4) style of row
# $i$'s digit and the fine (8×8) styles of column $j$'s, with the same noise everywhere.
# **Noise.** The same $w$ with fresh noise inputs changes only details: we compare the
# per-pixel standard deviation over noise draws with that over latents.

# %%
with torch.no_grad():
    g_mix = torch.Generator().manual_seed(11)
    z_rows, z_cols = (torch.randn(5, LATENT, generator=g_mix).to(DEV) for _ in range(2))
    ws_rows, ws_cols = style_G.styles(z_rows), style_G.styles(z_cols)
    fixed = [n[:1] for n in style_G.draw_noise(1, g_mix)]
    grid = [torch.zeros(1, *SHAPE, device=DEV)] + [
        style_G.synthesis(ws_cols[j : j + 1], fixed) for j in range(5)
    ]
    for i in range(5):
        grid.append(style_G.synthesis(ws_rows[i : i + 1], fixed))
        grid += [
            style_G.synthesis(gan.mix_styles(ws_rows[i : i + 1], ws_cols[j : j + 1], 1), fixed)
            for j in range(5)
        ]
    # the noise's share of the variation: one w, 64 noise draws, vs 64 latents
    one_w = style_G.styles(z_rows[:1]).expand(64, -1, -1)
    by_noise = style_G.synthesis(one_w, style_G.draw_noise(64, g_mix)).std(0).mean().item()
    by_latent = stylegan.sample(64, generator=g_mix).std(0).mean().item()
plot.image_grid(torch.cat(grid), nrow=6, title="coarse style from the rows, fine from the columns")
plt.show()
print(f"per-pixel std over noise draws {by_noise:.3f} | over latents {by_latent:.3f}")

# %% [markdown]
# You should see each row keep its digit's identity (the coarse style) while the columns pass on
# stroke width and contrast (the fine styles). The noise inputs account for a per-pixel
# spread only 0.16 times that of the latents: at 8×8 there is little stochastic detail
# (hair, pores) for them to explain.

# %% [markdown]
# ## 7. GAN inversion: from an image back to its latent
#
# A GAN has no encoder: $G$ maps $z \mapsto x$ and nothing maps back. To edit a *real* image
# in latent space we first **invert** the generator, finding a $z^*$ with $G(z^*) \approx x$:
#
# $$z^* = \arg\min_z \; \frac{\|m \odot (G(z) - x)\|^2}{\|m\|_1},$$
#
# minimised by Adam over $z$ with $G$ fixed (Creswell & Bharath 2016), where the mask $m$
# marks the pixels that count (all of them for a reconstruction). The objective is not convex
# in $z$ and each step costs a forward and backward pass of $G$, so where it starts matters.
# An **encoder** $E$ trained on the generator's own samples, $E(G(z)) \approx z$ (an MLP on
# pairs $(G(z), z)$, `gan.LatentEncoder`), gives a good start in one pass; optimising from
# $z_0 = E(x)$ is the usual **hybrid** recipe (Zhu et al. 2016; Xia et al. 2022). We invert
# the DCGAN of section 4 on the test digits, from a random $z_0 \sim \mathcal N(0, I)$ and
# from the encoder's guess, for the same number of steps.
#
# Exercise: the objective, one value per image: `mask` is `(B, 1, H, W)`, shared by the
# channels, and $\|m\|_1$ counts the visible values of the mask expanded like `x`.


# %%
def inversion_loss(G, z, x, mask):
    """(B,): ||m (G(z) - x)||^2 / |m| per image, m the mask expanded like x."""
    ### BEGIN SOLUTION
    m = mask.expand_as(x)
    return (m * (G(z) - x)).pow(2).flatten(1).sum(1) / m.flatten(1).sum(1)
    ### END SOLUTION


checks.check_inversion_loss(inversion_loss)

# %% [markdown]
# `gan.invert(G, x, z0, steps, lr, mask)` minimises the batch mean of this objective by Adam
# and logs it, with $\|z\| / \sqrt d$, at every step.

# %%
N_ENC = utils.pick(smoke=512, cpu=10_000, gpu=50_000)
ENC_STEPS = utils.pick(smoke=30, cpu=1000, gpu=4000)
INV_STEPS = utils.pick(smoke=10, cpu=200, gpu=500)
N_INV = utils.pick(smoke=32, cpu=len(digits_test), gpu=len(digits_test))
G_inv = dcgan.generator  # trained in section 4, in eval mode, and kept fixed from here on
with torch.no_grad():
    z_fake = torch.randn(N_ENC, LATENT, generator=torch.Generator().manual_seed(5)).to(DEV)
    x_fake = G_inv(z_fake)  # the encoder learns from the generator's own (image, z) pairs
torch.manual_seed(0)
encoder = gan.LatentEncoder(64, LATENT, hidden=256, depth=3)
train.fit(
    encoder, (x_fake, z_fake), steps=ENC_STEPS, batch_size=128, lr=1e-3, progress=False, device=DEV
)
encoder.eval()
x_inv, labels_inv = digits_test.float()[:N_INV].to(DEV), digits_test.labels[:N_INV]
with torch.no_grad():
    z_enc = encoder(x_inv)
    x_enc = G_inv(z_enc)
z_rand = torch.randn(N_INV, LATENT, generator=torch.Generator().manual_seed(6)).to(DEV)
inv_runs = {
    "random start": gan.invert(G_inv, x_inv, z_rand, steps=INV_STEPS, lr=0.1),
    "encoder start": gan.invert(G_inv, x_inv, z_enc, steps=INV_STEPS, lr=0.1),
}
inv_mse = {"encoder alone": (x_enc - x_inv).pow(2).mean().item()}
inv_mse.update({k: r.loss[-1] for k, r in inv_runs.items()})
inv_class = {"encoder alone": metrics.classifier_accuracy(x_enc.cpu(), labels_inv)}
inv_class.update(
    {k: metrics.classifier_accuracy(r.x.cpu(), labels_inv) for k, r in inv_runs.items()}
)
# how close the training set itself comes: each test digit's nearest training digit
nearest_mse = (
    (torch.cdist(x_inv.flatten(1).cpu(), digits_train.float().flatten(1)).min(1).values.pow(2) / 64)
    .mean()
    .item()
)
for k in inv_mse:
    print(f"{k:>14}: reconstruction MSE {inv_mse[k]:.4f} | class kept {inv_class[k]:.3f}")
print(f"nearest training digit: MSE {nearest_mse:.4f}")
drift = {k: (r.norm_ratio[0], r.norm_ratio[-1]) for k, r in inv_runs.items()}
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
band = 2 / math.sqrt(2 * LATENT)  # ||z|| / sqrt(d) under the prior: about 1 +- 1/sqrt(2d)
axes[1].axhspan(1 - band, 1 + band, color="0.9", label="prior, 95%")
for k, r in inv_runs.items():
    axes[0].plot(r.loss, label=k)
    axes[1].plot(r.norm_ratio, label=k)
axes[0].set(xlabel="Adam step", ylabel="reconstruction MSE", title="inverting the DCGAN")
axes[1].set(xlabel="Adam step", ylabel="||z|| / sqrt(d)", title="the drift of z")
axes[0].legend()
axes[1].legend()
plt.show()
show = torch.cat([x_inv[:10], x_enc[:10]] + [r.x[:10] for r in inv_runs.values()])
plot.image_grid(show.cpu(), nrow=10, title="rows: test digit, G(E(x)), random start, encoder start")
plt.show()

# %% [markdown]
# You should see the encoder start win at equal cost: after the same 200 Adam steps the
# reconstruction MSE is 0.0017 from the encoder's guess against 0.0043 from a random $z_0$
# (the encoder alone, with no optimisation, gives 0.021), and the reconstructions keep the
# digit's class 0.99 of the time against 0.98 (the classifier reads 0.99 of the intact
# digits). Both optimised fits are far closer than the nearest *training* digit (MSE 0.018):
# with 32 latent dimensions for 64 pixels the DCGAN's range is wide, so a small error says
# that $G$ *can* draw the image, not that the image is a typical sample of $G$. Large GANs
# are inverted in StyleGAN's $\mathcal W$ space, or with one $w$ per layer
# ($\mathcal W^+$), for the reverse reason: $\mathcal Z$ alone fits their images poorly.
#
# **The drift.** Under the prior, $\|z\| / \sqrt d$ lies in $1 \pm 0.25$ for 95% of draws in
# $d = 32$ dimensions (the grey band). Nothing in the objective keeps $z$ there: the
# optimisation pushes the random start from 0.99 out to 1.31, past the band, into a region
# where $G$ was rarely trained. The encoder's guesses start well inside the shell, at 0.64
# (a regression onto $z$ shrinks towards the mean), and end at 1.06, inside the band, with
# the better fit: a good start needs less travel. Off the shell the pixels that are fitted
# get better while $z$ stops looking like a sample of the prior, and a direction learned
# from prior samples was learned where they lie: the edits below measure what that costs
# (it moves the attribute less than asked). `gan.invert` logs
# the ratio at every step; `prior_weight` adds the Gaussian's $\|z\|^2 / d$ as a
# regulariser, but its optimum is $z = 0$, not the shell, so a projection onto the shell, or
# a bound on the step count, is the common fix.

# %% [markdown]
# **Inpainting through the latent space.** Hide the centre 4×4 of each test digit, invert
# with the mask $m$ = the visible pixels (the optimisation never sees the hole), and fill the
# hole with $G(z^*)$. The encoder's start is computed on the digit with the hole filled by
# the mean training digit, and so is the baseline that the GAN must beat.

# %%
hole = torch.ones(1, 1, 8, 8, device=DEV)
hole[..., 2:6, 2:6] = 0  # 1 = visible
mean_digit = digits_train.float().mean(0, keepdim=True).to(DEV)
x_holed = x_inv * hole + (1 - hole) * mean_digit  # the hole filled with the mean digit
with torch.no_grad():
    z_hole = encoder(x_holed)
inpaint = gan.invert(G_inv, x_inv * hole, z_hole, steps=INV_STEPS, lr=0.1, mask=hole)
x_filled = x_inv * hole + (1 - hole) * inpaint.x  # keep the visible pixels, fill the hole
hidden = (1 - hole).expand_as(x_inv)


def hole_mse(x):
    return ((x - x_inv).pow(2) * hidden).sum().item() / hidden.sum().item()


fill_mse = {"mean digit": hole_mse(x_holed), "GAN inversion": hole_mse(x_filled)}
fill_class = {
    "mean digit": metrics.classifier_accuracy(x_holed.cpu(), labels_inv),
    "GAN inversion": metrics.classifier_accuracy(x_filled.cpu(), labels_inv),
    "no hole": metrics.classifier_accuracy(x_inv.cpu(), labels_inv),
}
for k in fill_mse:
    print(f"hole filled by {k:>13}: MSE in the hole {fill_mse[k]:.4f} | class {fill_class[k]:.3f}")
print(f"classifier on the intact digits: {fill_class['no hole']:.3f}")
plot.image_grid(
    torch.cat([x_inv[:10], x_holed[:10], x_filled[:10]]).cpu(),
    nrow=10,
    title="rows: test digit, hole filled by the mean digit, by GAN inversion",
)
plt.show()

# %% [markdown]
# You should see the hole filled by GAN inversion with an MSE of 0.093 inside it, against
# 0.144 for the mean digit, and the completed digits read as their class 0.80 of the time
# against 0.61 (0.99 with no hole): the generator fills the hole with strokes that are
# consistent with the visible ones. Its $z$ ends at $\|z\| / \sqrt d =$ 0.98: only 48 of
# the 64 pixels constrain it, so there is less to pull it off the shell.

# %% [markdown]
# **Editing along an attribute.** Once a real digit has a latent $z^*$, editing it is moving
# $z^*$. For an attribute that varies roughly linearly over $\mathcal Z$ there is one
# direction $n$ to move along (Radford et al. 2016; InterFaceGAN, Shen et al. 2020): draw
# prior samples, measure the attribute on their images, and regress it on $z$ by least
# squares, $n = \beta / \|\beta\|$ (`gan.attribute_direction`, which also returns the fit's
# $R^2$ and the slope $s$, the attribute's change per prior standard deviation along $n$).
# Our attribute is stroke thickness, measured as the ink (the mean intensity) of a digit;
# nothing labels the test digits' thickness, the directions come from 10,000 of the
# generator's own samples. An edit that asks for $k$ standard deviations of the test digits'
# ink, $\sigma$, moves $z^* \mapsto z^* + (k \sigma / s)\, n$.
#
# One direction for all digits also changes whatever is correlated with ink across them, and
# in digits that is the class (ones have little ink, zeros and eights a lot). Two remedies:
#
# - InterFaceGAN's *conditional* direction: remove from $n$ its component in the span of
#   the directions of the attributes to hold, here the classifier's ten log-probabilities
#   regressed on $z$ the same way (`keep=`);
# - one direction *per class*: fit $n_c$ on the prior samples that the classifier reads as
#   class $c$, and edit each digit along the direction of the class it reads as.
#
# We apply the three to the inversions of the test digits above, from the encoder's start
# (near the prior's shell) and from the random start (off it), and measure the ink moved (in
# $\sigma$), the fraction of digits whose ink moved the asked way, and the class kept (the
# digits classifier against the true labels): a good edit changes the attribute and nothing
# else.

# %%
t_edit = time.perf_counter()
N_DIR = utils.pick(smoke=2000, cpu=10_000, gpu=50_000)
ASKED = (-2, -1, 1, 2)  # ink changes asked for, in the test digits' ink standard deviations
digits_classifier = metrics.classifier("digits", DEV)
with torch.no_grad():
    z_dir = torch.randn(N_DIR, LATENT, generator=torch.Generator().manual_seed(7)).to(DEV)
    x_dir = G_inv(z_dir)
    ink_dir = x_dir.flatten(1).mean(1)  # the ink of each prior sample
    class_logp = digits_classifier(x_dir).log_softmax(1)  # (N, 10): the attributes to hold
    class_dir = class_logp.argmax(1)
directions = {
    "one for all": gan.attribute_direction(z_dir, ink_dir),
    "class held": gan.attribute_direction(z_dir, ink_dir, keep=class_logp),
}
counts = torch.bincount(class_dir, minlength=10)
per_class = [  # a class with too few samples to fit (an untrained G) falls back to the global one
    gan.attribute_direction(z_dir[class_dir == c], ink_dir[class_dir == c])
    if counts[c] >= 4 * LATENT else directions["one for all"]
    for c in range(10)
]  # fmt: skip
print(f"prior samples per class: {counts.tolist()}")
per_class_n = torch.stack([d.n for d in per_class])  # (10, latent)
per_class_slope = torch.tensor([d.slope for d in per_class], device=DEV)
real_ink = digits_test.float().flatten(1).mean(1)
ink_sd = real_ink.std().item()
EDITS = ("one for all", "class held", "per class")


def edit(z, k, how):
    """G(z + alpha n) per image, alpha such that the fitted ink moves by k ink_sd."""
    with torch.no_grad():
        if how == "per class":
            c = digits_classifier(G_inv(z)).argmax(1)  # the class each digit reads as
            n, slope = per_class_n[c], per_class_slope[c].unsqueeze(1)
        else:
            n, slope = directions[how].n, directions[how].slope
        return G_inv(z + (k * ink_sd / slope) * n)


def edit_scores(z, how):
    """Per asked k: the ink moved (in ink_sd), the fraction moved the asked way, class kept."""
    ink0 = edit(z, 0, how).flatten(1).mean(1)
    rows = {}
    for k in ASKED:
        x_k = edit(z, k, how)
        moved = (x_k.flatten(1).mean(1) - ink0) / ink_sd
        rows[k] = {
            "ink moved": moved.mean().item(),
            "asked way": (moved * k > 0).float().mean().item(),
            "class kept": metrics.classifier_accuracy(x_k.cpu(), labels_inv),
        }
    return rows


edit_rows = {
    (how, start): edit_scores(inv_runs[start].z, how)
    for how in EDITS
    for start in ("encoder start", "random start")
}
print(f"the test digits' ink: {real_ink.mean():.3f} +- {ink_sd:.3f}")
for name, d in directions.items():
    print(f"{name}: R^2 of the ink fit {d.r2:.3f}, slope {d.slope / ink_sd:.3f} sd per prior sd")
print(f"per class: R^2 {min(d.r2 for d in per_class):.3f} to {max(d.r2 for d in per_class):.3f}, "
      f"slope {per_class_slope.min() / ink_sd:.3f} to {per_class_slope.max() / ink_sd:.3f} sd")  # fmt: skip
for (how, start), scores in edit_rows.items():
    cells = " | ".join(
        f"{k:+d}: {r['ink moved']:+.2f} sd, way {r['asked way']:.2f}, class {r['class kept']:.2f}"
        for k, r in scores.items()
    )
    print(f"{how:>11}, {start:>13}: {cells}")
edit_seconds = time.perf_counter() - t_edit
print(f"the edits took {edit_seconds:.1f} s")
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for (how, start), scores in edit_rows.items():
    style = "o-" if start == "encoder start" else "o--"
    for ax, key in zip(axes, ("ink moved", "class kept")):
        ax.plot(ASKED, [r[key] for r in scores.values()], style, label=f"{how}, {start}")
axes[0].plot(ASKED, ASKED, color="0.6", lw=1, label="as asked")
axes[0].set(xlabel="ink asked for (sd)", ylabel="ink moved (sd)", title="the edited attribute")
axes[1].set(xlabel="ink asked for (sd)", ylabel="class kept", title="what it should leave alone")
axes[0].legend(fontsize=7)
plt.show()
z_edit = inv_runs["encoder start"].z[:8]
show_k = (-2, -1, 0, 1, 2)
plot.image_grid(
    torch.cat([edit(z_edit, k, how) for how in EDITS for k in show_k]).cpu(),
    nrow=8,
    row_labels=[f"{how} {k:+d}" for how in EDITS for k in show_k],
)
plt.show()


# %% [markdown]
# The widget edits ten inverted test digits (encoder start) with any of the three.


# %%
def show_edit(k=0.0, how="per class"):
    x = edit(inv_runs["encoder start"].z[:10], k, how)
    plot.image_grid(x.cpu(), nrow=10, title=f"ink {k:+.1f} sd, direction: {how}")
    plt.show()


_ = widgets.interact(
    show_edit, k=widgets.FloatSlider(0.0, min=-3.0, max=3.0, step=0.5), how=list(EDITS)
)

# %% [markdown]
# You should see that ink is only partly linear in $z$ ($R^2$ = 0.382 over the prior samples),
# yet the edit does what it asks for: with one direction for all, asked for $-1$ and $+1$
# standard deviations, the encoder-start inversions move by $-1.01$ and $+1.10$, the asked
# way for 0.97 and 1.00 of the digits (target $\ge 0.9$, set after a prototype run). What it
# does not leave alone is the class: kept 0.78 and 0.75 of the time at $\pm 1$ and 0.50 and
# 0.35 at $\pm 2$, against 0.99 unedited. The grid shows why: the thick end of the direction
# turns digits into zeros, the thin end into sevens and ones, because across digits the
# class *is* most of what ink varies with.
#
# - **Class held** (InterFaceGAN's projection) fails here. The ten class directions nearly
#   span the ink direction: what is left moves the ink by 0.173 standard deviations per prior
#   standard deviation (0.605 for the plain direction), so asking for 2 takes $z^*$ about 12
#   prior standard deviations out, far off the shell, where the edit no longer does what it
#   asks: thinning by 2 moves the ink by $+0.09$. Linear projection holds attributes only
#   where they are linear, and a classifier's log-probabilities are not.
# - **Per class** directions ($R^2$ 0.46 to 0.58 within a class) thicken well: $+1.06$ with
#   the class kept 0.93, $+1.76$ at 0.83. Thinning still breaks digits (class kept 0.56 at
#   $-1$): on an 8×8 grid a stroke one pixel wide has no thinner version, so removing ink
#   removes strokes.
# - **Off the shell** (the random start's inversions, $\|z\| / \sqrt d \approx 1.31$) the
#   same plain edit moves the ink less than asked, $-0.81$ and $+0.92$ for $\pm 1$, and keeps
#   the class a little more often (0.86 and 0.80) because it moves less: the direction was
#   fitted where the prior puts its mass.
#
# Editing by a direction in $\mathcal Z$ is cheap (one generator pass per edit) but only as
# good as the attribute's linearity there; StyleGAN's $\mathcal W$ space was designed to be
# more linear (its perceptual path length), and section 8's CycleGAN learns a thickening as a
# translation instead.

# %% [markdown]
# ## 8. Image-to-image translation: pix2pix, BicycleGAN, CycleGAN
#
# ### Paired: pix2pix
#
# pix2pix (Isola et al. 2017) learns $G: A \to B$ from *pairs* $(a, b)$ with a conditional GAN
# plus an L1 term (eq. 4),
#
# $$\min_G \max_D\; \mathbb E_{a, b}[\log D(a, b)] + \mathbb E_a[\log(1 - D(a, G(a)))]
# + \lambda\, \mathbb E_{a, b} \|G(a) - b\|_1, \qquad \lambda = 100.$$
#
# The L1 term alone already gets the layout right, but it rewards the per-pixel *median* of
# all the digits that could sit behind an edge map: where the input is ambiguous, the output
# is a compromise that no real digit looks like. The GAN term asks for outputs that the
# discriminator cannot tell from real pairs. Its discriminator is a **patch** discriminator
# (`gan.PatchCritic`): it sees the edge map and the digit stacked as two channels and returns
# a 4×4 grid of logits, one per overlapping patch, so it judges local strokes and leaves the
# global layout to the L1 term. The generator is a small U-Net (`gan.Translator`: one
# downsampling, one upsampling, a skip connection at full resolution).
#
# The pairs are built offline: $a$ is a digit's edge map (`gan.edges`, the Sobel gradient
# magnitude), $b$ the digit. We train the same model twice from the same seed, once with the
# L1 term alone (`adversarial=0`: no discriminator at all) and once with both terms, and
# measure on the test digits the class kept (the digit classifier on the outputs), the L1 to
# the truth, and the FCD of the outputs against the real-vs-real floor. Both get a noise
# input $z$ (2 constant channels), as in the paper: we will see that pix2pix ignores it.

# %%
P2P_STEPS = utils.pick(smoke=10, cpu=400, gpu=3000)
P2P_NOISE, P2P_WIDTH = 2, 32  # at width 16 the L1 term alone collapses to all-black outputs
edges_train = gan.edges(digits_train.float()).to(DEV)
digits_truth = digits_test.float().to(DEV)
edges_test = gan.edges(digits_truth)


def pix2pix(**kw):
    torch.manual_seed(0)
    model = gan.Pix2Pix(width=P2P_WIDTH, lr=1e-3, noise_dim=P2P_NOISE, **kw).to(DEV)
    pairs = (edges_train, digits_train.float().to(DEV))
    train.fit(model, pairs, steps=P2P_STEPS, batch_size=64, progress=False, device=DEV)
    return model.eval()


def translation_scores(model):
    z = torch.randn(len(edges_test), P2P_NOISE, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model.translate(edges_test, z.to(DEV)).cpu()
    score = metrics.fcd(out, digits_train)
    return out, {
        "class kept": metrics.classifier_accuracy(out, digits_test.labels),
        "L1 to truth": (out - digits_truth.cpu()).abs().mean().item(),
        "FCD / floor": score.value / score.floor,
        # sharpness: the outputs' mean edge magnitude over the true digits' (1 = as sharp)
        "sharpness": (gan.edges(out).mean() / edges_test.cpu().mean()).item(),
    }


t_p2p = time.perf_counter()
p2p_models = {"L1 alone": pix2pix(adversarial=0.0), "pix2pix (L1 + GAN)": pix2pix()}
p2p_out, p2p_scores = {}, {}
for k, m in p2p_models.items():
    p2p_out[k], p2p_scores[k] = translation_scores(m)
    print(f"{k:>20}: " + ", ".join(f"{s} {v:.3f}" for s, v in p2p_scores[k].items()))
print(f"classifier on the true test digits: "
      f"{metrics.classifier_accuracy(digits_truth.cpu(), digits_test.labels):.3f}; "
      f"trained and measured in {time.perf_counter() - t_p2p:.1f} s")  # fmt: skip
show = torch.cat([edges_test[:8].cpu(), *(o[:8] for o in p2p_out.values()), digits_truth[:8].cpu()])
plot.image_grid(show, nrow=8, row_labels=["edges", "L1 alone", "pix2pix", "truth"])
plt.show()

# %% [markdown]
# You should see both translators keep the class of the edge map's digit: 0.929 of the test
# digits with the L1 term alone and 0.926 with pix2pix (target ≥ 0.9, CycleGAN's), against
# 0.99 for the real digits; the edge map pins the class down, and the L1 term keeps it. The GAN term shows in
# the distribution of the outputs: FCD 2.01× the real-vs-real floor with L1 alone against
# 1.28× with L1 + GAN, and sharpness 0.95 against 0.99 (the outputs' mean edge magnitude over
# the true digits'; below 1 is blurred). In the figure the L1-alone digits have soft grey
# strokes where the edge map is ambiguous; pix2pix commits to strokes. The L1 to the truth
# does not suffer for it (0.073 with L1 alone, 0.065 with the GAN term, on images in [0, 1]):
# at this budget the critic's gradient even helps the generator fit.
#
# ### Multimodal outputs: BicycleGAN's idea
#
# An edge map does not fix a digit's stroke widths and grey levels, yet pix2pix returns one
# answer per edge map whatever its noise: the L1 term rewards the one median answer, so the
# generator learns to ignore $z$. BicycleGAN (Zhu et al. 2017b) makes $z$ matter with two
# paths per step (`gan.Pix2Pix(noise_dim=..., latent_regression=...)`):
#
# - **cVAE-GAN** (eq. 5): an encoder $E$ reads the *target*, $z \sim E(b)$, and
#   $G(a, z)$ must reconstruct $b$ (L1) and fool $D$; a KL term keeps $E(b)$ near
#   $\mathcal N(0, I)$, so that at test time $z$ can be drawn from the prior;
# - **cLR-GAN** (eq. 6): $z \sim \mathcal N(0, I)$, $G(a, z)$ must fool $D$, and $E$ must
#   recover $z$ from it, $|E(G(a, z)) - z|$, which forbids the generator from ignoring $z$.
#
# We measure the diversity as the mean pairwise L1 distance between 8 outputs for the same
# edge map (different $z$), averaged over 64 test edge maps, for BicycleGAN and for pix2pix.

# %%
bicycle = pix2pix(latent_regression=1.0, kl=0.3)
p2p_out["BicycleGAN"], p2p_scores["BicycleGAN"] = translation_scores(bicycle)
N_MAPS, N_Z = utils.pick(smoke=8, cpu=64, gpu=256), 8


def diversity(model):
    """Mean pairwise L1 (per pixel) between N_Z outputs for each of N_MAPS edge maps."""
    a = edges_test[:N_MAPS].repeat_interleave(N_Z, 0)  # (N_MAPS * N_Z, 1, 8, 8)
    z = torch.randn(len(a), P2P_NOISE, generator=torch.Generator().manual_seed(4)).to(DEV)
    with torch.no_grad():
        out = model.translate(a, z).view(N_MAPS, N_Z, -1)  # (N_MAPS, N_Z, 64)
    d = torch.cdist(out, out, p=1) / out.shape[-1]  # (N_MAPS, N_Z, N_Z), zero diagonal
    return (d.sum((1, 2)) / (N_Z * (N_Z - 1))).mean().item(), out.view(-1, 1, 8, 8).cpu()


div, div_out = {}, {}
for k, m in [("pix2pix (L1 + GAN)", p2p_models["pix2pix (L1 + GAN)"]), ("BicycleGAN", bicycle)]:
    div[k], div_out[k] = diversity(m)
    print(
        f"{k:>20}: diversity {div[k]:.4f}, "
        + ", ".join(f"{s} {v:.3f}" for s, v in p2p_scores[k].items())
    )
p2p_seconds = time.perf_counter() - t_p2p
print(f"L1 alone, pix2pix and BicycleGAN trained and measured in {p2p_seconds:.1f} s")
rows_show = [torch.cat([edges_test[i : i + 1].cpu(), div_out[k][i * N_Z : i * N_Z + 7]])
             for k in div_out for i in range(3)]  # fmt: skip
plot.image_grid(
    torch.cat(rows_show), nrow=8,
    row_labels=[f"{k.split(' ')[0]} {i}" for k in div_out for i in range(3)],
    title="an edge map, then 7 outputs with different z",
)  # fmt: skip
plt.show()

# %% [markdown]
# You should see pix2pix's 8 outputs for one edge map all but identical, a mean pairwise L1
# of 0.0080 per pixel: it has learned to ignore its noise, as Isola et al. report. BicycleGAN's
# outputs differ about nine times more, 0.074, in stroke width and grey level, and in the
# figure sometimes in shape. The price at this budget is fidelity: with $z$ drawn from the
# prior, BicycleGAN keeps the class of 0.76 of the test digits (pix2pix: 0.93), its FCD is
# 2.13× the floor (1.28×) and its L1 to the truth 0.093 (0.065): some codes ask for a stroke
# that the edge map does not allow. The KL weight (0.3 here) sets the trade: in trial runs
# of the same size (not recorded), a weight of 1 gave back pix2pix's class kept (0.92) and
# its lack of diversity (0.009: the code carried nothing), and 0.1 gave more diversity
# (0.13) and fewer digits of the right class (0.62).
#
# ### Unpaired: CycleGAN
#
# Without pairs, a GAN term alone only asks that $G(a)$ look
# like *some* member of $B$: it may map every $a$ to the same convincing $b$, or swap the
# classes. CycleGAN (Zhu et al. 2017) trains two translators $G_{ab}: A \to B$ and
# $G_{ba}: B \to A$, a discriminator per domain, and ties them with the **cycle-consistency
# loss** (eq. 2)
#
# $$\mathcal L_{\text{cyc}} = \mathbb E_a \|G_{ba}(G_{ab}(a)) - a\|_1 + \mathbb E_b
# \|G_{ab}(G_{ba}(b)) - b\|_1,$$
#
# weighted by 10 against the two GAN terms: a translation must keep enough of its input to be
# undone, which is what keeps the content (here, the digit's class). The two domains are
# built offline: A is digits, B is digits with thickened strokes (`gan.thicken`), each from
# its own half of the training set, so no image of A has its partner in B.
#
# Exercise: the cycle-consistency loss, each L1 term a mean over its elements.


# %%
def cycle_loss(G_ab, G_ba, a, b):
    """||G_ba(G_ab(a)) - a||_1 + ||G_ab(G_ba(b)) - b||_1, each a mean (a and b unpaired)."""
    ### BEGIN SOLUTION
    return (G_ba(G_ab(a)) - a).abs().mean() + (G_ab(G_ba(b)) - b).abs().mean()
    ### END SOLUTION


checks.check_cycle_loss(cycle_loss)

# %% [markdown]
# `gan.CycleGAN` trains both translators and both (patch) discriminators in one `train_step`,
# on batches `(a, b)` drawn independently from the two domains. The class kept is measured on
# the test digits with the course's digit classifier: a test digit's translation should be
# classified as that digit's label.

# %%
CYCLE_STEPS = utils.pick(smoke=20, cpu=600, gpu=3000)
torch.manual_seed(0)
half = len(digits_train) // 2
domain_a = digits_train.float()[:half]
domain_b = gan.thicken(digits_train.float()[half:])  # the other half: no pairs
batches_a = data.Batches(
    domain_a, batch_size=64, device=DEV, generator=torch.Generator().manual_seed(1)
)
batches_b = data.Batches(
    domain_b, batch_size=64, device=DEV, generator=torch.Generator().manual_seed(2)
)
cyclegan = gan.CycleGAN(width=16, lr=1e-3).to(DEV)
train.fit(cyclegan, ((a, b) for (a, _), (b, _) in zip(batches_a, batches_b)), steps=CYCLE_STEPS)
test_a, test_labels = digits_test.float().to(DEV), digits_test.labels
test_b = gan.thicken(test_a)
with torch.no_grad():
    to_b, to_a = cyclegan.G_ab(test_a), cyclegan.G_ba(test_b)
    cycle_l1 = gan.cycle_consistency_loss(cyclegan.G_ab, cyclegan.G_ba, test_a, test_b).item()
kept = {
    "A -> B": metrics.classifier_accuracy(to_b.cpu(), test_labels),
    "B -> A": metrics.classifier_accuracy(to_a.cpu(), test_labels),
    "real A": metrics.classifier_accuracy(test_a.cpu(), test_labels),
    "true thickening of A": metrics.classifier_accuracy(test_b.cpu(), test_labels),
}
for k, v in kept.items():
    print(f"class kept / classifier accuracy, {k:>20}: {v:.3f}")
print(f"cycle L1 on the test digits (sum of both cycles): {cycle_l1:.3f}")
show = torch.cat([test_a[:8], to_b[:8], test_b[:8], to_a[:8]])
plot.image_grid(
    show.cpu(), nrow=8, title="rows: digit, G_ab(digit), thick digit, G_ba(thick digit)"
)
plt.show()

# %% [markdown]
# You should see the thick-to-thin translations keep the class of 96% of the test digits
# (the classifier reads 99% of the real ones), and the thin-to-thick ones 79%, close to the
# classifier's accuracy on the *true* thickening of those digits (83%): the classifier was
# trained on ordinary strokes, so 83% is about as high as it can read thick digits, and most
# of the gap to 99% is the classifier's, not a loss of class.
# The cycle L1 on the test digits is 0.13 (both cycles together, on images in [0, 1]).

# %% [markdown]
# ## 9. 3-D GANs at small scale
#
# Nothing in the adversarial game is specific to images. The 3D-GAN of Wu et al. (2016)
# generates **voxel grids**: 3-D transposed convolutions in $G$, 3-D strided convolutions in
# the critic, trained on occupancy grids of real objects. Our shapes are procedural
# (`voxels.shapes_3d`): spheres, boxes and tori of random size and position, at $S^3$ voxels
# ($S = 8$ in the cpu profile, 16 on a GPU; 3-D convolutions are costly on one core).
#
# **Platonic GAN** (Henzler et al. 2019) asks for less: only 2-D images of the objects, from
# unknown random views. Its generator still outputs a voxel grid, but the critic never sees
# it: the grid is turned by a random angle and **rendered** by a differentiable image former,
# here absorption only, $I(u, v) = 1 - \exp(-\sum_d \text{occupancy}(d, u, v))$ (a soft
# silhouette, `voxels.render`), and a *2-D* critic compares that image with images of real
# shapes. The gradient reaches the 3-D generator through the renderer. Only a grid that looks
# right from every angle fools the critic on every view, so the 3-D structure is learned from
# 2-D data alone (up to what silhouettes cannot show: a concavity that no view sees).
#
# Both games are section 5's non-saturating GAN with an R1 penalty: without the penalty, in
# our runs, every sample of both generators was the same flat ring, whatever its $z$.
#
# We judge a set of grids by **intersection over union** (IoU, at 0.5 occupancy): *realism*,
# each generated grid's best IoU with a training shape; *coverage*, each held-out real
# shape's best IoU with the generated grids (a generator that always emits one blob scores
# well on the first and badly on the second); and the occupied volume, against the data's.

# %%
from coursekit.gan import voxels  # noqa: E402

VOX = utils.pick(smoke=8, cpu=8, gpu=16)
N_SHAPES = utils.pick(smoke=128, cpu=1000, gpu=5000)
VOX_STEPS = utils.pick(smoke=10, cpu=300, gpu=3000)
VOX_LATENT, VOX_WIDTH, N_VOX_EVAL = 32, 16, utils.pick(smoke=32, cpu=200, gpu=500)
shapes, _ = voxels.shapes_3d(N_SHAPES, size=VOX, seed=0)
held_shapes, _ = voxels.shapes_3d(N_VOX_EVAL, size=VOX, seed=1)
t_vox = time.perf_counter()


def voxel_gan(G, D, x, noise):
    torch.manual_seed(0)
    adv = train.Adversarial(
        G,
        D,
        gan.g_nonsaturating,
        gan.d_gan,
        g_opt=torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
        noise=noise,
        gradient_penalty=gan.r1_penalty(1.0),  # without it both runs collapse to one shape
    )
    train.fit(adv, x, steps=VOX_STEPS, batch_size=64, progress=False, device=DEV)
    G.eval()


# the 3D-GAN: a voxel generator against a voxel critic
torch.manual_seed(0)
vox_G = voxels.VoxelGenerator(VOX_LATENT, width=VOX_WIDTH, size=VOX)
voxel_gan(
    vox_G,
    voxels.VoxelCritic(width=VOX_WIDTH, size=VOX),
    shapes,
    train.gaussian_noise(VOX_LATENT),
)
# Platonic GAN: the same kind of generator, seen only through renderings by a 2-D critic
torch.manual_seed(0)
plato_G = voxels.PlatonicGenerator(voxels.VoxelGenerator(VOX_LATENT, width=VOX_WIDTH, size=VOX))
views = voxels.random_views(shapes, views=2, generator=torch.Generator().manual_seed(2))
voxel_gan(plato_G, gan.DCCritic(1, VOX, width=VOX_WIDTH), views, voxels.platonic_noise(VOX_LATENT))
with torch.no_grad():
    z_vox = torch.randn(N_VOX_EVAL, VOX_LATENT, generator=torch.Generator().manual_seed(3)).to(DEV)
    grids = {
        "real (a fresh draw)": voxels.shapes_3d(N_VOX_EVAL, size=VOX, seed=2)[0],
        "3D-GAN": vox_G(z_vox).cpu(),
        "Platonic GAN": plato_G.voxels(z_vox).cpu(),
        "one mean blob": shapes.mean(0, keepdim=True).expand(N_VOX_EVAL, -1, -1, -1, -1),
    }
vox_seconds = time.perf_counter() - t_vox
vox_stats = {
    k: {
        "realism": voxels.nearest_iou(g, shapes).mean().item(),
        "coverage": voxels.nearest_iou(held_shapes, g).mean().item(),
        "volume": (g > 0.5).float().mean().item(),
    }
    for k, g in grids.items()
}
for k, s in vox_stats.items():
    print(
        f"{k:>19}: realism IoU {s['realism']:.3f} | coverage IoU {s['coverage']:.3f} | "
        f"volume {s['volume']:.3f}"
    )
print(f"both 3-D GANs trained in {vox_seconds:.0f} s")
angles = torch.linspace(0, math.pi, 5)[:4]  # 0, 45, 90 and 135 degrees
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
for ax, k in zip(axes, ["real (a fresh draw)", "3D-GAN", "Platonic GAN"]):
    g = grids[k][:6]
    views_k = torch.stack([voxels.render(g, float(a)) for a in angles], 1)  # (6, 4, 1, S, S)
    plot.image_grid(views_k.flatten(0, 1), nrow=4, title=f"{k}: 4 views each", ax=ax)
plt.show()

# %% [markdown]
# You should see the 3D-GAN's samples differ from one another, blurrier than the data (soft
# occupancies render grey) but no longer one shape: realism IoU 0.71 (a fresh draw of real
# shapes: 0.85), coverage 0.65 (real: 0.74) and an occupied volume of 0.073 against the
# data's 0.075. The single mean blob looks realistic (0.90) but
# covers only 0.38 of the held-out shapes, which is why both numbers are needed. Platonic GAN
# is weaker at this budget, realism 0.54 and coverage 0.41, with grids that are too thin
# (volume 0.043): silhouettes from random turns about one axis constrain a grid less than
# the grid itself does. But it never saw a voxel, and its grids still turn like solids in
# the views above. Both runs took 19 s together.
#
# **Beyond voxels.** The grid costs $S^3$ memory and caps the resolution; the 3-D-aware GANs
# that followed differ in *what* 3-D representation they generate and *how* they render it:
#
# - **HoloGAN** (Nguyen-Phuoc et al. 2019) keeps a 3-D *feature* grid (not occupancy),
#   rotates it by the view, projects it to 2-D features and lets a 2-D convolutional decoder
#   paint the image: sharp images, but the decoder can cheat, so views are not exactly
#   consistent.
# - **GRAF** (Schwarzer et al. 2020) generates a **radiance field** (a NeRF: an MLP from a
#   3-D point and a view direction to colour and density, conditioned on shape and appearance
#   codes) and volume-renders rays through it; like Platonic GAN it learns from unposed 2-D
#   images with a 2-D (patch) critic, but the scene is continuous and renders at any
#   resolution.
# - **GIRAFFE** (Niemeyer & Geiger 2021) composes **several** such fields (one per object plus
#   the background), each with its own pose, renders low-resolution *features* and upsamples
#   them with a 2-D network: objects can be moved and added one by one.
# - **EG3D** (Chan et al. 2022) replaces the big MLP with a **tri-plane**: a StyleGAN2
#   generator outputs three 2-D feature planes, a point's feature is the sum of its three
#   projections, a tiny MLP decodes it; rendering at low resolution plus a super-resolution
#   network, and a critic that sees the camera pose, give real-time, high-resolution,
#   view-consistent faces.
#
# All four keep Platonic GAN's core idea, a 3-D generator trained through a differentiable
# renderer by a 2-D critic; none needs 3-D data.

# %% [markdown]
# ## Recorded numbers

# %%
cpu = utils.profile() == "cpu"
best_name = min(rows, key=lambda k: rows[k].fcd_ratio)
best = rows[best_name]
print("best:", best_name)
report.record("best_gan_fcd_over_floor", best.fcd_ratio, target="<= 2" if cpu else None)
report.record("best_gan_precision", best.precision)
report.record("best_gan_recall", best.recall)
report.record("best_gan_memorisation", best.memorisation)
for name, row in rows.items():
    key = name.lower().replace(" + ", "_").replace(", ", "_").replace("-", "_").replace(" ", "_")
    report.record(f"digits_{key}_fcd_over_floor", row.fcd_ratio)
    report.record(f"digits_{key}_recall", row.recall)
report.record("stall_saturating_mean_error", stall["saturating"], target="> 1" if cpu else None)
report.record("stall_saturating_adam_mean_error", stall["saturating, Adam"])
report.record(
    "stall_nonsaturating_mean_error",
    stall["non-saturating"],
    target=f"< {stall['saturating']:.4g}" if cpu else None,
)
# modes covered on every seed: the plain GAN's most, the unrolled GAN's fewest
report.record("ring_modes_plain_max", max(modes[0]), target="< 8" if cpu else None)
report.record("ring_modes_unrolled_min", min(modes[UNROLL]), target=">= 8" if cpu else None)
report.record("ring_modes_plain_mean", float(np.mean(modes[0])))
report.record("ring_modes_unrolled_mean", float(np.mean(modes[UNROLL])))
report.record("ring_high_quality_plain", quality[0])
report.record("ring_high_quality_unrolled", quality[UNROLL])
report.record("wgan_gp_w_vs_fcd_correlation", w_fcd_corr, target="> 0" if cpu else None)
for psi, row in trunc_rows.items():
    key = str(psi).replace(".", "")
    report.record(f"stylegan_psi{key}_fcd_over_floor", row.fcd_ratio)
    report.record(f"stylegan_psi{key}_precision", row.precision)
    report.record(f"stylegan_psi{key}_recall", row.recall)
report.record("stylegan_noise_over_latent_pixel_std", by_noise / by_latent)
report.record("likelihood_toy_model_a_high_quality", hq["A"])
report.record("likelihood_toy_model_a_nll_minus_truth", nll["A"] - nll["truth"],
              target=f"<= {math.log(100):.4f}" if cpu else None)  # fmt: skip
report.record("likelihood_toy_model_b_nll_minus_truth", nll["B"] - nll["truth"])
p2p_keys = {"L1 alone": "l1_alone", "pix2pix (L1 + GAN)": "pix2pix", "BicycleGAN": "bicycle"}
for name, key in p2p_keys.items():
    for stat, v in p2p_scores[name].items():
        stat_key = stat.lower().replace(" / ", "_over_").replace(" ", "_")
        # pix2pix's class kept: the target of CycleGAN's, set before this run
        cpu_target = ">= 0.9" if cpu and (key, stat) == ("pix2pix", "class kept") else None
        report.record(f"translation_{key}_{stat_key}", v, target=cpu_target)
report.record("translation_pix2pix_diversity", div["pix2pix (L1 + GAN)"])
report.record("translation_bicycle_diversity", div["BicycleGAN"])
report.record("translation_seconds", p2p_seconds)
report.record("cycle_class_kept_b_to_a", kept["B -> A"], target=">= 0.9" if cpu else None)
report.record("cycle_class_kept_a_to_b", kept["A -> B"])
report.record("cycle_classifier_on_true_thickening", kept["true thickening of A"])
report.record("cycle_test_l1", cycle_l1)
report.record("inversion_mse_encoder_alone", inv_mse["encoder alone"])
report.record("inversion_mse_random_start", inv_mse["random start"])
report.record(
    "inversion_mse_encoder_start",
    inv_mse["encoder start"],
    target=f"< {inv_mse['random start']:.4g}" if cpu else None,
)
report.record("inversion_mse_nearest_training_digit", nearest_mse)
report.record("inversion_class_kept_encoder_start", inv_class["encoder start"])
report.record("inversion_class_kept_random_start", inv_class["random start"])
for k, (first, last) in drift.items():
    key = k.replace(" ", "_")
    report.record(f"inversion_norm_ratio_{key}_first", first)
    report.record(f"inversion_norm_ratio_{key}_last", last)
report.record("inpaint_hole_mse_gan", fill_mse["GAN inversion"],
              target=f"< {fill_mse['mean digit']:.4g}" if cpu else None)  # fmt: skip
report.record("inpaint_hole_mse_mean_digit", fill_mse["mean digit"])
report.record("inpaint_class_gan", fill_class["GAN inversion"])
report.record("inpaint_class_mean_digit", fill_class["mean digit"])
report.record("inpaint_norm_ratio_last", inpaint.norm_ratio[-1])
report.record("edit_ink_r2", directions["one for all"].r2)
report.record("edit_per_class_r2_min", min(d.r2 for d in per_class))
report.record("edit_per_class_r2_max", max(d.r2 for d in per_class))
report.record("edit_seconds", edit_seconds)
for how, d in directions.items():
    report.record(f"edit_slope_{how.replace(' ', '_')}", d.slope / ink_sd)
for (how, start), scores in edit_rows.items():
    for k, r in scores.items():
        for stat, v in r.items():
            key = f"edit_{how}_{start.split()[0]}_{'plus' if k > 0 else 'minus'}{abs(k)}_{stat}"
            target = None
            if cpu and (how, start, stat) == ("one for all", "encoder start", "asked way"):
                target = ">= 0.9" if abs(k) == 1 else None  # set after a prototype run
            report.record(key.replace(" ", "_"), v, target=target)
for k, st in vox_stats.items():
    key = k.split(" (")[0].lower().replace("-", "_").replace(" ", "_")
    for stat, v in st.items():
        report.record(f"voxels_{key}_{stat}", v)
report.record("voxels_seconds", vox_seconds, target="<= 30" if cpu else None)
report.record("lecture_seconds", time.perf_counter() - LECTURE_START,
              target="<= 300" if cpu else None)  # fmt: skip
