"""DALL-E at toy scale (Ramesh et al. 2021): caption tokens prefixed to image tokens in one
causal Transformer.

The captions are built offline from what the data already say: the digit's class and a
stroke-thickness statistic (the mean ink of the image, "thin" below the median of its class,
"bold" above), e.g. ``"a thin seven"``. :class:`Vocabulary` turns a caption into word ids.
:class:`CaptionPrior` models

    p(s | caption) = prod_t p(s_t | caption, s_<t)

with the sequence ``[start, w_1 .. w_L, s_1 .. s_T]`` through ``CausalTransformer``: word ids
live above the K code ids, and the image positions' logits are restricted to the K codes. The
loss is on the image tokens only. In training the whole caption is replaced by ``<none>``
words with probability ``p_uncond``, which gives classifier-free guidance as in ``TokenPrior``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from coursekit import models
from coursekit.autoregressive.tokens import draw_token
from coursekit.autoregressive.transformer import CausalTransformer
from coursekit.metrics import units

DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
THICKNESS_WORDS = ("thin", "bold")
NONE = "<none>"


def ink(images: Tensor) -> Tensor:
    """The stroke-thickness statistic: mean intensity of each image (N, C, H, W) -> (N,)."""
    return images.float().flatten(1).mean(1)


def class_medians(images: Tensor, labels: Tensor, num_classes: int = 10) -> Tensor:
    """Median ink of each class, (num_classes,): the thin/bold threshold."""
    values = ink(images)
    return torch.stack([values[labels == c].median() for c in range(num_classes)])


def is_bold(images: Tensor, labels: Tensor, medians: Tensor) -> Tensor:
    """(N,) bool: the image's ink lies above its class's median."""
    return ink(images) > medians[torch.as_tensor(labels).long()]


def make_captions(images: Tensor, labels: Tensor, medians: Tensor) -> list[str]:
    """One caption per image: "a thin seven" or "a bold seven"."""
    bold = is_bold(images, labels, medians)
    return [
        f"a {THICKNESS_WORDS[int(b)]} {DIGIT_WORDS[int(y)]}"
        for b, y in zip(bold.tolist(), torch.as_tensor(labels).tolist())
    ]


class Vocabulary:
    """Words <-> ids for captions of a fixed length (shorter ones are padded with ``<none>``)."""

    def __init__(self, words=("a", *THICKNESS_WORDS, *DIGIT_WORDS), length: int = 3):
        self.words = [NONE, *words]
        self.index = {w: i for i, w in enumerate(self.words)}
        self.length = int(length)

    def __len__(self) -> int:
        return len(self.words)

    def encode(self, captions: str | list[str]) -> Tensor:
        """Caption(s) -> ids (B, L) int64."""
        if isinstance(captions, str):
            captions = [captions]
        rows = []
        for caption in captions:
            words = caption.lower().split()
            unknown = [w for w in words if w not in self.index]
            if unknown:
                raise ValueError(
                    f"unknown word(s) {unknown} in {caption!r}; the vocabulary is "
                    f"{self.words[1:]} (e.g. 'a thin seven')."
                )
            if len(words) > self.length:
                raise ValueError(f"captions have at most {self.length} words, got {caption!r}.")
            rows.append([self.index[w] for w in words] + [0] * (self.length - len(words)))
        return torch.tensor(rows, dtype=torch.long)

    def none(self, n: int) -> Tensor:
        """n empty captions (all ``<none>``): the unconditional model."""
        return torch.zeros(n, self.length, dtype=torch.long)


class CaptionPrior(models.GenerativeModel):
    """p(code grid | caption ids) by one causal Transformer over caption + image tokens.

    ``x`` is the code grid (B, *grid_shape) int64 and ``y`` the caption ids (B, L) from
    :meth:`Vocabulary.encode` (``None``: the empty caption).
    """

    def __init__(
        self,
        vocab_size: int,
        grid_shape: tuple[int, ...],
        num_words: int,
        caption_length: int,
        *,
        p_uncond: float = 0.1,
        d_model: int = 64,
        n_head: int = 4,
        n_layer: int = 2,
        dropout: float = 0.0,
    ):
        super().__init__()
        self.vocab_size, self.data_shape = int(vocab_size), tuple(grid_shape)
        self.num_words, self.caption_length, self.p_uncond = num_words, caption_length, p_uncond
        self.num_tokens = math.prod(self.data_shape)
        L, T = caption_length, self.num_tokens
        self.net = CausalTransformer(
            (L + T,), vocab_size + num_words, d_model=d_model, n_head=n_head, n_layer=n_layer,
            dropout=dropout,
        )  # fmt: skip

    def _words(self, y: Tensor | None, n: int) -> Tensor:
        if y is None:
            return torch.zeros(n, self.caption_length, dtype=torch.long, device=self.device)
        y = torch.as_tensor(y, device=self.device)
        if y.dtype.is_floating_point or tuple(y.shape) != (n, self.caption_length):
            raise ValueError(
                f"y holds caption ids (B, {self.caption_length}) from Vocabulary.encode, "
                f"got {y.dtype} {tuple(y.shape)}."
            )
        return y.long()

    def _check(self, s: Tensor) -> Tensor:
        if not isinstance(s, Tensor) or s.dtype.is_floating_point or s.dtype == torch.bool:
            raise TypeError(
                "CaptionPrior models token indices: pass an integer tensor (tokenizer.encode(x))."
            )
        if tuple(s.shape[1:]) != self.data_shape:
            raise ValueError(
                f"CaptionPrior expects code grids of shape (B, {', '.join(map(str, self.data_shape))}),"
                f" got {tuple(s.shape)}."
            )
        if s.numel() and (int(s.min()) < 0 or int(s.max()) >= self.vocab_size):
            raise ValueError(f"codes must lie in 0..{self.vocab_size - 1}.")
        return s.long().flatten(1)

    def logits(self, s: Tensor, y: Tensor | None = None) -> Tensor:
        """Teacher-forced logits (B, T, K) of the image tokens given the caption."""
        seq = self._check(s)
        words = self._words(y, len(seq)) + self.vocab_size  # word ids above the codes
        start = torch.full_like(seq[:, :1], self.vocab_size + self.num_words)
        inputs = torch.cat([start, words, seq[:, :-1]], dim=1)  # (B, 1 + L + T - 1)
        out = self.net(inputs)  # (B, L + T, K + V)
        return out[:, self.caption_length :, : self.vocab_size]

    def log_prob(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        logits = self.logits(x, y)
        target = self._check(x)
        return -F.cross_entropy(logits.transpose(1, 2), target, reduction="none").sum(1)

    def loss(self, x: Tensor, y: Tensor | None = None, *, generator=None) -> dict[str, Tensor]:
        if y is not None and self.training and self.p_uncond > 0:
            y = self._words(y, len(x))
            y = models.drop_labels(y, self.p_uncond, 0, generator)  # word 0: no caption
        nll = -self.log_prob(x, y).mean()
        return {"loss": nll, "bits_per_token": units.bits_per_dim(nll.detach(), self.num_tokens)}

    @torch.no_grad()
    def sample(
        self,
        n: int,
        y: Tensor | None = None,
        *,
        generator: torch.Generator | None = None,
        guidance: float = 1.0,
        temperature: float = 1.0,
    ) -> Tensor:
        """n code grids for the captions ``y`` (n, L), the caption read once into the cache."""
        was = self.training
        self.eval()
        words = self._words(y, n)
        guided = y is not None and guidance != 1.0
        if guided:
            words = torch.cat([words, self._words(None, n)])
        start = torch.full_like(words[:, :1], self.vocab_size + self.num_words)
        prefix = torch.cat([start, words + self.vocab_size], dim=1)  # (B, 1 + L)
        caches = [{} for _ in self.net.blocks]
        logits = self.net(prefix, start=0, caches=caches)[:, -1, : self.vocab_size]
        out = []
        for t in range(self.num_tokens):
            if t:
                pos = self.caption_length + t
                logits = self.net(out[-1].repeat(2 if guided else 1, 1), start=pos, caches=caches)
                logits = logits[:, -1, : self.vocab_size]
            nxt = draw_token(logits, guided=guided, guidance=guidance, temperature=temperature,
                             generator=generator)  # fmt: skip
            out.append(nxt[:, None])  # (n, 1)
        self.train(was)
        return torch.cat(out, 1).view(n, *self.data_shape)


@models.register_conformance("caption-prior")
def _tiny_caption_prior() -> models.ConformanceCase:
    g = torch.Generator().manual_seed(0)
    model = CaptionPrior(4, (2, 2), num_words=5, caption_length=2, d_model=16, n_head=2, n_layer=1)
    x = torch.randint(0, 4, (4, 2, 2), generator=g)
    y = torch.tensor([[1, 2], [3, 0], [4, 4], [0, 0]])
    return models.ConformanceCase(
        model=model, x=x, y=y, data_range=(0, 3), exact_log_prob=True, checks_input=True
    )
