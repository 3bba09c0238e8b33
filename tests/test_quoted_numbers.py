"""The numbers that the lectures' text and the README quote agree with the recorded run.

Every "you should see" sentence that quotes a recorded number is listed in ``QUOTES`` below:
the source (a lecture's ``solutions/NN_topic.py`` markdown, or ``README.md``), the record
(lecture, name) of the latest cpu run kept in ``benchmarks/results/cpu-*.json``, and the
literal text around the number, so that the text stays readable in the source. The test
asserts that each quote is in the source and that its first number is the recorded value
rounded as quoted:

- tolerance: half a unit of the last digit quoted (``about 5.8`` holds for 5.75 to 5.85,
  ``36%`` for 0.355 to 0.365), plus 1e-9 for floating-point ties;
- ``rel=``: wall-clock times, quoted as "about", hold within that fraction of the quoted
  value (10%: the README's two recorded runs agreed that closely on an idle machine);
- ``op="<="``: a bound ("within 1e-4 bits/dim") holds when the value is at most the number.

Changing a recorded number without the text, or the text without the number, fails here;
``test_a_changed_record_or_text_is_caught`` proves it on mutated copies.

When a lecture's text quotes a new recorded number, add its row. A quoted number that is not
recorded (a figure's value seen in the executed notebook) cannot be checked here.
"""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"


@dataclasses.dataclass(frozen=True)
class Quote:
    source: str  # "02_vae" (the markdown of solutions/02_vae.py) or "README"
    lecture: str  # the record's lecture, e.g. "06_diffusion"
    record: str  # the record's name; "seconds" with field="seconds" is the lecture's time
    text: str  # literal text of the source; its first number is the quoted value
    rel: float | None = None  # relative tolerance (timings) instead of the rounding rule
    op: str = "round"  # or "<=": the number is an upper bound
    field: str = "value"  # the key of the record compared: "value" or "seconds"


D, V, A, G = "01_divergences", "02_vae", "03_autoregressive", "06_diffusion"
F = "08_flow_matching"
E9 = "09_energy_models"
G5 = "05_gans"
C10 = "10_families"

QUOTES = [
    # lecture 01
    Quote(D, D, "gan_value_vs_2js_minus_log4", "agree to about 0.001 (the Monte-Carlo"),
    # lecture 02
    Quote(V, V, "mig_beta1", "the MIG rise from about 0.07 at β = 1"),
    Quote(V, V, "mig_best", "to about 0.17 at β = 4"),
    Quote(V, V, "mig_best_beta", "β = 4, where the x and y positions"),
    Quote(V, V, "iwae1000_test_bpd", "1.87 at $k = 1000$"),
    Quote(V, V, "iwae1000_test_bpd", "an IWAE-1000 estimate of about 1.87 bits/dim"),
    Quote(V, V, "iwae50_gain_over_elbo_bpd", "an IWAE-50 bound about 0.07 bits/dim better"),
    Quote(V, V, "fcd_samples", "samples with an FCD of about 29 against"),
    Quote(V, V, "fcd_real_floor", "a real-vs-real floor of about 16: close to"),
    Quote(V, A, "digits_fvsbn_test_bpd", "and a linear autoregressive model (2.04)"),
    Quote(
        V, A, "digits_independent_test_bpd", "comparable with independent pixels (2.43 bits/dim)"
    ),
    # lecture 03
    Quote(A, A, "digits_gated_pixelcnn_test_bpd", "and about 1.83 for the gated PixelCNN"),
    Quote(A, A, "digits_best_test_bpd", "the gated PixelCNN best at about 1.83 bits/dim"),
    Quote(A, A, "digits_fvsbn_test_bpd", "about 2.04 for the linear FVSBN and 2.43"),
    Quote(A, A, "digits_independent_test_bpd", "2.43 for independent pixels, and sampling"),
    Quote(A, A, "wavenet_test_bits_per_sample", "about 4.5 bits"),
    Quote(A, A, "transformer_kv_cache_speedup", "a speed-up of about 10 in the cpu profile"),
    Quote(A, A, "compression_code_minus_nll_bpd", "a code within about 0.0002 bits/dim of the"),
    Quote(A, A, "compression_saving_vs_best_baseline", "about 36% smaller"),
    Quote(A, A, "compression_per_image_code_bpd", "1.89 bits/dim: half a byte per image"),
    # lecture 06
    Quote(G, G, "toy_moons_energy_over_real_p95", "about −0.52 × the real-vs-real 95th percentile"),
    Quote(G, G, "toy_8gaussians_energy_over_real_p95", "−0.10 × on the eight Gaussians"),
    Quote(G, G, "toy_8gaussians_energy_over_real_p95", "(against −0.10 × for DDPM;"),
    Quote(G, G, "toy_moons_seconds", "in 57 s (moons)", rel=0.1),
    Quote(G, G, "toy_8gaussians_seconds", "57 s (eight Gaussians)", rel=0.1),
    Quote(G, G, "memorisation_ddpm1000", "memorisation score is about 0.25"),
    Quote(
        G, G, "langevin_8gaussians_energy_over_real_p95", "the energy distance was about −0.76 ×"
    ),
    Quote(G, G, "fcd_ddpm1000", "in our `cpu` run the FCD was about 5.7"),
    Quote(G, G, "fcd_floor", "against a floor of about 2.7 (ratio"),
    Quote(G, G, "fcd_ddpm1000_over_floor", "(ratio 2.1)"),
    Quote(G, G, "fcd_ddim50", "4.3 with 50 and"),
    Quote(G, G, "fcd_ddpm1000", "against 5.7 for 1000 DDPM steps"),
    Quote(G, G, "classifier_accuracy_unconditional", "(about 0.09 at $s = 0$"),
    Quote(G, G, "classifier_accuracy_best_scale", "1.00 at $s = 1$)"),
    Quote(G, G, "guidance_best_scale", "best scale is near 1;"),
    Quote(G, G, "fcd_latent_ddim50", "(FCD about 4.1 against 4.3"),
    Quote(G, G, "fcd_ddim50", "against 4.3 in our `cpu` run"),
    Quote(
        G, G, "latent_over_pixel_cost_per_sample", "a latent / pixel ratio of about 0.9", rel=0.1
    ),
    Quote(G, G, "latent_over_pixel_cost_per_sample", "(0.94 in the recorded run"),
    Quote(G, G, "fcd_guided_best_over_unconditional", "(0.25 × the unguided FCD)"),
    Quote(G, G, "fcd_floor", "against 2.7). The floor is not a bound"),
    Quote(G, G, "controlnet_seconds", "in 42 s (on a machine shared", rel=0.1),
    Quote(G, G, "controlnet_control_rms", "sample was 0.067 (RMS"),
    Quote(G, G, "controlnet_control_rms_over_base", "for the base (0.27×)"),
    Quote(G, G, "controlnet_class_accuracy", "digit in 0.87 of the samples"),
    Quote(G, G, "controlnet_base_class_accuracy", "against 0.10 for the base. Realism"),
    Quote(G, G, "controlnet_fcd", "Realism is kept: FCD 2.7,"),
    Quote(G, G, "fcd_ddim50", "against 4.3 for the base's DDIM-50"),
    Quote(G, G, "sdedit_t0_400_rms_to_input", "0.25 at 400, 0.33 at"),
    Quote(G, G, "sdedit_t0_1000_rms_to_input", "0.33 at $T$, where"),
    Quote(G, G, "sdedit_t0_400_fcd", "16 at $t_0 = 400$"),
    Quote(G, G, "sdedit_t0_1000_fcd", "and 4.9 at $T$"),
    Quote(G, G, "inpaint_class_accuracy", "class in 0.68 of the inpainted"),
    Quote(G, G, "inpaint_pasted_class_accuracy", "against 0.37 when the bottom"),
    Quote(G, G, "inpaint_fcd", "(FCD 5.2 against 19"),
    # README course map
    Quote("README", D, "variational_kl_nwj_rel_error", "relative error 0.007 (NWJ)"),
    Quote("README", D, "variational_kl_dv_rel_error", "and 0.003 (DV)"),
    Quote("README", D, "variational_js_rel_error", "JS 0.005 (target"),
    Quote("README", D, "reverse_kl_fit_mode_distance", "reverse-KL fit 0.016 from a mode"),
    Quote("README", D, "gan_value_vs_2js_minus_log4", "= 0.0012 |"),
    Quote("README", D, "seconds", "| 30 s |", rel=0.1, field="seconds"),
    Quote("README", V, "iwae1000_test_bpd", "IWAE-1000 test NLL 1.872 bits/dim"),
    Quote("README", A, "digits_fvsbn_test_bpd", "gets 2.04 and independent pixels"),
    Quote("README", A, "digits_independent_test_bpd", "and independent pixels 2.43);"),
    Quote("README", V, "iwae50_gain_over_elbo_bpd", "beats the ELBO by 0.071 bits/dim"),
    Quote("README", V, "fcd_samples", "sample FCD 28.9 against"),
    Quote("README", V, "fcd_real_floor", "a real-vs-real floor of 16.3;"),
    Quote("README", V, "mig_beta1", "MIG 0.074 at β = 1"),
    Quote("README", V, "mig_best", "and 0.167 at the best β = 4"),
    Quote("README", V, "mig_best_beta", "β = 4 |"),
    Quote("README", V, "seconds", "| 161 s |", rel=0.1, field="seconds"),
    Quote("README", A, "digits_gated_pixelcnn_test_bpd", "gated PixelCNN 1.825 bits/dim"),
    Quote("README", A, "digits_fvsbn_test_bpd", "FVSBN 2.036,"),
    Quote("README", A, "digits_independent_test_bpd", "independent 2.429)"),
    Quote("README", A, "compression_code_minus_nll_bpd", "within 3e-4 bits/dim", op="<="),
    Quote("README", A, "compression_saving_vs_best_baseline", "36% smaller than"),
    Quote("README", A, "transformer_kv_cache_speedup", "10.0× faster"),
    Quote("README", A, "seconds", "| 248 s |", rel=0.1, field="seconds"),
    Quote("README", G, "toy_moons_seconds", "57 s and 57 s", rel=0.1),
    Quote("README", G, "toy_8gaussians_seconds", "57 s training and sampling", rel=0.1),
    Quote("README", G, "fcd_ddpm1000", "DDPM-1000 FCD 5.71 ="),
    Quote("README", G, "fcd_ddpm1000_over_floor", "2.11× the floor"),
    Quote("README", G, "fcd_ddim50", "DDIM-50 FCD 4.31;"),
    Quote("README", G, "fcd_guided_best_over_unconditional", "best guidance FCD 0.25×"),
    Quote("README", G, "classifier_accuracy_best_scale", "class accuracy 1.00 against"),
    Quote("README", G, "classifier_accuracy_unconditional", "against 0.09; ControlNet"),
    Quote("README", G, "seconds", "| 593 s |", rel=0.1, field="seconds"),
    # lecture 07 (its text, then its README row)
    *[
        Quote("07_vq_tokenizers", "07_vq_tokenizers", record, text)
        for record, text in [
            ("vq_plain_usage", "use only 25% of its 64 codes"),
            ("vq_plain_perplexity", "(perplexity about 15.4),"),
            ("vq_ema_usage", "do not help (20%: EMA moves"),
            ("vq_ema_restart_usage", "restarts use 100% (perplexity"),
            ("vq_ema_restart_perplexity", "(perplexity about 55.7) at a test"),
            ("vq_ema_restart_recon_mse", "error of about 0.0049: more codes"),
            ("vqgan_recon_fcd_ratio_no_disc", "at about 0.69× the real-vs-real"),
            ("vqgan_recon_fcd_ratio_disc", "about 0.66× with the patch"),
            ("vqgan_recon_mse_no_disc", "(about 0.0084 → 0.0090)"),
            ("vqgan_recon_mse_disc", "0.0090), the trade"),
            ("vqgan_disc_over_no_disc_fcd_min", "FCD by 0.715,"),
            ("vqgan_disc_over_no_disc_fcd_max", "and 1.226: a mean"),
            ("vqgan_disc_over_no_disc_fcd", "a mean of about 0.99 with"),
            ("vqgan_disc_over_no_disc_fcd_se", "standard error of about 0.15."),
            ("vqgan_disc_over_no_disc_fcd_upper", "errors is about 1.28,"),
            ("fsq_usage", "FSQ use 77% of its 64 codes"),
            ("fsq_perplexity", "(perplexity about 31.6) with"),
            ("fsq_recon_mse", "error of about 0.0064, close to"),
            ("lfq_usage", "penalty, use 100% of its 64 codes"),
            ("lfq_perplexity", "(perplexity about 63.1), the most even"),
            ("lfq_unnormalised_usage", "tokenizer on 6% of the codes"),
            ("lfq_unnormalised_perplexity", "(perplexity about 4.0): at inverse"),
            ("lfq_no_entropy_usage", "normalised LFQ uses 23% of"),
            ("lfq_no_entropy_perplexity", "(perplexity about 7.7): nothing"),
            ("lfq_no_entropy_perplexity", "$\\log_2 7.7 \\approx"),
            ("lfq_no_entropy_recon_mse", "about 0.0124, is lower"),
            ("lfq_recon_mse", "one's, about 0.0146, which"),
            ("gumbel_max_total_variation", "0.002, and a relaxed"),
            ("gumbel_max_weight_tau01", "from about 0.96 at"),
            ("gumbel_max_weight_tau1", "through 0.63 at"),
            ("gumbel_max_weight_tau5", "to 0.29 at"),
            ("gumbel_usage", "the dVAE use 83% of its 64 codes"),
            ("gumbel_perplexity", "(perplexity about 41.5), against"),
            ("vq_plain_usage", "VQ tokenizer's 25%: a code"),
            ("gumbel_recon_mse", "about 0.0090, is nearly twice"),
            ("prior_test_bits_per_image", "tokens in about 68 bits"),
            ("prior_train_bits_per_image", "training digit's in about 60: on"),
            ("tokens_fcd_ratio_w1", "samples at about 1.38× the real-vs-real"),
            ("tokens_memorisation_w1", "with 1.2% of the samples"),
            ("tokens_class_accuracy_w1", "accuracy is about 0.69 at"),
            ("tokens_class_accuracy_w3", "raises it to about 0.85 with"),
            ("tokens_fcd_ratio_w3", "nearly unchanged (about 1.36×)"),
            ("multiscale_codes_used_1x1", "use 23 of the 64 codes of its 1×1"),
            ("nfe_next_scale", "sample with 3 network passes"),
            ("nfe_next_token", "raster prior's 16, at"),
            ("prior_parameters_next_scale", "size (107072 against"),
            ("prior_parameters_next_token", "against 110080 trained"),
            ("var_fcd_ratio", "FCD about 1.11× the floor"),
            ("tokens_fcd_ratio_w1", "the floor against 1.38× (both"),
            ("var_memorisation", "with 1.7% near-copies"),
            ("var_class_accuracy", "class accuracy of about 0.93 against"),
            ("tokens_class_accuracy_w1", "against the raster prior's 0.69."),
            ("multiscale_recon_mse", "about 0.0107 against 0.0049"),
            ("caption_class_accuracy_w1", "named digit in about 0.58 of"),
            ("caption_class_accuracy_w3", "about 0.73 with w = 3"),
            ("tokens_class_accuracy_w1", "reached 0.69 and 0.85"),
            ("caption_thickness_agreement_w1", "thickness in about 0.71 and"),
            ("caption_thickness_agreement_w3", "and 0.82 of them"),
            ("caption_thickness_ceiling", "captions, is about 0.91)"),
        ]
    ],
    *[
        Quote("README", "07_vq_tokenizers", record, text)
        for record, text in [
            ("vq_plain_usage", "plain VQ 25%, EMA"),
            ("vq_ema_usage", "EMA 20%, EMA + restarts"),
            ("vq_ema_restart_usage", "restarts **100%** (target"),
            ("vq_ema_restart_perplexity", "perplexity 55.7),"),
            ("fsq_usage", "FSQ 77% with no auxiliary"),
            ("lfq_usage", "LFQ **100%** (target"),
            ("lfq_perplexity", "perplexity 63.1; 6%"),
            ("lfq_unnormalised_usage", "6% without the normalisation"),
            ("lfq_no_entropy_usage", "23% without the entropy penalty"),
            ("gumbel_usage", "Gumbel dVAE 83%"),
            ("vqgan_disc_over_no_disc_fcd", "reconstruction FCD by 0.99 ±"),
            ("vqgan_disc_over_no_disc_fcd_se", "± 0.15 (mean"),
            ("vqgan_disc_over_no_disc_fcd_min", "seeds, 0.715 to"),
            ("vqgan_disc_over_no_disc_fcd_max", "to 1.226; target"),
            ("vqgan_disc_over_no_disc_fcd_upper", "**not met** at 1.28,"),
            ("tokens_fcd_ratio_w1", "FCD **1.38× the floor**"),
            ("tokens_memorisation_w1", "1.2% near-copies"),
            ("tokens_class_accuracy_w1", "class accuracy 0.69 → 0.85"),
            ("tokens_class_accuracy_w3", "0.85 with guidance"),
            ("prior_train_bits_per_image", "60 bits per image on train"),
            ("prior_test_bits_per_image", "68 on test (uniform"),
            ("nfe_next_scale", "VAR 3 network passes per sample"),
            ("nfe_next_token", "against 16, FCD"),
            ("var_fcd_ratio", "FCD 1.11× and class accuracy"),
            ("var_class_accuracy", "class accuracy 0.93 at equal"),
            ("caption_class_accuracy_w1", "the named digit 0.58 → 0.73"),
            ("caption_class_accuracy_w3", "0.73 with guidance w = 3 (chance"),
            ("caption_thickness_agreement_w1", "thickness 0.71 → 0.82"),
            ("caption_thickness_agreement_w3", "0.82 (chance 0.5"),
            ("caption_thickness_ceiling", "ceiling 0.91)"),
        ]
    ],
    Quote("README", "07_vq_tokenizers", "seconds", "| 262 s |", rel=0.1, field="seconds"),
    # lecture 04 (the 2-D toys, the digits flows, topics 7-9; and the timings quoted)
    *[
        Quote("04_flows", "04_flows", record, text)
        for record, text in [
            ("toy_moons_realnvp_minus_kde_nll", "the RealNVP 0.015 nats above"),
            ("toy_8gaussians_realnvp_minus_kde_nll", "and 0.129 nats above"),
            ("toy_moons_best_flow_minus_kde_nll", "a difference of −0.008 nats"),
            ("toy_8gaussians_best_flow_minus_kde_nll", "it comes within 0.007 nats"),
            ("toy_moons_kde_test_nll", "against 2.390 nats)"),
            ("toy_8gaussians_kde_test_nll", "against 2.824). The"),
            ("toy_moons_realnvp_energy_over_real_p95", "RealNVP 0.11 ± 0.24)"),
            ("toy_moons_energy_over_real_p95", "(spline −0.04 ± 0.21 ×"),
            ("toy_moons_energy_over_real_p95_se", "0.21 × the 95th percentile, RealNVP"),
            ("toy_8gaussians_energy_over_real_p95", "are not (1.65 ± 1.05"),
            ("toy_8gaussians_energy_over_real_p95_se", "1.05, so the"),
            ("toy_8gaussians_realnvp_energy_over_real_p95", "(5.26 ± 1.30: it keeps"),
            ("toy_moons_fixed_mask_nll_penalty", "The fixed mask is 0.89"),
            ("toy_8gaussians_fixed_mask_nll_penalty", "and 1.97 nats worse"),
            ("leaky_mask_logdet_error_nats", "(2.14 nats on average"),
            ("digits_best_flow_test_bpd", "variational dequantization best at 1.983"),
            ("digits_realnvp_uniform_test_bpd", "2.043 with uniform dequantization"),
            ("variational_dequantization_gain_bpd", "(variational gains 0.061 at"),
            ("digits_glow_variational_test_bpd", "the small Glow at 2.016"),
            ("digits_maf_variational_test_bpd", "the MAF at 2.037: the"),
            ("class_flow_marginal_test_bpd", "test bound from 2.132 (marginal)"),
            ("class_flow_test_bpd_given_label", "2.086 bits/dim, a gain of"),
            ("class_flow_label_gain_bpd", "a gain of 0.045 of the possible"),
            ("class_flow_bayes_accuracy", "classifies 0.959 of the test digits"),
            ("class_flow_sample_accuracy_t1", "the asked class 0.964 of the time"),
            ("class_flow_sample_accuracy_t07", "(0.998 at $T = 0.7$"),
            ("sr_consistency_rms_t1", "cpu profile consistency 0.101"),
            ("sr_consistency_over_random_digit", "(0.40 × a random digit's)"),
            ("sr_diversity_rms_t1", "with diversity 0.20, and"),
            ("sr_consistency_rms_t08", "(0.092 and 0.17)"),
            ("sr_diversity_rms_t08", "0.17), the trade-off"),
            ("sr_test_bpd_given_lowres", "likelihood: 1.955 bits/dim"),
            ("class_flow_marginal_test_bpd", "against 2.132 for the class-conditional"),
            ("latent_edit_target_accuracy", "as the target class 0.93 of"),
            ("ae_reconstruction_accuracy", "(reconstructions: 0.94 for"),
            ("latent_edit_ink_correlation", "ink correlation of 0.55 with"),
            ("latent_fresh_sample_ink_correlation", "(−0.14): the edit keeps"),
            ("latent_vector_arithmetic_ink_correlation", "a little more ink (0.61)"),
            ("latent_vector_arithmetic_accuracy", "less often (0.83): a shift"),
            ("latent_fresh_sample_accuracy", "of its class 0.96 of the time"),
            ("cflow_edge_consistency_rms", "edge maps are 0.114 RMS from"),
            ("cflow_edge_consistency_over_random_digit", "(0.51 × a random digit's)"),
            ("cflow_class_kept_accuracy", "class is kept 0.85 of the time"),
            ("cflow_digit_given_edge_test_bpd", "1.931 bits/dim for a digit"),
            ("class_flow_marginal_test_bpd", "against 2.132 given nothing"),
            ("cflow_edge_test_bpd", "alone costs 2.560)"),
        ]
    ],
    Quote(
        "04_flows", F, "toy_8gaussians_true_test_nll", "itself scores 2.802 nats on this test set"
    ),
    # timing ratios and seconds (a shared machine): within 10%
    Quote("04_flows", "04_flows", "maf_sampling_over_density_time", "(86× for the MAF", rel=0.1),
    Quote("04_flows", "04_flows", "iaf_density_over_sampling_time", "87× for the IAF in", rel=0.1),
    Quote("04_flows", "04_flows", "lu_logdet_speedup_largest_C", "the LU sum about 670×", rel=0.1),
    Quote("04_flows", "04_flows", "toy_moons_spline_seconds", "(16 and 12 s here", rel=0.1),
    Quote("04_flows", "04_flows", "toy_8gaussians_spline_seconds", "12 s here on a", rel=0.1),
    Quote("README", "04_flows", "seconds", "| 285 s |", rel=0.1, field="seconds"),
    Quote("README", "04_flows", "lu_logdet_speedup_largest_C", "LU log-det 668× faster", rel=0.1),
    Quote(
        "README", "04_flows", "maf_sampling_over_density_time", "MAF samples 86× slower", rel=0.1
    ),
    Quote("README", "04_flows", "iaf_density_over_sampling_time", "the reverse (87×)", rel=0.1),
    *[
        Quote("README", "04_flows", record, text)
        for record, text in [
            ("digits_best_flow_test_bpd", "variational dequantization **1.983 bits/dim**"),
            ("digits_glow_variational_test_bpd", "multi-scale Glow 2.016"),
            ("digits_maf_variational_test_bpd", "MAF 2.037, early-stopped"),
            ("variational_dequantization_gain_bpd", "gains 0.061 over uniform"),
            ("toy_moons_best_flow_minus_kde_nll", "spline flow −0.008 nats (moons"),
            ("toy_8gaussians_best_flow_minus_kde_nll", "met) and +0.007 nats (8 gaussians"),
            ("toy_moons_energy_over_real_p95", "energy −0.04 ± 0.21×"),
            ("toy_8gaussians_energy_over_real_p95", "and 1.65 ± 1.05× (8 gaussians"),
            ("class_flow_test_bpd_given_label", "2.086 bits/dim given the label"),
            ("class_flow_marginal_test_bpd", "(marginal 2.132)"),
            ("class_flow_bayes_accuracy", "Bayes accuracy 0.959"),
            ("class_flow_sample_accuracy_t1", "the asked class 0.964"),
            ("sr_consistency_over_random_digit", "input at 0.40×"),
            ("sr_diversity_rms_t1", "with diversity 0.20 (> 0.05)"),
            ("latent_edit_target_accuracy", "the target class 0.93 (≥ 0.7"),
            ("latent_vector_arithmetic_accuracy", "vector arithmetic 0.83)"),
            ("latent_edit_ink_correlation", "ink correlation 0.55"),
            ("cflow_class_kept_accuracy", "keep the class 0.85"),
            ("cflow_edge_consistency_over_random_digit", "edge error 0.51×"),
        ]
    ],
    # lecture 08
    Quote(F, F, "exact_flow_median_distance_to_data", "about 0.03 at $t = 0.99$"),
    Quote(F, F, "toy_8gaussians_single_set_min_over_real_p95", "from −1.5 to 2.2 × the 95th"),
    Quote(F, F, "toy_8gaussians_single_set_max_over_real_p95", "2.2 × the 95th percentile on the"),
    Quote(F, F, "toy_moons_single_set_min_over_real_p95", "Gaussians, −0.57 to 1.1 × on the"),
    Quote(F, F, "toy_moons_single_set_max_over_real_p95", "1.1 × on the moons), which"),
    Quote(F, F, "toy_moons_energy_over_real_p95", "about −0.10 ± 0.12 on the moons"),
    Quote(F, F, "toy_moons_energy_over_real_p95_se", "0.12 on the moons (as close"),
    Quote(F, F, "toy_8gaussians_energy_over_real_p95", "data) and 0.75 ± 0.92 on the eight"),
    Quote(F, F, "toy_8gaussians_energy_over_real_p95_se", "0.92 on the eight Gaussians: the"),
    Quote(F, F, "toy_8gaussians_energy_over_real_p95_se", "within about ±0.9, so it is"),
    Quote(F, F, "fcd_euler1_over_floor", "about 190 × the floor with one Euler step"),
    Quote(F, F, "fcd_euler10_over_floor", "2.7 × with 10 and"),
    Quote(F, F, "fcd_euler100_over_floor", "1.9 × with 100. Heun"),
    Quote(F, F, "fcd_heun10_over_floor", "(2.1 × with 10)"),
    Quote(F, F, "fcd_heun5_over_floor", "(2.4 × with 5 steps)"),
    Quote(F, F, "fcd_heun100_over_floor", "scored 1.97 × against Euler"),
    Quote(F, F, "fcd_euler100_over_floor", "against Euler's 1.89 × with 100"),
    Quote(F, F, "straightness_cfm", "(about 0.39)"),
    Quote(F, F, "straightness_vp_over_linear", "about 1.3 × less straight"),
    Quote(F, F, "vp_fcd_euler10_over_floor", "about 1.9 × the floor against 2.7"),
    Quote(F, F, "fcd_euler10_over_floor", "against 2.7 ×) and at 100"),
    Quote(F, F, "vp_fcd_euler100_over_floor", "(1.4 × against"),
    Quote(F, F, "straightness_reflow_over_cfm", "about 0.32 × its value"),
    Quote(F, F, "fcd_euler1_over_floor", "190 × to about 4.5"),
    Quote(F, F, "reflow_fcd_euler1_over_floor", "to about 4.5 × the floor"),
    Quote(F, F, "cfm_euler1_over_reflow_euler1", "(42 × better)"),
    Quote(F, F, "reflow_fcd_euler100_over_floor", "at the cost of some quality at many steps (2.5"),
    Quote(F, F, "distilled_fcd_1step_over_floor", "single step scored about 5.7 ×"),
    Quote(F, F, "reflow_fcd_euler1_over_floor", "model's own (4.5 ×); the pairs"),
    Quote(F, F, "ot_cost_over_independent_toy", "0.29 ×) and much less"),
    Quote(F, F, "ot_cost_over_independent_digits", "(about 0.83 ×: in high"),
    Quote(F, F, "straightness_ot_over_independent_digits", "(about 0.63 × the straightness"),
    Quote(F, F, "ot_fcd_euler1_over_floor", "(about 22 × the floor)"),
    Quote(F, F, "toy_8gaussians_test_nll_exact_trace", "run 2.833 nats against 2.802"),
    Quote(F, F, "toy_8gaussians_true_test_nll", "against 2.802: about 0.031"),
    Quote(F, F, "toy_8gaussians_nll_minus_true", "about 0.031 nats per point above"),
    Quote(F, F, "toy_8gaussians_hutchinson_minus_exact_nll", "(by −0.014"),
    Quote(F, F, "toy_moons_hutchinson_minus_exact_nll", "and 0.013 on the moons)"),
    Quote(F, F, "digits_fm_ode_test_bpd", "You should see about 2.67 bits/dim"),
    Quote(F, "04_flows", "digits_best_flow_test_bpd", "1.98 and its RealNVP"),
    Quote(F, "04_flows", "digits_realnvp_uniform_test_bpd", "uniform dequantization 2.04 ("),
    Quote(F, A, "digits_gated_pixelcnn_test_bpd", "1.83; it is even worse"),
    Quote(F, A, "digits_independent_test_bpd", "independent pixels, 2.43."),
    Quote(F, F, "digits_fm_exact_minus_hutchinson_bpd", "Hutchinson's to 0.036 bits/dim"),
    Quote(F, F, "latent_fcd_euler10_over_floor", "run 1.52 × the floor against 2.68"),
    Quote(F, F, "fcd_euler10_over_floor", "against 2.68 × at 10 Euler steps"),
    Quote(F, F, "latent_fcd_euler100_over_floor", "1.18 × against 1.89 × at 100"),
    Quote(F, F, "fcd_euler100_over_floor", "against 1.89 × at 100)"),
    Quote(F, F, "latent_recon_fcd_over_floor", "training digits scored 1.61 ×"),
    Quote(F, F, "latent_over_pixel_seconds_per_sample_euler100", "time ratio of about 0.92"),
    Quote(F, F, "latent_over_pixel_velocity_parameters", "parameters 0.90)"),
    Quote(F, F, "class_accuracy_guidance_1", "for 99.6% of the samples or more"),
    Quote(F, F, "guidance_best_scale", "FCD lowest at $w = 1$"),
    Quote(F, F, "fcd_guided_best_over_unguided", "about 0.23 × the unguided"),
    Quote("README", F, "fcd_euler100_over_floor", "Euler FCD 1.89× the floor at 100 steps"),
    Quote("README", F, "reflow_fcd_euler1_over_floor", "one Euler step 4.53× (≤ 6×)"),
    Quote("README", F, "reflow_euler1_over_own_euler100", "1.78× its own 100-step FCD"),
    Quote("README", F, "cfm_euler1_over_reflow_euler1", "42× better than before reflow"),
    Quote("README", F, "straightness_reflow_over_cfm", "straightness 0.32× after reflow"),
    Quote("README", F, "ot_cost_over_independent_toy", "transport cost 0.29× (toy)"),
    Quote("README", F, "ot_cost_over_independent_digits", "and 0.83× (digits)"),
    Quote("README", F, "toy_moons_energy_over_real_p95", "toy energy −0.10 ± 0.12× (moons)"),
    Quote("README", F, "toy_8gaussians_energy_over_real_p95", "and 0.75 ± 0.92× (8 gaussians"),
    Quote("README", F, "toy_moons_seconds", "sampling 12 s (moons)"),
    Quote("README", F, "toy_8gaussians_seconds", "and 11 s (8 gaussians; ≤ 60 s)"),
    Quote("README", F, "digits_fm_ode_test_bpd", "ODE likelihood 2.671 bits/dim"),
    Quote("README", F, "toy_8gaussians_nll_minus_true", "0.031 nats above the true density"),
    Quote("README", F, "latent_fcd_euler10_over_floor", "latent flow matching 1.52×"),
    Quote("README", F, "latent_fcd_euler100_over_floor", "and 1.18× the floor"),
    Quote("README", F, "fcd_euler10_over_floor", "(pixels 2.68× and 1.89×)"),
    Quote("README", F, "seconds", "| 260 s |", rel=0.1, field="seconds"),
    Quote("README", F, "seconds", "lecture 260 s (≤ 300 s)", rel=0.1, field="seconds"),
    # lecture 05 (its text, then its README row)
    Quote(G5, G5, "likelihood_toy_model_a_nll_minus_truth", "test NLL 2.9 nats above"),
    Quote(G5, G5, "likelihood_toy_model_a_high_quality", "only 7% of its samples"),
    Quote(G5, G5, "likelihood_toy_model_b_nll_minus_truth", "NLL 22.6 nats worse"),
    Quote(G5, G5, "stall_saturating_adam_mean_error", "disappears (error 0.01;"),
    Quote(G5, G5, "stall_saturating_mean_error", "stays at 3.8) while"),
    Quote(G5, G5, "stall_nonsaturating_mean_error", "reaches it (error 0.047)"),
    Quote(G5, G5, "ring_modes_plain_max", "at most 2 modes covered on"),
    Quote(G5, G5, "ring_modes_plain_mean", "(1.0 on average;"),
    Quote(G5, G5, "ring_high_quality_plain", "high-quality fraction of 0.09), its"),
    Quote(G5, G5, "ring_modes_unrolled_min", "covers all 8 modes on every seed"),
    Quote(G5, G5, "ring_high_quality_unrolled", "high-quality fraction of 0.58): the"),
    Quote(G5, G5, "stylegan_psi10_precision", "from 0.77 to"),
    Quote(G5, G5, "stylegan_psi07_precision", "to 0.81 while recall"),
    Quote(G5, G5, "stylegan_psi10_recall", "falls from 0.76 to"),
    Quote(G5, G5, "stylegan_psi07_recall", "to 0.66; at"),
    Quote(G5, G5, "stylegan_psi05_recall", "0.35 and the FCD ratio"),
    Quote(G5, G5, "stylegan_psi10_fcd_over_floor", "climbs from 2.41 (at"),
    Quote(G5, G5, "stylegan_psi05_fcd_over_floor", "to 7.14: the samples"),
    Quote(G5, G5, "stylegan_noise_over_latent_pixel_std", "spread only 0.16 times"),
    Quote(G5, G5, "digits_dcgan_fcd_over_floor", "the DCGAN at 0.87× the"),
    Quote(G5, G5, "digits_dcgan_recall", "with recall 0.98 and a"),
    Quote(G5, G5, "best_gan_memorisation", "fraction of 0.009: on"),
    Quote(G5, G5, "digits_non_saturating_r1_fcd_over_floor", "well ahead: 2.82× the floor"),
    Quote(G5, G5, "digits_non_saturating_r1_recall", "(recall 0.78), after 1200"),
    Quote(G5, G5, "digits_wgan_gp_fcd_over_floor", "at this budget, 18.8×"),
    Quote(G5, G5, "digits_wgan_gp_recall", "(recall 0): it updates"),
    Quote(G5, G5, "digits_non_saturating_fcd_over_floor", "GAN is at 43.9× with recall 0"),
    Quote(G5, G5, "digits_wgan_clipping_fcd_over_floor", "no better, 31× with"),
    Quote(G5, G5, "wgan_gp_w_vs_fcd_correlation", "a correlation of 0.83 on"),
    Quote(
        G5, G5, "translation_l1_alone_class_kept", "keep the class of the edge map's digit: 0.929"
    ),
    Quote(G5, G5, "translation_pix2pix_class_kept", "and 0.926 with pix2pix (target"),
    Quote(G5, G5, "translation_l1_alone_fcd_over_floor", "FCD 2.01× the real-vs-real floor"),
    Quote(G5, G5, "translation_pix2pix_fcd_over_floor", "1.28× with L1 + GAN"),
    Quote(G5, G5, "translation_l1_alone_sharpness", "and sharpness 0.95 against"),
    Quote(G5, G5, "translation_pix2pix_sharpness", "against 0.99 (the outputs'"),
    Quote(G5, G5, "translation_l1_alone_l1_to_truth", "(0.073 with L1 alone"),
    Quote(G5, G5, "translation_pix2pix_l1_to_truth", "0.065 with the GAN term"),
    Quote(G5, G5, "translation_pix2pix_diversity", "of 0.0080 per pixel"),
    Quote(G5, G5, "translation_bicycle_diversity", "nine times more, 0.074, in"),
    Quote(G5, G5, "translation_bicycle_class_kept", "keeps the class of 0.76 of"),
    Quote(G5, G5, "translation_pix2pix_class_kept", "(pix2pix: 0.93), its FCD"),
    Quote(G5, G5, "translation_bicycle_fcd_over_floor", "its FCD is 2.13× the floor"),
    Quote(G5, G5, "translation_bicycle_l1_to_truth", "to the truth 0.093 (0.065)"),
    Quote(G5, G5, "cycle_class_kept_b_to_a", "keep the class of 96% of"),
    Quote(G5, G5, "cycle_class_kept_a_to_b", "thin-to-thick ones 79%, close"),
    Quote(G5, G5, "cycle_classifier_on_true_thickening", "of those digits (83%)"),
    Quote(G5, G5, "cycle_test_l1", "test digits is 0.13 (both"),
    Quote(G5, G5, "digits_spectral_norm_fcd_over_floor", "second, 13.0× (recall"),
    Quote(G5, G5, "digits_spectral_norm_recall", "(recall 0.01): the same"),
    Quote(G5, G5, "inversion_mse_encoder_start", "MSE is 0.0017 from the encoder's"),
    Quote(G5, G5, "inversion_mse_random_start", "against 0.0043 from a random"),
    Quote(G5, G5, "inversion_mse_encoder_alone", "optimisation, gives 0.021), and"),
    Quote(G5, G5, "inversion_class_kept_encoder_start", "class 0.99 of the time against"),
    Quote(G5, G5, "inversion_class_kept_random_start", "time against 0.98 (the classifier"),
    Quote(G5, G5, "inversion_mse_nearest_training_digit", "digit (MSE 0.018): with"),
    Quote(G5, G5, "inversion_norm_ratio_encoder_start_first", "inside the shell, at 0.64"),
    Quote(G5, G5, "inversion_norm_ratio_random_start_first", "random start from 0.99 out"),
    Quote(G5, G5, "inversion_norm_ratio_random_start_last", "out to 1.31, past"),
    Quote(G5, G5, "inversion_norm_ratio_encoder_start_last", "and end at 1.06, inside"),
    Quote(G5, G5, "inpaint_hole_mse_gan", "an MSE of 0.093 inside it"),
    Quote(G5, G5, "inpaint_hole_mse_mean_digit", "against 0.144 for the mean"),
    Quote(G5, G5, "inpaint_class_gan", "class 0.80 of the time"),
    Quote(G5, G5, "inpaint_class_mean_digit", "time against 0.61 (0.99"),
    Quote(G5, G5, "inpaint_norm_ratio_last", "/ \\sqrt d =$ 0.98: only"),
    Quote(G5, G5, "edit_ink_r2", "= 0.382 over the prior"),
    Quote(G5, G5, "edit_one_for_all_encoder_minus1_ink_moved", "inversions move by $-1.01$ and"),
    Quote(G5, G5, "edit_one_for_all_encoder_plus1_ink_moved", "$+1.10$, the asked"),
    Quote(G5, G5, "edit_one_for_all_encoder_minus1_asked_way", "way for 0.97 and 1.00"),
    Quote(G5, G5, "edit_one_for_all_encoder_plus1_asked_way", "1.00 of the digits (target"),
    Quote(G5, G5, "edit_one_for_all_encoder_minus1_class_kept", "class: kept 0.78 and 0.75"),
    Quote(G5, G5, "edit_one_for_all_encoder_plus1_class_kept", "0.75 of the time at"),
    Quote(G5, G5, "edit_one_for_all_encoder_minus2_class_kept", "0.50 and 0.35 at"),
    Quote(G5, G5, "edit_one_for_all_encoder_plus2_class_kept", "0.35 at $\\pm 2$, against"),
    Quote(G5, G5, "inversion_class_kept_encoder_start", "against 0.99 unedited"),
    Quote(G5, G5, "edit_slope_class_held", "the ink by 0.173 standard"),
    Quote(G5, G5, "edit_slope_one_for_all", "deviation (0.605 for the plain"),
    Quote(G5, G5, "edit_class_held_encoder_minus2_ink_moved", "by $+0.09$. Linear"),
    Quote(G5, G5, "edit_per_class_r2_min", "$ 0.46 to 0.58 within"),
    Quote(G5, G5, "edit_per_class_r2_max", "0.58 within a class"),
    Quote(G5, G5, "edit_per_class_encoder_plus1_ink_moved", "thicken well: $+1.06$ with"),
    Quote(G5, G5, "edit_per_class_encoder_plus1_class_kept", "class kept 0.93, $+1.76$"),
    Quote(G5, G5, "edit_per_class_encoder_plus2_ink_moved", "$+1.76$ at 0.83"),
    Quote(G5, G5, "edit_per_class_encoder_plus2_class_kept", "at 0.83. Thinning"),
    Quote(G5, G5, "edit_per_class_encoder_minus1_class_kept", "(class kept 0.56 at"),
    Quote(G5, G5, "inversion_norm_ratio_random_start_last", "\\approx 1.31$) the"),
    Quote(G5, G5, "edit_one_for_all_random_minus1_ink_moved", "asked, $-0.81$ and"),
    Quote(G5, G5, "edit_one_for_all_random_plus1_ink_moved", "$+0.92$ for"),
    Quote(G5, G5, "edit_one_for_all_random_minus1_class_kept", "often (0.86 and 0.80)"),
    Quote(G5, G5, "edit_one_for_all_random_plus1_class_kept", "0.80) because it moves less"),
    Quote(G5, G5, "voxels_3d_gan_realism", "realism IoU 0.71 (a fresh"),
    Quote(G5, G5, "voxels_real_realism", "real shapes: 0.85), coverage"),
    Quote(G5, G5, "voxels_3d_gan_coverage", "coverage 0.65 (real"),
    Quote(G5, G5, "voxels_real_coverage", "(real: 0.74) and"),
    Quote(G5, G5, "voxels_3d_gan_volume", "volume of 0.073 against"),
    Quote(G5, G5, "voxels_real_volume", "the data's 0.075. The"),
    Quote(G5, G5, "voxels_one_mean_blob_realism", "looks realistic (0.90)"),
    Quote(G5, G5, "voxels_one_mean_blob_coverage", "covers only 0.38 of"),
    Quote(G5, G5, "voxels_platonic_gan_realism", "realism 0.54 and coverage"),
    Quote(G5, G5, "voxels_platonic_gan_coverage", "and coverage 0.41, with"),
    Quote(G5, G5, "voxels_platonic_gan_volume", "(volume 0.043): silhouettes"),
    Quote(G5, G5, "voxels_seconds", "took 19 s together", rel=0.1),
    Quote("README", G5, "best_gan_fcd_over_floor", "DCGAN **0.87× the floor**"),
    Quote("README", G5, "best_gan_recall", "recall 0.98, 0.9% near"),
    Quote("README", G5, "best_gan_memorisation", "0.9% near-copies"),
    Quote("README", G5, "digits_non_saturating_r1_fcd_over_floor", "R1 2.82×"),
    Quote("README", G5, "digits_wgan_gp_fcd_over_floor", "WGAN-GP 18.8×"),
    Quote("README", G5, "digits_non_saturating_fcd_over_floor", "alone 43.9× (recall"),
    Quote("README", G5, "digits_wgan_clipping_fcd_over_floor", "clipping 31×"),
    Quote("README", G5, "stall_saturating_mean_error", "mean error 3.8 against"),
    Quote("README", G5, "stall_nonsaturating_mean_error", "against 0.047"),
    Quote("README", G5, "wgan_gp_w_vs_fcd_correlation", "correlation 0.83"),
    Quote("README", G5, "seconds", "| 287 s |", rel=0.1, field="seconds"),
    Quote("README", G5, "lecture_seconds", "lecture 287 s on a", rel=0.1),
    Quote("README", G5, "stylegan_psi10_fcd_over_floor", "FCD 2.41× → 7.14×"),
    Quote("README", G5, "stylegan_psi05_fcd_over_floor", "→ 7.14×, recall"),
    Quote("README", G5, "ring_modes_plain_max", "plain GAN at most 2 of 8"),
    Quote("README", G5, "ring_modes_unrolled_min", "all 8 on every seed (target"),
    Quote("README", G5, "translation_pix2pix_class_kept", "digit class kept 0.926 (target"),
    Quote("README", G5, "translation_l1_alone_class_kept", "L1 alone 0.929), FCD"),
    Quote("README", G5, "translation_pix2pix_fcd_over_floor", "FCD 1.28× the floor against"),
    Quote("README", G5, "translation_l1_alone_fcd_over_floor", "against 2.01× with L1 alone"),
    Quote("README", G5, "translation_pix2pix_l1_to_truth", "L1 to the truth 0.065;"),
    Quote("README", G5, "translation_bicycle_diversity", "(mean pairwise L1 0.074 against"),
    Quote("README", G5, "translation_pix2pix_diversity", "against pix2pix's 0.0080)"),
    Quote("README", G5, "translation_bicycle_class_kept", "at class kept 0.76; CycleGAN"),
    Quote("README", G5, "translation_seconds", "BicycleGAN took 27 s of it", rel=0.1),
    Quote("README", G5, "cycle_class_kept_b_to_a", "class kept 0.96 (target"),
    Quote("README", G5, "cycle_test_l1", "cycle L1 0.13"),
    Quote("README", G5, "voxels_3d_gan_realism", "realism IoU 0.71 and coverage"),
    Quote("README", G5, "voxels_3d_gan_coverage", "and coverage 0.65 (real"),
    Quote("README", G5, "voxels_platonic_gan_realism", "Platonic GAN 0.54 and"),
    Quote("README", G5, "voxels_platonic_gan_coverage", "and 0.41, both trained"),
    Quote("README", G5, "voxels_seconds", "both trained in 19 s (≤ 30 s)", rel=0.1),
    Quote("README", G5, "stylegan_psi10_recall", "recall 0.76 → 0.35"),
    Quote("README", G5, "stylegan_psi05_recall", "→ 0.35; modes"),
    Quote("README", G5, "digits_spectral_norm_fcd_over_floor", "spectral norm 13.0×"),
    Quote("README", G5, "inversion_mse_encoder_start", "inversion MSE 0.0017 from"),
    Quote("README", G5, "inversion_mse_random_start", "against 0.0043 from a random one"),
    Quote("README", G5, "inversion_norm_ratio_random_start_first", "√d 0.99 → 1.31"),
    Quote("README", G5, "inversion_norm_ratio_random_start_last", "→ 1.31 from a random start"),
    Quote("README", G5, "inpaint_hole_mse_gan", "hole: MSE 0.093 against"),
    Quote("README", G5, "inpaint_hole_mse_mean_digit", "against 0.144 for the mean digit"),
    Quote("README", G5, "edit_ink_r2", "(ink R² 0.38 on z)"),
    Quote(
        "README", G5, "edit_one_for_all_encoder_minus1_asked_way", "way for 0.97 and 1.00 of the"
    ),
    Quote("README", G5, "edit_one_for_all_encoder_plus1_asked_way", "1.00 of the inverted test"),
    Quote("README", G5, "edit_one_for_all_encoder_minus1_class_kept", "only 0.78 and 0.75 with"),
    Quote("README", G5, "edit_one_for_all_encoder_plus1_class_kept", "0.75 with one direction"),
    Quote("README", G5, "edit_per_class_encoder_plus1_class_kept", "keep it 0.93 when"),
    Quote("README", G5, "edit_per_class_encoder_minus1_class_kept", "sd and 0.56 when thinning"),
    Quote("README", G5, "edit_slope_class_held", "(0.17 sd of ink per prior"),
    Quote("README", G5, "edit_seconds", "the latent edits 1 s", rel=0.1),
    Quote("README", G5, "cycle_class_kept_a_to_b", "thin → thick 0.79"),
    Quote("README", G5, "cycle_classifier_on_true_thickening", "true thickenings 0.83"),
    # lecture 09
    Quote(E9, E9, "toy_moons_kde_draws_energy_over_real_p95", "score 2.3 on moons, 4.0"),
    Quote(
        E9, E9, "toy_8gaussians_kde_draws_energy_over_real_p95", "4.0 on the eight Gaussians and"
    ),
    Quote(E9, E9, "toy_rings_kde_draws_energy_over_real_p95", "0.67 on the rings: the target"),
    Quote("README", E9, "toy_rings_kde_draws_energy_over_real_p95", "draws score 0.67× (moons"),
    Quote(
        "README", E9, "toy_moons_kde_draws_energy_over_real_p95", "(moons 2.3×, 8 gaussians 4.0×);"
    ),
    Quote("README", E9, "toy_8gaussians_kde_draws_energy_over_real_p95", "4.0×); annealed"),
    Quote(E9, E9, "ula_variance_bias_eps_0.5", "in the cpu run it was 0.34 above 1"),
    Quote(E9, E9, "mala_variance_bias_eps_0.5", "(off by 0.0006) at the price"),
    Quote(E9, E9, "decoupled_noise_variance_eps_0.5", "to a variance of 0.013 (it"),
    Quote(E9, E9, "toy_moons_ebm_minus_kde_nll", "test NLL is 0.050 nats above the tuned"),
    Quote(E9, E9, "toy_8gaussians_ebm_minus_kde_nll", "on the eight Gaussians it is 0.42"),
    Quote(E9, E9, "toy_rings_ebm_minus_kde_nll", "and on the rings 0.59 above it"),
    Quote(E9, E9, "toy_grid_log_z_change_at_2x", "less than 1e-7 nats", op="<="),
    Quote(E9, E9, "toy_rings_buffer_energy_over_real_p95", "on the rings (-0.25, i.e."),
    Quote(E9, E9, "toy_moons_buffer_energy_over_real_p95", "not on moons (2.7) or"),
    Quote(E9, E9, "toy_8gaussians_buffer_energy_over_real_p95", "eight Gaussians (4.0);"),
    Quote(E9, E9, "toy_moons_energy_over_real_p95", "uniform noise: 1.1 on moons"),
    Quote(E9, E9, "toy_8gaussians_energy_over_real_p95", "moons, 24 on the eight"),
    Quote(E9, E9, "toy_rings_energy_over_real_p95", "and 1.4 on the rings;"),
    Quote(E9, E9, "toy_moons_annealed_energy_over_real_p95", "1.7, 22 and 1.1, no"),
    Quote(E9, E9, "toy_8gaussians_annealed_energy_over_real_p95", "22 and 1.1, no better"),
    Quote(E9, E9, "toy_rings_annealed_energy_over_real_p95", "1.1, no better;"),
    Quote(E9, E9, "toy_moons_grid_draws_energy_over_real_p95", "7.7, 58 and 2.3."),
    Quote(E9, E9, "toy_8gaussians_grid_draws_energy_over_real_p95", "58 and 2.3. This"),
    Quote(E9, E9, "toy_rings_grid_draws_energy_over_real_p95", "2.3. This one scores"),
    Quote(E9, E9, "toy_moons_grid_ml_minus_kde_nll", "on all three toys: 0.009"),
    Quote(E9, E9, "toy_8gaussians_grid_ml_minus_kde_nll", "moons, 0.029 on the eight"),
    Quote(E9, E9, "toy_rings_grid_ml_minus_kde_nll", "and 0.001 on the rings"),
    Quote(E9, E9, "toy_moons_ebm_minus_kde_nll", "against CD's 0.050, 0.42"),
    Quote(E9, E9, "toy_rings_grid_ml_grid_draws_energy_over_real_p95", "on the rings (0.52: met)"),
    Quote(E9, E9, "toy_moons_grid_ml_grid_draws_energy_over_real_p95", "moons (3.6) or the eight"),
    Quote(
        E9,
        E9,
        "toy_8gaussians_grid_ml_grid_draws_energy_over_real_p95",
        "eight Gaussians (12): even",
    ),
    Quote(E9, E9, "toy_moons_grid_ml_annealed_energy_over_real_p95", "they score 12, 8.7 and 44"),
    Quote(E9, E9, "toy_8gaussians_grid_ml_annealed_energy_over_real_p95", "8.7 and 44 (acceptance"),
    Quote(E9, E9, "toy_rings_grid_ml_annealed_energy_over_real_p95", "44 (acceptance 0.57"),
    Quote(E9, E9, "toy_rings_grid_ml_annealed_acceptance", "(acceptance 0.57 on the rings)"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_seed0", "seeds: FCD 3.27, 2.75"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_seed1", "2.75 and 3.77 times"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_seed2", "3.77 times the real-vs-real"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_mean", "mean 3.26, spread"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_spread", "max - min 1.02, so"),
    Quote(E9, E9, "digits_ebm_diverged_seeds", "diverged (0 of 3"),
    Quote(E9, E9, "digits_ebm_precision", "precision 0.69, recall"),
    Quote(E9, E9, "digits_ebm_recall", "recall 0.79, and no"),
    Quote(E9, E9, "digits_ebm_memorisation", "(memorisation 0)."),
    Quote(E9, E9, "digits_ebm_noise_start_fcd_over_floor", "6.18 times the floor"),
    Quote(E9, E9, "moons_exact_score_matching_nll", "test NLL of 2.693 nats, denoising"),
    Quote(E9, E9, "moons_denoising_score_matching_nll", "denoising 2.905 (it fits"),
    Quote(E9, E9, "moons_sliced_score_matching_nll", "and sliced 3.106 (one"),
    Quote(E9, E9, "toy_moons_ebm_minus_kde_nll", "here (0.050 nats above the KDE"),
    Quote(E9, E9, "nce_noise_sd2_log_z_error", "0.14 nats in the cpu run"),
    Quote(E9, E9, "nce_noise_sd6_log_z_error", "0.21), one seed each"),
    Quote(E9, E9, "eval_classifier_langevin_confidence", "probability 0.89, against"),
    Quote(E9, E9, "eval_classifier_langevin_fcd_over_floor", "6.6 times the floor)"),
    Quote(E9, E9, "jem_fcd_over_floor", "(FCD 4.13"),
    Quote(E9, E9, "digits_ebm_fcd_over_floor_seed0", "against 3.27, precision"),
    Quote(E9, E9, "jem_test_accuracy", "0.929 on the test digits"),
    Quote(E9, E9, "ce_only_test_accuracy", "against 0.966 for"),
    Quote(E9, E9, "digits_no_buffer_final_abs_energy", "|energy| 48.9 against"),
    Quote(E9, E9, "digits_no_buffer_gap", "a gap of 97.8 between"),
    Quote(E9, E9, "digits_buffered_gap", "against 44.4 with the buffer"),
    Quote(E9, E9, "digits_no_buffer_fcd_over_floor", "samples score 7.60 times"),
    Quote(E9, E9, "digits_no_regulariser_gap", "moderate (8.95)"),
    Quote(E9, E9, "digits_no_regulariser_final_abs_energy", "|energy| of 150 and"),
    Quote(E9, E9, "digits_no_regulariser_fcd_over_floor", "score 17.8 times"),
    Quote("README", E9, "seconds", "196 s | not measured", rel=0.1, field="seconds"),
    Quote("README", E9, "ula_variance_bias_eps_0.5", "bias (0.34 → 0.0006"),
    Quote("README", E9, "mala_variance_bias_eps_0.5", "0.0006 at ε = 0.5"),
    Quote("README", E9, "toy_moons_ebm_minus_kde_nll", "divergence: 0.050 (moons"),
    Quote("README", E9, "toy_8gaussians_ebm_minus_kde_nll", "0.42 (8 gaussians), 0.59"),
    Quote("README", E9, "toy_rings_ebm_minus_kde_nll", "0.59 (rings) (not met)"),
    Quote("README", E9, "toy_moons_grid_ml_minus_kde_nll", "labelled as such): 0.009"),
    Quote("README", E9, "toy_8gaussians_grid_ml_minus_kde_nll", "0.029, 0.001 (met"),
    Quote("README", E9, "toy_rings_grid_ml_minus_kde_nll", "0.001 (met on all three)"),
    Quote("README", E9, "toy_rings_buffer_energy_over_real_p95", "buffer chains −0.25× (moons"),
    Quote("README", E9, "toy_moons_buffer_energy_over_real_p95", "(moons 2.7×, 8 gaussians 4.0×)"),
    Quote("README", E9, "toy_8gaussians_buffer_energy_over_real_p95", "4.0×), grid ML"),
    Quote("README", E9, "toy_rings_grid_ml_grid_draws_energy_over_real_p95", "draws 0.52× (moons"),
    Quote(
        "README",
        E9,
        "toy_moons_grid_ml_grid_draws_energy_over_real_p95",
        "(moons 3.6×, 8 gaussians 12×)",
    ),
    Quote(
        "README",
        E9,
        "toy_8gaussians_grid_ml_grid_draws_energy_over_real_p95",
        "12×), where the tuned",
    ),
    Quote("README", E9, "toy_moons_annealed_energy_over_real_p95", "(CD 1.7×, 22×"),
    Quote("README", E9, "toy_8gaussians_annealed_energy_over_real_p95", "22×, 1.1×; grid"),
    Quote("README", E9, "toy_rings_annealed_energy_over_real_p95", "1.1×; grid ML 12×"),
    Quote("README", E9, "toy_moons_grid_ml_annealed_energy_over_real_p95", "grid ML 12×, 8.7×"),
    Quote("README", E9, "toy_8gaussians_grid_ml_annealed_energy_over_real_p95", "8.7×, 44×)"),
    Quote("README", E9, "toy_rings_grid_ml_annealed_energy_over_real_p95", "44×) and exact"),
    Quote("README", E9, "toy_moons_grid_draws_energy_over_real_p95", "score 7.7×, 58×"),
    Quote("README", E9, "toy_8gaussians_grid_draws_energy_over_real_p95", "58×, 2.3× (the"),
    Quote("README", E9, "toy_rings_grid_draws_energy_over_real_p95", "2.3× (the CD density"),
    Quote("README", E9, "digits_ebm_fcd_over_floor_seed0", "floor 3.27, 2.75, 3.77"),
    Quote("README", E9, "digits_ebm_fcd_over_floor_seed1", "2.75, 3.77 over"),
    Quote("README", E9, "digits_ebm_fcd_over_floor_seed2", "3.77 over three seeds"),
    Quote("README", E9, "digits_ebm_diverged_seeds", "diverged in 0 of 3"),
    Quote("README", E9, "digits_no_buffer_fcd_over_floor", "FCD 7.60× without"),
    Quote("README", E9, "digits_no_regulariser_fcd_over_floor", "17.8× without the"),
    Quote("README", E9, "jem_test_accuracy", "accuracy 0.929 (cross-entropy"),
    Quote("README", E9, "ce_only_test_accuracy", "alone 0.966)"),
    Quote("README", E9, "jem_fcd_over_floor", "JEM samples FCD 4.13×"),
    Quote("README", E9, "nce_noise_sd2_log_z_error", "within 0.14 nats of the grid"),
    Quote("README", E9, "nce_noise_sd6_log_z_error", "0.21 with sd 6"),
    # lecture 10 (its text, then its README row)
    Quote(C10, C10, "flow_matching_fcd_over_floor", "flow matching at 1.76× (± 0.55"),
    Quote(C10, C10, "flow_matching_fcd_over_floor_seed_std", "(± 0.55 over"),
    Quote(C10, C10, "diffusion_fcd_over_floor", "diffusion at 1.83× (± 0.61)"),
    Quote(C10, C10, "diffusion_fcd_over_floor_seed_std", "(± 0.61) after about"),
    Quote(C10, C10, "flow_matching_training_steps", "after about 1650 and", rel=0.02),
    Quote(C10, C10, "diffusion_training_steps", "1320 steps, with precision", rel=0.02),
    Quote(C10, C10, "flow_matching_precision", "precision 0.96 and 0.97 and"),
    Quote(C10, C10, "diffusion_precision", "0.97 and recall 0.89"),
    Quote(C10, C10, "flow_matching_recall", "recall 0.89 and 0.83. Then"),
    Quote(C10, C10, "diffusion_recall", "0.83. Then the GAN"),
    Quote(C10, C10, "GAN_fcd_over_floor", "Then the GAN (6.19×)"),
    Quote(C10, C10, "VAE_fcd_over_floor", "the VAE (6.69×) and"),
    Quote(C10, C10, "flow_fcd_over_floor", "the flow (11.0×); then"),
    Quote(C10, C10, "VQ_prior_fcd_over_floor", "the token model (24.8×), the"),
    Quote(C10, C10, "autoregressive_fcd_over_floor", "autoregressive model (27.9×)"),
    Quote(C10, C10, "EBM_fcd_over_floor", "the EBM (53.8×). Part"),
    Quote(C10, G5, "best_gan_fcd_over_floor", "reach from 0.87× (lecture 05's DCGAN)"),
    Quote(C10, C10, "fcd_rank_kendall_tau_mean", "Kendall τ of 0.90 on average"),
    Quote(C10, C10, "GAN_fcd_half_over_full_budget", "fell 3.0-fold for the GAN"),
    Quote(C10, C10, "VQ_prior_fcd_half_over_full_budget", "2.5-fold for the token"),
    Quote(C10, C10, "flow_matching_fcd_half_over_full_budget", "the flow it fell 1.8-fold"),
    Quote(C10, C10, "flow_fcd_half_over_full_budget", "the flow it fell 1.8-fold"),
    Quote(C10, C10, "diffusion_fcd_half_over_full_budget", "for diffusion 1.7, for"),
    Quote(C10, C10, "autoregressive_fcd_half_over_full_budget", "autoregressive model 1.5 and"),
    Quote(C10, C10, "VAE_fcd_half_over_full_budget", "for the VAE 1.2. The"),
    Quote(C10, G5, "best_gan_fcd_over_floor", "DCGAN reaches 0.87× the floor after"),
    Quote(C10, C10, "EBM_fcd_half_over_full_budget", "is flat (0.98)"),
    Quote(C10, C10, "VAE_latent_path_ratio", "The VAE (1.29), the GAN"),
    Quote(C10, C10, "GAN_latent_path_ratio", "GAN (1.30) and the flow"),
    Quote(C10, C10, "flow_latent_path_ratio", "the flow (1.27) are under"),
    Quote(C10, C10, "diffusion_latent_path_ratio", "Diffusion (1.64) and flow"),
    Quote(C10, C10, "flow_matching_latent_path_ratio", "matching (1.67) are over it"),
    Quote(C10, C10, "diffusion_recall", "(recall 0.83 and 0.89), so"),
    Quote(C10, C10, "flow_matching_recall", "and 0.89), so the recall"),
    Quote(C10, C10, "VAE_mig", "with MIG 0.142 and"),
    Quote(C10, C10, "flow_mig", "flow 0.012, the token"),
    Quote(C10, C10, "VQ_prior_mig", "token model 0.005, flow"),
    Quote(C10, C10, "flow_matching_mig", "flow matching 0.005, diffusion"),
    Quote(C10, C10, "diffusion_mig", "DDIM inversion 0.005 and"),
    Quote(C10, C10, "GAN_mig", "inversion 0.002. Only"),
    Quote(C10, C10, "GAN_fcd_over_floor", "seed ✓): 6.19× the floor"),
    Quote(C10, C10, "GAN_training_steps", "after about 480 steps", rel=0.02),
    Quote(C10, C10, "GAN_fcd_half_over_full_budget", "falling fastest (3.0-fold"),
    Quote(C10, G5, "best_gan_fcd_over_floor", "is at 0.87×, the best sample"),
    Quote(C10, C10, "GAN_recall", "recall 0.95 and a class KL"),
    Quote(C10, C10, "GAN_class_kl", "class KL of 0.042, under"),
    Quote(C10, G5, "best_gan_recall", "saw recall 0.98)"),
    Quote(C10, C10, "GAN_mig", "MIG 0.002 through the"),
    Quote(C10, C10, "flow_recall", "recall 0.94 and class KL"),
    Quote(C10, C10, "flow_class_kl", "class KL 0.036. Maximum"),
    Quote(C10, C10, "flow_mig", "MIG 0.012, for the reason"),
    Quote(C10, C10, "diffusion_recall", "recall 0.83 and class KL 0.012"),
    Quote(C10, C10, "diffusion_class_kl", "class KL 0.012. Coverage"),
    Quote(C10, C10, "diffusion_latent_path_ratio", "path ratio 1.64, just"),
    Quote(C10, C10, "diffusion_likelihood_passes", "188 network passes per"),
    Quote(C10, C10, "diffusion_test_bpd", "Its value, 1842 bits/dim"),
    Quote(C10, C10, "flow_matching_test_bpd", "flow matching's, 224, are"),
    Quote(C10, F, "digits_fm_ode_test_bpd", "likelihood and gets 2.67 bits/dim"),
    Quote(C10, C10, "fm_1step_fcd_over_floor", "blur, 189× the"),
    Quote(C10, C10, "reflowed_1step_fcd_over_floor", "one step give digits: 5.09×"),
    Quote(C10, C10, "reflowed_1step_ms_per_sample", "at 0.009 ms per sample"),
    Quote(C10, C10, "reflow_pairs_seconds", "(4.5 s) and 1688"),
    Quote(C10, C10, "reflow_training_steps", "and 1688 more steps"),
    Quote(C10, C10, "GAN_fcd_over_floor", "one pass (6.19× the floor on"),
    Quote(C10, F, "reflow_fcd_euler1_over_floor", "longer (4.53× the floor"),
    Quote(C10, C10, "diffusion_class_kl", "(class KL 0.012 and 0.009)"),
    Quote(C10, C10, "flow_matching_class_kl", "and 0.009)."),
    Quote("README", C10, "fcd_rank_kendall_tau_mean", "Kendall τ 0.90, target"),
    Quote("README", C10, "flow_matching_fcd_over_floor", "flow matching 1.76×"),
    Quote("README", C10, "diffusion_fcd_over_floor", "diffusion 1.83×"),
    Quote("README", C10, "GAN_fcd_over_floor", "the GAN 6.2×"),
    Quote("README", C10, "VAE_fcd_over_floor", "the VAE 6.7×"),
    Quote("README", C10, "diffusion_test_bpd", "1842 bits/dim"),
    Quote("README", C10, "GAN_mig", "GAN 0.002"),
    Quote("README", C10, "diffusion_mig", "diffusion 0.005"),
    Quote("README", C10, "reflowed_1step_fcd_over_floor", "one Euler step 5.09×"),
    Quote("README", C10, "fm_1step_fcd_over_floor", "(189× before reflow)"),
    Quote("README", C10, "seconds", "| 548 s | not measured", rel=0.1, field="seconds"),
]

# a number not glued to a word ("IWAE-1000", "x0" hold none): optional minus, decimals, e-notation
NUMBER = re.compile(r"(?<![\w.\-−])[−-]?\d+(?:\.\d+)?(?:e[−-]?\d+)?(%?)")


def dated_results(folder: Path = RESULTS) -> list[Path]:
    """The cpu results files, oldest first by the date in their names (cpu-2core-2026-11-22.json;
    a one-lecture run is cpu-2core-2026-12-03-05_gans.json)."""
    dated = []
    for path in folder.glob("cpu-*.json"):
        match = re.search(r"(\d{4}-\d{2}-\d{2})", path.name)
        if match:
            dated.append((match.group(1), path.name, path))
    if not dated:
        raise FileNotFoundError(f"no cpu-*-YYYY-MM-DD.json under {folder}")
    return [path for _, _, path in sorted(dated)]


def latest_results(folder: Path = RESULTS) -> Path:
    """The cpu results file with the latest date in its name."""
    return dated_results(folder)[-1]


def load_records(*paths: Path) -> dict[tuple[str, str], dict]:
    """(lecture, name) -> record, plus (lecture, "seconds") -> the lecture's first record.

    Each lecture's records come whole from the last of ``paths`` that ran it, so a file of a
    one-lecture run replaces that lecture only and never mixes two runs' numbers."""
    by_lecture: dict[str, list[dict]] = {}
    for path in paths:
        rows: dict[str, list[dict]] = {}
        for r in json.loads(path.read_text()):
            rows.setdefault(r["lecture"], []).append(r)
        by_lecture.update(rows)
    records = {}
    for rows in by_lecture.values():
        for r in rows:
            records[r["lecture"], r["name"]] = r
            records.setdefault((r["lecture"], "seconds"), r)
    return records


def normalize(text: str) -> str:
    return " ".join(text.replace("**", "").split())


def markdown_of(path: Path) -> str:
    """The markdown cells of a jupytext percent source ("# " stripped), or a markdown file."""
    if path.suffix == ".md":
        return normalize(path.read_text())
    cells, current = [], None
    for line in path.read_text().splitlines():
        if line.startswith("# %%"):
            current = [] if "[markdown]" in line else None
            if current is not None:
                cells.append(current)
        elif current is not None:
            current.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    return normalize("\n".join("\n".join(c) for c in cells))


def sources(root: Path = ROOT) -> dict[str, str]:
    texts = {"README": markdown_of(root / "README.md")}
    for path in sorted((root / "solutions").glob("[0-9][0-9]_*.py")):
        texts[path.stem] = markdown_of(path)
    return texts


def quoted_number(text: str) -> tuple[float, float]:
    """(number, half a unit of its last digit) of the first number in text; % divides by 100."""
    match = NUMBER.search(text)
    if match is None:
        raise ValueError(f"no number in the quote {text!r}")
    literal = match.group(0).replace("−", "-").rstrip("%")
    mantissa = literal.split("e")[0]
    decimals = len(mantissa.split(".")[1]) if "." in mantissa else 0
    exponent = int(literal.split("e")[1]) if "e" in literal else 0
    half_unit = 0.5 * 10.0 ** (exponent - decimals)
    scale = 100.0 if match.group(1) == "%" else 1.0
    return float(literal) / scale, half_unit / scale


def problems(quotes, records, texts) -> list[str]:
    """One line per quote that is missing from its source or disagrees with its record."""
    out = []
    for q in quotes:
        where = f"{q.source}: {q.text!r}"
        if normalize(q.text) not in texts.get(q.source, ""):
            out.append(f"{where} is not in the text of {q.source} (reworded? update QUOTES)")
            continue
        record = records.get((q.lecture, q.record))
        if record is None:
            out.append(f"{where}: no record {q.lecture}/{q.record} in the results")
            continue
        value, (number, half_unit) = float(record[q.field]), quoted_number(q.text)
        if q.op == "<=":
            ok, rule = value <= number, f"above {number:g}"
        elif q.rel is not None:
            ok, rule = abs(value - number) <= q.rel * abs(number), f"not within {q.rel:.0%}"
        else:
            ok, rule = abs(value - number) <= half_unit + 1e-9, f"does not round to {number:g}"
        if not ok:
            out.append(f"{where}: {q.lecture}/{q.record} {q.field} {value:.6g} {rule}")
    return out


def test_every_quoted_number_matches_the_recorded_run():
    records = load_records(*dated_results())
    assert problems(QUOTES, records, sources()) == []


def test_every_quote_names_one_source_and_a_number():
    texts = sources()
    for q in QUOTES:
        assert q.source in texts, q
        quoted_number(q.text)  # raises if the quote holds no number
        assert q.op in ("round", "<=") and q.field in ("value", "seconds"), q


def test_quoted_number_rounding():
    assert quoted_number("about 5.8 against") == pytest.approx((5.8, 0.05))
    assert quoted_number("about −0.45 ×") == pytest.approx((-0.45, 0.005))
    assert quoted_number("about 36% smaller") == pytest.approx((0.36, 0.005))
    assert quoted_number("within 1e-4 bits") == pytest.approx((1e-4, 0.5e-4))
    assert quoted_number("a speed-up of about 5 in") == pytest.approx((5.0, 0.5))
    with pytest.raises(ValueError, match="no number"):
        quoted_number("no digits here")


def test_markdown_of_reads_markdown_cells_only(tmp_path):
    source = tmp_path / "09_x.py"
    source.write_text(
        "# %% [markdown]\n# You should see about\n# 5.8 here.\n\n# %%\nx = 1  # 7.7 in code\n"
    )
    text = markdown_of(source)
    assert "You should see about 5.8 here." in text and "7.7" not in text


def test_a_changed_record_or_text_is_caught(tmp_path):
    """A mutated copy of the results, or of a lecture's text, fails with the quote named."""
    results = [dict(r) for r in json.loads(latest_results().read_text()) if r["lecture"] == G]
    if not results:  # lecture 06 was last run in an earlier file
        results = [dict(r) for r in load_records(*dated_results()).values() if r["lecture"] == G]
    for r in results:
        if r["name"] == "fcd_ddpm1000":
            r["value"] *= 1.1  # 5.71 -> 6.28: the text's "about 5.7" no longer holds
    mutated = tmp_path / "cpu-2core-2999-01-01-06_diffusion.json"
    mutated.write_text(json.dumps(results))
    assert latest_results(tmp_path) == mutated
    found = problems(QUOTES, load_records(*dated_results(), mutated), sources())
    assert found and all("fcd_ddpm1000" in line for line in found)
    assert any("about 5.7" in line for line in found) and any("5.71" in line for line in found)

    texts = sources()
    texts[G] = texts[G].replace("the FCD was about 5.7", "the FCD was about 6.4")
    found = problems(QUOTES, load_records(*dated_results()), texts)
    assert len(found) == 1 and "not in the text of 06_diffusion" in found[0]


def test_a_one_lecture_run_replaces_that_lecture_only(tmp_path):
    """A later file that ran one lecture takes all of that lecture's records from it, keeps the
    other lectures' from the earlier run, and drops the earlier run's records of that lecture."""
    full = [
        {"lecture": "01_a", "name": "x", "value": 1.0, "seconds": 10.0},
        {"lecture": "02_b", "name": "y", "value": 2.0, "seconds": 20.0},
        {"lecture": "02_b", "name": "gone", "value": 3.0, "seconds": 20.0},
    ]
    one = [{"lecture": "02_b", "name": "y", "value": 5.0, "seconds": 30.0}]
    (tmp_path / "cpu-2core-2026-01-01.json").write_text(json.dumps(full))
    (tmp_path / "cpu-2core-2026-02-01-02_b.json").write_text(json.dumps(one))
    records = load_records(*dated_results(tmp_path))
    assert records["01_a", "x"]["value"] == 1.0
    assert records["02_b", "y"]["value"] == 5.0 and records["02_b", "seconds"]["seconds"] == 30.0
    assert ("02_b", "gone") not in records


def test_the_readme_table_of_lecture_10_is_the_recorded_one():
    """Every ✓ / ? / ✗ of the README's measured table is the rating lecture 10's record holds
    (1, 0.5, 0), and every n/a cell has no rating recorded."""
    records = load_records(*dated_results())
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### Lecture 10's table, measured", 1)[1].split("\n## ", 1)[0]
    lines = [line for line in section.splitlines() if line.startswith("| ")]
    header = [c.strip() for c in lines[0].strip("|").split("|")]
    assert header[0] == "family" and len(lines) == 1 + 8, lines  # the header, 8 families
    score = {"✓": 1.0, "?": 0.5, "✗": 0.0}
    checked = 0
    for line in lines[1:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        key = cells[0].replace(" + ", "_").replace(" ", "_")
        for column, cell in zip(header[1:], cells[1:]):
            mark = cell.split(" ")[0]
            rating = records.get(("10_families", f"{key}_rating_{column}"))
            if mark == "n/a":
                assert rating is None, (cells[0], column)
            else:
                assert rating is not None and rating["value"] == score[mark], (cells[0], column)
                checked += 1
    assert checked >= 30
