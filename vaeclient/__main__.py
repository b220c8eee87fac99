"""python -m vaeclient synth OUT.npz -n N [--model M] [--seed S] [--temperature T]: a synthetic training set.
python -m vaeclient encode IN.npz OUT.npz [--model M]: the codes (mu, logvar) of a data set, labels carried through.

Both resume: started again with the same arguments after a stop, they send only what is still missing.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import httpx

from vaeclient.calls import VaeServeError
from vaeclient.dataset import encode_file
from vaeclient.sync import VaeClient
from vaeclient.synthetic import write_synthetic


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Each default once: none for flags without one (None, False) or whose help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m vaeclient", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("synth", help="write N balanced labelled digits from a conditional model as an MNIST-shaped "
                                     ".npz (x uint8 N x 28 x 28, y int64)",
                       formatter_class=_Help)
    s.add_argument("out", type=Path, help="the .npz to write (chunks wait in OUT.parts/ until it is whole)")
    s.add_argument("-n", type=int, default=60000, help="digits in all, a multiple of 10 (balanced classes)")
    s.add_argument("--model", default=None, help="a conditional model the server has (see /models); default: the "
                                                 "server's default if conditional, else its one conditional model")
    s.add_argument("--seed", type=int, default=0, help="the same seed gives the same set")
    s.add_argument("--temperature", type=float, default=1.0, help="noise scale: lower is cleaner, less varied")
    s.add_argument("--sharpness", type=float, default=1.0,
                   help="pixels pushed toward black and white (1: the means as decoded; from about 6 on, the shipped "
                        "conditional model's digits train a classifier better for real digits, docs/models.md)")
    s.add_argument("--workers", type=int, default=2, help="chunks in flight at once")
    e = sub.add_parser("encode", help="write the codes (mu, logvar) of every digit of a .npy or MNIST-shaped .npz "
                                      "(labels carried through) as an .npz", formatter_class=_Help)
    e.add_argument("input", type=Path, help=".npy of images, or .npz with x (or images) and y (or labels)")
    e.add_argument("out", type=Path, help="the .npz to write (pieces wait in OUT.parts/ until it is whole)")
    e.add_argument("--model", default=None, help="the model whose encoder to use (default: the server's default)")
    for p in (s, e):
        p.add_argument("--url", default=None, help="the server (default: $VAESERVE_URL, else http://127.0.0.1:8000)")
        p.add_argument("--api-key", default=None, help="X-API-Key, if the server asks for one")
        p.add_argument("--restart", action="store_true", help="throw away work begun with other arguments")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
    a = parser.parse_args(argv)
    try:
        with VaeClient(a.url, api_key=a.api_key, timeout=120.0) as client:
            if a.cmd == "encode":
                prov = encode_file(client, a.input, a.out, model=a.model, progress=not a.quiet, restart=a.restart)
                print(f"{a.out}: codes of {prov['n']} digits from {prov['model']} v{prov['version']}")
                return 0
            prov = write_synthetic(client, a.out, a.n, model=a.model, seed=a.seed, temperature=a.temperature,
                                   sharpness=a.sharpness, workers=a.workers, progress=not a.quiet,
                                   restart=a.restart)
    except KeyboardInterrupt:  # what is on disk stays: the same command resumes
        print(f"stopped; run the same command again to resume ({a.out.name}.parts/ keeps what arrived)",
              file=sys.stderr)
        return 130
    except (ValueError, VaeServeError, OSError, httpx.HTTPError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{a.out}: {a.n} digits from {prov['model']} v{prov['version']} (seed {prov['seed']}, temperature "
          f"{prov['temperature']}, sharpness {prov['sharpness']})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
