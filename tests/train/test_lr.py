"""LR schedules: the real torch schedulers from make_scheduler against hand-computed values."""
import json
import math

import pytest
import torch

from noisebrush.errors import BadParameter
from noisebrush.train.lr import LR_SCHEDULES, expected_lr, make_scheduler, shape_at


def _optimizer(base=1.0):
    a, b = torch.nn.Parameter(torch.zeros(2)), torch.nn.Parameter(torch.zeros(3, 3))
    return torch.optim.SGD([{"params": [a]}, {"params": [b], "weight_decay": 0.0}], lr=base)


def _lrs(kind, total, warmup, final, base=1.0, n=None):
    """LR that the optimizer holds at steps 0 … n-1, stepping the real scheduler after each (as the trainer does)."""
    opt = _optimizer(base)
    sched = make_scheduler(opt, kind, total, warmup=warmup, final=final)
    out = []
    for _ in range(total if n is None else n):
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] == lrs[1]  # every parameter group follows the schedule
        out.append(lrs[0])
        opt.step()
        sched.step()
    return out


# Hand-computed: base 1.0, steps 10, warmup 4, final 0.1.
#   warmup s = 0..3:  lr = (s+1)/4                     → 0.25, 0.5, 0.75, 1.0
#   then k = s - 4 over m = 10 - 4 = 6 steps:
#   constant          1.0
#   linear            1 + (0.1 - 1)·k/6 = 1 - 0.15k    → s=4: 1.0, s=7: 0.55, s=9: 0.25
#   exponential       0.1^(k/6)                       → s=7: 0.1^0.5 = 0.316227766…, s=9: 0.1^(5/6) = 0.146779926…
#   cosine            0.1 + 0.9·(1 + cos(πk/6))/2      → s=5: 0.1 + 0.45·(1 + √3/2) = 0.939711431…
#                                                        s=7: 0.1 + 0.45·(1 + 0) = 0.55
#                                                        s=9: 0.1 + 0.45·(1 - √3/2) = 0.160288568…
WARM = {
    #               s=0   s=1  s=3 (w-1) s=4 (w)  s=5                    s=7 (mid)             s=9 (last)
    "constant":    [0.25, 0.5, 1.0,      1.0,     1.0,                   1.0,                  1.0],
    "linear":      [0.25, 0.5, 1.0,      1.0,     0.85,                  0.55,                 0.25],
    "exponential": [0.25, 0.5, 1.0,      1.0,     0.6812920690579612,    0.31622776601683794,  0.14677992676220694],
    "cosine":      [0.25, 0.5, 1.0,      1.0,     0.9397114317029974,    0.55,                 0.16028856829700258],
}
WARM_STEPS = [0, 1, 3, 4, 5, 7, 9]

# Hand-computed: base 1.0, steps 10, no warmup, final 0.1 (k = s, m = 10):
#   linear       1 - 0.09·s                → s=1: 0.91, s=5: 0.55, s=9: 0.19
#   exponential  0.1^(s/10)                → s=1: 0.794328234…, s=5: 0.316227766…, s=9: 0.125892541…
#   cosine       0.1 + 0.45·(1 + cos(πs/10)) → s=1: 0.1 + 0.45·(1 + cos 18°) = 0.977975432…, s=5: 0.55,
#                                             s=9: 0.1 + 0.45·(1 - cos 18°) = 0.122024567…
COLD = {
    #               s=0  s=1                  s=5                   s=9 (last)
    "constant":    [1.0, 1.0,                 1.0,                  1.0],
    "linear":      [1.0, 0.91,                0.55,                 0.19],
    "exponential": [1.0, 0.7943282347242815,  0.31622776601683794,  0.12589254117941673],
    "cosine":      [1.0, 0.9779754323328191,  0.55,                 0.12202456766718093],
}
COLD_STEPS = [0, 1, 5, 9]


def test_hand_computed_numbers_are_what_the_comments_say():
    # the literal tables above, recomputed from the formulas in their comments
    assert WARM["exponential"][4] == pytest.approx(0.1 ** (1 / 6), rel=1e-15)
    assert WARM["exponential"][5] == pytest.approx(math.sqrt(0.1), rel=1e-15)
    assert WARM["cosine"][4] == pytest.approx(0.1 + 0.45 * (1 + math.sqrt(3) / 2), rel=1e-15)
    assert WARM["cosine"][6] == pytest.approx(0.1 + 0.45 * (1 - math.sqrt(3) / 2), rel=1e-15)
    assert COLD["cosine"][1] == pytest.approx(0.1 + 0.45 * (1 + math.cos(math.pi / 10)), rel=1e-15)


@pytest.mark.parametrize("kind", LR_SCHEDULES)
def test_with_warmup_hand_computed(kind):
    lrs = _lrs(kind, 10, 4, 0.1)
    got = [lrs[s] for s in WARM_STEPS]
    assert got == pytest.approx(WARM[kind], rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("kind", LR_SCHEDULES)
def test_without_warmup_hand_computed(kind):
    lrs = _lrs(kind, 10, 0, 0.1)
    got = [lrs[s] for s in COLD_STEPS]
    assert got == pytest.approx(COLD[kind], rel=1e-9, abs=1e-12)


def test_base_lr_scales_every_schedule():
    for kind in LR_SCHEDULES:
        assert _lrs(kind, 10, 4, 0.1, base=2e-3) == pytest.approx([2e-3 * v for v in _lrs(kind, 10, 4, 0.1)],
                                                                 rel=1e-9)


@pytest.mark.parametrize("kind", LR_SCHEDULES)
@pytest.mark.parametrize("total,warmup,final", [(10, 0, 0.1), (10, 1, 0.1), (10, 2, 0.1), (10, 4, 0.1),
                                                (37, 5, 0.05), (37, 0, 1.0), (5, 4, 0.5)])
def test_expected_lr_agrees_with_the_torch_scheduler_everywhere(kind, total, warmup, final):
    base = 3e-3
    if kind != "exponential" or final > 0:
        got = _lrs(kind, total, warmup, final, base=base)
        want = [expected_lr(kind, s, total, base=base, warmup=warmup, final=final) for s in range(total)]
        assert got == pytest.approx(want, rel=1e-9, abs=1e-15)


@pytest.mark.parametrize("kind", ["linear", "cosine"])
def test_final_zero_allowed_for_linear_and_cosine(kind):
    lrs = _lrs(kind, 10, 0, 0.0)
    # the last step (s = 9) is one step short of the end: linear 1 - 9/10, cosine (1 + cos(0.9π))/2
    last = 0.1 if kind == "linear" else (1 + math.cos(0.9 * math.pi)) / 2
    assert lrs[0] == 1.0 and lrs[-1] == pytest.approx(last, rel=1e-9)
    assert all(a >= b for a, b in zip(lrs, lrs[1:]))


@pytest.mark.parametrize("args, name", [
    (("bogus", 10, 0, 0.1), "lr_schedule"),
    (("linear", 0, 0, 0.1), "steps"),
    (("linear", 10, -1, 0.1), "warmup"),
    (("linear", 10, 10, 0.1), "warmup"),
    (("cosine", 10, 11, 0.1), "warmup"),
    (("linear", 10, 0, 1.5), "lr_final"),
    (("cosine", 10, 0, -0.1), "lr_final"),
    (("exponential", 10, 0, 0.0), "lr_final"),
])
def test_bad_arguments(args, name):
    kind, total, warmup, final = args
    with pytest.raises(BadParameter, match=name):
        make_scheduler(_optimizer(), kind, total, warmup=warmup, final=final)
    with pytest.raises(BadParameter, match=name):
        expected_lr(kind, 0, total, base=1.0, warmup=warmup, final=final)


@pytest.mark.parametrize("kind", LR_SCHEDULES)
@pytest.mark.parametrize("warmup, cut", [(0, 3), (4, 2), (4, 4), (4, 7)])
def test_state_dict_round_trips_through_json(kind, warmup, cut):
    total = 12
    opt = _optimizer(0.5)
    sched = make_scheduler(opt, kind, total, warmup=warmup, final=0.1)
    for _ in range(cut):
        opt.step()
        sched.step()
    text_s = json.dumps(sched.state_dict())
    text_o = json.dumps(opt.state_dict())

    # a fresh optimizer and scheduler, restored the way the trainer does it (scheduler, then optimizer)
    opt2 = _optimizer(0.5)
    sched2 = make_scheduler(opt2, kind, total, warmup=warmup, final=0.1)
    sched2.load_state_dict(json.loads(text_s))
    opt2.load_state_dict(json.loads(text_o))

    def rest(o, s):
        out = []
        for _ in range(cut, total):
            out.append([g["lr"] for g in o.param_groups])
            o.step()
            s.step()
        return out

    assert rest(opt2, sched2) == rest(opt, sched)  # bit-identical continuation
    assert sched2.state_dict() == sched.state_dict()


# -- the plan of a time budget (noisebrush train --minutes) ------------------------------------------------------------

def _planned_lrs(plan, n, base=1.0, replans=()):
    """LRs a PlannedLR gives steps 0 … n-1; ``replans``: {step: new end}, applied after that many steps."""
    from noisebrush.train.lr import PlannedLR

    opt = _optimizer(base)
    sched = PlannedLR(opt, plan)
    replans = dict(replans)
    out = []
    for s in range(n):
        if s in replans:
            plan.replan(s, replans[s])
            sched.apply()
        lrs = [g["lr"] for g in opt.param_groups]
        assert lrs[0] == lrs[1]
        out.append(lrs[0])
        sched.step()
    return out


@pytest.mark.parametrize("kind", LR_SCHEDULES)
@pytest.mark.parametrize("start, total, warmup", [(0, 40, 4), (2, 30, 3), (2, 12, 0)])
def test_an_unchanged_plan_is_the_step_schedule(kind, start, total, warmup):
    """Planned once at step ``start``, the plan gives expected_lr of a run of total − start steps shifted by start
    (LR 0 before it, the probe), and holds the final value past its end."""
    from noisebrush.train.lr import ProgressPlan

    plan = ProgressPlan(kind, final=0.1)
    plan.start(start, total, warmup)
    lrs = _planned_lrs(plan, total + 5, base=2.0)
    assert lrs[:start] == [0.0] * start
    want = [expected_lr(kind, s, total - start, base=2.0, warmup=warmup, final=0.1) for s in range(total - start)]
    assert lrs[start:total] == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert lrs[total:] == pytest.approx([lrs[total - 1] if kind == "constant" else 2.0 * 0.1] * 5)


@pytest.mark.parametrize("kind", ["linear", "exponential", "cosine"])
@pytest.mark.parametrize("new_end", [60, 140])
def test_a_replan_bends_the_curve_without_a_jump(kind, new_end):
    """Re-planned in the decay (at step 40 of a 100-step plan, to end at 60 or 140): the step at the re-plan gets
    exactly the LR the old plan gave it, the curve falls monotonically to the final LR at the new end, and no step
    moves more than the steepest step of a plan of the shorter length would. A naive re-plan (the schedule
    recomputed for the new total) jumps."""
    from noisebrush.train.lr import ProgressPlan

    plan = ProgressPlan(kind, final=0.05)
    plan.start(0, 100, 10)
    base_plan = ProgressPlan(kind, final=0.05)
    base_plan.start(0, 100, 10)
    before = _planned_lrs(base_plan, 100)
    lrs = _planned_lrs(plan, new_end + 3, replans={40: new_end})
    assert lrs[:41] == before[:41]  # up to and including the step at the re-plan
    assert all(b <= a + 1e-15 for a, b in zip(lrs[10:], lrs[11:]))  # the decay only falls
    # the last planned step: progress 0.4 at the re-plan, then 0.6 spread over the new_end - 40 steps left
    u = 0.4 + (new_end - 41) * 0.6 / (new_end - 40)
    assert lrs[new_end - 1] == pytest.approx(shape_at(kind, (u - 0.1) / 0.9, 0.05), rel=1e-9)
    assert lrs[new_end:] == pytest.approx([0.05] * 3)
    # Lipschitz in the progress: no step moves more than the shape's steepest slope times the largest progress
    # step (0.6 / (new_end - 40) after the re-plan, 0.01 before), in the decay's own units (/ 0.9)
    steps = [abs(b - a) for a, b in zip(lrs[10:], lrs[11:])]
    slope = {"linear": 0.95, "cosine": 0.95 * math.pi / 2, "exponential": -math.log(0.05)}[kind]
    assert max(steps) <= slope * max(0.01, 0.6 / (new_end - 40)) / 0.9 + 1e-12
    naive = expected_lr(kind, 41, new_end, base=1.0, warmup=10, final=0.05)
    assert abs(naive - lrs[41]) > 3 * max(steps)  # what re-planning the schedule itself would do at 41


def test_a_replan_in_the_warmup_keeps_the_warmup_fraction():
    from noisebrush.train.lr import ProgressPlan

    plan = ProgressPlan("cosine", final=0.05)
    plan.start(0, 100, 10)  # warmup: the first tenth of the run
    lrs = _planned_lrs(plan, 200, replans={5: 200})
    assert lrs[:5] == pytest.approx([0.1, 0.2, 0.3, 0.4, 0.5])
    # from progress 0.05 at step 5, 0.95 over 195 steps: the warmup (to progress 0.1) ends 10.26 steps later
    assert all(b > a for a, b in zip(lrs[:14], lrs[1:15]))  # still rising, more slowly
    assert lrs[14] == pytest.approx((0.05 + 10 * 0.95 / 195) / 0.1) and lrs[15] == pytest.approx(1.0, abs=1e-3)
    assert max(abs(b - a) for a, b in zip(lrs[:20], lrs[1:21])) <= 0.1 + 1e-12


def test_plan_state_round_trips_through_json():
    from noisebrush.train.lr import PlannedLR, ProgressPlan

    plan = ProgressPlan("cosine", final=0.05)
    plan.start(2, 50, 5)
    plan.replan(20, 61)
    plan.replan(33, 58)
    opt = _optimizer(3.0)
    sched = PlannedLR(opt, plan)
    for _ in range(37):
        sched.step()
    saved = json.loads(json.dumps({"plan": plan.state_dict(), "sched": sched.state_dict()}))
    again = ProgressPlan("linear", final=0.5)
    again.load_state_dict(saved["plan"])
    opt2 = _optimizer(3.0)
    sched2 = PlannedLR(opt2, again)
    sched2.load_state_dict(saved["sched"])
    for _ in range(30):
        assert opt2.param_groups[0]["lr"] == opt.param_groups[0]["lr"]
        sched.step()
        sched2.step()
    assert again.end == 58 and again.segments == plan.segments


def test_plan_refuses_a_warmup_that_does_not_fit():
    from noisebrush.train.lr import ProgressPlan

    with pytest.raises(BadParameter, match="warmup"):
        ProgressPlan("cosine", final=0.05).start(2, 10, 8)
