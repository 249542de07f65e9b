"""Training for a time budget (minutes): the plan from the probe, re-plans that follow the measured rate without a
jump in the LR, the end near the budget, the plan in the log, config.json, provenance and checkpoints, and an exact
resume. Time is made deterministic: the trainer reads ``trainer.clock``, and each step advances a fake one."""
import copy
import csv
import json
import math

import pytest
import torch

from noisebrush.errors import UserError
from noisebrush.train import Trainer
from noisebrush.train.budget import PROBE_STEPS, RATE_WINDOW, REPLAN_EVERY, TimeBudget, budget_warmup
from noisebrush.train.checkpoint import list_checkpoints, load_checkpoint
from noisebrush.train.lr import ProgressPlan, shape_at


def _rows(run):
    with open(run / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def _fake_time(trainer, seconds_at):
    """Make ``trainer`` see ``seconds_at(step)`` seconds pass during optimizer step ``step`` (0-based) and none
    anywhere else; returns the LR of every step, as the step used it."""
    now = [1000.0]
    trainer.clock = lambda: now[0]
    real = trainer.train_step
    lrs = []

    def step():
        lrs.append(trainer.opt.param_groups[0]["lr"])
        s = trainer.step
        res = real()
        now[0] += seconds_at(s)
        return res

    trainer.train_step = step
    return lrs


def _faster_after(n, first=2.0, before=0.5, after=0.25):
    """A kernel step of ``first`` s, then ``before`` s a step until step n, then ``after`` (the machine got free)."""
    return lambda s: first if s == 0 else (before if s < n else after)


# -- the plan on its own -------------------------------------------------------------------------------------------

def test_budget_probes_then_plans_then_replans_to_the_measured_rate():
    b = TimeBudget(60.0, ProgressPlan("cosine", final=0.05))
    spent = 0.0
    step_time = _faster_after(40, first=3.0, before=0.5, after=0.25)
    ends = []
    step = 0
    while not b.done(step, spent):
        spent += step_time(step)
        step += 1
        b.tick(step, spent)
        ends.append(b.plan.end)
    assert ends[:PROBE_STEPS - 1] == [None] * (PROBE_STEPS - 1)  # the probe: nothing planned yet
    # the first plan: the probe's timed step (0.5 s) over the rest of the budget, a tenth of it warmup
    first = PROBE_STEPS + round((60.0 - 3.5) / 0.5)
    assert ends[PROBE_STEPS - 1] == first and b.plan.warmup == pytest.approx(budget_warmup(first - 2) / (first - 2))
    # when the steps get faster the plan grows; it ends at its last plan, within half a step of the budget
    assert max(e for e in ends if e) > first and b.replans > 1
    assert step == b.plan.end and abs(spent - 60.0) <= 0.25 + 1e-9
    # the rate is measured over the last fifth of the budget: at the end, only the fast steps
    assert b.rate(step, spent) == pytest.approx(4.0)
    assert all(m[1] >= spent - 2 * RATE_WINDOW * 60.0 for m in b.marks)  # the marks are kept only for the window
    assert b.summary()["planned_steps"] == step and b.summary()["first_plan"] == first


def test_budget_replans_no_more_often_than_every_hundredth_of_it():
    b = TimeBudget(100.0, ProgressPlan("linear", final=0.1))
    calls, spent = [], 0.0
    for step in range(1, 200):
        spent += 0.3 if step % 2 else 0.1  # an uneven machine: every tick could re-plan
        before = b.last_replan
        b.tick(step, spent)
        if b.last_replan != before:
            calls.append(spent)
    gaps = [b - a for a, b in zip(calls, calls[1:])]
    assert len(calls) > 10 and min(gaps) >= REPLAN_EVERY * 100.0 - 1e-9


def test_a_longer_stop_than_the_budget_trains_on_at_the_final_lr():
    """A resumed run told to go past its budget (--resume --minutes, a larger total): the plan ends where the
    budget ends, the run goes on until the new total, and past the plan the LR holds its final value."""
    plan = ProgressPlan("cosine", final=0.05)
    b = TimeBudget(10.0, plan, stop_seconds=15.0)
    spent, step = 0.0, 0
    while not b.done(step, spent):
        spent += 0.5
        step += 1
        b.tick(step, spent)
    assert step == 30 and plan.end == PROBE_STEPS + round((10.0 - 1.0) / 0.5)
    assert plan.factor(step - 1) == pytest.approx(0.05) and plan.progress(step) == 1.0


# -- a run ------------------------------------------------------------------------------------------------------

def test_a_budget_run_fills_its_minutes_and_records_its_plan(make_config, tmp_path):
    assert make_config(minutes=0.25, batch_size=None, steps=None).batch_size == 8  # the budget's batch
    cfg = make_config(minutes=0.25, lr_schedule="cosine", log_every=5, warmup=None, steps=None)
    tr = Trainer(cfg)
    lrs = _fake_time(tr, _faster_after(10))
    rows = []
    model = tr.fit(lambda step, row: rows.append(row))
    b = tr.budget
    # 2 s for the kernel step, 0.5 s a step to step 10, then 0.25 s: the plan grew from 2 + 12.5 / 0.5 = 27 steps
    assert b.summary()["first_plan"] == 27 and b.replans > 1
    assert tr.step == b.plan.end == 10 + round((15.0 - 6.5) / 0.25) and b.spent == pytest.approx(15.0)
    assert lrs[:PROBE_STEPS] == [0.0, 0.0]  # the probe
    warm = b.summary()["warmup_steps"]
    assert warm == budget_warmup(27 - PROBE_STEPS) == 2
    assert lrs[PROBE_STEPS:PROBE_STEPS + warm] == pytest.approx([cfg.lr * (i + 1) / warm for i in range(warm)])
    # the decay: falls at every step, with no jump at the re-plans, to the cosine's end at the last step
    decay = lrs[PROBE_STEPS + warm:]
    assert all(b2 <= a for a, b2 in zip(decay, decay[1:]))
    assert max(a - b2 for a, b2 in zip(decay, decay[1:])) <= cfg.lr * 0.95 * math.pi / 2 / 20
    assert decay[-1] == pytest.approx(cfg.lr * shape_at("cosine", (b.plan.progress(tr.step - 1) - b.plan.warmup)
                                                        / (1 - b.plan.warmup), 0.05))
    assert decay[-1] < cfg.lr * 0.06
    # what the progress callback, the log, config.json, the checkpoint and the model's provenance say
    assert rows[0]["planned"] is None and rows[-1]["planned"] == tr.step and rows[-1]["left"] == 0.0
    assert [r["planned"] for r in _rows(tmp_path / "run")][-1] == str(tr.step)
    assert float(_rows(tmp_path / "run")[0]["left_s"]) == pytest.approx(15.0 - 4.0)  # after 5 steps: 2 + 4 × 0.5
    doc = json.loads((tmp_path / "run" / "config.json").read_text())
    assert doc["train"]["minutes"] == 0.25 and doc["train"]["steps"] is None
    assert doc["plan"]["planned_steps"] == tr.step and doc["plan"]["budget_seconds"] == 15.0
    ck = load_checkpoint(list_checkpoints(tmp_path / "run")[-1][1])
    assert ck["budget"]["lr_plan"]["segments"][-1][2] == tr.step and ck["scheduler"]["count"] == tr.step
    prov = json.loads((model / "config.json").read_text())["provenance"]
    assert prov["minutes"] == 0.25 and prov["plan"]["planned_steps"] == tr.step == prov["steps"]


def test_a_budget_run_resumes_exactly_from_a_checkpoint(make_config, tmp_path):
    """Interrupted after re-plans (Ctrl-C at step 20: the machine got faster at step 10) and resumed in a new
    Trainer: the same plan, LRs, log rows and weights as the run that went through."""
    kw = dict(minutes=0.25, lr_schedule="cosine", log_every=4, warmup=None, steps=None, model=dict(dropout=0.1),
              cond_drop=0.25)
    ref = Trainer(make_config("ref", **kw))
    ref_lrs = _fake_time(ref, _faster_after(10))
    ref.fit()

    tr = Trainer(make_config("run", **kw))
    lrs = _fake_time(tr, _faster_after(10))

    def interrupt(step, row):
        if step == 20:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        tr.fit(interrupt)
    ck = load_checkpoint(list_checkpoints(tmp_path / "run")[-1][1])
    assert ck["step"] == 20 and ck["budget"]["replans"] > 1  # re-planned before the interruption

    again = Trainer(make_config("run", **kw), resume=True)
    assert again.step == 20 and again.budget.plan.segments == ck["budget"]["lr_plan"]["segments"]
    later = _fake_time(again, _faster_after(10))
    again.fit()
    lrs = lrs[:20] + later
    assert again.step == ref.step and again.budget.replans > ck["budget"]["replans"]  # and re-planned after it
    assert again.budget.plan.segments == ref.budget.plan.segments
    assert again.budget.spent == pytest.approx(ref.budget.spent)
    assert lrs == ref_lrs
    rows, ref_rows = _rows(tmp_path / "run"), _rows(tmp_path / "ref")
    assert [r["step"] for r in rows] == [r["step"] for r in ref_rows]
    for r, q in zip(rows, ref_rows):
        assert [r[k] for k in ("step", "loss", "lr", "grad_norm", "planned")] == \
               [q[k] for k in ("step", "loss", "lr", "grad_norm", "planned")]
    for a, b in ((again.net, ref.net), (again.ema.model, ref.ema.model)):
        for (k, x), y in zip(a.state_dict().items(), b.state_dict().values()):
            assert torch.equal(x, y), k


def test_a_run_keeps_its_kind_when_resumed(make_config):
    Trainer(make_config(steps=2)).fit()
    with pytest.raises(UserError, match="planned by steps; resume it with steps"):
        Trainer(make_config(minutes=1.0, steps=None), resume=True)


def test_a_budget_spent_in_the_probe_says_nothing_was_learned(make_config):
    from noisebrush.errors import NoisebrushWarning

    tr = Trainer(make_config(minutes=0.05, steps=None))
    _fake_time(tr, lambda s: 10.0)  # one step is longer than the whole budget of 3 s
    untrained = copy.deepcopy(tr.net)
    untrained.project_()  # what every step does after the optimizer's (EDM2's forced weight normalisation)
    with pytest.warns(NoisebrushWarning, match="ran out while the run was measuring its speed .1 step at LR 0."):
        tr.fit()
    assert tr.step == 1 and tr.budget.plan.end is None
    for (k, v), w in zip(tr.net.state_dict().items(), untrained.state_dict().values()):
        assert torch.allclose(v, w, rtol=1e-6, atol=1e-7), k  # LR 0: the optimizer moved no weight
