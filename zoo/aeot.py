"""AE-OT — autoencoder + semi-discrete optimal transport (An, Guo, Lei, Luo, Yau, Gu, ICLR 2020).

A continuous generator cannot represent a discontinuous OT map onto a non-convex support (Figalli's
regularity theory), which AE-OT names as a cause of mode collapse and mode mixture. So the embedding and the
transport are separated:

1. **Autoencoder** (stage ``ae``): minimise  ‖D(E(x)) − x‖² (mean squared error) + ``l1_weight``·mean|E(x)|
   with Adam; an MLP for vectors, a DCGAN-style conv net for images in [-1, 1] (:func:`zoo.nets.make_autoencoder`).
2. **Semi-discrete OT** (stage ``ot``): encode ``n_targets`` training points to codes c_i, normalise them
   y_i = (c_i − mean)/scale (one scalar scale, the codes' overall std, so the source cube and the codes have
   comparable size), and solve the semi-discrete OT from μ = uniform on [−0.5, 0.5]^d (or N(0, I)) to
   ν = (1/N) Σ δ_{y_i}: Adam on the heights h of u_h(x) = max_i ⟨x, y_i⟩ + h_i (:mod:`zoo.ot.semidiscrete`).
3. **Generation** (stage ``done``): x ~ μ → extended OT map (top-k cells, facet-normal angle test,
   interpolation only below the threshold; :mod:`zoo.ot.extended_map`) → z → decoder D(z·scale + mean).

One ``train.py fit`` runs all stages as phases of Lightning's loop: every ``training_step`` is either one
autoencoder step (one real batch) or ``ot_iters_per_step`` solver iterations (the batch is ignored), so the
progress bar and the logs (``loss/ae``, ``ot/tv``, ``ot/max_rel``, ``ot/empty``, ``ot/energy``…) show
both. A checkpoint is written at each stage boundary (``checkpoints/stage1-ae.ckpt``,
``checkpoints/stage2-ot.ckpt``); the codes, h and the solver's Adam moments are buffers and its schedule
state is saved in the checkpoint, so a run resumes mid-solve.

**Generator steps.** ``gen_step`` counts autoencoder updates (the decoder is the generator) plus **one**
for the whole OT solve, counted when it finishes; ``max_gen_steps`` is therefore the autoencoder budget
(required). The final ``eval/*`` metrics (ModeCoverage at the end of fit) are always taken after the OT.
Until the OT solve has finished, ``sample(n)`` decodes Gaussian codes with the running mean/std of the codes
(an "AE + Gaussian prior" baseline), so periodic evaluations before the OT — the one at ``max_gen_steps``, on the
step that starts the solve, included — measure that baseline.

**DDP.** The autoencoder stage is ordinary data parallelism (per-rank batches, all-reduced gradients; the running
code statistics are all-reduced too). The OT stage is **solved identically on every rank**, not sharded: every
rank encodes the same first ``n_targets`` training points, rank 0's codes and solver seed are broadcast, every rank
runs the same solver iterations, and after each training step rank 0's h, Adam moments, schedule and stop decision
are broadcast (:meth:`AEOT.ot_steps`), so h is bit-identical on every rank and all ranks enter the generation stage
together. The solve is cheap next to the autoencoder (seconds for thousands of targets) and needs no
communication inside an iteration; sharding the targets would need an all-reduce of the cell histogram per
iteration. Stage checkpoints are written by rank 0 (``Trainer.save_checkpoint`` is called on every rank).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo import nets
from zoo.base import GANModule
from zoo.errors import ConfigError
from zoo.ot.extended_map import ExtendedMapSample, extended_map
from zoo.ot.semidiscrete import SemiDiscreteOT, sample_source
from zoo.registry import register_model

STAGES = ("ae", "ot", "done")


@register_model("aeot")
class AEOT(GANModule):
    """AE-OT (see the module docstring for the algorithm, the stages and how generator steps are counted).

    Args:
        latent_dim: code dimension d of the autoencoder and of the OT.
        hidden: MLP widths of the encoder (decoder: reversed) for vector data.
        base_channels: width of the DCGAN-style conv autoencoder for images.
        lr, betas: Adam settings of the autoencoder.
        lr_final_fraction: cosine decay of the autoencoder's learning rate over its ``max_gen_steps`` steps,
            lr_t = lr · (f + (1 − f)·½(1 + cos(π t / T))), from lr to f·lr (see :meth:`ae_lr_factor`);
            1.0 keeps it constant, as the official code does. With a constant lr the weights at the last
            step are wherever Adam's noise left them: on grid25 one run ended on a loss spike (MSE 3.5e-3
            against 1e-5–1e-4 a few steps earlier) and 10 % of its decoded samples left the modes.
        l1_weight: weight of mean|code| in the autoencoder loss (AE-OT uses a small L1 on the codes).
        n_targets: number of training points encoded as OT targets (the first ones of the training split;
            ``None``: all of them).
        ot_source: ``uniform`` (cube [−0.5, 0.5]^d) or ``gaussian``.
        ot_sampler: ``sobol`` (scrambled Sobol, fresh each iteration) or ``random``.
        ot_lr, ot_lr_decay, ot_patience, ot_samples, ot_max_samples: solver schedule
            (:class:`zoo.ot.semidiscrete.SemiDiscreteOT`).
        ot_method: ``auto`` (exact damped Newton for d ≤ 2 with the uniform source, else damped Newton on growing
            Sobol clouds with a sampled Hessian), ``newton``, ``sampled_newton`` or ``adam``
            (:class:`zoo.ot.semidiscrete.SemiDiscreteOT`); ot_lr, ot_samples, … only concern ``adam``.
        ot_tol_tv, ot_tol_rel: what the OT stage certifies: every cell's mass within ot_tol_rel of ν_i (relative),
            TV ≤ ot_tol_tv, no empty cell — checked independently of the optimiser (exact cell masses in d ≤ 2,
            otherwise 9/(tol_rel²·min ν) fresh samples, i.e. a standard error ≤ tol_rel/3 per cell). The stage ends
            when the certificate passes or at ``ot_max_iters``; either way ``ot/converged``, the certified errors
            and the one-line message go to the log and to ``results.json`` (``details.ot_certificate``).
        ot_cert_max_samples: cap on the Monte-Carlo certificate's samples (a certificate needing more cannot pass).
        ot_max_iters: cap on solver iterations.
        ot_iters_per_step: solver iterations per Lightning ``training_step``.
        chunk_targets, chunk_samples: score block (memory budget = product × 4 bytes).
        top_k: cells considered by the extended map (k − 1 candidate neighbours).
        angle_threshold: fixed facet-angle threshold in radians (used when ``angle_percentile`` is None).
        angle_percentile: calibrate the threshold as this percentile of the observed angles.
        mix_weight: λ, weight of the neighbour in z = (1 − λ) y_a + λ y_b; ``None`` for λ ~ U(0, 1).
        stats_samples: source points used for the generation statistics logged at the end of the OT.
    """

    def __init__(
        self,
        latent_dim: int = 2,
        hidden: Sequence[int] = (128, 128, 128),
        base_channels: int = 32,
        lr: float = 1e-3,
        betas: Tuple[float, float] = (0.9, 0.999),
        lr_final_fraction: float = 1.0,
        l1_weight: float = 1e-4,
        n_targets: Optional[int] = 2000,
        ot_source: str = "uniform",
        ot_sampler: str = "sobol",
        ot_lr: float = 1e-2,
        ot_lr_decay: float = 0.7,
        ot_patience: int = 30,
        ot_samples: Optional[int] = None,
        ot_max_samples: int = 2**20,
        ot_method: str = "auto",
        ot_tol_tv: float = 1e-2,
        ot_tol_rel: float = 0.05,
        ot_cert_max_samples: int = 2**25,
        ot_max_iters: int = 2000,
        ot_iters_per_step: int = 10,
        chunk_targets: int = 2048,
        chunk_samples: int = 1024,
        top_k: int = 20,
        angle_threshold: Optional[float] = 0.7,
        angle_percentile: Optional[float] = None,
        mix_weight: Optional[float] = None,
        stats_samples: int = 20000,
        data_shape: Optional[Sequence[int]] = None,
        max_gen_steps: Optional[int] = None,
    ):
        super().__init__(data_shape=data_shape, max_gen_steps=max_gen_steps)
        self.save_hyperparameters()
        if max_gen_steps is None:
            raise ConfigError("AE-OT needs model.max_gen_steps: the number of autoencoder steps before the OT stage")
        if not 0.0 < lr_final_fraction <= 1.0:
            raise ConfigError(f"lr_final_fraction must be in (0, 1] (1: constant learning rate), got {lr_final_fraction}")
        if latent_dim < 1 or top_k < 1 or ot_iters_per_step < 1 or ot_max_iters < 1:
            raise ConfigError("latent_dim, top_k, ot_iters_per_step and ot_max_iters must be >= 1")
        if n_targets is not None and n_targets < 2:
            raise ConfigError(f"n_targets must be >= 2 (or null for the whole training set), got {n_targets}")
        if ot_source not in ("uniform", "gaussian") or ot_sampler not in ("sobol", "random"):
            raise ConfigError("ot_source must be uniform or gaussian and ot_sampler sobol or random")
        if angle_threshold is None and angle_percentile is None:
            raise ConfigError("set model.angle_threshold (radians) or model.angle_percentile")
        if mix_weight is not None and not 0.0 <= mix_weight <= 1.0:
            raise ConfigError(f"mix_weight must be in [0, 1] or null (random), got {mix_weight}")
        d = int(latent_dim)
        self.register_buffer("stage_buf", torch.zeros((), dtype=torch.long))
        # running code statistics (stage-1 fallback sampler) and the code normalisation of the OT
        self.register_buffer("code_mean", torch.zeros(d))
        self.register_buffer("code_sq", torch.ones(d))
        self.register_buffer("code_scale", torch.ones(()))
        # OT state: targets, heights, Adam moments (resized when the OT starts or a checkpoint is loaded)
        self.register_buffer("targets", torch.zeros(0, d))
        self.register_buffer("h", torch.zeros(0))
        self.register_buffer("ot_weights", torch.zeros(0))  # multiplicity of each distinct code
        self.register_buffer("ot_adam_m", torch.zeros(0))
        self.register_buffer("ot_adam_v", torch.zeros(0))
        self._solver: Optional[SemiDiscreteOT] = None
        self._solver_state: Dict[str, object] = {}
        self._save_stage: Optional[str] = None
        self.generation_stats: Dict[str, object] = {}

    # ================================================================== networks
    def build(self, data_shape: Tuple[int, ...]) -> None:
        hp = self.hparams
        self.encoder, self.decoder = nets.make_autoencoder(data_shape, hp.latent_dim, hp.hidden,
                                                           base_channels=hp.base_channels)
        if nets.is_image_shape(data_shape):
            nets.dcgan_init(self)

    def configure_optimizers(self):
        hp = self.hparams
        params = list(self.encoder.parameters()) + list(self.decoder.parameters())
        return torch.optim.Adam(params, lr=hp.lr, betas=tuple(hp.betas))

    @property
    def stage(self) -> str:
        """``ae`` (autoencoder), ``ot`` (solving) or ``done`` (generation)."""
        return STAGES[int(self.stage_buf)]

    # ================================================================== the loop: three stages
    def train_batch(self, real: Tensor) -> Dict[str, Tensor]:
        """Stage ``ae``: one autoencoder step on ``real`` (the last one starts the OT stage); stage ``ot``: one
        round of :meth:`ot_steps` (the batch is not used); ``done``: stop."""
        if self.stage == "ae":
            logs = self.autoencoder_step(real)
            self.count_gen_step()
            if self.gen_step >= int(self.max_gen_steps):
                self.start_ot()
        elif self.stage == "ot":
            logs = self.ot_steps()
        else:
            logs = {}
            self.trainer.should_stop = True
        self.count_batch()
        return logs

    def step_done(self) -> bool:
        """Only autoencoder steps share a training step: the stage checkpoint and each OT round end one."""
        return self.stage != "ae"

    def _is_last_step(self) -> bool:
        return self.stage == "done"

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        if self._save_stage is not None:
            self.save_stage_checkpoint(self._save_stage)
            self._save_stage = None
        if self.stage == "done":
            self.trainer.should_stop = True

    # ------------------------------------------------------------------ stage 1: autoencoder
    def ae_lr_factor(self, t: int) -> float:
        """Learning-rate factor of autoencoder step t (0-based) of T = ``max_gen_steps``:
        f + (1 − f)·½(1 + cos(π·min(t, T)/T)) with f = ``lr_final_fraction`` (1 at t = 0, f at t = T)."""
        f, big_t = float(self.hparams.lr_final_fraction), max(1, int(self.max_gen_steps))
        return f + (1.0 - f) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0), big_t) / big_t))

    def autoencoder_step(self, real: Tensor) -> Dict[str, Tensor]:
        """One Adam step on  mean (D(E(x)) − x)² + l1_weight · mean |E(x)|, at lr · :meth:`ae_lr_factor`."""
        opt = self.optimizers()
        t = int(self.gen_step)
        if t > 0 and self.hparams.lr_final_fraction != 1.0:
            # relative update: the lr in the optimizer's state (and a rollback's lr scaling) carries over
            ratio = self.ae_lr_factor(t) / self.ae_lr_factor(t - 1)
            for group in opt.param_groups:
                group["lr"] *= ratio
        code = self.encoder(real)
        rec = F.mse_loss(self.decoder(code), real)
        loss = rec + self.hparams.l1_weight * code.abs().mean()
        opt.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        opt.step()
        with torch.no_grad():  # running code statistics for the pre-OT fallback sampler
            c = code.detach().float()
            stats = torch.stack([c.mean(0), (c * c).mean(0)])
            if self._distributed():  # the global batch's statistics (equal per-rank batches)
                stats = self.trainer.strategy.reduce(stats, reduce_op="mean")
            self.code_mean.lerp_(stats[0], 0.05)
            self.code_sq.lerp_(stats[1], 0.05)
        return {"loss/ae": loss.detach(), "loss/ae_mse": rec.detach()}

    # ------------------------------------------------------------------ stage 2: encode + OT
    @torch.no_grad()
    def encode_training_set(self) -> Tensor:
        """Codes E(x) of the first ``n_targets`` training points (all of them if ``None``)."""
        dm = self.trainer.datamodule if self._trainer is not None else None
        if dm is None or not hasattr(dm, "reference_samples"):
            raise ConfigError("AE-OT's OT stage needs a zoo datamodule (reference_samples) to encode the training set")
        n = self.hparams.n_targets
        n = len(dm.train_set) if n is None else int(n)
        data = dm.reference_samples(n, split="train")
        was_training = self.encoder.training
        self.encoder.eval()
        try:
            codes = torch.cat([self.encoder(data[i:i + 1024].to(self.device)).float()
                               for i in range(0, data.shape[0], 1024)])
        finally:
            self.encoder.train(was_training)
        return codes

    @torch.no_grad()
    def start_ot(self) -> None:
        """Enter the OT stage: encode and normalise the targets, reset h and the solver state.

        Under DDP every rank encodes the same ``n_targets`` points with the same (all-reduced) weights, then rank 0's
        codes and solver seed are broadcast, so every rank solves the same problem (see :meth:`ot_steps`)."""
        codes = self.encode_training_set()
        seed = int(torch.initial_seed()) % (2**31)
        if self._distributed():
            codes, seed = self.trainer.strategy.broadcast((codes, seed), 0)
            codes = codes.to(self.device)
        mean = codes.mean(0)
        scale = (codes - mean).pow(2).mean().sqrt().clamp_min(1e-8)
        self.code_mean.copy_(mean)
        self.code_scale.copy_(scale)
        # identical codes (identical training points) cannot split a cell: one target each, weighted by its count
        self.targets, counts = torch.unique((codes - mean) / scale, dim=0, return_counts=True)
        self.ot_weights = counts.to(self.targets.dtype)
        n = self.targets.shape[0]
        self.h = torch.zeros(n, device=self.device)
        self.ot_adam_m = torch.zeros(n, device=self.device)
        self.ot_adam_v = torch.zeros(n, device=self.device)
        self._solver, self._solver_state = None, {"seed": seed}
        self.stage_buf.fill_(STAGES.index("ot"))
        self._save_stage = "stage1-ae"

    def solver(self) -> SemiDiscreteOT:
        """The OT solver over the buffers (h and the Adam moments are shared, updated in place)."""
        if self._solver is None or self._solver.targets.device != self.targets.device:
            hp = self.hparams
            weights = self.ot_weights if self.ot_weights.numel() == self.targets.shape[0] else None
            s = SemiDiscreteOT(self.targets, weights, source=hp.ot_source, sampler=hp.ot_sampler,
                               method=hp.ot_method, lr=hp.ot_lr,
                               n_samples=hp.ot_samples, max_samples=hp.ot_max_samples, patience=hp.ot_patience,
                               lr_decay=hp.ot_lr_decay, tol_tv=hp.ot_tol_tv, tol_rel=hp.ot_tol_rel,
                               cert_max_samples=hp.ot_cert_max_samples,
                               chunk_targets=hp.chunk_targets, chunk_samples=hp.chunk_samples,
                               seed=int(torch.initial_seed()) % (2**31))
            s.h, s.adam_m, s.adam_v = self.h, self.ot_adam_m, self.ot_adam_v
            if self._solver is not None:
                self._solver_state = self._solver_scalars()
            for key, value in self._solver_state.items():
                setattr(s, key, value)
            self._solver = s
        return self._solver

    def _solver_scalars(self) -> Dict[str, object]:
        if self._solver is None:
            return dict(self._solver_state)
        s = self._solver
        return {k: getattr(s, k) for k in (*SemiDiscreteOT._STATE_SCALARS, "seed", "history")}

    @torch.no_grad()
    def ot_steps(self) -> Dict[str, Tensor]:
        """``ot_iters_per_step`` solver iterations; finishes the stage on convergence or ``ot_max_iters``.

        DDP: every rank runs the same iterations on the same targets with the same seed (identical results on CPU;
        no rank idles while another solves), and after them rank 0's h, Adam moments, schedule and stop decision
        are broadcast and adopted, so the ranks cannot drift apart (e.g. by a non-deterministic GPU kernel) and
        leave the stage in the same training step."""
        s = self.solver()
        rec: Dict[str, float] = {}
        done = False
        for _ in range(int(self.hparams.ot_iters_per_step)):
            rec = s.step()
            done = s.converged or s.stalled or s.t >= int(self.hparams.ot_max_iters)
            if done:
                break
        if self._distributed():
            done = self._adopt_rank0_solver(done)
        if done:
            self.finish_ot()
        return {f"ot/{k}": torch.tensor(float(v)) for k, v in rec.items() if k != "iter"} | {
            "ot/iter": torch.tensor(float(s.t))}

    def _adopt_rank0_solver(self, done: bool) -> bool:
        s = self.solver()
        scalars = {k: getattr(s, k) for k in SemiDiscreteOT._STATE_SCALARS}
        tensors, scalars, done = self.trainer.strategy.broadcast(
            ((self.h.cpu(), self.ot_adam_m.cpu(), self.ot_adam_v.cpu()), scalars, bool(done)), 0)
        if not self.trainer.is_global_zero:
            for dst, src in zip((self.h, self.ot_adam_m, self.ot_adam_v), tensors):
                dst.copy_(src)  # in place: the solver holds these buffers
            for key, value in scalars.items():
                setattr(s, key, value)
        return bool(done)

    @torch.no_grad()
    def finish_ot(self) -> None:
        """Leave the OT stage: count it as one generator step, log the final fresh-sample marginal errors
        and the generation statistics (rejected pairs, angle histogram)."""
        s = self.solver()
        self.stage_buf.fill_(STAGES.index("done"))
        self.count_gen_step()
        cert = s.final_certificate()  # certifies what was reached when the budget ran out
        stats = self.compute_generation_stats()
        metrics = {"ot/final_tv": cert["tv"], "ot/final_max_rel": cert["max_rel"],
                   "ot/final_max_rel_upper": cert["max_rel_upper"], "ot/final_empty": float(cert["empty"]),
                   "ot/cert_samples": float(cert["samples"]), "ot/iters": float(s.t),
                   "ot/converged": float(s.converged), "aeot/rejected_fraction": stats["rejected_fraction"],
                   "aeot/interpolated_fraction": stats["interpolated_fraction"],
                   "aeot/angle_threshold": stats["threshold"]}
        if self._trainer is not None:
            self.log_dict({k: float(v) for k, v in metrics.items()}, on_step=True, on_epoch=False)
        self.generation_stats = {**metrics, **stats, "ot_certificate": dict(cert), "ot_message": s.message,
                                 "ot_method": s.method}
        if self._trainer is None or self.trainer.is_global_zero:
            print(f"[zoo] AE-OT semi-discrete OT {s.message}", flush=True)
        self._save_stage = "stage2-ot"

    # ------------------------------------------------------------------ stage 3: generation
    def draw_source(self, n: int) -> Tensor:
        """n points of the OT source law from the global RNG (so seeded evaluation is repeatable)."""
        d = int(self.hparams.latent_dim)
        u = torch.rand(n, d, device=self.device)
        if self.hparams.ot_source == "uniform":
            return u - 0.5
        return math.sqrt(2.0) * torch.erfinv(u.clamp(1e-7, 1 - 1e-7) * 2 - 1)

    def extend(self, x: Tensor) -> ExtendedMapSample:
        """The extended OT map at source points ``x`` (normalised codes; see :func:`extended_map`)."""
        hp = self.hparams
        return extended_map(x, self.targets, self.h, k=hp.top_k, threshold=hp.angle_threshold,
                            percentile=hp.angle_percentile, lam=hp.mix_weight,
                            chunk_targets=hp.chunk_targets, chunk_samples=hp.chunk_samples)

    def sample_latent(self, n: int) -> Tensor:
        """Normalised codes: the extended OT map of x ~ μ once the OT solve has finished (stage ``done``); before
        that — while the autoencoder trains and while the solve runs — Gaussian codes with the running mean/std of
        the autoencoder's codes (returned already in code units divided by ``code_scale``, which is 1 then). An
        unfinished solve is never sampled: its map (h not yet fitted, at first h = 0) is neither the baseline nor
        the method, and an evaluation falling on the step that starts the solve (gen_step = ``max_gen_steps``)
        would report it."""
        if self.stage == "done" and self.targets.shape[0] > 0:
            return self.extend(self.draw_source(n)).codes
        std = (self.code_sq - self.code_mean ** 2).clamp_min(1e-12).sqrt()
        return (self.code_mean + std * torch.randn(n, self.code_mean.shape[0], device=self.device)
                - self.code_mean) / self.code_scale

    def generate(self, z: Tensor) -> Tensor:
        """Decode normalised codes: D(z · scale + mean)."""
        return self.decoder(z * self.code_scale + self.code_mean).reshape(z.shape[0], *self.data_shape)

    @torch.no_grad()
    def compute_generation_stats(self, n: Optional[int] = None, bins: int = 40) -> Dict[str, object]:
        """Rejected-pair fraction and angle histogram of the extended map at ``n`` fresh source points."""
        n = int(n or self.hparams.stats_samples)
        gen = torch.Generator().manual_seed(1234)
        x = sample_source(n, int(self.hparams.latent_dim), self.hparams.ot_source, "random", 1234,
                          self.device)
        hp = self.hparams
        out = extended_map(x, self.targets, self.h, k=hp.top_k, threshold=hp.angle_threshold,
                           percentile=hp.angle_percentile, lam=hp.mix_weight, generator=gen,
                           chunk_targets=hp.chunk_targets, chunk_samples=hp.chunk_samples)
        ang = out.angles.reshape(-1).double().cpu()
        hist_max = float(ang.max()) if ang.numel() else 1.0
        counts = torch.histc(ang, bins=bins, min=0.0, max=max(hist_max, 1e-6)) if ang.numel() else torch.zeros(bins)
        return {"rejected_fraction": out.rejected_fraction, "interpolated_fraction": out.interpolated_fraction,
                "threshold": out.threshold, "n_pairs": int(ang.numel()),
                "angle_hist_counts": [int(c) for c in counts.tolist()],
                "angle_hist_edges": torch.linspace(0.0, max(hist_max, 1e-6), bins + 1).tolist(),
                "angle_quantiles": {str(q): float(torch.quantile(ang, q)) for q in (0.5, 0.9, 0.99)}
                if ang.numel() else {}}

    # ================================================================== checkpoints
    def _run_dir(self) -> Optional[Path]:
        if self._trainer is None:
            return None
        cb = getattr(self.trainer, "checkpoint_callback", None)
        if cb is not None and getattr(cb, "dirpath", None):
            return Path(cb.dirpath).parent
        logger = self.trainer.loggers[0] if self.trainer.loggers else None
        return Path(getattr(logger, "log_dir", None) or self.trainer.default_root_dir)

    def save_stage_checkpoint(self, name: str) -> None:
        """``<run dir>/checkpoints/<name>.ckpt`` (and, after the OT, ``aeot_generation.json`` + an angle plot)."""
        rd = self._run_dir()
        if rd is None:
            return
        if self.trainer.is_global_zero:
            (rd / "checkpoints").mkdir(parents=True, exist_ok=True)
        # on every rank: Trainer.save_checkpoint holds a barrier (only rank 0 writes); rank 0 alone would deadlock
        self.trainer.save_checkpoint(str(rd / "checkpoints" / f"{name}.ckpt"), weights_only=False)
        if not self.trainer.is_global_zero:
            return
        if name == "stage2-ot" and self.generation_stats:
            (rd / "aeot_generation.json").write_text(json.dumps(self.generation_stats, indent=2) + "\n")
            self._plot_angles(rd / "plots" / "aeot_angles.png")

    def _plot_angles(self, path: Path) -> None:
        try:
            import matplotlib

            matplotlib.use("Agg")
            import matplotlib.pyplot as plt
        except ImportError:  # pragma: no cover
            return
        st = self.generation_stats
        edges, counts = st["angle_hist_edges"], st["angle_hist_counts"]
        path.parent.mkdir(parents=True, exist_ok=True)
        fig, ax = plt.subplots(figsize=(5, 3))
        ax.bar(edges[:-1], counts, width=edges[1] - edges[0], align="edge", color="tab:blue")
        ax.axvline(st["threshold"], color="tab:red", label=f"threshold {st['threshold']:.3g} rad")
        ax.set_yscale("log")
        ax.set_xlabel("facet angle θ (rad) of top-k pairs")
        ax.set_ylabel("pairs")
        ax.set_title(f"rejected {100 * st['rejected_fraction']:.1f}% of pairs")
        ax.legend()
        fig.tight_layout()
        fig.savefig(path, dpi=100)
        plt.close(fig)

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """``nn.Module.load_state_dict`` after resizing the OT buffers (``targets``, ``h``, Adam moments), whose
        size is the number of targets, known only once the OT stage has started. ``ddp_spawn`` hands the trained
        weights back to the launching process this way."""
        resized = False
        for name in ("targets", "h", "ot_weights", "ot_adam_m", "ot_adam_v"):
            if name in state_dict and getattr(self, name).shape != state_dict[name].shape:
                setattr(self, name, torch.zeros_like(state_dict[name], device=self.code_mean.device))
                resized = True
        if resized:
            self._solver = None
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def results_details(self) -> Dict[str, object]:
        """What ``results.json`` records beside the metrics: the OT certificate and its one-line message."""
        st = self.generation_stats
        return {k: st[k] for k in ("ot_certificate", "ot_message", "ot_method") if k in st}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint["aeot"] = {"solver": self._solver_scalars(), "generation_stats": self.generation_stats}

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        super().on_load_checkpoint(checkpoint)  # the OT buffers are resized by load_state_dict
        extra = checkpoint.get("aeot", {})
        self._solver, self._solver_state = None, dict(extra.get("solver", {}))
        self.generation_stats = dict(extra.get("generation_stats", {}))
