# %% [markdown]
# # Lecture 07: VQ tokenizers and generation over tokens
#
# A tokenizer compresses an image into a small grid of discrete codes; a model over the codes
# then generates images by generating codes. This lecture builds the tokenizer (VQ-VAE,
# van den Oord et al. 2017), the fixes that make its codebook work (EMA updates and dead-code
# restarts), VQGAN's feature loss and patch discriminator, quantisers with no codebook at
# all (FSQ, Mentzer et al. 2023; LFQ, Yu et al. 2023), DALL-E's Gumbel-softmax dVAE, an
# autoregressive Transformer prior over the code grid, class-conditional with guidance
# (VQGAN's and LlamaGen's recipe at toy scale), VAR's next-scale prediction over a multi-scale
# tokenizer, and DALL-E's caption tokens prefixed to the image tokens.
#
# After this lecture you can
#
# - say why generating a 4×4 grid of codes is cheaper than generating 8×8 pixels, and count
#   the bits each costs;
# - write nearest-codebook quantisation with the straight-through estimator, and the VQ-VAE
#   loss with its two stop-gradients;
# - measure codebook usage and perplexity, and show what EMA updates and dead-code restarts
#   do to them;
# - add a feature loss and a patch discriminator to the tokenizer (VQ-GAN) and measure the
#   FCD of its reconstructions;
# - swap VQ for FSQ and LFQ, write LFQ's entropy penalty, and compare the usage;
# - write the Gumbel-softmax relaxation, see what its temperature does, and train a dVAE
#   tokenizer with it;
# - train a class-conditional token prior, sample it with classifier-free guidance, decode
#   the samples and score them;
# - write VAR's block-causal mask and compare next-scale with next-token prediction in
#   network passes per sample and sample quality;
# - prefix caption tokens to the image tokens (DALL-E at toy scale) and measure how well the
#   samples follow a caption.
#
# **Profiles.** The `cpu` profile trains small conv tokenizers (a few hundred steps each) and
# two-layer Transformer priors on the 8×8 digits; its numbers are meaningful but far from the
# state of the art. The `gpu` profile has not been run, so its numbers are unmeasured.

# %%
import copy

import ipywidgets as widgets
import matplotlib.pyplot as plt
import torch
import torch.nn.functional as F

from coursekit import data, evaluation, metrics, report, train, utils, vq
from coursekit.autoregressive import TokenPrior
from coursekit.exercises import vq as checks

gen = utils.seed_everything(0)
DEV = utils.device()
PROFILE = utils.profile()
print("profile:", PROFILE, "| device:", utils.describe_device(DEV))

images_train, images_test = data.digits("train"), data.digits("test")
x_train, x_test = images_train.float(), images_test.float()  # (N, 1, 8, 8) in [0, 1]

# %% [markdown]
# ## 1. Why tokens
#
# An autoregressive model over pixels (lecture 03) makes one network call per pixel and spends
# its capacity on every pixel's exact level, most of which is noise a viewer never sees. A
# tokenizer's encoder maps the 8×8 image to a 4×4 grid of latent vectors and snaps each to one
# of $K$ code vectors; the decoder maps the codes back. A model over codes then makes 16 calls
# per image instead of 64, and each call picks among $K$ codes that each stand for a whole
# 2×2 patch of strokes. The cost is that the tokens are lossy: the decoder's reconstruction is
# not the image.
#
# Counting bits: a raw 8×8 digit with 17 levels per pixel holds $64 \log_2 17$ bits; a 4×4 grid
# of $K$ codes holds at most $16 \log_2 K$ bits (under a uniform prior over codes, the ELBO
# view's $-\log K$ per token). A learned prior (section 6) needs fewer.

# %%
K = utils.pick(smoke=16, cpu=64, gpu=256)  # codebook size
GRID = (4, 4)
pixel_bits = 64 * torch.log2(torch.tensor(17.0)).item()
uniform_token_bits = GRID[0] * GRID[1] * torch.log2(torch.tensor(float(K))).item()
print(f"raw pixels: {pixel_bits:.1f} bits per image; {GRID[0]}x{GRID[1]} tokens of K={K} codes: "
      f"at most {uniform_token_bits:.1f} bits")  # fmt: skip

# %% [markdown]
# ## 2. VQ-VAE
#
# The encoder gives $z_e(x)$, one $D$-vector per grid position. Quantisation replaces it by
# its nearest code vector,
#
# $$k = \arg\min_j \|z_e - e_j\|^2 = \arg\min_j \big(\|z_e\|^2 - 2 z_e\!\cdot e_j + \|e_j\|^2\big),
# \qquad z_q = e_k .$$
#
# The argmin has no gradient. The **straight-through estimator** copies the decoder's
# gradient at $z_q$ to $z_e$ unchanged: in code, $z_q = z_e + \mathrm{sg}[e_k - z_e]$, whose
# value is $e_k$ and whose Jacobian with respect to $z_e$ is the identity.
#
# **Exercise 7.1.** Write `quantize(z, codebook)` for `z` of shape `(N, D)` and `codebook`
# `(K, D)`: return `(z_q, codes)`, the codes the nearest indices `(N,)`, and `z_q` their
# vectors with the straight-through gradient.


# %%
def quantize(z, codebook):
    """(z_q, codes): nearest code vectors (straight-through to z) and their indices."""
    ### BEGIN SOLUTION
    d = (z**2).sum(1, keepdim=True) - 2 * z @ codebook.t() + (codebook**2).sum(1)  # (N, K)
    codes = d.argmin(1)
    return z + (codebook[codes] - z).detach(), codes
    ### END SOLUTION


checks.check_quantize(quantize)

# %% [markdown]
# Straight-through leaves the code vectors without a gradient, so the loss adds two terms
# with stop-gradients on opposite sides:
#
# $$\mathcal L = \|x - \hat x\|^2 + \underbrace{\|\mathrm{sg}[z_e] - e_k\|^2}_{\text{codebook}}
# + \beta\,\underbrace{\|z_e - \mathrm{sg}[e_k]\|^2}_{\text{commitment}} .$$
#
# The codebook term moves the codes towards the encoder outputs; the commitment term, weighted
# by $\beta = 0.25$, keeps the encoder from drifting away from its codes. With a uniform prior
# over the $K$ codes, the KL term of the ELBO is the constant $\log K$ per token, which is why
# the loss has no KL.
#
# **Exercise 7.2.** Write `vq_loss(z, z_q, beta)`: the codebook plus $\beta$ times the
# commitment term, each a mean over every entry, for `z_q` the chosen code vectors (before
# straight-through).


# %%
def vq_loss(z, z_q, beta):
    """||sg[z] - z_q||^2 + beta ||z - sg[z_q]||^2, means over every entry."""
    ### BEGIN SOLUTION
    return F.mse_loss(z_q, z.detach()) + beta * F.mse_loss(z, z_q.detach())
    ### END SOLUTION


checks.check_vq_loss(vq_loss)

# %% [markdown]
# ### The codebook in practice: usage, EMA and restarts
#
# Trained by the codebook loss alone, many codes are never the nearest to any encoder output,
# get no gradient and stay dead: the tokenizer uses fewer codes than it has. Two fixes:
#
# - **EMA updates** (van den Oord et al., appendix A.1): set each code to the moving average of
#   the encoder outputs assigned to it, $N_k \leftarrow \gamma N_k + (1-\gamma) n_k$,
#   $m_k \leftarrow \gamma m_k + (1-\gamma)\sum_{z \to k} z$, $e_k = m_k / N_k$; no codebook loss.
# - **Dead-code restarts** (Jukebox): a code whose moving-average count falls below a
#   threshold is moved onto a random encoder output of the batch.
#
# Two numbers say how well the codebook is used, both over the codes of the training set:
# **usage**, the fraction of the $K$ codes that occur, and **perplexity**, $\exp$ of the
# entropy of the code histogram ($K$ if every code is equally frequent).

# %%
AE_STEPS = utils.pick(smoke=20, cpu=500, gpu=5000)
HIDDEN = utils.pick(smoke=16, cpu=32, gpu=128)
DIM = 8  # code vector length


def train_tokenizer(make_quantizer, seed=0):
    """Train a tokenizer whose quantiser make_quantizer() builds; every draw from ``seed``."""
    torch.manual_seed(seed)  # the quantiser's and the networks' initial weights, restarts
    model = vq.VQAutoencoder(make_quantizer(), tuple(x_train.shape[1:]), hidden=HIDDEN)
    history = train.fit(model, x_train, steps=AE_STEPS, lr=2e-3, batch_size=128,
                        generator=torch.Generator().manual_seed(seed), device=DEV)  # fmt: skip
    model.eval()
    codes = model.encode(x_train.to(DEV)).cpu()
    recon = F.mse_loss(model.reconstruct(x_test.to(DEV)).cpu(), x_test).item()
    stats = dict(usage=vq.codebook_usage(codes, model.num_codes),
                 perplexity=vq.perplexity(codes, model.num_codes), recon_mse=recon)  # fmt: skip
    return model, codes, stats, history


tokenizers = {
    "VQ (codebook loss)": lambda: vq.VectorQuantizer(K, DIM),
    "VQ + EMA": lambda: vq.VectorQuantizer(K, DIM, ema=0.99),
    "VQ + EMA + restarts": lambda: vq.VectorQuantizer(K, DIM, ema=0.99, restart=True),
}
results = {}
for name, make_quantizer in tokenizers.items():
    results[name] = train_tokenizer(make_quantizer)
    s = results[name][2]
    print(f"{name:22s} usage {s['usage']:.0%}  perplexity {s['perplexity']:.1f} / {K}  "
          f"test recon MSE {s['recon_mse']:.4f}")  # fmt: skip

# %%
fig, axes = plt.subplots(1, 3, figsize=(12, 2.6), sharey=True)
for ax, (name, (_, codes, s, _)) in zip(axes, results.items()):
    ax.bar(range(K), vq.code_histogram(codes, K).sort(descending=True).values)
    ax.set_title(f"{name}\nusage {s['usage']:.0%}, perplexity {s['perplexity']:.1f}")
    ax.set_xlabel("code (sorted by frequency)")
axes[0].set_ylabel("fraction of tokens")
plt.tight_layout()
plt.show()

# %% [markdown]
# You should see the plain VQ tokenizer use only 25% of its 64 codes (perplexity about 15.4),
# EMA updates alone do not help (20%: EMA moves only the codes that are already chosen, so a
# code that starts far from every encoder output never moves), and EMA with dead-code restarts
# use 100% (perplexity about 55.7) at a test reconstruction error of about 0.0049: more codes
# in use describe the patches better.

# %%
best, best_codes, best_stats, _ = results["VQ + EMA + restarts"]
idx = torch.arange(8)
with torch.no_grad():
    pairs = torch.cat([x_test[idx], best.reconstruct(x_test[idx].to(DEV)).cpu()])
fig, axes = plt.subplots(2, 8, figsize=(8, 2.2))
for ax, img in zip(axes.flat, pairs):
    ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
fig.suptitle("test digits (top) and their reconstructions from 16 tokens (bottom)")
plt.show()

# %% [markdown]
# ## 3. VQ-GAN: a feature loss and a patch discriminator
#
# Squared error rewards the average of the plausible reconstructions, so a VQ-VAE's
# reconstructions blur. VQGAN (Esser et al. 2021) keeps the tokenizer and changes its loss:
# a **perceptual** term compares the images in the features of a fixed network (LPIPS in the
# paper; no pretrained network can be downloaded here, so we use the first conv block of the
# course's digits classifier, frozen), and a **patch discriminator** $D$ (one real/fake logit
# per image patch) adds a GAN loss. We follow the paper's recipe in three points:
#
# - the **hinge loss**: $D$ minimises $\mathrm{relu}(1 - D(x)) + \mathrm{relu}(1 + D(\hat x))$,
#   the autoencoder adds $\mathcal L_G = -D(\hat x)$;
# - a **late start**: both players' adversarial terms are off for the first third of the
#   steps, so the critic starts on reconstructions that are already roughly right;
# - the **adaptive weight** (the paper's eq. 7), computed at every step from the gradients at
#   the decoder's last layer $L$,
#
# $$\lambda = \frac{\|\nabla_L \mathcal L_{\text{rec}}\|}{\|\nabla_L \mathcal L_G\| + 10^{-4}},
# \qquad \mathcal L = \mathcal L_{\text{rec}} + \mathcal L_{\text{VQ}}
# + w_{\text{adv}}\,\lambda\,\mathcal L_G, \qquad
# \mathcal L_{\text{rec}} = \|x - \hat x\|^2 + w_{\text{feat}}\,\|\phi(x) - \phi(\hat x)\|^2,$$
#
#   so the critic's gradient at the decoder's output is always $w_{\text{adv}}$ times the
#   reconstruction's, whatever the scales of the two losses ($w_{\text{adv}} = 0.1$ here).
#
# We train the same tokenizer (EMA codebook with restarts) with `vq.VQGANStep`, with the
# feature loss and without or with the discriminator, and score the reconstructions of the test
# digits by their FCD against the training digits: the same code budget, only the loss differs.
# One pair of runs cannot settle the sign (an earlier version of this lecture, with a fixed
# weight, a non-saturating loss and one seed, found a factor of 0.74 in one recording and 1.24
# in the next), so we train each variant with three seeds and compare them seed by seed.

# %%
GAN_STEPS = utils.pick(smoke=20, cpu=300, gpu=5000)
# fresh seeds: the recipe above was chosen in a prototype on seeds 0-3
# (benchmarks/bench_vqgan_seeds.py), so these runs test it rather than repeat its selection
GAN_SEEDS = utils.pick(smoke=[10], cpu=[10, 11, 12], gpu=[10, 11, 12])
feature_net = copy.deepcopy(metrics.classifier("digits").conv[:2]).to(DEV)  # (B, 32, 8, 8)


def train_vqgan(with_discriminator, seed):
    torch.manual_seed(seed)  # both networks' initial weights and the codebook's restarts
    model = vq.VQAutoencoder(vq.VectorQuantizer(K, DIM, ema=0.99, restart=True),
                             tuple(x_train.shape[1:]), hidden=HIDDEN)  # fmt: skip
    disc = vq.PatchDiscriminator(1, HIDDEN).to(DEV) if with_discriminator else None
    step = vq.VQGANStep(model, features=feature_net, discriminator=disc, w_feat=0.1, w_adv=0.1,
                        adv_start=GAN_STEPS // 3, gan_loss="hinge", adaptive=True)  # fmt: skip
    train.fit(model, x_train, steps=GAN_STEPS, batch_size=128, step_fn=step,
              generator=torch.Generator().manual_seed(seed), device=DEV)  # fmt: skip
    model.eval()
    with torch.no_grad():
        recon = model.reconstruct(x_test.to(DEV)).cpu()
    return recon, metrics.fcd(recon, x_train)


GAN_NAMES = ("feature loss", "feature loss + patch discriminator")
gan_runs = {(name, seed): train_vqgan(name != GAN_NAMES[0], seed)
            for seed in GAN_SEEDS for name in GAN_NAMES}  # fmt: skip
for (name, seed), (recon, score) in gan_runs.items():
    print(f"seed {seed} {name:36s} reconstructions: {score}, "
          f"MSE {F.mse_loss(recon, x_test).item():.4f}")  # fmt: skip
vqgan_ratio = torch.tensor([gan_runs[GAN_NAMES[1], s][1].value / gan_runs[GAN_NAMES[0], s][1].value
                            for s in GAN_SEEDS], dtype=torch.float64)  # fmt: skip
vqgan_ratio_se = (vqgan_ratio.std() / len(GAN_SEEDS) ** 0.5).item() if len(GAN_SEEDS) > 1 else 0.0
print("FCD with / without the discriminator, per seed:",
      ", ".join(f"{r:.3f}" for r in vqgan_ratio.tolist()),
      f"| mean {vqgan_ratio.mean():.3f} ± {vqgan_ratio_se:.3f} (standard error)")  # fmt: skip


def mean_over_seeds(name, fn):
    return sum(fn(*gan_runs[name, s]) for s in GAN_SEEDS) / len(GAN_SEEDS)


vqgan_fcd = {n: mean_over_seeds(n, lambda r, sc: sc.value / sc.floor) for n in GAN_NAMES}
vqgan_mse = {n: mean_over_seeds(n, lambda r, sc: F.mse_loss(r, x_test).item()) for n in GAN_NAMES}

fig, axes = plt.subplots(3, 8, figsize=(8, 3.2))
first = GAN_SEEDS[0]
for r, imgs in enumerate([x_test[:8], *(gan_runs[n, first][0][:8] for n in GAN_NAMES)]):
    for c in range(8):
        axes[r, c].imshow(imgs[c, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].axis("off")
for r, label in enumerate(["test digits", *(f"{n} (seed {first})" for n in GAN_NAMES)]):
    axes[r, 0].set_title(label, fontsize=8, loc="left")
plt.show()


# %% [markdown]
# You should see, averaged over the three seeds, the test reconstructions at about 0.69× the
# real-vs-real FCD floor with the feature loss alone and about 0.66× with the patch
# discriminator added, while the squared error rises a little (about 0.0084 → 0.0090), the
# trade VQGAN makes on purpose. Seed by seed the discriminator multiplied the FCD by 0.715,
# 1.022 and 1.226: a mean of about 0.99 with a standard error of about 0.15. So at 300 steps
# on 8×8 digits the sign is **not settled**: the mean plus two standard errors is about 1.28,
# far above 1, and the target (that bound below 1) is not met. The seed matters as much as
# the loss: the runs without the critic alone range from 0.62× to 0.80× the floor.
#
# Three seeds are what the lecture's time allows; `benchmarks/bench_vqgan_seeds.py` ran the
# same two recipes on seeds 0-20 (seeds 10-12 reproduce the runs above exactly, and seeds 0-3
# are the prototype that chose this recipe, where all four ratios lay between 0.80 and 0.88).
# Over the 21 seeds the critic lowered the FCD on 15 and raised it on 6, by a ratio of 0.92 ±
# 0.06 in the mean (median 0.82, the worst 1.63): mean plus two standard errors 1.03, still
# not below 1, and a sign test gives p ≈ 0.08. Our reading: probably a gain of about 10% on
# most seeds, with occasional runs where the critic hurts badly, and not settled by the
# two-standard-error rule this lecture records. VQGAN's critic pays off on textures that
# squared error and a feature loss leave blurred, and 8×8 digits have hardly any. The FCDs
# themselves all lie below the floor: reconstructions of real digits are not samples, and at 296 images the floor itself
# is noisy, so read them as "as close to real digits as other real digits are".
#
# ## 4. Lookup-free quantisation: FSQ and LFQ
#
# FSQ drops the codebook. The encoder gives $D$ channels; channel $c$ is squashed by a tanh
# into about $(-L_c/2, L_c/2)$ and rounded to the nearest integer (straight-through), so each
# channel takes one of $L_c$ values and the implicit codebook is the grid of
# $\prod_c L_c$ points. Nothing can die: every grid point is reachable by moving the encoder's
# output, and there is no codebook or commitment loss. Levels $(4, 4, 4)$ give 64 codes, as
# many as the VQ codebook above.

# %%
LEVELS = utils.pick(smoke=[4, 4], cpu=[4, 4, 4], gpu=[8, 8, 4])
fsq_model, fsq_codes, fsq_stats, _ = train_tokenizer(lambda: vq.FSQ(LEVELS))
print(f"FSQ {LEVELS}: {fsq_model.num_codes} codes, usage {fsq_stats['usage']:.0%}, perplexity "
      f"{fsq_stats['perplexity']:.1f}, test recon MSE {fsq_stats['recon_mse']:.4f}")  # fmt: skip

# %% [markdown]
# You should see FSQ use 77% of its 64 codes (perplexity about 31.6) with no auxiliary loss
# and no restarts, at a test reconstruction error of about 0.0064, close to VQ with EMA and
# restarts above. Its codes are less evenly used: the grid is fixed, so rarely needed corners of
# it stay rare.
#
# ### LFQ: one bit per channel, and an entropy penalty
#
# Lookup-free quantisation (Yu et al. 2023, MAGVIT-v2) takes FSQ to two levels: channel $c$
# becomes its sign, $q_c = \mathrm{sign}(z_c)$ (straight-through), and the code is the binary
# number of the $D$ signs. The implicit codebook is the $2^D$ corners of the cube: it grows
# **exponentially with the bits** while quantising stays one comparison per channel, with no
# distance to any code vector computed, because there are none to look up. That is what it buys:
# MAGVIT-v2's $2^{18}$ codes cost no more to quantise to than our $2^6$, and a large vocabulary
# is what lets a tokenizer describe a patch finely. What does grow with $2^D$ is everything
# that has one entry per code: the prior's output layer (MAGVIT-v2 factorises its prediction
# into groups of bits for that reason) and the entropy penalty below.
#
# Two levels and no bound leave nothing that spreads the encoder's outputs over the corners,
# so LFQ adds an **entropy penalty** on a soft assignment of each position $n$ to the codes,
# $p_n(k) \propto \exp(-\|z_n - c_k\|^2 / \tau)$:
#
# $$\mathcal L_{\text{ent}} = \mathbb E_n\big[H(p_n)\big] - \gamma\,
# H\big(\mathbb E_n[p_n]\big).$$
#
# The first term makes each position confident of one code; the second, subtracted, is the
# entropy of the batch's average assignment, so minimising the loss spreads the batch over
# every code (with its sign flipped the same loss collapses the codebook; `tests/test_vq_lfq.py`
# checks the sign). A commitment term $\beta\|z - \mathrm{sg}[q]\|^2$ keeps $z$ near its
# corner. **Normalisation before the quantiser** (binary spherical quantisation, Zhao et al.
# 2024): with `normalize=True` each latent vector is divided by its length and the corners
# scaled to $\pm 1/\sqrt D$, so codes and latents lie on the unit sphere; the quantisation
# error is then bounded whatever the encoder's scale, and the entropy penalty's temperature
# means the same thing at every step.
#
# **Exercise 7.3.** Write `lfq_entropy(z, codebook, inv_temperature, gamma)` for latents `z`
# `(N, D)` and the corners `codebook` `(K, D)`, $K = 2^D$: the penalty above in nats, a scalar
# (the mean over positions of each position's entropy, minus $\gamma$ times the entropy of the
# mean distribution).


# %%
def lfq_entropy(z, codebook, inv_temperature, gamma):
    """E_n[H(p_n)] - gamma H(E_n[p_n]), p_n = softmax_k(-inv_temperature ||z_n - c_k||^2)."""
    ### BEGIN SOLUTION
    d = (z**2).sum(1, keepdim=True) - 2 * z @ codebook.t() + (codebook**2).sum(1)  # (N, K)
    p = torch.softmax(-inv_temperature * d, dim=1)
    per_position = -(p * torch.log(p.clamp_min(1e-30))).sum(1).mean()
    mean = p.mean(0)
    return per_position + gamma * (mean * torch.log(mean.clamp_min(1e-30))).sum()
    ### END SOLUTION


checks.check_lfq_entropy(lfq_entropy)

# %% [markdown]
# We train LFQ with 6 bits, $2^6 = 64$ codes as above, normalised, and once more without the
# entropy penalty to see what the penalty does.

# %%
LFQ_BITS = utils.pick(smoke=4, cpu=6, gpu=8)
lfq_runs = {
    "LFQ (normalised)": train_tokenizer(lambda: vq.LFQ(LFQ_BITS, normalize=True)),
    "LFQ, not normalised": train_tokenizer(lambda: vq.LFQ(LFQ_BITS)),
    "LFQ, no entropy penalty": train_tokenizer(
        lambda: vq.LFQ(LFQ_BITS, normalize=True, entropy_weight=0)
    ),
}
for name, (model, _, s, _) in lfq_runs.items():
    print(f"{name:24s} {LFQ_BITS} bits = {model.num_codes} codes: usage {s['usage']:.0%}, "
          f"perplexity {s['perplexity']:.1f}, test recon MSE {s['recon_mse']:.4f}")  # fmt: skip
lfq_stats = lfq_runs["LFQ (normalised)"][2]
lfq_raw_stats = lfq_runs["LFQ, not normalised"][2]
lfq_plain_stats = lfq_runs["LFQ, no entropy penalty"][2]
print("codes for 6, 10, 14, 18 bits:", [2**b for b in (6, 10, 14, 18)])

side_by_side = {
    "VQ + EMA + restarts": (best_codes, K, best_stats),
    f"FSQ {LEVELS}": (fsq_codes, fsq_model.num_codes, fsq_stats),
    **{name: (run[1], run[0].num_codes, run[2]) for name, run in lfq_runs.items()},
}
fig, axes = plt.subplots(1, len(side_by_side), figsize=(15, 2.4), sharey=True)
for ax, (name, (codes, n, st)) in zip(axes, side_by_side.items()):
    ax.bar(range(n), vq.code_histogram(codes, n).sort(descending=True).values)
    ax.set_title(f"{name}\nusage {st['usage']:.0%}, perplexity {st['perplexity']:.1f}", fontsize=8)
    ax.set_xlabel("code (sorted)", fontsize=8)
axes[0].set_ylabel("fraction of tokens")
plt.tight_layout()
plt.show()

# %% [markdown]
# You should see LFQ, normalised and with the entropy penalty, use 100% of its 64 codes
# (perplexity about 63.1), the most even use of any quantiser here, beside VQ with EMA and
# restarts and FSQ above: the penalty's diversity term pays for evenness directly. Both
# ingredients matter. Without the normalisation the same penalty leaves the tokenizer on 6% of
# the codes (perplexity about 4.0): at inverse temperature 100 the soft assignment of a latent
# at the encoder's free scale is already one-hot, so the entropies give no gradient, while on
# the unit sphere neighbouring corners are close enough for it to stay soft (our reading of
# the numbers, not a separate experiment). Without the penalty the normalised LFQ uses 23% of
# the codes (perplexity about 7.7): nothing spreads the encoder over the corners. Usage is not
# reconstruction, though: that tokenizer's test error, about 0.0124, is lower than the
# penalised one's, about 0.0146, which is itself about 3 times that of VQ with EMA and
# restarts. The penalty buys tokens that carry about $\log_2 63 \approx 6$ bits each instead
# of $\log_2 7.7 \approx 2.9$, a richer alphabet for the prior, and costs some reconstruction
# at this size; LFQ's 64 codes are the fixed corners of a 6-dimensional cube, where VQ places
# 64 learned 8-dimensional vectors where the encoder's outputs are. What LFQ buys shows at large
# vocabularies, where one more bit doubles the codebook at no lookup cost while VQ's search
# and its dead codes grow with $K$.
#
# ## 5. Gumbel-softmax and the dVAE
#
# DALL-E's tokenizer (the dVAE, Ramesh et al. 2021) does not snap to the nearest code: its
# encoder outputs $K$ logits $\ell$ per grid position, a categorical distribution over the
# codes, and the decoder gets a code drawn from it. A draw has no gradient, but the
# **Gumbel-max trick** writes it as a deterministic function of noise,
#
# $$k = \arg\max_j\,(\ell_j + g_j), \qquad g_j = -\log(-\log u_j),\ u_j \sim U(0, 1),$$
#
# which is exactly a sample of $\mathrm{softmax}(\ell)$. Replacing the argmax by a softmax at
# temperature $\tau$ (Jang et al. 2017; Maddison et al. 2017) gives a relaxed one-hot
# $w = \mathrm{softmax}((\ell + g)/\tau)$ that is differentiable in $\ell$: near one-hot for
# small $\tau$ (but with high-variance gradients), near uniform for large $\tau$. The decoder
# gets $w^\top E$, a mix of the code vectors. The straight-through variant uses the hard
# one-hot in the forward pass and the relaxed sample's gradient; at evaluation the code is the
# argmax of the logits. The ELBO's KL term is now not a constant: $\mathrm{KL}(q \,\|\,
# \mathrm{uniform}) = \sum_k q_k \log(q_k K)$ per position, weighted small.
#
# **Exercise 7.4.** Write `gumbel_softmax(logits, tau, u)` for `logits` and uniform noise `u`
# of shape `(N, K)`: the relaxed one-hot sample, each row summing to 1.


# %%
def gumbel_softmax(logits, tau, u):
    """softmax((logits + g) / tau) over the K codes, g = -log(-log u) the Gumbel noise."""
    ### BEGIN SOLUTION
    g = -torch.log(-torch.log(u))
    return torch.softmax((logits + g) / tau, dim=-1)
    ### END SOLUTION


checks.check_gumbel_softmax(gumbel_softmax)

# %% [markdown]
# First the trick itself: the argmax of noisy logits is distributed as their softmax, and the
# relaxed samples move from one-hot to uniform as $\tau$ grows. Drag the temperature.

# %%
N_GUMBEL = utils.pick(smoke=2000, cpu=100000, gpu=100000)
demo_logits = torch.tensor([2.0, 1.0, 0.5, 0.0, -1.0])
u = torch.rand(N_GUMBEL, 5, generator=torch.Generator().manual_seed(3)).clamp(1e-6, 1 - 1e-6)
g = -torch.log(-torch.log(u))  # the library's vq.gumbel_softmax takes the noise itself
argmax_freq = (
    torch.bincount(vq.gumbel_softmax(demo_logits, 1.0, g).argmax(1), minlength=5) / N_GUMBEL
)
gumbel_max_tv = 0.5 * (argmax_freq - torch.softmax(demo_logits, 0)).abs().sum().item()
print(f"Gumbel-max frequencies {argmax_freq.numpy().round(3)} vs softmax "
      f"{torch.softmax(demo_logits, 0).numpy().round(3)}: total variation {gumbel_max_tv:.4f}")  # fmt: skip
taus = (0.1, 1.0, 5.0)
max_weight = {t: vq.gumbel_softmax(demo_logits, t, g).max(1).values.mean().item() for t in taus}
print("mean largest weight of a relaxed sample:",
      ", ".join(f"tau={t}: {m:.2f}" for t, m in max_weight.items()))  # fmt: skip


def show_relaxation(tau=1.0):
    fig, axes = plt.subplots(1, 6, figsize=(12, 2), sharey=True)
    axes[0].bar(range(5), torch.softmax(demo_logits, 0))
    axes[0].set_title("softmax(logits)", fontsize=9)
    for i, ax in enumerate(axes[1:]):
        ax.bar(range(5), vq.gumbel_softmax(demo_logits, tau, g[i]), color="C1")
        ax.set_title(f"relaxed sample {i + 1}, tau = {tau:.1f}", fontsize=9)
    axes[0].set_ylim(0, 1)
    plt.tight_layout()
    plt.show()


_ = widgets.interact(show_relaxation, tau=widgets.FloatSlider(1.0, min=0.1, max=5.0, step=0.1))

# %% [markdown]
# You should see the argmax frequencies match the softmax to a total variation of about
# 0.002, and a relaxed sample's largest weight fall from about 0.96 at $\tau = 0.1$
# (nearly one-hot) through 0.63 at $\tau = 1$ to 0.29 at $\tau = 5$ (near the uniform 0.2).
#
# Now the dVAE: the same encoder and decoder as above, the quantiser replaced by
# `vq.GumbelQuantizer` (64 logits per position, relaxed samples at $\tau = 1$ in training,
# KL weight $10^{-3}$), trained for as many steps.

# %%
gumbel_model, gumbel_codes, gumbel_stats, _ = train_tokenizer(
    lambda: vq.GumbelQuantizer(K, DIM, tau=1.0)
)
print(f"Gumbel dVAE: usage {gumbel_stats['usage']:.0%}, perplexity {gumbel_stats['perplexity']:.1f}, "
      f"test recon MSE {gumbel_stats['recon_mse']:.4f}")  # fmt: skip


def decoded_codebook(model):
    """Each code's vector copied over the whole 4x4 grid and decoded: what the code draws."""
    codes = torch.arange(model.num_codes)[:, None, None].expand(-1, *GRID)
    with torch.no_grad():
        return model.decode(codes.to(DEV)).cpu()  # (K, 1, 8, 8)


fig, axes = plt.subplots(1, 2, figsize=(9, 4.6))
for ax, (title, model, codes) in zip(axes, [
    ("plain VQ", results["VQ (codebook loss)"][0], results["VQ (codebook loss)"][1]),
    ("Gumbel dVAE", gumbel_model, gumbel_codes),
]):  # fmt: skip
    tiles = decoded_codebook(model)
    used = vq.code_histogram(codes, model.num_codes) > 0
    tiles[~used] *= 0.25  # dim the codes no training image uses
    side = int(model.num_codes**0.5)
    tiles = tiles[: side * side, 0].view(side, side, 8, 8)  # (row, column, 8, 8)
    grid = tiles.permute(0, 2, 1, 3).reshape(side * 8, side * 8)
    ax.imshow(grid, cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(f"{title}: each code decoded (unused dimmed)", fontsize=9)
    ax.axis("off")
plt.show()

# %% [markdown]
# You should see the dVAE use 83% of its 64 codes (perplexity about 41.5), against the plain
# VQ tokenizer's 25%: a code cannot die the same way, since every code has a logit and the
# relaxed softmax gives every logit a gradient at every step. Its test reconstruction error,
# about 0.0090, is nearly twice that of VQ with EMA and restarts, likely because in training
# the decoder sees blends of codes at $\tau = 1$ and at evaluation hard codes (DALL-E anneals
# $\tau$ from 1 to 1/16 to shrink that mismatch).
#
# ## 6. Generating tokens: a class-conditional Transformer prior
#
# The prior is `coursekit.autoregressive.TokenPrior`: a causal Transformer over the 16 codes in
# raster order, $p(s \mid y) = \prod_t p(s_t \mid s_{<t}, y)$, with the class as the start
# token. Training drops the class with probability 0.1, so the same network also learns
# $p(s)$, and sampling mixes the two on the logits (classifier-free guidance),
# $\ell = \ell_{\text{uncond}} + w(\ell_{\text{cond}} - \ell_{\text{uncond}})$. We train it on
# the codes of the EMA + restarts tokenizer, then decode sampled codes into images.

# %%
PRIOR_STEPS = utils.pick(smoke=20, cpu=800, gpu=10000)
N_EVAL = utils.pick(smoke=100, cpu=750, gpu=5000)  # FCD needs n > the feature dimension (64)
tokens_train = best.encode(x_train.to(DEV)).cpu()  # (N, 4, 4) int64
tokens_test = best.encode(x_test.to(DEV)).cpu()
torch.manual_seed(0)
D_MODEL = utils.pick(smoke=32, cpu=64, gpu=256)
PRIOR_DROPOUT = 0.3  # at 0.1 the prior overfits the 1501 training grids (see below)
prior = TokenPrior(K, GRID, num_classes=10, p_uncond=0.1, d_model=D_MODEL, n_head=4, n_layer=2,
                   dropout=PRIOR_DROPOUT)  # fmt: skip
prior_history = train.fit(prior, (tokens_train, images_train.labels), steps=PRIOR_STEPS, lr=1e-3,
                          batch_size=128, weight_decay=0.01,
                          generator=torch.Generator().manual_seed(1), device=DEV)  # fmt: skip
prior.eval()
with torch.no_grad():
    bits_train = (
        -prior.log_prob(tokens_train.to(DEV), images_train.labels.to(DEV)).mean().item() / 0.6931
    )
    bits_test = (
        -prior.log_prob(tokens_test.to(DEV), images_test.labels.to(DEV)).mean().item() / 0.6931
    )
print(f"bits per image of the tokens under the prior: train {bits_train:.1f}, test {bits_test:.1f} "
      f"(uniform: {uniform_token_bits:.1f})")  # fmt: skip

# %% [markdown]
# You should see the prior code a test digit's 16 tokens in about 68 bits, against 96 bits
# for the uniform prior over 64 codes, and a training digit's in about 60: on 1501 images a
# prior overfits easily, and the dropout of 0.3 used here keeps the gap small (at dropout 0.1
# and longer training the training bits fell far below the test bits, and the test bits
# rose). The raw pixels hold 262 bits, but the tokens are lossy, so the two
# numbers measure different things.

# %%
token_model = vq.TokenModel(best, prior).eval()
y_eval = torch.arange(N_EVAL) % 10
rows = {}
for w in (1.0, 3.0):
    rows[w] = evaluation.evaluate(
        token_model, images_train, images_test, n=N_EVAL, y=y_eval, sample_kwargs={"guidance": w},
        generator=torch.Generator().manual_seed(2), network=prior.net, name=f"tokens w={w}",
        progress=False,
    )  # fmt: skip
print(evaluation.table(list(rows.values())))

fig, axes = plt.subplots(2, 10, figsize=(10, 2.3))
for r, w in enumerate(rows):
    for c in range(10):
        axes[r, c].imshow(rows[w].samples[c, 0], cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].axis("off")
    axes[r, 0].set_title(f"w = {w}", fontsize=8, loc="left")
plt.suptitle("decoded token samples, classes 0-9")
plt.show()

# %% [markdown]
# You should see decoded samples at about 1.38× the real-vs-real FCD floor with the plain
# conditional prior (w = 1), well inside the target of 6×, with 1.2% of the samples
# near-copies of training digits, fewer than held-out real digits (about one in 20 by the
# test's construction), so the low FCD is not copying. The class accuracy is about 0.69 at
# w = 1, and guidance w = 3 raises it to about 0.85 with the FCD nearly unchanged (about
# 1.36×): guidance trades diversity for fidelity to the class, and in this run the diversity
# it gives up was not buying FCD.

# %% [markdown]
# ## 7. VAR: next-scale prediction
#
# The raster-order prior makes one network pass per token, 16 here and thousands at real
# resolutions. VAR (Tian et al. 2024) changes what is predicted: the tokenizer writes the
# latent as a sum of token maps of growing size, $1\times 1$, $2\times 2$, $4\times 4$, each
# quantising the residual the coarser ones left (one shared codebook, upsampled and summed),
# and the Transformer predicts a whole map at once from the coarser ones,
#
# $$p(r_1, r_2, r_3 \mid y) = \prod_k p(r_k \mid r_{<k}, y),$$
#
# the tokens of $r_k$ independent given $r_{<k}$. Scale $k$'s positions read the latent summed
# over the coarser maps, downsampled to $s_k \times s_k$; the attention mask is
# **block-causal**: a position sees every position of its own and of the coarser scales, never
# a finer one. Sampling then takes 3 passes instead of 16, at the price of 21 tokens instead
# of 16 and of independence within a scale.
#
# **Exercise 7.5.** Write `block_causal_mask(sizes)`: for blocks of the given sizes
# (here `[1, 4, 16]`), the `(T, T)` bool mask, `T = sum(sizes)`, True where the query (row) may
# attend the key (column).


# %%
def block_causal_mask(sizes):
    """(T, T) bool: query t may attend key s iff block(s) <= block(t)."""
    ### BEGIN SOLUTION
    block = torch.repeat_interleave(torch.arange(len(sizes)), torch.tensor(sizes))  # (T,)
    return block[:, None] >= block[None, :]
    ### END SOLUTION


checks.check_block_causal_mask(block_causal_mask)

plt.figure(figsize=(3, 3))
plt.imshow(block_causal_mask([1, 4, 16]), cmap="gray_r")
plt.title("block-causal mask, scales 1, 2, 4\n(rows: queries, black: may attend)", fontsize=9)
plt.show()

# %% [markdown]
# The multi-scale tokenizer is the same autoencoder with `vq.MultiScaleVQ`, with EMA updates
# and restarts, and one departure from the paper: each scale has **its own codebook** of 64
# codes (`shared=False`) where VAR shares one across scales. With a shared codebook, on these
# digits, every image's 1×1 residual (the image-wide mean of its latent) went to the same code
# in every run we measured, and the 2×2 map used between 1 and 31 codes depending on the run:
# the coarse maps then carry almost nothing, the 4×4 map's 16 tokens are drawn independently
# given little more than the class, and the decoded samples are patches that do not fit
# together. The prior `vq.ScalePrior` has the same width and depth as the raster prior above,
# so nearly the same parameter count.

# %%
VAR_SEED = 0  # every draw of this section comes from it: tokenizer, prior, data order, samples
var_tok, var_codes, var_stats, _ = train_tokenizer(
    lambda: vq.MultiScaleVQ(K, DIM, (1, 2, 4), shared=False), seed=VAR_SEED
)
var_train, var_test = var_codes, var_tok.encode(x_test.to(DEV)).cpu()  # (N, 21) int64
var_codes_used = [len(torch.unique(c)) for c in var_tok.quantizer.split(var_train)]
print(f"multi-scale VQ: codes used per scale (1x1, 2x2, 4x4) {var_codes_used} of {K} each, "
      f"test recon MSE {var_stats['recon_mse']:.4f}")  # fmt: skip

torch.manual_seed(VAR_SEED)
var_prior = vq.ScalePrior(var_tok.quantizer, num_classes=10, p_uncond=0.1, d_model=D_MODEL,
                          n_head=4, n_layer=2, dropout=PRIOR_DROPOUT)  # fmt: skip
train.fit(var_prior, (var_train, images_train.labels), steps=PRIOR_STEPS, lr=1e-3, batch_size=128,
          weight_decay=0.01, generator=torch.Generator().manual_seed(VAR_SEED + 1),
          device=DEV)  # fmt: skip
var_prior.eval()
var_model = vq.TokenModel(var_tok, var_prior).eval()
var_row = evaluation.evaluate(
    var_model, images_train, images_test, n=N_EVAL, y=y_eval,
    generator=torch.Generator().manual_seed(VAR_SEED + 2), network=var_prior.net,
    name="VAR (next-scale)", progress=False,
)  # fmt: skip


def trainable(module):
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


print(f"prior parameters: next-token {trainable(prior)}, next-scale {trainable(var_prior)}")
print(evaluation.table([rows[1.0], var_row]))

with torch.no_grad():
    codes6 = var_test[:6].to(DEV)
    sums = var_tok.quantizer.partial_sums(codes6)[1:] + [var_tok.quantizer.lookup(codes6)]
    stages = [var_tok.decode_latent(s).cpu() for s in sums]  # after scale 1, 1+2, 1+2+4
fig, axes = plt.subplots(4, 6, figsize=(6, 4.2))
for c in range(6):
    for r, img in enumerate([x_test[c], *(s[c] for s in stages)]):
        axes[r, c].imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
        axes[r, c].axis("off")
for r, label in enumerate(["test digit", "1x1", "+ 2x2", "+ 4x4"]):
    axes[r, 0].set_title(label, fontsize=8, loc="left")
plt.suptitle("VAR tokens, coarse to fine: the decoded sum after each scale", fontsize=9)
plt.show()

fig, axes = plt.subplots(1, 10, figsize=(10, 1.3))
for c, ax in enumerate(axes):
    ax.imshow(var_row.samples[c, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.axis("off")
plt.suptitle("next-scale samples, classes 0-9 (w = 1)", fontsize=9)
plt.show()

# %% [markdown]
# You should see the multi-scale tokenizer use 23 of the 64 codes of its 1×1 codebook and all
# 64 of the 2×2 and 4×4 ones, and the next-scale prior sample with 3 network passes per image
# against the raster prior's 16, at nearly the same size (107072 against 110080 trained
# parameters), and, at the same 800 training steps, about as well: FCD about 1.11× the floor
# against 1.38× (both at w = 1), with 1.7% near-copies, and a class accuracy of about 0.93
# against the raster prior's 0.69. The multi-scale tokenizer reconstructs worse, its test error
# about 0.0107 against 0.0049, because each scale quantises what the coarser ones left, yet
# its samples are as good: a prior that predicts a whole coarse map first decides the digit's
# overall shape in one step. The coarse-to-fine figure shows the idea: the 1×1 token fixes the
# digit's overall blob, and each finer map corrects what is left.
#
# **How far does this move with the seed?** `benchmarks/bench_var_seeds.py` reruns this
# section with `VAR_SEED` = 0, 10, 20 and 30 (seed 0 is the run above, reproduced exactly). With
# one codebook per scale the FCD ratio ranged from 0.73× to 1.11× the floor (mean 0.93) and the
# class accuracy from 0.91 to 0.96: the comparison with the raster prior holds on every seed.
# With the shared codebook of the paper (the quantiser this lecture used before), the same four
# seeds gave 0.89× to 16.8× and class accuracies of 0.08 to 0.91: only one of the four worked,
# and in every run the 1×1 map used a single code, so it carried nothing. The three failures
# also had worse tokenizers (test error 0.022 to 0.079, against 0.0075 on the seed that
# worked) with 2×2 maps of few codes, and the prior's samples then barely depended on the
# class. That is why two earlier recordings of this lecture disagreed (7.7× and class
# accuracy 0.10, then 1.04× and 0.95): the section already seeded itself, and its code at the
# first recording's commit, rerun on today's installation, gives the second recording's numbers
# exactly; what changed was floating-point rounding (the software was reinstalled between the
# two), and rounding alone, the fused optimiser's, turns the same seed from 1.04× into 6.6×.
# A result that flips on rounding is a result that flips on the seed. At real resolutions, where
# a raster prior needs thousands of passes, the paper reports VAR ahead of raster priors in
# both speed and quality.

# %% [markdown]
# ## 8. Text to image tokens: DALL-E at toy scale
#
# DALL-E (Ramesh et al. 2021) generates an image from a caption with one Transformer over one
# sequence: the caption's text tokens first, then the image's tokens, and only the image tokens
# are predicted,
#
# $$p(s \mid c) = \prod_t p(s_t \mid c_1, \dots, c_L, s_{<t}),$$
#
# so every image position reads the whole caption through the causal mask. Our digits have no
# captions, so we build a tiny vocabulary offline from what each training image already says:
# its class and its stroke thickness, "thin" where the image's mean ink lies below the median
# of its class and "bold" above. A caption is three words ("a bold seven"), from 14 words in
# all with `<none>`, the empty word. `vq.CaptionPrior` gives the words ids above the 64 code
# ids, so captions and codes share one embedding table and one Transformer, and it restricts the
# image positions' logits to the codes. The captions are dropped (all `<none>`) with
# probability 0.1 in training, which gives classifier-free guidance as in section 6. It models
# the tokens of the tokenizer of section 2 (EMA + restarts), the same codes as the class prior.

# %%
CAPTION_STEPS = utils.pick(smoke=20, cpu=600, gpu=10000)
vocab = vq.Vocabulary()
ink_medians = vq.class_medians(x_train, images_train.labels)  # (10,): the thin/bold line
captions_train = vq.make_captions(x_train, images_train.labels, ink_medians)
words_train = vocab.encode(captions_train)  # (N, 3) word ids
print(f"{len(vocab)} words: {vocab.words}")
print("the first training captions:", captions_train[:4])
torch.manual_seed(0)
caption_prior = vq.CaptionPrior(K, GRID, num_words=len(vocab), caption_length=vocab.length,
                                p_uncond=0.1, d_model=D_MODEL, n_head=4, n_layer=2,
                                dropout=PRIOR_DROPOUT)  # fmt: skip
train.fit(caption_prior, (tokens_train, words_train), steps=CAPTION_STEPS, lr=1e-3, batch_size=128,
          weight_decay=0.01, generator=torch.Generator().manual_seed(1), device=DEV)  # fmt: skip
caption_prior.eval()

# %% [markdown]
# **Does it follow the caption?** We ask for every one of the 20 captions and judge the decoded
# samples twice. The class by the digits classifier: the fraction of samples of the digit
# named. The thickness by the same ink statistic that wrote the captions: a sample agrees if
# its ink lies on the named side of its class's median. The decoder's images are smoother than
# real digits, so the ruler is the median ink of the tokenizer's *reconstructions* of the
# training digits of that class, not of the digits themselves; chance agreement is 0.5, and the
# ceiling is how often the reconstructions of the test digits agree with their own captions.

# %%
N_PER_CAPTION = utils.pick(smoke=2, cpu=30, gpu=100)
every_caption = [f"a {t} {d}" for d in vq.captions.DIGIT_WORDS for t in ("thin", "bold")]
asked = torch.arange(len(every_caption)).repeat_interleave(N_PER_CAPTION)  # caption index
asked_digit, asked_bold = asked // 2, (asked % 2).bool()
asked_words = vocab.encode([every_caption[i] for i in asked.tolist()])  # (20 n, 3)
with torch.no_grad():
    recon_medians = vq.class_medians(best.reconstruct(x_train.to(DEV)).cpu(), images_train.labels)
    test_bold = vq.is_bold(x_test, images_test.labels, ink_medians)  # the test captions' word
    ceiling = (vq.is_bold(best.reconstruct(x_test.to(DEV)).cpu(), images_test.labels,
                          recon_medians) == test_bold).float().mean().item()  # fmt: skip


def caption_samples(words, guidance, seed=2):
    codes = caption_prior.sample(len(words), words.to(DEV), guidance=guidance,
                                 generator=torch.Generator().manual_seed(seed))  # fmt: skip
    return best.decode(codes).cpu()  # (B, 1, 8, 8)


caption_follow = {}
for w in (1.0, 3.0):
    imgs = caption_samples(asked_words, w)
    caption_follow[w] = dict(
        samples=imgs,
        class_accuracy=metrics.classifier_accuracy(imgs, asked_digit),
        thickness=(vq.is_bold(imgs, asked_digit, recon_medians) == asked_bold)
        .float()
        .mean()
        .item(),
    )
    print(f"w = {w}: class accuracy {caption_follow[w]['class_accuracy']:.2f}, thickness "
          f"agreement {caption_follow[w]['thickness']:.2f}")  # fmt: skip
print(f"thickness ceiling (test reconstructions vs their own captions): {ceiling:.2f}; chance 0.5")

fig, axes = plt.subplots(2, 10, figsize=(10, 2.4))
for i, caption in enumerate(every_caption):
    ax = axes[i % 2, i // 2]
    ax.imshow(caption_follow[3.0]["samples"][i * N_PER_CAPTION, 0], cmap="gray_r", vmin=0, vmax=1)
    ax.set_title(caption.removeprefix("a "), fontsize=7)
    ax.axis("off")
plt.suptitle("one sample for each caption (w = 3)", fontsize=9)
plt.show()

# %% [markdown]
# Type a caption (the words: "a", "thin", "bold" and the digit names) and set the guidance.
# Without a notebook frontend (a static render, or the course's test run) the cell draws the
# default caption once.


# %%
def show_caption(caption="a bold seven", guidance=3.0):
    try:
        words = vocab.encode(caption)
    except ValueError as err:  # a word outside the vocabulary: say which, draw nothing
        print(err)
        return
    imgs = caption_samples(words.expand(8, -1), guidance, seed=4)
    fig, axes = plt.subplots(1, 8, figsize=(8, 1.3))
    for ax, img in zip(axes, imgs):
        ax.imshow(img[0], cmap="gray_r", vmin=0, vmax=1)
        ax.axis("off")
    fig.suptitle(f"{caption!r}, guidance {guidance}", fontsize=9)
    plt.show()


_ = widgets.interact(
    show_caption,
    caption=widgets.Text("a bold seven", continuous_update=False),
    guidance=widgets.FloatSlider(3.0, min=1.0, max=5.0, step=0.5, continuous_update=False),
)

# %% [markdown]
# You should see the caption prior draw the named digit in about 0.58 of its samples without
# guidance and about 0.73 with w = 3 (chance 0.1; the class prior of section 6, with a class
# token and 800 steps against these 600, reached 0.69 and 0.85), and the named thickness in
# about 0.71 and 0.82 of them (chance 0.5; the ceiling, the test reconstructions against
# their own captions, is about 0.91). Guidance sharpens both words of the caption at once:
# the unconditional logits it pushes away from know neither the digit nor the thickness. The
# class is the harder word here: the digit is one word of three in one sequence, learned from
# 1501 images, and telling ten digits apart is a finer distinction than which side of a median
# the ink falls. DALL-E does the same at scale, with 256 text tokens from a BPE vocabulary of
# 16384, 1024 image tokens and 12 billion parameters.

# %%
vq_plain = results["VQ (codebook loss)"][2]
vq_ema = results["VQ + EMA"][2]
report.record("vq_plain_usage", vq_plain["usage"])
report.record("vq_plain_perplexity", vq_plain["perplexity"])
report.record("vq_ema_usage", vq_ema["usage"])
report.record("vq_ema_restart_usage", best_stats["usage"],
              target=utils.pick(smoke=None, cpu=">= 0.95", gpu=">= 0.95"))  # fmt: skip
report.record("vq_ema_restart_perplexity", best_stats["perplexity"])
report.record("vq_ema_restart_recon_mse", best_stats["recon_mse"])
report.record("fsq_usage", fsq_stats["usage"])
report.record("fsq_perplexity", fsq_stats["perplexity"])
report.record("fsq_recon_mse", fsq_stats["recon_mse"])
report.record(
    "lfq_usage", lfq_stats["usage"], target=utils.pick(smoke=None, cpu=">= 0.95", gpu=">= 0.95")
)
report.record("lfq_perplexity", lfq_stats["perplexity"])
report.record("lfq_recon_mse", lfq_stats["recon_mse"])
report.record("lfq_unnormalised_usage", lfq_raw_stats["usage"])
report.record("lfq_unnormalised_perplexity", lfq_raw_stats["perplexity"])
report.record("lfq_unnormalised_recon_mse", lfq_raw_stats["recon_mse"])
report.record("lfq_no_entropy_usage", lfq_plain_stats["usage"])
report.record("lfq_no_entropy_perplexity", lfq_plain_stats["perplexity"])
report.record("lfq_no_entropy_recon_mse", lfq_plain_stats["recon_mse"])
report.record("prior_test_bits_per_image", bits_test)
report.record("prior_train_bits_per_image", bits_train)
report.record("tokens_fcd_ratio_w1", rows[1.0].fcd_ratio,
              target=utils.pick(smoke=None, cpu="<= 6", gpu=None))  # fmt: skip
report.record("tokens_fcd_ratio_w3", rows[3.0].fcd_ratio)
report.record("tokens_memorisation_w1", rows[1.0].memorisation)
report.record("tokens_class_accuracy_w1", rows[1.0].class_accuracy)
report.record("tokens_class_accuracy_w3", rows[3.0].class_accuracy)
report.record("guidance_class_accuracy_gain", rows[3.0].class_accuracy - rows[1.0].class_accuracy,
              target=utils.pick(smoke=None, cpu="> 0", gpu="> 0"))  # fmt: skip
report.record("gumbel_max_total_variation", gumbel_max_tv,
              target=utils.pick(smoke=None, cpu="<= 0.01", gpu="<= 0.01"))  # fmt: skip
report.record("gumbel_max_weight_tau01", max_weight[0.1])
report.record("gumbel_max_weight_tau1", max_weight[1.0])
report.record("gumbel_max_weight_tau5", max_weight[5.0])
report.record("gumbel_usage", gumbel_stats["usage"])
report.record("gumbel_perplexity", gumbel_stats["perplexity"])
report.record("gumbel_recon_mse", gumbel_stats["recon_mse"])
for size, used in zip(("1x1", "2x2", "4x4"), var_codes_used):
    report.record(f"multiscale_codes_used_{size}", used)
report.record("multiscale_recon_mse", var_stats["recon_mse"])
report.record("prior_parameters_next_token", trainable(prior))
report.record("prior_parameters_next_scale", trainable(var_prior))
report.record("nfe_next_token", rows[1.0].nfe_per_sample)
report.record("nfe_next_scale", var_row.nfe_per_sample,
              target=utils.pick(smoke=None, cpu="<= 3", gpu="<= 3"))  # fmt: skip
report.record("var_fcd_ratio", var_row.fcd_ratio)
report.record("var_memorisation", var_row.memorisation)
report.record("var_class_accuracy", var_row.class_accuracy)
report.record("vqgan_recon_fcd_ratio_no_disc", vqgan_fcd[GAN_NAMES[0]])  # means over the seeds
report.record("vqgan_recon_fcd_ratio_disc", vqgan_fcd[GAN_NAMES[1]])
report.record("vqgan_disc_over_no_disc_fcd", vqgan_ratio.mean().item())
report.record("vqgan_disc_over_no_disc_fcd_se", vqgan_ratio_se)
# "sharper" is claimed only if the ratio stays below 1 by two standard errors
report.record("vqgan_disc_over_no_disc_fcd_upper", vqgan_ratio.mean().item() + 2 * vqgan_ratio_se,
              target=utils.pick(smoke=None, cpu="< 1", gpu="< 1"))  # fmt: skip
report.record("vqgan_disc_over_no_disc_fcd_max", vqgan_ratio.max().item())
report.record("vqgan_disc_over_no_disc_fcd_min", vqgan_ratio.min().item())
report.record("vqgan_recon_mse_no_disc", vqgan_mse[GAN_NAMES[0]])
report.record("vqgan_recon_mse_disc", vqgan_mse[GAN_NAMES[1]])
report.record("caption_class_accuracy_w1", caption_follow[1.0]["class_accuracy"])
report.record("caption_class_accuracy_w3", caption_follow[3.0]["class_accuracy"],
              target=utils.pick(smoke=None, cpu="> 0.1", gpu="> 0.1"))  # fmt: skip
report.record("caption_thickness_agreement_w1", caption_follow[1.0]["thickness"])
report.record("caption_thickness_agreement_w3", caption_follow[3.0]["thickness"],
              target=utils.pick(smoke=None, cpu="> 0.5", gpu="> 0.5"))  # fmt: skip
report.record("caption_thickness_ceiling", ceiling)
