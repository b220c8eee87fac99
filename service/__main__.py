"""python -m service: serve the model repository over HTTP and gRPC (every setting a VAESERVE_* variable and a flag;
`--help` lists them). One process (service/server.py), or with `--workers N` several sharing the ports
(service/workers.py)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from service.startup import BadSettings, load_settings

    args = sys.argv[1:] if argv is None else argv
    try:
        s = load_settings(args)
    except BadSettings as bad:
        print(bad.message, file=sys.stderr)
        return 2
    if s.workers > 1:
        from service.logs import configure
        from service.workers import serve

        configure(s.log_level)
        return serve(args, s.workers, s.host, s.port)
    from service.server import run_one

    return run_one(args)


if __name__ == "__main__":
    sys.exit(main())
