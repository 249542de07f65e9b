"""The fine-tuning defaults, in a module of their own so the command line can show them in its help without
importing torch (``noisebrush --help`` stays fast); :mod:`noisebrush.workflows.finetune` uses them.

Steps and learning rate per mode when not given: a few CPU minutes on the built-in model for ~20 pictures. Full
fine-tuning moves unit-RMS weights (lr ≈ relative change per Adam step); LoRA's B starts at 0 and needs bigger steps
to matter. Chosen with ``python -m noisebrush.bench finetune`` (see its docstring).
"""
DEFAULTS = {"full": {"steps": 250, "lr": 2.5e-3}, "lora": {"steps": 250, "lr": 1.5e-2}}
