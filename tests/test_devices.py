"""What the CPU offers (noisebrush.devices.cpu_features, emulated): read from /proc/cpuinfo and oneDNN, recorded with
models and benchmark reports, asked before a benchmark times a dtype."""
import torch

from noisebrush import devices

AVX2_ONLY = """processor\t: 0
model name\t: Some CPU @ 2.0GHz
flags\t\t: fpu sse2 avx avx2 fma bmi2
"""
SAPPHIRE = """processor\t: 0
model name\t: Big CPU
flags\t\t: avx2 fma avx512f avx512_bf16 avx512_fp16 amx_tile amx_bf16 amx_int8
"""


def test_flags_come_from_cpuinfo(tmp_path):
    f = tmp_path / "cpuinfo"
    f.write_text(AVX2_ONLY)
    got = devices.cpu_features(str(f))
    assert got["model"] == "Some CPU @ 2.0GHz" and got["flags"] == ["avx2", "fma"]
    assert got["bf16_native"] == devices.cpu_bf16_fast()  # the one answer precision choices follow
    f.write_text(SAPPHIRE)
    assert devices.cpu_features(str(f))["flags"] == list(devices.CPU_FLAGS)


def test_an_unreadable_cpuinfo_gives_no_flags_but_a_model(tmp_path):
    got = devices.cpu_features(str(tmp_path / "missing"))
    assert got["flags"] is None and got["model"]


def test_emulated_follows_the_bf16_probe(monkeypatch):
    for native in (True, False):
        monkeypatch.setattr(devices, "cpu_bf16_fast", lambda: native)
        assert devices.emulated(torch.bfloat16) is (not native)
        assert devices.emulated(torch.float32) is False and devices.emulated(torch.float64) is False
        assert devices.emulated(torch.bfloat16, "cuda") is False  # a GPU runs bf16 natively
    assert devices.emulated(torch.float16) in (True, False)
