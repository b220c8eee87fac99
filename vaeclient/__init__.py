"""Python clients for vaeserve: `VaeClient` (blocking) and `AsyncVaeClient` (asyncio), on httpx and NumPy only
(importable without the server or torch).

Both return NumPy arrays, fetch bulk images as .npy (no JSON float parsing), keep connections pooled, retry 429/503
with exponential backoff that honours Retry-After, and raise VaeServeError carrying the server's message.

    with VaeClient("http://127.0.0.1:8000") as c:
        digits = c.sample(64, seed=1)              # (64, 28, 28) float32
        mu, logvar = c.encode(digits[:4], model="vae-z2")

Every call is described once in vaeclient/calls.py (path, body, what to ask for, how to read the answer); the two
clients are thin shells that send it, each its own way.
"""

from vaeclient.aio import AsyncVaeClient
from vaeclient.calls import VaeServeError
from vaeclient.sync import VaeClient

__all__ = ["AsyncVaeClient", "VaeClient", "VaeServeError"]
