"""Published numbers the reproduction report compares against, held as data: each table with its source and the
confidence label of ``shared/reference/`` (used by ``experiments/reproduction_report.py``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List


# ============================================================================================ published numbers
@dataclass
class Published:
    """One published table, held as data: ``rows[name] = {column: value-as-printed}``."""

    title: str
    source: str          # where it is printed, with the confidence label of shared/reference/
    columns: List[str]
    rows: Dict[str, Dict[str, str]]
    note: str = ""


_BENCH = "`shared/reference/benchmarks.md` §3"
VEEGAN_T1 = Published(
    "VEEGAN Table 1 (ring: 8 modes, std 0.01; grid: 25 modes, std 0.05; 2,500 samples, mean of 5 runs)",
    f"{_BENCH} [confirmed: `akashgit/VEEGAN`, `tab.png`]",
    ["ring8 modes", "ring8 HQ %", "grid25 modes", "grid25 HQ %"],
    {"GAN": {"ring8 modes": "1", "ring8 HQ %": "99.3", "grid25 modes": "3.3", "grid25 HQ %": "0.5"},
     "ALI": {"ring8 modes": "2.8", "ring8 HQ %": "0.13", "grid25 modes": "15.8", "grid25 HQ %": "1.6"},
     "Unrolled GAN (5 steps)": {"ring8 modes": "7.6", "ring8 HQ %": "35.6", "grid25 modes": "23.6",
                                "grid25 HQ %": "16"},
     "VEEGAN": {"ring8 modes": "8", "ring8 HQ %": "52.9", "grid25 modes": "24.6", "grid25 HQ %": "40"}})
PACGAN_T1 = Published(
    "PacGAN Table 1 (same data and metrics; 10 trials, ± standard error)",
    f"{_BENCH} [confirmed: `fjxmlzn/PacGAN` (commit `190853e`), `synthetic_data_experiments/results/Table1.png`]",
    ["ring8 modes", "ring8 HQ %", "ring8 KL", "grid25 modes", "grid25 HQ %", "grid25 KL"],
    {"GAN": {"ring8 modes": "6.3±0.5", "ring8 HQ %": "98.2±0.2", "ring8 KL": "0.45±0.09",
             "grid25 modes": "17.3±0.8", "grid25 HQ %": "94.8±0.7", "grid25 KL": "0.70±0.07"},
     "ALI": {"ring8 modes": "6.6±0.3", "ring8 HQ %": "97.6±0.4", "ring8 KL": "0.36±0.04",
             "grid25 modes": "24.1±0.4", "grid25 HQ %": "95.7±0.6", "grid25 KL": "0.14±0.03"},
     "PacGAN2": {"ring8 modes": "7.9±0.1", "ring8 HQ %": "95.6±2.0", "ring8 KL": "0.07±0.03",
                 "grid25 modes": "23.8±0.7", "grid25 HQ %": "91.3±0.8", "grid25 KL": "0.13±0.04"},
     "PacGAN3": {"ring8 modes": "7.8±0.1", "ring8 HQ %": "97.7±0.3", "ring8 KL": "0.10±0.02",
                 "grid25 modes": "24.6±0.4", "grid25 HQ %": "94.2±0.4", "grid25 KL": "0.06±0.02"},
     "PacGAN4": {"ring8 modes": "7.8±0.1", "ring8 HQ %": "95.9±1.4", "ring8 KL": "0.07±0.02",
                 "grid25 modes": "24.8±0.2", "grid25 HQ %": "93.6±0.6", "grid25 KL": "0.04±0.01"}},
    note="PacGAN's protocol: G = MLP 2 → 4×400 (BN + ReLU) → 2, D = 3 maxout layers, Adam 1e-4 (β₁ 0.8), batch 100, "
         "400 epochs over 100k points (≈ 400,000 generator steps).")
VEEGAN_T2 = Published(
    "VEEGAN Table 2 (stacked MNIST 28×28×3, 1000 modes, 26,000 samples, mean of 5 runs)",
    f"{_BENCH} [confirmed: `akashgit/VEEGAN`]",
    ["modes", "KL"],
    {"DCGAN": {"modes": "99", "KL": "3.4"}, "ALI": {"modes": "16", "KL": "5.4"},
     "Unrolled GAN": {"modes": "48.7", "KL": "4.32"}, "VEEGAN": {"modes": "150", "KL": "2.95"}})
PACGAN_T2 = Published(
    "PacGAN Table 2 (stacked MNIST, VEEGAN's architecture; 10 trials, ± standard error; rows 1–4 quoted from VEEGAN)",
    f"{_BENCH} [confirmed: `fjxmlzn/PacGAN`, `stacked_MNIST_experiments/results/Table2.png`]",
    ["modes", "KL"],
    {"DCGAN (PacGAN's implementation)": {"modes": "78.9±6.46", "KL": "4.50±0.127"},
     "PacDCGAN2": {"modes": "1000.0±0.00", "KL": "0.06±0.003"},
     "PacDCGAN3": {"modes": "1000.0±0.00", "KL": "0.06±0.003"},
     "PacDCGAN4": {"modes": "1000.0±0.00", "KL": "0.07±0.005"}},
    note="VEEGAN-style training: DCGAN, z = 100, Adam 2e-4, batch 64, 50 epochs over 128,000 images (≈ 100,000 "
         "generator steps).")
PACGAN_T3 = Published(
    "PacGAN Table 3 (stacked MNIST, Unrolled-GAN architecture, D at ¼ / ½ of G's size; rows 1–4 from the "
    "Unrolled-GAN paper, PacDCGAN rows: 50 trials)",
    f"{_BENCH} [confirmed: `fjxmlzn/PacGAN`, `Table3.png`]",
    ["D=¼G modes", "D=¼G KL", "D=½G modes", "D=½G KL"],
    {"DCGAN [Unrolled-GAN paper]": {"D=¼G modes": "30.6±20.73", "D=¼G KL": "5.99±0.42",
                                    "D=½G modes": "628.0±140.9", "D=½G KL": "2.58±0.75"},
     "Unrolled GAN, 10 steps": {"D=¼G modes": "327.2±74.67", "D=¼G KL": "4.66±0.46",
                                "D=½G modes": "817.4±37.91", "D=½G KL": "1.43±0.12"},
     "DCGAN (PacGAN's implementation)": {"D=¼G modes": "78.5±17.56", "D=¼G KL": "5.21±0.19",
                                         "D=½G modes": "487.7±34.59", "D=½G KL": "2.24±0.15"},
     "PacDCGAN2": {"D=¼G modes": "484.5±32.99", "D=¼G KL": "2.61±0.22",
                   "D=½G modes": "840.7±15.92", "D=½G KL": "1.00±0.05"}})
W2B_TABLE = Published(
    "Wasserstein-2 benchmark (Korotin et al. 2021), forward L2-UVP % on Mix3 → Mix10, 50k–250k iterations on GPU",
    "`shared/reference/icnn_w2.md` §5 [confirmed: W2B poster, \"High-dimensional pairs\" panel]",
    ["d = 2", "d = 8", "d = 32", "d = 64"],
    {"[W2] W2GN": {"d = 2": "0.1", "d = 8": "2.6", "d = 32": "6.0", "d = 64": "7.2"},
     "[MMv2] ≈ Makkuva": {"d = 2": "0.1", "d = 8": "2.2", "d = 32": "5.3", "d = 64": "10.1"},
     "[MMv1] ≈ Taghvaei–Jalali": {"d = 2": "0.2", "d = 8": "1.8", "d = 32": "6.9", "d = 64": "8.1"},
     "[L] linear": {"d = 2": "14.1", "d = 8": "27.3", "d = 32": "55.3", "d = 64": "63.9"}})

#: `make demo` output printed in README.md ("Quick start"): VanillaGAN, ring8, 3000 generator steps, seed 0.
DEMO = {"modes": 8, "hq": 93.8, "kl": 0.046}
SNGAN_BASELINE = Published(
    "SN-GAN baselines (CIFAR-10 / STL-10 IS / FID)",
    "`shared/reference/srgan.md` §7",
    ["CIFAR-10 IS / FID", "STL-10 IS / FID", "label"],
    {"SN-GAN ResNet": {"CIFAR-10 IS / FID": "8.22 / 21.7", "STL-10 IS / FID": "9.10 / 40.1",
                       "label": "[confirmed: paperswithcode SN-GAN page]"},
     "SN-GAN standard CNN (hinge)": {"CIFAR-10 IS / FID": "7.58 / 25.5", "STL-10 IS / FID": "8.79 / 43.2",
                                     "label": "[unconfirmed: recollection of Miyato et al. Table 2]"}},
    note="SR-GAN's own IS/FID were not retrieved (srgan.md §7).")
AEOT_FID = Published(
    "AE-OT paper, FID (the adversarial baselines are Lucic et al. 2018's best over a search)",
    "`shared/reference/aeot.md` §5 [unconfirmed: recollection — no exact AE-OT figure is trusted]",
    ["MNIST", "Fashion", "CIFAR-10", "CelebA"],
    {"WGAN-GP": {"MNIST": "20.3", "Fashion": "24.5", "CIFAR-10": "55.8", "CelebA": "30.3"},
     "NS GAN": {"MNIST": "6.8", "Fashion": "26.5", "CIFAR-10": "58.5", "CelebA": "55.0"},
     "AE-OT (recalled range)": {"MNIST": "single digits", "Fashion": "≈ 10", "CIFAR-10": "high 30s",
                                "CelebA": "mid-to-high 20s"}})
