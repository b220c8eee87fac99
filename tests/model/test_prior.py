"""The learned prior: exact density of the flow, its fit, and evaluation through it."""

from __future__ import annotations

import math
from pathlib import Path

import torch
from torch import nn

from checkpoint import has_prior
from model import ModelSpec, build, script
from model.prior import FlowPrior
from tests.conftest import perturb
from training.evaluate import iwae_nll, neg_elbo
from training.prior import fit_flow_prior


def _perturbed(dim: int, seed: int = 0, num_classes: int = 0) -> FlowPrior:
    torch.manual_seed(seed)
    return perturb(FlowPrior(dim, layers=4, hidden=16, num_classes=num_classes), 0.05).double()


def test_log_prob_is_the_change_of_variables_density() -> None:
    """log p(f(eps)) = log N(eps) - log |det df/deps|, checked against autograd's Jacobian, odd and even m."""
    for dim in (3, 4):
        flow = _perturbed(dim)
        eps = torch.randn(5, dim, dtype=torch.double)
        z = flow.sample(eps)
        for i in range(len(eps)):
            jac = torch.autograd.functional.jacobian(lambda e, f=flow: f.sample(e[None])[0], eps[i])
            expect = -0.5 * (eps[i].pow(2).sum() + dim * math.log(2 * math.pi)) - torch.linalg.slogdet(jac)[1]
            assert abs(flow.log_prob(z[i:i + 1]).item() - expect.item()) < 1e-8


def test_class_conditional_flow_is_a_density_per_class() -> None:
    """p(z | y): the change of variables holds for every label, labels change the samples, and none is refused."""
    flow = _perturbed(4, num_classes=3)
    eps = torch.randn(2, 4, dtype=torch.double)
    for y in range(3):
        labels = torch.full((2,), y)
        z = flow.sample(eps, labels)
        for i in range(2):
            jac = torch.autograd.functional.jacobian(
                lambda e, f=flow, lab=labels[i:i + 1]: f.sample(e[None], lab)[0], eps[i])
            expect = -0.5 * (eps[i].pow(2).sum() + 4 * math.log(2 * math.pi)) - torch.linalg.slogdet(jac)[1]
            assert abs(flow.log_prob(z[i:i + 1], labels[i:i + 1]).item() - expect.item()) < 1e-8
    assert not torch.allclose(flow.sample(eps, torch.zeros(2, dtype=torch.long)),
                              flow.sample(eps, torch.ones(2, dtype=torch.long)))
    try:
        flow.sample(eps)
    except ValueError as exc:
        assert "labels are required" in str(exc)
    else:
        raise AssertionError("a conditional prior sampled without labels")
    plain = _perturbed(4)  # an unconditional flow ignores labels
    assert torch.equal(plain.sample(eps), plain.sample(eps, torch.zeros(2, dtype=torch.long)))


def test_scripted_class_flow_and_old_one_argument_priors() -> None:
    """A cvae with p(z | y) exports prior(eps, labels); checkpoint.latents calls either form."""
    from checkpoint import latents, prior_log_prob, prior_takes_labels

    cvae = build(ModelSpec("cvae", latent_dim=3, arch="mlp", width=16, prior="class-flow", prior_hidden=8))
    ts = script(cvae)
    assert prior_takes_labels(ts)
    eps, labels = torch.randn(4, 3), torch.tensor([0, 1, 2, 3])
    perturb(ts.flow, 0.3)
    with torch.no_grad():
        z = latents(ts, eps, labels)
        assert torch.equal(z, ts.prior(eps, labels)) and prior_log_prob(ts, z, labels).shape == (4,)

    class OldStyle(nn.Module):  # what files exported before labels reached the prior have
        def __init__(self) -> None:
            super().__init__()
            self.flow = _perturbed(3).float()

        @torch.jit.export
        def prior(self, eps: torch.Tensor) -> torch.Tensor:
            return self.flow.sample(eps)

        @torch.jit.export
        def prior_log_prob(self, z: torch.Tensor) -> torch.Tensor:
            return self.flow.log_prob(z)

    old = torch.jit.script(OldStyle())
    assert not prior_takes_labels(old)
    assert torch.equal(latents(old, eps, labels), old.prior(eps))
    try:
        build(ModelSpec("vae", latent_dim=3, arch="mlp", width=16, prior="class-flow"))
    except ValueError as exc:
        assert "conditional" in str(exc)
    else:
        raise AssertionError("an unconditional VAE took a class-conditional prior")


def test_fresh_flow_is_the_standard_normal() -> None:
    flow = FlowPrior(6)
    eps = torch.randn(10, 6)
    torch.testing.assert_close(flow.sample(eps), eps)
    torch.testing.assert_close(flow.log_prob(eps), -0.5 * (eps.pow(2) + math.log(2 * math.pi)).sum(1))


class _TwoClusters(nn.Module):
    """A stand-in encoder whose codes sit in two tight clusters at +-2 on the first axis."""

    def encode(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        sign = torch.where(x.flatten(1)[:, 0] > 0.5, 1.0, -1.0)
        mu = torch.zeros(len(x), 2)
        mu[:, 0] = 2 * sign
        return mu, torch.full_like(mu, math.log(0.3 ** 2))


def test_fit_raises_heldout_likelihood_over_the_normal_prior() -> None:
    x = torch.rand(4000, 1, 28, 28)
    flow, figures = fit_flow_prior(_TwoClusters(), x, epochs=15, batch_size=256, holdout=500)
    assert figures["prior_heldout_logp_flow"] > figures["prior_heldout_logp_normal"] + 0.5
    samples = flow.sample(torch.randn(2000, 2)).detach()
    # most samples land near a cluster, not in the gap between them that N(0, I) fills
    assert (samples[:, 0].abs() > 1.0).float().mean() > 0.8


def test_scripted_prior_and_the_bounds_through_it(tmp_path: Path) -> None:
    spec = ModelSpec("vae", latent_dim=3, arch="mlp", width=16, depth=2)
    torch.manual_seed(0)
    model = build(spec).eval()
    plain, with_identity = script(model), script(model, FlowPrior(3))
    assert not has_prior(plain) and has_prior(with_identity)
    x = torch.rand(20, 1, 28, 28)
    # An untrained flow is N(0, I): the bounds through prior_log_prob equal the closed-form ones.
    for fn in (lambda ts: iwae_nll(ts, x, None, 20), lambda ts: neg_elbo(ts, x, None)):
        torch.manual_seed(3)
        a = fn(plain)
        torch.manual_seed(3)
        b = fn(with_identity)
        assert abs(a - b) < 1e-3 * abs(a)
    # A different prior changes the bound (it is really used).
    torch.manual_seed(3)
    other = iwae_nll(script(model, _perturbed(3).float()), x, None, 20)
    torch.manual_seed(3)
    assert abs(other - iwae_nll(plain, x, None, 20)) > 1e-3


def test_a_prior_learned_with_the_model_is_exported_once_and_trains() -> None:
    spec = ModelSpec("vae", latent_dim=3, arch="mlp", width=16, depth=2, prior="flow")
    torch.manual_seed(0)
    model = build(spec)
    assert model.prior_flow is not None
    from model import objective

    x = torch.rand(64, 1, 28, 28)
    before = model.prior_flow.w3.detach().clone()
    loss, parts = objective(model, spec, x)
    loss.backward()
    torch.optim.SGD(model.parameters(), lr=0.1).step()
    assert not torch.equal(model.prior_flow.w3, before)  # the KL term reaches the prior's weights
    ts = script(model)
    assert has_prior(ts) and model.prior_flow is not None  # the model itself keeps its flow
    keys = list(ts.state_dict())
    assert any(k.startswith("flow.") for k in keys) and not any("prior_flow" in k for k in keys)
    eps = torch.randn(5, 3)
    torch.testing.assert_close(ts.prior(eps), model.prior_flow.sample(eps))
