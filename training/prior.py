"""Stage two of a VAE with a learned prior: fit model/prior.py's flow to the aggregate posterior.

The encoder and decoder are frozen; the flow maximises log p(z) over codes z ~ q(z|x) of the training
images, fresh draws every epoch. That maximises the ELBO's only term that depends on the prior,
E_x E_q(z|x)[log p(z)], so the served model's ELBO and NLL can only improve on the N(0, I) model's.
The last `holdout` training images are kept out of the fit and choose the epoch to keep.
"""

from __future__ import annotations

import copy
import logging
import time

import torch
from torch import nn

from model.losses import log_standard_normal
from model.prior import FlowPrior

log = logging.getLogger(__name__)


@torch.no_grad()
def posterior_stats(model: nn.Module, x: torch.Tensor, bs: int = 2000) -> tuple[torch.Tensor, torch.Tensor]:
    """mu, sigma of q(z|x) for every image of x (N, 1, 28, 28)."""
    model.eval()
    mus, sigmas = [], []
    for i in range(0, len(x), bs):
        mu, logvar = model.encode(x[i:i + bs], None)
        mus.append(mu)
        sigmas.append(torch.exp(0.5 * logvar))
    return torch.cat(mus), torch.cat(sigmas)


def fit_flow_prior(model: nn.Module, x_train: torch.Tensor, epochs: int = 40, batch_size: int = 512,
                   lr: float = 2e-3, holdout: int = 5000, layers: int = 8, hidden: int = 128,
                   seed: int = 0) -> tuple[FlowPrior, dict[str, float]]:
    """The fitted flow and its figures: held-out E[log p(z)] under N(0, I) and under the flow (nats/image)."""
    started = time.perf_counter()
    holdout = min(holdout, len(x_train) // 10)  # smoke runs on a few images keep a tenth out
    gen = torch.Generator(x_train.device).manual_seed(seed)
    mu, sigma = posterior_stats(model, x_train)
    fit_mu, fit_sigma = mu[:-holdout], sigma[:-holdout]
    # Held-out codes: a fixed draw, so epochs compare on the same sample.
    held = mu[-holdout:] + sigma[-holdout:] * torch.randn(mu[-holdout:].shape, generator=gen, device=mu.device)
    flow = FlowPrior(mu.shape[1], layers, hidden).to(x_train.device)
    opt = torch.optim.Adam(flow.parameters(), lr=lr)
    steps = max(1, len(fit_mu) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs * steps, eta_min=lr / 50)
    with torch.no_grad():
        normal = log_standard_normal(held).mean().item()
    best, best_state = -float("inf"), copy.deepcopy(flow.state_dict())
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(fit_mu), generator=gen, device=fit_mu.device)
        for s in range(steps):
            idx = order[s * batch_size:(s + 1) * batch_size]
            z = fit_mu[idx] + fit_sigma[idx] * torch.randn(fit_mu[idx].shape, generator=gen, device=fit_mu.device)
            loss = -flow.log_prob(z).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
        with torch.no_grad():
            score = flow.log_prob(held).mean().item()
        log.info("prior epoch %d: held-out E log p(z) %.3f (N(0, I): %.3f)", epoch, score, normal)
        if score > best:
            best, best_state = score, copy.deepcopy(flow.state_dict())
    flow.load_state_dict(best_state)
    flow.eval()
    return flow, {"prior_heldout_logp_normal": round(normal, 4), "prior_heldout_logp_flow": round(best, 4),
                  "prior_fit_seconds": round(time.perf_counter() - started, 1)}
