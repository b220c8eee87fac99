"""The autoencoder family of the lecture notes, as one small set of scriptable modules.

Every model exposes the same two methods so training, export and evaluation treat them alike:
  encode(x, labels) -> (mu (B, m), logvar (B, m))   deterministic kinds return logvar = 0
  decode_raw(z, labels) -> (B, 1, 28, 28)           logits ("sigmoid" output) or pixel means ("identity")
Sparse and denoising autoencoders are the deep autoencoder trained differently (see losses.py),
not new classes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from model.nets import PIXELS, make_body
from model.prior import FlowPrior


class LinearAE(nn.Module):
    """x_hat = W_g W_f (x - b) + b: the notes' linear autoencoder with a learned centre b.

    Its minimiser spans the top-m principal subspace, so its MSE should match PCA's at the same m.
    """

    stochastic: bool = False
    output: str = "identity"

    def __init__(self, latent_dim: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = 0
        self.W_f = nn.Linear(PIXELS, latent_dim, bias=False)
        self.W_g = nn.Linear(latent_dim, PIXELS, bias=False)
        self.b = nn.Parameter(torch.zeros(PIXELS))
        # Start W_g W_f as a projection onto a random m-subspace (orthonormal W_f, W_g = W_f^T):
        # nn.Linear's default init makes |W_g| >> |W_f|, and gradient descent then sits at the
        # saddle W_g W_f = 0 for thousands of steps.
        nn.init.orthogonal_(self.W_f.weight)
        with torch.no_grad():
            self.W_g.weight.copy_(self.W_f.weight.T)

    @torch.jit.ignore
    def init_centre(self, mean: torch.Tensor) -> None:
        """Start b at the data mean, as PCA does; else the first code unit is spent on the mean."""
        with torch.no_grad():
            self.b.copy_(mean.flatten())

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.W_f(x.flatten(1) - self.b)  # (B, m)
        return code, torch.zeros_like(code)

    def decode_raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return (self.W_g(z) + self.b).view(-1, 1, 28, 28)


class DeepAE(nn.Module):
    """Nonlinear autoencoder; `nonneg_code` puts a ReLU on the code (the sparse AE's code), and `topk` > 0 keeps
    only the k largest entries of each code, the rest exactly zero (the k-sparse autoencoder, Makhzani & Frey
    2014): an L1 penalty alone shrinks codes but leaves few entries at exactly zero."""

    stochastic: bool = False
    output: str = "sigmoid"

    def __init__(
        self, latent_dim: int, arch: str = "conv", width: int = 64, nonneg_code: bool = False, depth: int = 1,
        topk: int = 0,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = 0
        self.nonneg_code = nonneg_code
        self.topk = topk
        self.body, self.decoder, feats = make_body(arch, latent_dim, width, depth=depth)
        self.head = nn.Linear(feats, latent_dim)

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        code = self.head(self.body(x))  # (B, m)
        if self.nonneg_code:
            code = F.relu(code)
        if self.topk > 0:  # gradients reach the kept entries only, as in the k-sparse autoencoder
            values, index = torch.topk(code, self.topk, dim=1)
            code = torch.zeros_like(code).scatter(1, index, values)
        return code, torch.zeros_like(code)

    def decode_raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(z)


class VAE(nn.Module):
    """Gaussian q(z|x) = N(mu, diag sigma^2), prior N(0, I), Bernoulli p(x|z) (Kingma & Welling 2014).

    With num_classes > 0 it is the conditional VAE: the one-hot label joins the decoder's input, so
    decode(z, y) draws digit y in the style z, and the encoder's input (MLP: appended to the pixels;
    conv: as ten constant planes), so the encoder can take the class out of z from the first layer.
    A label seen only by the encoder's linear head can shift mu by a per-class offset and no more;
    an MLP cvae built that way kept the class in z (its decoder followed the label for 39 % of samples).
    """

    stochastic: bool = True
    output: str = "sigmoid"

    def __init__(self, latent_dim: int, arch: str = "conv", width: int = 64, num_classes: int = 0,
                 depth: int = 1, prior: str = "normal", prior_hidden: int = 128, dropout: float = 0.0,
                 encoder_width: int = 0) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.conv = arch == "conv"
        # prior "flow": p(z) is a RealNVP flow learned with the model (model/prior.py), not N(0, I); "class-flow"
        # (conditional models): p(z | y), a flow that also reads the label, so each class draws its own styles.
        # The scripted methods below never touch it: script() exports it as prior() / prior_log_prob().
        if prior == "class-flow" and not num_classes:
            raise ValueError("prior class-flow is p(z | y): it needs a conditional model (kind cvae)")
        self.prior_flow = None if prior == "normal" else FlowPrior(
            latent_dim, hidden=prior_hidden, num_classes=num_classes if prior == "class-flow" else 0)
        # dropout (MLP): each hidden layer's, in training only; it regularises, the served network is unchanged
        # encoder_width (MLP): sampling and the CAS use the decoder and prior alone, so a narrower encoder leaves
        # room in the same file for a wider decoder
        self.body, self.decoder, feats = make_body(arch, latent_dim + num_classes, width, num_classes, depth, dropout,
                                                   encoder_width)
        self.head = nn.Linear(feats, 2 * latent_dim)

    def _with_labels(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        if self.num_classes == 0:
            return h
        if labels is None:
            raise ValueError("this model is conditional: labels are required")
        return torch.cat([h, F.one_hot(labels.long(), self.num_classes).to(h.dtype)], dim=1)

    def encode(
        self, x: torch.Tensor, labels: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if self.num_classes == 0:
            h = self.body(x)
        elif self.conv:  # one-hot planes beside the image: (B, 1 + classes, 28, 28)
            planes = self._with_labels(x.new_zeros(x.shape[0], 0), labels)[:, :, None, None]
            h = self.body(torch.cat([x, planes.expand(-1, -1, x.shape[2], x.shape[3])], dim=1))
        else:
            h = self.body(self._with_labels(x.flatten(1), labels))
        mu, logvar = self.head(h).chunk(2, dim=1)  # (B, m) each
        return mu, logvar

    def decode_raw(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        return self.decoder(self._with_labels(z, labels))


def reparameterize(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """z = mu + sigma * eps, eps ~ N(0, I): a sample whose gradient flows to mu and logvar."""
    return mu + torch.exp(0.5 * logvar) * torch.randn_like(mu)
