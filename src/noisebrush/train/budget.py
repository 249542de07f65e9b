"""Training for a time budget (``noisebrush train --minutes M``): how many steps fit, planned and re-planned as the
run goes.

A person gives a CPU 5, 20 or 60 minutes, not a step count; how many steps that is depends on the machine, the
network, the batch and what else the machine is doing. So a budget run measures itself:

* **The probe.** The first :data:`PROBE_STEPS` steps run at LR 0 (the first is where oneDNN builds its kernels,
  several times slower than the rest; the second is timed). They are real steps of the data stream and Adam's
  moments already learn the gradients' scale from them, but the optimizer moves no weight: the LR plan does not
  exist yet. (A budget spent before the plan ends the run with a warning: nothing was learned.)
* **The plan.** After the probe the run plans its end: T = s + rate × (budget − spent), with the rate measured
  over the last :data:`RATE_WINDOW` of the budget (from the step after the kernel step while the run is younger),
  so a machine that gets busier or freer mid-run is followed. The LR schedule (:class:`noisebrush.train.lr.
  ProgressPlan`) runs over the planned steps; its warmup is the config's ``warmup`` steps when given, else a tenth
  of the first plan (at most 200 steps, as for a step-count run).
* **Re-planning.** Every :data:`REPLAN_EVERY` of the budget the end is planned again from the rate so far; the LR
  curve bends towards the new end without a jump. The run ends at the planned step, or when the budget is spent,
  whichever comes first.

``spent`` is whatever clock the caller keeps: ``Trainer.fit`` counts the wall time of its loop (steps, logging,
checkpoints, previews; not building the data set and the network before it), the quality bench each side's
training time. Everything the plan depends on (the budget, the segments of the LR plan, the rate's reference
point, when it last re-planned, the time spent) is in :meth:`TimeBudget.state_dict`, saved in every checkpoint:
a resumed run continues the recorded plan, and with the same clock it takes the same decisions.

**Batch size.** A budget run without ``batch_size`` takes :func:`budget_batch` of its minutes, so that a few CPU
minutes are hundreds of updates rather than a few dozen: in issue 19's like-for-like 5-minute race (2 threads,
fp32) batch 64 made 59 steps, all of them in the LR warmup, where diffusers' batch 16 made 214. Measured by that
race at 5 minutes (``bench quality --minutes 5 --n 200 --nfe 20 --threads 2 --precision fp32``, AVX-512 machine):
batch 16 made 285 steps, fd_art 251.9; batch 8 made ~540 at about the same pictures a second, fd_art 239.5 — so
budgets up to 10 minutes take batch 8. The rows above 10 minutes (16, 32, then 64) are not yet confirmed by races
(``--ours-batch``).

**The network and its LR.** A picture diffusion run of up to 10 minutes (starting from no ``init``) trains the
default UNet with one residual block per level instead of two, on 2×2-cell patches folded into channels, without
self-attention (:func:`budget_model`; each only where the run does not name it, the patches only where the
resolution is a multiple of the folded grid's step), at twice the method's peak LR, 2e-2, unless the run gives
``lr`` (:func:`budget_lr`): about a third fewer parameters and over 3× the steps — in a few minutes steps matter
more than capacity and fine detail, and a higher LR gets more out of each step. Measured with the bench's data,
painting and fd_art at n = 200, ours alone, 10 minutes on one thread beside another job (about the steps of 5
minutes on two quiet threads), batch 8 unless said: the default network 599 steps, fd_art 251.4, recall 0; one
block 850 steps, 200.0, recall 0.02 (at batch 4: 1,356 steps, 202.4); patches alone at batch 16 858 steps,
231.4, recall 0.10; one block and patches 1,857 steps, 188.8, recall 0.065.
Then, with one block and patches, ours alone for 5 minutes on two quiet threads (batch 8; about 1,500 steps each;
the full race with lr 1e-2 and attention gave fd_art 227.8): lr 5e-3 264.9, lr 2e-2 201.5 (with EMA 0.99: 202.1),
lr 4e-2 214.2; without self-attention at lr 1e-2 193.3, at lr 2e-2 188.8. The race with all of it (the bench
command above): 1,785 steps, fd_art 172.6 against diffusers' 416.4, 0.41× (``docs/bench/quality-5min-cpu.json``).
"""
from __future__ import annotations

import math

from noisebrush.errors import warn
from noisebrush.train.lr import ProgressPlan

__all__ = ["TimeBudget", "PROBE_STEPS", "REPLAN_EVERY", "RATE_WINDOW", "MAX_MINUTES", "BUDGET_BATCH", "BUDGET_NET",
           "BUDGET_LR", "budget_batch", "budget_model", "budget_lr", "budget_warmup"]

PROBE_STEPS = 2          # steps at LR 0 before the first plan: the kernel step, then a timed one
REPLAN_EVERY = 0.01      # re-plan every time this fraction of the budget has been spent
RATE_WINDOW = 0.2        # the rate is measured over the last this fraction of the budget
MAX_MINUTES = 7 * 24 * 60.0  # a week: the bound on --minutes
# (budget up to this many minutes, batch size); larger budgets: 64, the step-count default
BUDGET_BATCH = ((10.0, 8), (30.0, 16), (120.0, 32))
# (budget up to this many minutes, UNet settings) for a picture diffusion run that does not name them
BUDGET_NET = ((10.0, {"blocks": 1, "patch": 2, "attn_resolutions": []}),)
# (budget up to this many minutes, Adam's peak LR) for the same runs when they give no lr; larger: the method's
BUDGET_LR = ((10.0, 2e-2),)
DEFAULT_WARMUP = 200     # as config.DEFAULT_WARMUP: at most this many warmup steps when none is given


def _by_minutes(table, minutes: float, default):
    """The value of the first ``(up to minutes, value)`` row of ``table`` that ``minutes`` falls under, else
    ``default``."""
    return next((value for upto, value in table if minutes <= upto), default)


def budget_batch(minutes: float) -> int:
    """The batch size a budget of ``minutes`` trains with when none is given."""
    return _by_minutes(BUDGET_BATCH, minutes, 64)


def budget_model(minutes: float) -> dict:
    """The UNet settings a picture diffusion budget of ``minutes`` trains with where the run does not give them."""
    return dict(_by_minutes(BUDGET_NET, minutes, {}))


def budget_lr(minutes: float) -> float | None:
    """The peak LR a picture diffusion budget of ``minutes`` trains with when the run gives none (None: the
    method's default)."""
    return _by_minutes(BUDGET_LR, minutes, None)


def budget_warmup(planned: int) -> int:
    """The warmup steps of a first plan of ``planned`` steps when none is given: a tenth, at most 200."""
    return min(DEFAULT_WARMUP, planned // 10)


class TimeBudget:
    """The step plan of a run with ``seconds`` to spend (see the module docstring).

    Call :meth:`tick` after every optimizer step with the step count and the time spent so far (the same on every
    process of a multi-process run); it (re-)plans when due and returns True when the LR plan changed, so the
    caller re-applies its schedulers' LR. :meth:`done` says when to stop. ``stop_seconds``: where a resumed run
    stops when it was given another budget (default: ``seconds``); the LR plan keeps aiming at ``seconds``, the
    budget it was made for, and holds its final value past it — as a step-count run resumed with more steps.
    """

    def __init__(self, seconds: float, plan: ProgressPlan, *, warmup: int | None = None,
                 stop_seconds: float | None = None):
        self.seconds = float(seconds)
        self.stop_seconds = self.seconds if stop_seconds is None else float(stop_seconds)
        self.plan = plan
        self.warmup = warmup                   # steps; None: budget_warmup of the first plan
        self.spent = 0.0                       # seconds at the last tick
        self.ref: list | None = None           # [step, spent] after the kernel step: the rate's first origin
        self.marks: list[list] = []            # [step, spent] at each (re-)plan within the rate's window
        self.last_replan: float | None = None  # spent at the last (re-)plan
        self.replans = 0

    # -- the rate --------------------------------------------------------------------------------------------------
    def _origin(self, spent: float) -> list | None:
        """Where the rate is measured from: the last mark at least RATE_WINDOW of the budget ago, else ``ref``."""
        origin = self.ref
        for mark in self.marks:
            if mark[1] <= spent - RATE_WINDOW * self.seconds:
                origin = mark
        return origin

    def rate(self, step: int, spent: float) -> float | None:
        """Steps per second over the rate's window (None until one timed step is past its origin)."""
        origin = self._origin(spent)
        if origin is None or step <= origin[0] or spent <= origin[1]:
            return None
        return (step - origin[0]) / (spent - origin[1])

    def _mark(self, step: int, spent: float) -> None:
        origin = self._origin(spent)
        self.marks = [m for m in self.marks if origin is self.ref or m[1] >= origin[1]] + [[int(step), float(spent)]]

    def _end(self, step: int, spent: float, rate: float) -> int:
        return step + max(0, round(rate * (self.seconds - spent)))

    # -- after every step ------------------------------------------------------------------------------------------
    def tick(self, step: int, spent: float) -> bool:
        """Note that ``step`` steps are done after ``spent`` seconds; (re-)plan when due. True: the plan changed."""
        self.spent = float(spent)
        if self.ref is None:
            if step >= 1:
                self.ref = [int(step), float(spent)]
            return False
        rate = self.rate(step, spent)
        if rate is None:
            return False
        if not self.plan.started:
            if step < PROBE_STEPS:
                return False
            end = max(self._end(step, spent, rate), step + 1)
            warmup = budget_warmup(end - step) if self.warmup is None else int(self.warmup)
            if warmup >= end - step:
                short = (end - step) // 2
                warn(f"warmup: {warmup} steps do not fit the {end - step} steps this budget plans; using {short}")
                warmup = short
            self.plan.start(step, end, warmup)
            self.last_replan = self.spent
            self._mark(step, spent)
            self.replans += 1
            return True
        if spent >= self.seconds or spent - self.last_replan < REPLAN_EVERY * self.seconds:
            return False
        self.last_replan = self.spent
        self._mark(step, spent)
        changed = self.plan.replan(step, self._end(step, spent, rate))
        self.replans += int(changed)
        return changed

    def done(self, step: int, spent: float) -> bool:
        """Whether the run should stop now: its time is spent (within half a step), or it reached the planned end
        of a budget it was not told to go past."""
        rate = self.rate(step, spent)
        half = 0.5 / rate if rate else 0.0
        if spent + half >= self.stop_seconds:
            return True
        return self.plan.started and step >= self.plan.end and self.stop_seconds <= self.seconds

    def stop_step(self, step: int) -> int | None:
        """The step the run is expected to stop at: the planned end, or for a resumed run told to go past its
        budget, where the rate so far takes it (None during the probe)."""
        if not self.plan.started:
            return None
        if self.stop_seconds <= self.seconds:
            return self.plan.end
        rate = self.rate(step, self.spent)
        return max(step, self.plan.end) if not rate else step + max(0, round(rate * self.left()))

    def left(self, spent: float | None = None) -> float:
        """Seconds left until the run stops (by its budget)."""
        return max(0.0, self.stop_seconds - (self.spent if spent is None else spent))

    # -- saving ----------------------------------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"budget_seconds": self.seconds, "spent": self.spent, "ref": self.ref, "marks": self.marks,
                "last_replan": self.last_replan, "replans": self.replans, "warmup_given": self.warmup,
                "planned_steps": self.plan.end, "lr_plan": self.plan.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.seconds = float(state["budget_seconds"])
        self.spent = float(state["spent"])
        self.ref = None if state.get("ref") is None else [int(state["ref"][0]), float(state["ref"][1])]
        self.marks = [[int(m[0]), float(m[1])] for m in state.get("marks") or []]
        self.last_replan = None if state.get("last_replan") is None else float(state["last_replan"])
        self.replans = int(state.get("replans", 0))
        self.warmup = state.get("warmup_given")
        self.plan.load_state_dict(state["lr_plan"])

    def summary(self) -> dict:
        """The plan in a few numbers, for logs, provenance and reports."""
        w = self.plan.warmup
        end = self.plan.end
        first = self.plan.segments[0] if self.plan.segments else None
        return {"budget_seconds": self.seconds, "stop_seconds": self.stop_seconds, "spent_seconds": self.spent,
                "planned_steps": end, "first_plan": first[2] if first else None, "replans": self.replans,
                "probe_steps": PROBE_STEPS,
                "warmup_steps": None if first is None else int(math.floor(w * (first[2] - first[0]) + 0.5))}
