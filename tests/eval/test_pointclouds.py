"""The point-cloud metrics (MMD-CD, COV-CD, 1-NNA-CD) against hand-computed cases."""
import torch
from noisebrush.eval.pointclouds import chamfer, mmd_cov, one_nna, pairwise_chamfer


def test_chamfer_by_hand():
    a = torch.tensor([[0.0, 0, 0], [1, 0, 0]])
    b = torch.tensor([[0.0, 0, 0]])
    # a→b: 0 and 1 (squared), mean 0.5; b→a: 0 → CD 0.5
    assert float(chamfer(a, b)) == 0.5
    assert float(chamfer(b, a)) == 0.5  # symmetric
    assert float(chamfer(a, a)) == 0.0
    c = torch.tensor([[0.0, 2, 0]])
    # a→c: 4 and 5 → 4.5; c→a: min(4, 5) = 4 → 8.5
    assert float(chamfer(a, c)) == 8.5


def test_mmd_cov_and_1nna_by_hand():
    # samples s0, s1; references r0, r1, r2 (CD matrix given directly)
    d_sr = torch.tensor([[1.0, 5, 9], [2, 3, 7]], dtype=torch.float64)
    # MMD: min over samples for each reference: 1, 3, 7 → 11/3
    mmd, cov = mmd_cov(d_sr)
    assert abs(mmd - 11 / 3) < 1e-12
    # each sample's nearest reference: s0 → r0, s1 → r0: one of three covered
    assert cov == 1 / 3
    d_ss = torch.tensor([[0.0, 4], [4, 0]], dtype=torch.float64)
    d_rr = torch.tensor([[0.0, 6, 8], [6, 0, 2], [8, 2, 0]], dtype=torch.float64)
    # nearest (excluding itself): s0 → r0 (1) wrong; s1 → r0 (2) wrong; r0 → s0 (1) wrong; r1 → r2 (2) right;
    # r2 → r1 (2) right → 2/5
    assert one_nna(d_ss, d_sr, d_rr) == 2 / 5


def test_identical_sets_are_inseparable_and_pairwise_matches_chamfer():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(6, 50, 3, generator=g)
    d = pairwise_chamfer(x, x)
    assert torch.allclose(d, d.T) and torch.allclose(d.diagonal(), torch.zeros(6, dtype=torch.float64), atol=1e-12)
    dense = chamfer(x[:, None], x[None])  # the definition, on the dense distance matrix
    assert torch.allclose(d, dense, rtol=0, atol=1e-12)
    far = x + 10
    dsf = pairwise_chamfer(x, far)
    assert one_nna(d, dsf, pairwise_chamfer(far, far)) == 1.0   # trivially separable
