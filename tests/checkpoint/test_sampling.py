"""checkpoint/sampling.py's sharpen: the pixel rule /sample's `sharpness` applies and the CAS measures with."""

from __future__ import annotations

import torch

from checkpoint.sampling import sharpen


def test_sharpen_pushes_pixels_to_the_side_they_lean_to() -> None:
    p = torch.tensor([0.0, 0.01, 0.2, 0.5, 0.8, 0.99, 1.0])
    assert sharpen(p, 1.0) is p  # the means as decoded, untouched
    for s in (2.0, 6.0):
        q = sharpen(p, s)
        closed = p.clamp(1e-6, 1 - 1e-6).double()
        torch.testing.assert_close(q.double(), closed**s / (closed**s + (1 - closed) ** s), atol=1e-6, rtol=1e-5)
        c = closed.float()  # 0 and 1 are kept 1e-6 inside first (their logit), and come out within 1e-6 of themselves
        assert torch.all(q[p < 0.5] <= c[p < 0.5]) and torch.all(q[p > 0.5] >= c[p > 0.5])  # toward 0 and 1
        assert q[0].item() < 1e-6 and q[-1].item() > 1 - 1e-6
        assert abs(q[3].item() - 0.5) < 1e-6 and torch.all(q[1:] >= q[:-1])  # 0.5 stays; the order stays
    assert torch.all((sharpen(p, 0.5) - 0.5).abs() <= (p - 0.5).abs())  # below 1 it softens
