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
# - measure mode collapse (modes covered, high-quality fraction) and one remedy (PacGAN);
# - build a DCGAN for digits and say why it is fragile;
# - train a Wasserstein GAN with weight clipping and with the gradient penalty, and read the
#   critic's estimate of the Wasserstein distance as a training curve.
#
# Everything trains through `train.Adversarial` + `train.fit`: one critic update per step, a
# generator update every `n_critic` steps, each player with its own optimizer.

# %%
import math
import time

import matplotlib.pyplot as plt
import numpy as np
import torch

from coursekit import data, evaluation, gan, plot, report, train, utils
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
# You should see model A's test NLL within about 4.6 nats of the truth's while only a few
# percent of its samples are high quality, and model B with (nearly) all samples high quality
# but a test NLL hundreds of nats worse. Neither number alone ranks models: GANs give up the
# likelihood and are judged by sample metrics (FCD, precision/recall, memorisation).
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
import torch.nn.functional as F  # noqa: E402


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
# discriminator quickly wins, and only the non-saturating generator escapes.

# %%
STALL_STEPS = utils.pick(smoke=100, cpu=3000, gpu=3000)
stall_data = 4.0 + 0.5 * torch.randn(8192, 1, generator=torch.Generator().manual_seed(1))


def gaussian_gan(g_loss, seed=0, steps=STALL_STEPS):
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
        g_opt=torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
    )
    hist = train.fit(adv, stall_data, steps=steps, batch_size=128, progress=False, device=DEV)
    with torch.no_grad():
        return G(torch.randn(5000, 4, device=DEV)).mean().item(), hist


stall = {}
for name, loss in [("saturating", gan.g_saturating), ("non-saturating", gan.g_nonsaturating)]:
    mean, hist = gaussian_gan(loss)
    stall[name] = abs(mean - 4.0)
    print(f"{name:>15}: generated mean {mean:.2f} (data 4.00), |error| {stall[name]:.2f}")

# %% [markdown]
# You should see the saturating generator stay far from the data's mean of 4 while the
# non-saturating one reaches it: same game, same fixed point, different gradients.
#
# ## 3. Mode collapse
#
# The generator is rewarded for samples the current discriminator accepts, not for covering
# the data; it can put all its mass on a few modes and hop between them. On the 8-gaussians we
# count the **modes covered** and the **high-quality fraction** (samples within 3 std of a
# mode), over three seeds. The remedy measured here is PacGAN (Lin et al. 2018): the
# discriminator judges packs of 4 samples at once, so a generator whose samples look alike is
# visible in a single pack.

# %%
MODE_STEPS = utils.pick(smoke=60, cpu=2500, gpu=5000)
SEEDS = utils.pick(smoke=[0], cpu=[0, 1, 2], gpu=[0, 1, 2])
toy_big = data.toy_2d("8gaussians", 20_000, seed=4)


def toy_gan(pack, seed):
    torch.manual_seed(seed)
    G = gan.MLPGenerator(2, (2,), hidden=128, depth=3)
    D = gan.MLPCritic(2, hidden=128, depth=3, pack=pack)
    adv = train.Adversarial(
        G,
        D,
        gan.g_nonsaturating,
        gan.d_gan,
        noise=train.gaussian_noise(2),
        g_opt=torch.optim.Adam(G.parameters(), 1e-3, betas=(0.5, 0.999)),
        d_opt=torch.optim.Adam(D.parameters(), 1e-3, betas=(0.5, 0.999)),
    )
    train.fit(adv, toy_big, steps=MODE_STEPS, batch_size=256, progress=False, device=DEV)
    with torch.no_grad():
        x = G(torch.randn(2500, 2, device=DEV)).cpu()
    return x, gan.mode_coverage(x, CENTERS, STD)


coverage, last = {}, {}
for pack in (1, 4):
    runs = [toy_gan(pack, s) for s in SEEDS]
    coverage[pack] = [r[1] for r in runs]
    last[pack] = runs[0][0]
    print(
        f"pack {pack}: modes {[c['modes'] for c in coverage[pack]]}, high quality "
        f"{[round(c['high_quality'], 2) for c in coverage[pack]]}"
    )
fig, axes = plt.subplots(1, 2, figsize=(7, 3.3))
for ax, pack in zip(axes, (1, 4)):
    plot.scatter_2d(toy_big[:2500], ax=ax, alpha=0.1)
    plot.scatter_2d(last[pack], ax=ax, title=f"pack = {pack}", lims=((-4, 4), (-4, 4)))
plt.show()
modes_plain = float(np.mean([c["modes"] for c in coverage[1]]))
modes_packed = float(np.mean([c["modes"] for c in coverage[4]]))

# %% [markdown]
# You should see the mean number of modes covered printed for both: the packed discriminator
# is the remedy when it covers more modes than the plain one (the recorded numbers at the end
# say whether it did on this run).
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
IMG_STEPS = utils.pick(smoke=40, cpu=3000, gpu=6000)
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
# You should see the DCGAN's FCD ratio and recall above. A small DCGAN without regularisation
# is fragile: nothing keeps the discriminator's gradients well behaved, so once it separates
# the (few, small) real digits from the fakes its gradients become uninformative and the
# generator may collapse onto a few shapes (low recall). Section 5's penalties fix exactly this.
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
# Now four MLP GANs on digits, same networks: the non-saturating loss alone, the same with an
# R1 penalty on the real data (Mescheder et al. 2018), WGAN with clipping, and WGAN-GP with
# five critic updates per generator update. For WGAN-GP we also follow the critic's estimate
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
mlp_models = {}
for name, kw in mlp_runs.items():
    mlp_models[name] = image_gan(*mlp_players(), **kw)
    rows[name] = evaluate(mlp_models[name], name)
print(evaluation.table(list(rows.values())))
fig, axes = plt.subplots(1, 4, figsize=(12, 3.2))
for ax, (name, m) in zip(axes, mlp_models.items()):
    plot.image_grid(m.sample(36, generator=torch.Generator().manual_seed(0)), title=name, ax=ax)
plt.show()

# %% [markdown]
# You should see the penalised GANs (R1, WGAN-GP) with the lowest FCD ratio and a high
# recall, the clipped WGAN behind them (clipping at 0.01 leaves a weak critic), and the
# unregularised GAN behind or unstable. The critic's estimate of $W_1$ against the FCD during
# WGAN-GP training:

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
# training curve (a positive correlation above).

# %% [markdown]
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

STYLE_STEPS = utils.pick(smoke=30, cpu=1500, gpu=4000)
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
# You should see the truncation trade in the table: as $\psi$ goes from 1 to 0.5, precision
# (quality) goes up and recall (diversity) goes down. The widget below redraws the same
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
# stroke width and contrast (the fine styles), and the noise inputs account for a small
# fraction of the variation that the latents do.

# %% [markdown]
# ## 7. GAN inversion
#
# To edit a *real* image with a GAN we need its latent: $z^* = \arg\min_z \|G(z) - x\|^2$.
# A GAN has no encoder, so we invert it (Xia et al. 2022 survey): by **optimisation** (Adam
# on $z$, $G$ fixed), by an **encoder** $E$ trained on the generator's own samples,
# $E(G(z)) \approx z$ (one forward pass, less exact), or by both: optimisation started at
# $E(x)$. We invert the R1 GAN of section 5 (an MLP, latent 32) on test digits.
#
# The optimisation has no reason to stay where $G$ was trained. $\mathcal N(0, I_d)$ puts its
# mass near the shell $\|z\| = \sqrt d$; we log $\|z\| / \sqrt d$ at every step, and compare
# with a run that adds the prior's negative log-density $\lambda \|z\|^2 / d$ to the loss.

# %%
from coursekit import metrics  # noqa: E402

G_inv = mlp_models["non-saturating + R1"].generator.eval()
ENC_STEPS = utils.pick(smoke=50, cpu=1500, gpu=3000)
INV_STEPS = utils.pick(smoke=20, cpu=300, gpu=500)
N_INV = utils.pick(smoke=32, cpu=200, gpu=500)
g_inv = torch.Generator().manual_seed(5)
z_pairs = torch.randn(20_000, LATENT, generator=g_inv).to(DEV)
with torch.no_grad():
    x_pairs = G_inv(z_pairs)
encoder = gan.LatentEncoder(64, LATENT, hidden=256, depth=3)
train.fit(encoder, (x_pairs, z_pairs), steps=ENC_STEPS, batch_size=256, lr=1e-3, device=DEV)
encoder.eval()
x_inv, y_inv = digits_test.float()[:N_INV].to(DEV), digits_test.labels[:N_INV]
with torch.no_grad():
    z_enc = encoder(x_inv)
inversions = {
    "encoder only": gan.invert(G_inv, x_inv, z_enc, steps=0),
    "optimised from random z": gan.invert(
        G_inv, x_inv, torch.randn(N_INV, LATENT, generator=g_inv).to(DEV), steps=INV_STEPS
    ),
    "optimised from E(x)": gan.invert(G_inv, x_inv, z_enc, steps=INV_STEPS),
    "from E(x), with the prior": gan.invert(
        G_inv, x_inv, z_enc, steps=INV_STEPS, prior_weight=0.01
    ),
}
inv_stats = {}
for name, r in inversions.items():
    mse = (r.x - x_inv).pow(2).mean().item()
    norm = (r.z.norm(dim=1).mean() / math.sqrt(LATENT)).item()
    acc = metrics.classifier_accuracy(r.x.cpu(), y_inv)
    inv_stats[name] = {"mse": mse, "norm_ratio": norm, "class_kept": acc}
    print(f"{name:>26}: MSE {mse:.4f} | ||z|| / sqrt(d) {norm:.2f} | class kept {acc:.2f}")
fig, axes = plt.subplots(1, 3, figsize=(13, 3.3))
for name, r in inversions.items():
    if r.loss:
        axes[0].plot(r.loss, label=name)
        axes[1].plot(r.norm_ratio, label=name)
axes[0].set(yscale="log", xlabel="step", ylabel="MSE", title="reconstruction")
axes[1].axhline(1.0, color="k", lw=0.5)
axes[1].set(xlabel="step", ylabel="||z|| / sqrt(d)", title="drift off the prior's shell")
axes[1].legend(fontsize=7)
show = torch.cat([x_inv[:8]] + [r.x[:8] for r in inversions.values()])
plot.image_grid(show.cpu(), nrow=8, ax=axes[2], title="real, then each inversion (rows)")
plt.show()

# %% [markdown]
# You should see the optimisation reach a lower reconstruction error than the encoder alone,
# the start at $E(x)$ get there faster than a random start, and the norm ratio move away from
# 1 as the optimiser fits the pixels, less so with the prior term.
#
# **Inpainting and editing through the latent.** Hide the bottom half of each digit, invert
# on the visible half only (the mask), and let $G$ fill in the rest; we compare the error on
# the hidden pixels with filling them by the mean training digit. Then an edit: walk on the
# straight line between the latents of two inverted digits.

# %%
mask = torch.ones(1, 1, 8, 8, device=DEV)
mask[..., 4:, :] = 0
hidden = (1 - mask).expand_as(x_inv)
z_start = encoder(x_inv * mask).detach()
inpaint = gan.invert(G_inv, x_inv, z_start, steps=INV_STEPS, mask=mask, prior_weight=0.01)
mean_digit = digits_train.float().mean(0, keepdim=True).to(DEV)
inpaint_mse = ((inpaint.x - x_inv) * hidden).pow(2).sum().item() / hidden.sum().item()
meanfill_mse = ((mean_digit - x_inv) * hidden).pow(2).sum().item() / hidden.sum().item()
print(f"error on the hidden half: GAN inpainting {inpaint_mse:.4f} | mean digit {meanfill_mse:.4f}")
z_a, z_b = inversions["optimised from E(x)"].z[0], inversions["optimised from E(x)"].z[1]
ts = torch.linspace(0, 1, 8, device=DEV)[:, None]
with torch.no_grad():
    walk = G_inv((1 - ts) * z_a + ts * z_b)
fig, axes = plt.subplots(1, 2, figsize=(10, 3.3))
shown = torch.cat([x_inv[:8], (x_inv * mask)[:8], inpaint.x[:8]]).cpu()
plot.image_grid(shown, nrow=8, ax=axes[0], title="real / visible half / inpainted")
plot.image_grid(walk.cpu(), nrow=8, ax=axes[1], title="a walk between two inverted digits")
plt.show()

# %% [markdown]
# You should see the inpainted bottom halves closer to the truth than the mean digit (a lower
# error above), and the walk pass through digit-like images: edits in the latent space stay
# on the generator's image manifold, edits in pixel space do not.

# %% [markdown]
# ## 8. Image-to-image translation
#
# **pix2pix** (Isola et al. 2017) is a conditional GAN for *paired* data: $G(a) \to b$, and a
# discriminator that sees the pair $(a, b)$ stacked as channels. The generator minimises
# $\mathcal L_{GAN} + \lambda \|G(a) - b\|_1$ ($\lambda = 100$): the L1 term alone gives the
# blurry conditional median, the GAN term makes it sharp. The discriminator is a **patch**
# discriminator: one logit per overlapping patch, so it judges local texture while the L1
# term takes care of the global layout. Here $a$ is the edge map of a digit (a Sobel filter),
# $b$ the digit.
#
# **BicycleGAN's idea** (Zhu et al. 2017): an edge map has many plausible digits, yet pix2pix
# given a noise input learns to ignore it (the L1 term rewards one answer). Feeding $z$ in
# *and* asking an encoder to recover it from the output, $E(G(a, z)) \approx z$, forces the
# output to depend on $z$. We measure the diversity as the per-pixel standard deviation over
# eight noise draws for the same edge map.

# %%
TRANS_STEPS = utils.pick(smoke=20, cpu=800, gpu=3000)
x_tr, x_te, y_te = digits_train.float(), digits_test.float(), digits_test.labels
torch.manual_seed(0)
p2p = {
    "pix2pix": gan.Pix2Pix(width=32, l1=100.0),
    "noise input only": gan.Pix2Pix(width=32, l1=100.0, noise_dim=4),
    "noise + latent regression (BicycleGAN)": gan.Pix2Pix(
        width=32, l1=100.0, noise_dim=4, latent_regression=1.0
    ),
}
p2p_stats = {}
e_te = gan.edges(x_te).to(DEV)
for name, model in p2p.items():
    train.fit(model, (gan.edges(x_tr), x_tr), steps=TRANS_STEPS, batch_size=64, device=DEV)
    with torch.no_grad():
        outs = torch.stack([model.translate(e_te).cpu() for _ in range(8)])  # (8, N, 1, 8, 8)
    p2p_stats[name] = {
        "l1": (outs[0] - x_te).abs().mean().item(),
        "class_kept": metrics.classifier_accuracy(outs[0], y_te),
        "diversity": outs.std(0).mean().item(),
    }
    print(f"{name:>40}: " + ", ".join(f"{k} {v:.3f}" for k, v in p2p_stats[name].items()))
with torch.no_grad():
    bic = p2p["noise + latent regression (BicycleGAN)"]
    variants = torch.cat([bic.translate(e_te[:8]).cpu() for _ in range(4)])
shown = torch.cat([e_te[:8].cpu(), p2p["pix2pix"].translate(e_te[:8]).cpu(), x_te[:8], variants])
plot.image_grid(shown, nrow=8, title="edges / pix2pix / truth / BicycleGAN, 4 noise draws")
plt.show()

# %% [markdown]
# You should see pix2pix turn edge maps back into digits that the classifier recognises (the
# class-kept fraction above), the plain noise input leave the outputs nearly identical across
# draws (diversity near zero), and the latent regression raise that diversity.
#
# **CycleGAN** (Zhu et al. 2017) needs no pairs: two translators $G: A \to B$,
# $F: B \to A$, a discriminator per domain, and the **cycle-consistency loss**
# $\|F(G(a)) - a\|_1 + \|G(F(b)) - b\|_1$ (weight 10), which stops $G$ from mapping every $a$
# to the same convincing $b$. The domains: thin digits (one half of the training set) and
# thickened digits (a 3×3 dilation of the *other* half), so no image has its partner. The
# check that translation keeps the content: the digit classifier (trained on thin digits) on
# $F(b)$ for thick test digits $b$, against their labels.
#
# Exercise: the cycle-consistency loss (means over elements; the two batches need not have
# the same size).


# %%
def cycle_loss(G_ab, G_ba, a, b):
    """||G_ba(G_ab(a)) - a||_1 + ||G_ab(G_ba(b)) - b||_1, each a mean."""
    ### BEGIN SOLUTION
    return (G_ba(G_ab(a)) - a).abs().mean() + (G_ab(G_ba(b)) - b).abs().mean()
    ### END SOLUTION


checks.check_cycle_loss(cycle_loss)

# %%
half = len(x_tr) // 2
domain_a, domain_b = x_tr[:half], gan.thicken(x_tr[half : 2 * half])
torch.manual_seed(0)
cyclegan = gan.CycleGAN(width=32, cycle=10.0)
train.fit(cyclegan, (domain_a, domain_b), steps=TRANS_STEPS, batch_size=64, device=DEV)
thick_te = gan.thicken(x_te)
with torch.no_grad():
    G_ab, G_ba = cyclegan.G_ab.cpu().eval(), cyclegan.G_ba.cpu().eval()
    thin_from_thick, thick_from_thin = G_ba(thick_te), G_ab(x_te)
    cycle_l1 = gan.cycle_consistency_loss(G_ab, G_ba, x_te, thick_te).item() / 2  # per cycle
thick_gap = (thick_te - x_te).abs().mean().item()  # how far apart the two domains are
cycle_class_kept = metrics.classifier_accuracy(thin_from_thick, y_te)
thick_class = metrics.classifier_accuracy(thick_te, y_te)
print(
    f"class kept by F (thick -> thin): {cycle_class_kept:.3f} | the classifier on the thick "
    f"digits themselves: {thick_class:.3f}\ncycle L1 (per pixel, mean of both cycles): "
    f"{cycle_l1:.4f} | L1 between a digit and its thick version: {thick_gap:.4f}"
)
shown = torch.cat([x_te[:8], thick_from_thin[:8], thick_te[:8], thin_from_thick[:8]])
plot.image_grid(shown, nrow=8, title="thin / G(thin) / thick / F(thick)")
plt.show()

# %% [markdown]
# You should see $G$ thicken and $F$ thin the strokes, the classifier recognise $F(b)$ about
# as well as real digits (the class-kept fraction above, the target being at least 0.9) and
# better than the thick digits themselves, and a cycle L1 far below the distance between a
# digit and its thick version.

# %% [markdown]
# ## 9. 3-D GANs at small scale
#
# **A voxel GAN** (Wu et al. 2016, "3D-GAN") is a DCGAN with 3-D convolutions: $z \mapsto$ an
# occupancy grid. Our data: 16³ spheres, boxes and tori of random size and position, drawn
# procedurally (`gan.voxels.shapes_3d`). We judge the samples by their best intersection over
# union (IoU, at 0.5) with a training shape, beside the same number for fresh real shapes.
#
# **Platonic GAN** (Henzler et al. 2019) asks for less: only *images* of the shapes. The
# generator is still 3-D, but its grid is rendered from a random viewpoint by a
# differentiable image former (here: turn the grid about its vertical axis with trilinear
# resampling, then absorption along depth, $1 - \exp(-\sum \text{occupancy})$), and a **2-D**
# discriminator compares the rendering with renderings of real shapes from random views. A
# single grid has to explain every view, so the 3-D structure is learned from 2-D supervision.
#
# The later models differ in where the 3-D structure lives and how it is rendered: HoloGAN
# (Nguyen-Phuoc et al. 2019) keeps a 3-D *feature* grid, rotates it and projects it to 2-D
# features that a 2-D network decodes (views are consistent only approximately); GRAF
# (Schwarz et al. 2020) replaces the grid by a conditional radiance field rendered by volume
# rendering along rays; GIRAFFE (Niemeyer & Geiger 2021) composes several such fields (objects,
# background) and renders features at low resolution; EG3D (Chan et al. 2022) stores the field
# in three axis-aligned feature planes (a tri-plane) produced by a StyleGAN2 backbone, with a
# 2-D super-resolution network after the volume rendering.

# %%
from coursekit.gan import voxels  # noqa: E402

VOX_STEPS = utils.pick(smoke=10, cpu=400, gpu=3000)
N_SHAPES = utils.pick(smoke=200, cpu=2000, gpu=5000)
shapes_train, shape_kinds = voxels.shapes_3d(N_SHAPES, seed=0)
shapes_fresh, _ = voxels.shapes_3d(300, seed=1)
iou_real = voxels.nearest_iou(shapes_fresh, shapes_train).mean().item()


def voxel_players(critic):
    torch.manual_seed(0)
    G = voxels.VoxelGenerator(LATENT, width=8)
    return (
        G,
        critic,
        dict(
            g_opt=torch.optim.Adam(G.parameters(), 2e-4, betas=(0.5, 0.999)),
            d_opt=torch.optim.Adam(critic.parameters(), 2e-4, betas=(0.5, 0.999)),
        ),
    )


G3, D3, opts = voxel_players(voxels.VoxelCritic(width=8))
adv3 = train.Adversarial(
    G3, D3, gan.g_nonsaturating, gan.d_gan, noise=train.gaussian_noise(LATENT), **opts
)
train.fit(adv3, shapes_train, steps=VOX_STEPS, batch_size=32, device=DEV)
# Platonic GAN: the critic sees only 2-D renderings, 4 random views of each real shape
real_views = voxels.random_views(shapes_train, 4, torch.Generator().manual_seed(0))
G_pl, D_pl, opts = voxel_players(gan.DCCritic(1, 16, width=32, norm="batch"))
adv_pl = train.Adversarial(
    voxels.PlatonicGenerator(G_pl), D_pl, gan.g_nonsaturating, gan.d_gan,
    noise=voxels.platonic_noise(LATENT), **opts,
)  # fmt: skip
train.fit(adv_pl, real_views, steps=VOX_STEPS, batch_size=32, device=DEV)
G3.eval(), G_pl.eval()
with torch.no_grad():
    z3 = torch.randn(300, LATENT, generator=torch.Generator().manual_seed(9)).to(DEV)
    vox_samples = {"voxel GAN": G3(z3).cpu(), "Platonic GAN": G_pl(z3).cpu()}
iou = {k: voxels.nearest_iou(v, shapes_train).mean().item() for k, v in vox_samples.items()}
print(
    f"nearest IoU: fresh real shapes {iou_real:.3f} | "
    + " | ".join(f"{k} {v:.3f}" for k, v in iou.items())
)

# %%
angles = torch.linspace(0, math.pi, 6)
rows = [shapes_fresh[:2], vox_samples["voxel GAN"][:2], vox_samples["Platonic GAN"][:2]]
views = torch.cat(
    [voxels.render(v[i : i + 1].expand(6, -1, -1, -1, -1), angles) for v in rows for i in range(2)]
)
plot.image_grid(
    views, nrow=6, title="six views (0 to 180 degrees) of real, voxel-GAN and Platonic-GAN shapes",
    row_labels=["real", "real", "voxel", "voxel", "Platonic", "Platonic"],
    col_labels=[f"{a:.0f} deg" for a in torch.rad2deg(angles)],
)  # fmt: skip
plt.show()

# %% [markdown]
# You should see the nearest-IoU of both generators against that of fresh real shapes (the
# best a generator can reach), and in the views each generated shape turning consistently:
# it is one grid seen from six angles, whichever way it was trained. The Platonic GAN learned
# its grids from images alone; a projection along depth cannot tell the front from the back, so
# the shapes it learns are right only up to what the silhouettes from all views determine (the
# visual hull).

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
report.record("stall_saturating_mean_error", stall["saturating"])
report.record(
    "stall_nonsaturating_mean_error",
    stall["non-saturating"],
    target="< stall_saturating" if cpu else None,
)
report.record("eightgaussians_modes_plain", modes_plain)
report.record("eightgaussians_modes_pacgan", modes_packed, target="= 8" if cpu else None)
report.record("wgan_gp_w_vs_fcd_correlation", w_fcd_corr, target="> 0" if cpu else None)
report.record("likelihood_toy_model_a_high_quality", hq["A"])
report.record("likelihood_toy_model_b_nll_minus_truth", nll["B"] - nll["truth"])
for psi, row in trunc_rows.items():
    key = str(psi).replace(".", "")
    report.record(f"stylegan_psi{key}_fcd_over_floor", row.fcd_ratio)
    report.record(f"stylegan_psi{key}_precision", row.precision)
    report.record(f"stylegan_psi{key}_recall", row.recall)
report.record("stylegan_noise_over_latent_pixel_std", by_noise / by_latent)
for name, key in [
    ("encoder only", "encoder"),
    ("optimised from random z", "random_start"),
    ("optimised from E(x)", "encoder_start"),
    ("from E(x), with the prior", "encoder_start_prior"),
]:
    report.record(f"inversion_{key}_mse", inv_stats[name]["mse"])
    report.record(f"inversion_{key}_norm_ratio", inv_stats[name]["norm_ratio"])
report.record("inpainting_hidden_mse", inpaint_mse)
report.record("inpainting_meanfill_mse", meanfill_mse)
report.record("pix2pix_class_kept", p2p_stats["pix2pix"]["class_kept"])
report.record("pix2pix_l1", p2p_stats["pix2pix"]["l1"])
report.record("pix2pix_noise_only_diversity", p2p_stats["noise input only"]["diversity"])
report.record(
    "bicycle_diversity", p2p_stats["noise + latent regression (BicycleGAN)"]["diversity"]
)
report.record("cyclegan_class_kept", cycle_class_kept, target=">= 0.9" if cpu else None)
report.record("cyclegan_thick_digits_class_accuracy", thick_class)
report.record("cyclegan_cycle_l1", cycle_l1)
report.record("cyclegan_thin_thick_l1", thick_gap)
report.record("voxel_real_nearest_iou", iou_real)
report.record("voxel_gan_nearest_iou", iou["voxel GAN"])
report.record("platonic_gan_nearest_iou", iou["Platonic GAN"])
report.record("lecture_seconds", time.perf_counter() - LECTURE_START)
