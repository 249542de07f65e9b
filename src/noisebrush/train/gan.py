"""Diffusion GANs on the one training loop: a generator (the UNet with a latent z) and a discriminator
(:class:`noisebrush.nets.disc.Discriminator`), two parts with their own optimizers, a discriminator phase and a
generator phase per step (:mod:`noisebrush.train.objectives`).

    noisebrush train --method ddgan --out runs/fast                  # T = 4 (--set gan_steps=2 or 8)
    noisebrush train --method diffusion-gan --out runs/dgan          # one step; D sees diffused pictures
    noisebrush train --method gan --out runs/plain                   # the plain conditional GAN (DDGAN's T = 1)

**DDGAN** (Xiao et al. 2022, "Tackling the Generative Learning Trilemma with Denoising Diffusion GANs"). The chain
has T large steps on the ladder :func:`noisebrush.diffusion.schedules.ddgan` (σ_T > … > σ_1 > σ_0 = 0, in the
σ-space every noisebrush model uses: x_σ = x_0 + σ·ε). For sample k, t ~ U{1 … T}; the real pair is
x_{t−1} = x_0 + σ_{t−1}·ε_a and x_t = x_{t−1} + sqrt(σ_t² − σ_{t−1}²)·ε_b; the generator predicts
x̂_0 = G(x_t, z, σ_t | condition) (the UNet under EDM's preconditioning, z entering through its embedding) and
the fake x'_{t−1} is drawn from the posterior q(x_{t−1} | x_t, x̂_0) — the step the ``gan`` sampler takes at
painting time. The discriminator D(x_{t−1}, x_t, σ_t | condition) reads the pair, each picture scaled to unit
variance by EDM's c_in(σ). Losses: non-saturating (D: softplus(−D(real)) + softplus(D(fake)); G:
softplus(−D(fake))), R1 on the real x_{t−1} every ``r1_every`` steps (lazy, weighted by r1_every: γ/2·‖∇D‖²), an
EMA of G. T = 1 is the plain conditional GAN (``--method gan``): one step from pure noise (x_1 = σ_1·ε: at σ ≈ 152
the picture's share would be 0.3 % of x_1, a leak of the answer, so it is left out).

**Diffusion-GAN** (Wang et al. 2023, "Diffusion-GAN: Training GANs with Diffusion"). The same one-step generator as
the plain GAN; the discriminator sees real and generated pictures diffused to a level t of DDPM's linear table
(β from 1e-4 to 0.02 over 1000 steps, as σ_t), t drawn from {0 … T} with probability ∝ t + 1 (the paper's
"priority" sampling) and told σ_t. T adapts: every ``ada_every`` steps r_d = E[sign(D(real))] over those steps is
compared with ``ada_target`` (0.6): above it the discriminator is overfitting and T grows, below it T shrinks, by
(batch × ada_every) / (ada_kimg × 1000) × 1000 levels, within [``ada_t_min``, ``ada_t_max``]. T and the counters
are saved with the checkpoint (:meth:`GANObjective.state`), so a resumed run is bit-identical.

Both use the built-in set or a folder and the text / label / no condition as :class:`EDMObjective` does (its data
path, captions and sample stream); every random draw of sample k (t, ε, z) comes from the stream's
``condition_generator(k)``, so runs split over processes or resumed stay exact. The log adds D's and G's losses,
D's accuracy on real and fake pairs, R1 and, for Diffusion-GAN, T and r_d (:data:`GAN_LOG`).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from noisebrush.diffusion import EDMPrecond, SampleNoise, edm_coefficients, expand_sigma
from noisebrush.diffusion.sample import make_denoiser, sample, start
from noisebrush.diffusion.schedules import alphas_cumprod_to_sigmas, ddgan, linear_alphas_cumprod
from noisebrush.errors import UserError
from noisebrush.nets.disc import DiscConfig, Discriminator
from noisebrush.nets.unet import UNetConfig
from noisebrush.seeding import mix
from noisebrush.train.lr import make_scheduler
from noisebrush.train.objectives import EDMObjective, Loss, Part, Phase, read_init

__all__ = ["GANObjective", "GAN_LOG", "gan_steps_of"]

# the log's extra columns: D's and G's losses, D's accuracy on real and on fake, R1 (when computed), Diffusion-GAN's
# T and r_d, and the recall estimate of a monitor (noisebrush.eval.monitor; the CLI sets one)
GAN_LOG = ("d_loss", "g_loss", "d_real", "d_fake", "r1", "ada_t", "r_d", "recall")
DIFFUSION_TABLE = 1000  # Diffusion-GAN's DDPM table: levels 1 … 1000 (σ of ᾱ_t), and 0 (no noise)


def gan_steps_of(method: str, gan_steps: int) -> int:
    """The generator's number of steps: ``gan_steps`` for DDGAN, 1 for the plain GAN and Diffusion-GAN."""
    return gan_steps if method == "ddgan" else 1


def _c_in(sigma: torch.Tensor, sigma_data: float, like: torch.Tensor) -> torch.Tensor:
    """EDM's c_in(σ) per sample, shaped to multiply ``like``."""
    return expand_sigma(edm_coefficients(sigma, sigma_data)[2], like).to(like.dtype)


def _c_noise(sigma: torch.Tensor) -> torch.Tensor:
    """The noise level as the networks read it (EDM's c_noise), with σ = 0 read as the smallest level painted."""
    return edm_coefficients(sigma.clamp(min=0.002), 1.0)[3].to(torch.float32)


def _per_sample(sigma: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """σ per sample, shaped and typed to multiply ``like``."""
    return expand_sigma(sigma, like).to(like.dtype)


class GANObjective(EDMObjective):
    """DDGAN, Diffusion-GAN and the plain GAN (``cfg.method``; see the module docstring)."""

    log_fields = GAN_LOG

    def _prepare_data(self) -> None:
        super()._prepare_data()
        cfg = self.cfg
        self.method = cfg.method  # TrainConfig checked it with the task and the rest of the GAN's settings
        self.T = gan_steps_of(self.method, cfg.gan_steps)
        self.ladder = ddgan(self.T)                      # σ_T … σ_1, 0 (float64)
        self.levels = self.ladder.flip(0)                # σ_0 = 0, σ_1 … σ_T
        self.table = torch.cat([torch.zeros(1, dtype=torch.float64),
                                alphas_cumprod_to_sigmas(linear_alphas_cumprod(DIFFUSION_TABLE)).to(torch.float64)])
        self.ada_t = float(cfg.ada_t_min)                # Diffusion-GAN's T (kept as a float, used rounded)
        self._signs, self._sign_n = 0.0, 0               # Σ sign(D(real)) and how many since the last update

    def _network_config(self) -> UNetConfig:
        net_config = super()._network_config()
        net_config.latent_dim = int(self.cfg.latent_dim)
        d = {"resolution": self.cfg.resolution, **self.cfg.disc,
             "in_channels": net_config.in_channels * (1 if self.method == "diffusion-gan" else 2),
             "text_dim": net_config.text_dim, "label_dim": net_config.label_dim}
        self.disc_config = DiscConfig.from_dict(d)
        return net_config

    def _make_parts(self) -> dict[str, Part]:
        cfg = self.cfg
        parts = super()._make_parts()  # the generator (the UNet), its EMA, AdamW and LR schedule
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(mix(cfg.seed, 0xD15C))
            self.disc = Discriminator(self.disc_config)
        opt = torch.optim.AdamW(self.disc.parameters(), lr=cfg.d_lr, betas=cfg.betas, weight_decay=0.0)
        sched = make_scheduler(opt, cfg.lr_schedule, self.plan, warmup=cfg.warmup, final=cfg.lr_final)
        parts["disc"] = Part(self.disc, opt, sched, None, grad_clip=cfg.grad_clip, project=False)
        return parts

    def describe(self) -> dict:
        return {"method": self.method, "steps": self.T, "generator": self.net_config.to_dict(),
                "disc": self.disc_config.to_dict()}

    def same_networks(self, saved: dict) -> bool:
        if not isinstance(saved, dict) or "generator" not in saved:
            return False
        mine = self.describe()
        return (saved.get("method"), saved.get("steps"), saved.get("disc")) == \
            (mine["method"], mine["steps"], mine["disc"]) and UNetConfig.same(saved["generator"], mine["generator"])

    def run_info(self) -> dict:
        return {"network": self.describe(), "condition": self.condition}

    def init_weights(self, source: str) -> None:
        """Start the generator (and its EMA) from a model folder or checkpoint: a GAN's of the same network, or a
        diffusion model's UNet — the denoiser D(x_σ, σ) already predicts E[x_0 | x_σ], a good first x̂_0 — whose
        missing latent layer keeps its fresh weights (its gain starts at 0, so the generator starts as that
        denoiser). The discriminator starts afresh."""
        net_config, state, ema, updates = read_init(source, self.net)
        if net_config and "generator" in net_config:  # a GAN checkpoint's description
            net_config = net_config["generator"]
        mine = self.net_config.to_dict()
        if not UNetConfig.same({**(net_config or {}), "latent_dim": mine["latent_dim"]}, mine):
            raise UserError(f"init: {source} holds another network than this config describes (check [model], "
                            f"resolution and condition)")
        fresh = {k: v for k, v in self.net.state_dict().items() if k.startswith(("emb_latent.", "latent_gain"))}
        self._load(source, {**fresh, **state}, {**fresh, **ema}, updates)

    # -- what survives a resume besides the weights ------------------------------------------------------------------
    def state(self) -> dict:
        """The depth T and D's sign counters since its last update, summed over the processes (each process
        counts its own samples' signs)."""
        signs, n = self._signs, self._sign_n
        if self.loop.acc.num_processes > 1:
            both = torch.tensor([signs, float(n)], dtype=torch.float64, device=self.loop.acc.device)
            signs, n = self.loop.acc.reduce(both, "sum").cpu().tolist()
        return {"ada_t": self.ada_t, "signs": float(signs), "sign_n": int(n)}

    def load_state(self, state: dict | None) -> None:
        """The saved sums go to the main process and the others count from zero, so the next update's
        all-reduce sums every sample's sign once, whatever the number of processes before and after."""
        if state:
            self.ada_t = float(state["ada_t"])
            main = self.loop.acc.is_main_process
            self._signs, self._sign_n = (float(state["signs"]), int(state["sign_n"])) if main else (0.0, 0)

    # -- data ------------------------------------------------------------------------------------------------------
    def batch(self, ks) -> dict:
        """EDMObjective's micro-batch (pictures, conditions) with the GAN's own draws for each sample k, all from
        the stream's ``condition_generator(k)``: the step t, the noises ε_a, ε_b (the real pair or the diffused
        picture), ε_c (the fake's posterior draw) and the latent z. No sample is trained without its condition."""
        out = super().batch(ks)
        if "drop" in out["cond"]:
            out["cond"]["drop"] = torch.zeros_like(out["cond"]["drop"])
        shape = out["x0"].shape[1:]
        ts, eps, zs = [], [], []
        T = int(round(self.ada_t)) if self.method == "diffusion-gan" else self.T
        for k in ks:
            g = self.stream.condition_generator(k)
            if self.method == "diffusion-gan":  # priority sampling: p(t) ∝ t + 1 over {0 … T}
                w = torch.arange(1, T + 2, dtype=torch.float64)
                ts.append(int(torch.multinomial(w / w.sum(), 1, generator=g)))
            else:
                ts.append(int(torch.randint(1, self.T + 1, (1,), generator=g)))
            eps.append(torch.randn((3, *shape), generator=g))
            zs.append(torch.randn(self.cfg.latent_dim, generator=g))
        dev = out["x0"].device
        e = torch.stack(eps).to(dev)
        out |= {"t": torch.tensor(ts), "eps_a": e[:, 0], "eps_b": e[:, 1], "eps_c": e[:, 2],
                "z": torch.stack(zs).to(dev)}
        return out

    # -- the two phases --------------------------------------------------------------------------------------------
    def phases(self, step: int) -> list[Phase]:
        return [Phase("disc", self.batch, self.disc_loss), Phase("model", self.batch, self.gen_loss)]

    def _generate(self, b: dict) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(x_t, σ_t, x̂_0): the generator's input and its prediction for the micro-batch (with gradients)."""
        n = b["x0"].shape[0]
        x0 = b["x0"]
        if self.T == 1:
            sig = torch.full((n,), float(self.levels[1]), dtype=torch.float64, device=x0.device)
            x_t = _per_sample(sig, x0) * b["eps_b"]
        else:
            sig = self.levels[b["t"]].to(x0.device)
            prev = self.levels[b["t"] - 1].to(x0.device)
            x_prev = x0 + _per_sample(prev, x0) * b["eps_a"]
            x_t = x_prev + _per_sample((sig**2 - prev**2).sqrt(), x0) * b["eps_b"]
        with self.loop.autocast():
            x0_hat = self.den(x_t, sig, z=b["z"], **b["cond"]).float()
        return x_t, sig, x0_hat

    def _pairs(self, b: dict, x_t, sig, x0_hat) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(real, fake, σ for D): DDGAN's pairs (x_{t−1}, x_t) — the fake x_{t−1} from the posterior given x̂_0 —
        or Diffusion-GAN's diffused pictures; each picture scaled by c_in of its own σ."""
        sd = self.cfg.sigma_data
        if self.method == "diffusion-gan":
            s = self.table[b["t"]].to(x_t.device)
            noise, scale = _per_sample(s, x_t) * b["eps_a"], _c_in(s, sd, x_t)
            return (b["x0"] + noise) * scale, (x0_hat + noise) * scale, s
        prev = self.levels[b["t"] - 1].to(x_t.device) if self.T > 1 else torch.zeros_like(sig)
        x_prev = b["x0"] + _per_sample(prev, x_t) * b["eps_a"] if self.T > 1 else b["x0"]
        r = _per_sample(prev / sig, x_t)  # the posterior q(x_{t−1} | x_t, x̂_0), as the gan sampler draws it
        fake_prev = torch.lerp(x0_hat, x_t, r**2) + r * _per_sample((sig**2 - prev**2).sqrt(), x_t) * b["eps_c"]
        xt_in = x_t * _c_in(sig, sd, x_t)
        real = torch.cat([x_prev * _c_in(prev, sd, x_t), xt_in], 1)
        fake = torch.cat([fake_prev * _c_in(prev, sd, x_t), xt_in], 1)
        return real, fake, sig

    def _d(self, x, sigma, cond: dict) -> torch.Tensor:
        keys = {k: v for k, v in cond.items() if k in ("text", "text_mask", "labels", "drop")}
        with self.loop.autocast():
            return self.loop.parts["disc"].module(x, _c_noise(sigma), **keys).float()

    def disc_loss(self, b: dict, micro: int, accum: int) -> Loss:
        with torch.no_grad():
            x_t, sig, x0_hat = self._generate(b)
        real, fake, s = self._pairs(b, x_t, sig, x0_hat)
        lazy = self.cfg.r1 > 0 and self.loop.step % self.cfg.r1_every == 0
        if lazy:
            real = real.detach().requires_grad_(True)
        d_real, d_fake = self._d(real, s, b["cond"]), self._d(fake, s, b["cond"])
        per = F.softplus(-d_real) + F.softplus(d_fake)
        value = per.mean()
        r1 = torch.zeros_like(per)
        if lazy:  # γ/2·‖∇_x D(real)‖², every r1_every steps and weighted by it (StyleGAN2's lazy regularisation)
            (grad,) = torch.autograd.grad(d_real.sum(), real, create_graph=True)
            r1 = grad.float().pow(2).flatten(1).sum(1)
            value = value + (self.cfg.r1 / 2) * self.cfg.r1_every * r1.mean()
        if self.method == "diffusion-gan":
            self._signs += float(torch.sign(d_real.detach()).sum())
            self._sign_n += int(d_real.numel())
        stats = {"d_loss": per.detach(), "d_real": (d_real.detach() > 0).float(),
                 "d_fake": (d_fake.detach() < 0).float()}
        if lazy:
            stats["r1"] = r1.detach()
        if self.method == "diffusion-gan":
            stats["ada_t"] = torch.full_like(per, round(self.ada_t)).detach()
        return Loss(value / accum, per.detach(), stats=stats)

    def gen_loss(self, b: dict, micro: int, accum: int) -> Loss:
        x_t, sig, x0_hat = self._generate(b)
        _, fake, s = self._pairs(b, x_t, sig, x0_hat)
        per = F.softplus(-self._d(fake, s, b["cond"]))
        return Loss(per.mean() / accum, per.detach(), stats={"g_loss": per.detach()})

    def step_done(self, step: int) -> dict:
        """After each step: Diffusion-GAN's adaptive T (every ``ada_every`` steps, from r_d over them). Returns the
        values to log (r_d when T was updated)."""
        cfg = self.cfg
        if self.method != "diffusion-gan" or (step % cfg.ada_every) or not self._sign_n:
            return {}
        signs = torch.tensor([self._signs, float(self._sign_n)], dtype=torch.float64, device=self.loop.acc.device)
        signs = self.loop.acc.reduce(signs, "sum").cpu()
        r_d = float(signs[0] / signs[1])
        move = cfg.batch_size * cfg.ada_every / (cfg.ada_kimg * 1000) * DIFFUSION_TABLE
        self.ada_t = min(max(self.ada_t + math.copysign(move, r_d - cfg.ada_target), cfg.ada_t_min), cfg.ada_t_max)
        self._signs, self._sign_n = 0.0, 0
        return {"r_d": r_d}

    # -- previews and the exported model -----------------------------------------------------------------------------
    @torch.no_grad()
    def sample(self, n: int = 16, steps: int | None = None, seeds=None) -> torch.Tensor:
        """The EMA generator's pictures for the preview conditions: its own T steps of the ``gan`` sampler."""
        dev = self.loop.acc.device
        den = EDMPrecond(self.loop.parts["model"].ema.model, sigma_data=self.cfg.sigma_data)
        seeds = list(range(n)) if seeds is None else list(seeds)
        noise = SampleNoise.from_seeds(seeds)
        cond = {k: v.to(dev) for k, v in self.preview_conditions(len(seeds)).items()}
        x = start(noise, (self.net_config.in_channels, self.cfg.resolution, self.cfg.resolution), self.ladder,
                  device=dev)
        out = sample(make_denoiser(den, cond), x, self.ladder.to(dev), noise, sampler="gan",
                     latent=self.net_config.latent_dim)
        return out.clamp(-1, 1).cpu()

    def model_config(self) -> dict:
        conf = super().model_config()
        conf["method"] = self.method
        conf["gan"] = {"steps": self.T, "latent": self.net_config.latent_dim}
        # the ladder is fixed by the steps; the range recorded is the one painting checks (σ_max its top)
        conf["schedule"] = {"kind": "ddgan", "sigma_min": 0.002, "sigma_max": float(self.ladder[0]), "rho": 7.0,
                            "sampler": "gan", "steps": self.T}
        return conf
