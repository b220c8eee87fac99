"""The notes' objectives: closed-form KL against Monte Carlo, the linear AE against PCA."""

from __future__ import annotations

import torch

from model import ModelSpec, build, objective
from model.losses import kl_to_standard_normal, log_diag_normal, log_standard_normal


def test_closed_form_kl_matches_monte_carlo() -> None:
    torch.manual_seed(0)
    mu = torch.randn(4, 6)
    logvar = torch.randn(4, 6) * 0.5
    z = mu + torch.exp(0.5 * logvar) * torch.randn(200_000, 4, 6)  # samples of q
    mc = (log_diag_normal(z, mu, logvar) - log_standard_normal(z)).mean(0)  # E_q[log q - log p]
    torch.testing.assert_close(kl_to_standard_normal(mu, logvar), mc, rtol=0.02, atol=0.02)


def test_kl_is_zero_at_the_prior() -> None:
    assert torch.all(kl_to_standard_normal(torch.zeros(3, 5), torch.zeros(3, 5)) == 0)


def test_linear_ae_finds_the_pca_subspace() -> None:
    """On rank-3 data plus small noise, the trained linear AE spans PCA's top-3 subspace."""
    torch.manual_seed(0)
    basis = torch.linalg.qr(torch.randn(784, 3))[0]  # (784, 3) orthonormal
    coeffs = torch.randn(256, 3) * torch.tensor([3.0, 2.0, 1.0])
    x = (0.5 + 0.3 * (coeffs @ basis.T) + 0.003 * torch.randn(256, 784)).view(-1, 1, 28, 28)
    spec = ModelSpec("linear-ae", latent_dim=3)
    model = build(spec)
    model.init_centre(x.mean(0))  # as the training loop does
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(600):
        loss, _ = objective(model, spec, x)
        opt.zero_grad()
        loss.backward()
        opt.step()
    w = model.W_g.weight.detach()  # (784, 3): the decoder's column space
    q = torch.linalg.qr(w)[0]
    # principal angles between the learned subspace and PCA's: all cosines close to 1
    cosines = torch.linalg.svdvals(q.T @ basis)
    assert float(cosines.min()) > 0.99


def test_a_few_steps_lower_the_loss() -> None:
    torch.manual_seed(0)
    x = (torch.rand(8, 1, 28, 28) > 0.7).float().repeat(8, 1, 1, 1)  # 8 binary images to fit
    for kind in ("vae", "deep-ae", "sparse-ae", "denoising-ae"):
        spec = ModelSpec(kind, latent_dim=4, width=16)
        model = build(spec)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        first = objective(model, spec, x)[0].item()
        for _ in range(30):
            loss, _ = objective(model, spec, x)
            opt.zero_grad()
            loss.backward()
            opt.step()
        assert objective(model, spec, x)[0].item() < 0.9 * first, kind


def test_the_importance_weighted_bound_is_tighter_than_the_elbo_and_equal_at_one_sample() -> None:
    """--iwae-k: with one sample the IWAE bound is the ELBO (same noise, same number); with k samples its
    expectation is never looser (Burda et al. 2016), here by a margin Monte Carlo noise cannot close.
    A fresh flow-prior VAE on random pixels has a wide posterior, where the gap is large."""
    x = torch.rand(64, 1, 28, 28)
    for prior in ("normal", "flow"):
        spec = ModelSpec("vae", latent_dim=8, arch="mlp", width=32, prior=prior, prior_hidden=16)
        torch.manual_seed(0)
        model = build(spec).eval()
        with torch.no_grad():
            torch.manual_seed(1)
            elbo, _ = objective(model, spec, x)
            torch.manual_seed(1)
            one, _ = objective(model, ModelSpec(**{**spec.__dict__, "iwae_k": 1}), x)
            bound = [objective(model, ModelSpec(**{**spec.__dict__, "iwae_k": 64}), x)[0] for _ in range(4)]
            elbos = [objective(model, spec, x)[0] for _ in range(4)]
        assert one == elbo
        assert torch.stack(bound).mean() < torch.stack(elbos).mean() - 0.5


def test_the_importance_weighted_bound_trains_a_conditional_vae() -> None:
    spec = ModelSpec("cvae", latent_dim=4, arch="mlp", width=32, prior="class-flow", prior_hidden=16, iwae_k=3)
    torch.manual_seed(0)
    model = build(spec)
    loss, parts = objective(model, spec, torch.rand(8, 1, 28, 28), torch.arange(8) % 10)
    loss.backward()
    assert torch.isfinite(loss) and set(parts) == {"rec", "kl"}
    assert all(p.grad is not None for p in model.parameters() if p.requires_grad)
