"""The training CLI end to end on tiny IDX data: train -> export -> evaluate, Ctrl-C, and DDP."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from checkpoint import read_meta, read_metrics
from training.__main__ import main

ROOT = Path(__file__).resolve().parents[2]


def _train_args(idx_dir: Path, tmp: Path, *extra: str) -> list[str]:
    return ["train", "--idx-dir", str(idx_dir), "--runs-dir", str(tmp / "runs"), "--repository",
            str(tmp / "repo"), "--device", "cpu", "--batch-size", "32", "--width", "16", *extra]


@pytest.mark.parametrize("kind", ["vae", "linear-ae", "sparse-ae", "denoising-ae"])
def test_train_export_evaluate(kind: str, idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(_train_args(idx_dir, tmp_path, "--kind", kind, "--latent-dim", "3", "--epochs", "2")) == 0
    ckpt = tmp_path / "repo" / f"{kind}-z3" / "1" / "model.ts"
    run = tmp_path / "runs" / f"{kind}-z3"
    lines = [json.loads(s) for s in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["epoch"] for m in lines] == [1, 2]
    assert (run / "reconstructions.png").exists() and (run / "samples.png").exists() == (kind == "vae")
    capsys.readouterr()
    before = ckpt.stat().st_mtime_ns
    assert main(["evaluate", str(ckpt), "--idx-dir", str(idx_dir), "--iwae-k", "8", "--device", "cpu"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["test_images"] == 64 and result["mse"] > 0
    expected = {"vae": "iwae_nll", "linear-ae": "mse_over_pca", "sparse-ae": "code_zero_fraction",
                "denoising-ae": "denoised_over_noisy"}[kind]
    assert expected in result
    if kind == "vae":  # the IWAE bound is tighter than the ELBO (up to Monte-Carlo noise)
        assert result["iwae_nll"] <= result["neg_elbo"] + 1.0
    assert read_metrics(ckpt)["evaluation"][expected] == result[expected]
    assert ckpt.stat().st_mtime_ns == before and "metrics" not in read_meta(ckpt)  # model.ts never rewritten


def test_same_seed_same_model(idx_dir: Path, tmp_path: Path) -> None:
    for sub in ("a", "b"):
        main(_train_args(idx_dir, tmp_path / sub, "--kind", "deep-ae", "--latent-dim", "2", "--epochs", "1"))
    a = torch.jit.load(str(tmp_path / "a/repo/deep-ae-z2/1/model.ts"))
    b = torch.jit.load(str(tmp_path / "b/repo/deep-ae-z2/1/model.ts"))
    for (na, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=False):
        assert torch.equal(pa, pb), na


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}


def test_ctrl_c_keeps_the_best_epoch(idx_dir: Path, tmp_path: Path) -> None:
    # A suite started in the background (nohup ... &) runs with SIGINT ignored, and a child inherits that: Python
    # then installs no KeyboardInterrupt handler at all. Ctrl-C at a terminal reaches a process with the default,
    # so the child puts Python's own handler back first, then runs `python -m training`. Not by a preexec_fn: that
    # forks this process, whose grpcio threads (from the gRPC tests) made a forked child abort before its exec
    # (SIGABRT, "epoll_wait error: Bad file descriptor"), once in a run beside a busy core.
    prelude = ("import runpy, signal; signal.signal(signal.SIGINT, signal.default_int_handler); "
               "runpy.run_module('training', run_name='__main__', alter_sys=True)")
    cmd = [sys.executable, "-c", prelude, *_train_args(idx_dir, tmp_path, "--kind", "vae", "--latent-dim", "2",
                                                      "--epochs", "10000", "--batch-size", "8")]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    metrics = tmp_path / "runs" / "vae-z2" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.exists() and metrics.read_text().count("\n") >= 2):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    try:  # the best epoch is saved, grids drawn and the model scripted before it exits: seconds, or more on a busy CI
        out, err = proc.communicate(timeout=180)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"no exit 180 s after Ctrl-C; its last words:\n{err[-3000:]}")
    assert proc.returncode == 0, err
    assert "interrupted" in err
    assert (tmp_path / "repo" / "vae-z2" / "1" / "model.ts").exists()


def test_ddp_two_cpu_processes(idx_dir: Path, tmp_path: Path) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "training", *_train_args(idx_dir, tmp_path, "--kind", "vae", "--latent-dim", "2", "--epochs", "2")]
    proc = subprocess.run(cmd, cwd=ROOT, env=_env(), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert read_metrics(tmp_path / "repo" / "vae-z2" / "1" / "model.ts")["world_size"] == 2


def test_k_sparse_code_and_its_features_picture(idx_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--topk keeps exactly k entries of each code; `features` draws one tile per unit ever active."""
    args = ("--kind", "sparse-ae", "--arch", "mlp", "--depth", "2", "--latent-dim", "12", "--topk", "3",
            "--epochs", "1")
    assert main(_train_args(idx_dir, tmp_path, *args)) == 0
    ckpt = tmp_path / "repo" / "sparse-ae-z12" / "1" / "model.ts"
    capsys.readouterr()
    assert main(["evaluate", str(ckpt), "--idx-dir", str(idx_dir), "--device", "cpu", "--no-write"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["code_zero_fraction"] >= 0.75 and result["code_active_per_image"] <= 3
    png = tmp_path / "features.png"
    assert main(["features", str(ckpt), str(png), "--idx-dir", str(idx_dir)]) == 0
    used = json.loads(capsys.readouterr().out.split(" -> ")[0])["units_used"]
    from PIL import Image

    assert 3 <= used <= 12 and Image.open(png).size[0] > 28


def test_learned_prior_trains_and_exports(idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--prior flow: meta says so and the file carries prior(); export --prior flow-fit fits one afterwards."""
    args = ("--kind", "vae", "--arch", "mlp", "--depth", "2", "--latent-dim", "3", "--epochs", "1")
    assert main(_train_args(idx_dir, tmp_path, *args, "--prior", "flow")) == 0
    assert read_meta(tmp_path / "repo" / "vae-z3" / "1" / "model.ts")["prior"] == "flow"
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "plain")) == 0
    assert read_meta(tmp_path / "repo" / "plain" / "1" / "model.ts")["prior"] == "normal"
    assert main(["export", str(tmp_path / "runs" / "plain" / "best.pt"), "--repository", str(tmp_path / "repo"),
                 "--prior", "flow-fit", "--prior-epochs", "2", "--idx-dir", str(idx_dir)]) == 0
    fitted = tmp_path / "repo" / "plain" / "2" / "model.ts"
    assert read_meta(fitted)["prior"] == "flow"
    figures = read_metrics(fitted)
    assert {"prior_heldout_logp_flow", "prior_heldout_logp_normal"} <= set(figures)
    assert hasattr(torch.jit.load(str(fitted)), "prior")


def test_recorded_command_parses_back_to_the_config(idx_dir: Path, tmp_path: Path) -> None:
    """An exported file names the command that made it, and that command stands for exactly its config."""
    from training.__main__ import parse_command, train_config

    args = _train_args(idx_dir, tmp_path, "--kind", "cvae", "--arch", "mlp", "--depth", "2", "--latent-dim", "3",
                       "--epochs", "1", "--prior", "flow", "--prior-hidden", "8", "--name", "it's odd", "--iwae-k", "2")
    assert main(args) == 0
    meta = read_meta(tmp_path / "repo" / "it's odd" / "1" / "model.ts")
    assert meta["command"] == meta["config"]["command"] and meta["command"].startswith("python -m training train")
    again = train_config(parse_command(meta["command"])).to_json()
    assert again == meta["config"]
    assert meta["config"]["spec"]["prior"] == "flow" and meta["config"]["spec"]["prior_hidden"] == 8
    assert meta["config"]["spec"]["iwae_k"] == 2
    changed = train_config(parse_command(meta["command"] + " --epochs 2")).to_json()
    assert changed != meta["config"]  # the comparison can fail


def test_iwae_k_is_for_vaes_only(idx_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for kind, k in (("deep-ae", "4"), ("vae", "0")):
        assert main(_train_args(idx_dir, tmp_path, "--kind", kind, "--epochs", "1", "--iwae-k", k)) == 2
        assert f"--iwae-k {k}: must be 1 (the ELBO), or > 1 for a VAE kind (vae, cvae)" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_regularisers_are_checked_and_recorded(idx_dir: Path, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """--dropout and --weight-decay: refused with what is allowed where they mean nothing, recorded in the file's
    config (its command parses back to it), and a dropout model is served as the plain network, deterministically."""
    from training.__main__ import parse_command, train_config

    for extra, says in ((("--kind", "vae", "--dropout", "0.2"), "for a VAE kind with --arch mlp"),
                        (("--kind", "deep-ae", "--arch", "mlp", "--dropout", "0.2"), "for a VAE kind with --arch mlp"),
                        (("--kind", "vae", "--arch", "mlp", "--dropout", "1"), "must be in (0, 1)"),
                        (("--kind", "vae", "--weight-decay", "-1"), "must be >= 0")):
        assert main(_train_args(idx_dir, tmp_path, *extra, "--epochs", "1")) == 2
        assert says in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()
    args = ("--kind", "vae", "--arch", "mlp", "--depth", "2", "--latent-dim", "3", "--prior", "flow", "--epochs", "1")
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "reg", "--dropout", "0.3", "--weight-decay",
                            "0.1")) == 0
    ckpt = tmp_path / "repo" / "reg" / "1" / "model.ts"
    meta = read_meta(ckpt)
    assert meta["config"]["spec"]["dropout"] == 0.3 and meta["config"]["weight_decay"] == 0.1
    assert train_config(parse_command(meta["command"])).to_json() == meta["config"]
    ts = torch.jit.load(str(ckpt)).eval()
    z = torch.randn(4, 3)
    assert torch.equal(ts.decode(z, None), ts.decode(z, None))  # no dropout once served
    # the same tensor names as a network without dropout: a plain run can start from it
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "plain", "--init-from", str(ckpt))) == 0


def test_encoder_width_narrows_the_encoder_alone(idx_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--encoder-width: the encoder's hidden layers get that many units, the decoder keeps --width (what sampling
    costs and draws with); recorded in the file's config; refused where it means nothing."""
    from training.__main__ import parse_command, train_config
    from training.finetune import weights_of

    for extra in (("--kind", "vae", "--encoder-width", "8"), ("--kind", "deep-ae", "--arch", "mlp", "--encoder-width",
                                                              "8"), ("--kind", "cvae", "--arch", "mlp",
                                                                     "--encoder-width", "-3")):
        assert main(_train_args(idx_dir, tmp_path, *extra, "--epochs", "1")) == 2
        assert "for a VAE kind with --arch mlp (0: --width)" in capsys.readouterr().err
    args = ("--kind", "cvae", "--arch", "mlp", "--depth", "2", "--width", "24", "--latent-dim", "3", "--prior",
            "class-flow", "--epochs", "1", "--name", "narrow", "--encoder-width", "8")
    assert main(_train_args(idx_dir, tmp_path, *args)) == 0
    ckpt = tmp_path / "repo" / "narrow" / "1" / "model.ts"
    meta = read_meta(ckpt)
    assert meta["config"]["spec"]["encoder_width"] == 8
    assert train_config(parse_command(meta["command"])).to_json() == meta["config"]
    shapes = {k: tuple(v.shape) for k, v in weights_of(ckpt).items()}
    assert shapes["body.net.1.weight"] == (8, 784 + 10) and shapes["body.net.3.weight"] == (8, 8)
    assert shapes["head.weight"] == (6, 8)
    assert shapes["decoder.net.0.weight"] == (24, 3 + 10) and shapes["decoder.net.4.weight"] == (784, 24)
    ts = torch.jit.load(str(ckpt)).eval()
    mu, logvar = ts.encode(torch.rand(2, 1, 28, 28), torch.tensor([1, 7]))
    assert mu.shape == (2, 3) and ts.decode(mu, torch.tensor([1, 7])).shape == (2, 1, 28, 28)


def test_init_from_starts_at_a_served_models_weights(idx_dir: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """--init-from model.ts: the fine-tune's first step starts at that file's network and prior (not random ones),
    from a served file or a run's best.pt; a file of another network is refused with what differs."""
    from training.finetune import weights_of

    args = ("--kind", "vae", "--arch", "mlp", "--depth", "2", "--latent-dim", "3", "--prior", "flow", "--epochs", "1")
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "base")) == 0
    base = tmp_path / "repo" / "base" / "1" / "model.ts"
    start = weights_of(base)
    assert {"head.weight", "prior_flow.w1"} <= set(start)
    # lr 0 and one epoch: Adam moves nothing, so the fine-tune's export is exactly the file it started from
    for source in (base, tmp_path / "runs" / "base" / "best.pt"):
        assert main(_train_args(idx_dir, tmp_path, *args, "--name", "tuned", "--lr", "0", "--iwae-k", "2",
                                "--init-from", str(source))) == 0
    tuned = weights_of(tmp_path / "repo" / "tuned" / "2" / "model.ts")
    assert all(torch.equal(tuned[k], v) for k, v in start.items())
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "fresh", "--lr", "0")) == 0
    fresh = weights_of(tmp_path / "repo" / "fresh" / "1" / "model.ts")
    assert not torch.equal(fresh["head.weight"], start["head.weight"])  # the comparison above can fail
    capsys.readouterr()
    wider = _train_args(idx_dir, tmp_path, *args, "--name", "wider", "--init-from", str(base))
    wider[wider.index("--width") + 1] = "24"
    assert main(wider) == 2
    err = capsys.readouterr().err
    assert "do not fit the network this command builds" in err and "decoder.net.4.weight (784, 16) vs (784, 24)" in err
    assert not (tmp_path / "runs" / "wider").exists()  # refused before its first step
    assert main(_train_args(idx_dir, tmp_path, *args, "--init-from", str(tmp_path / "nothing.ts"))) == 2
    assert "no such file" in capsys.readouterr().err
    for junk, says in (("junk.pt", "not a run's best.pt"), ("junk.ts", "not a TorchScript checkpoint")):
        (tmp_path / junk).write_bytes(b"not a checkpoint")
        assert main(_train_args(idx_dir, tmp_path, *args, "--init-from", str(tmp_path / junk))) == 2
        assert says in capsys.readouterr().err


def test_train_writes_to_a_scratch_repository_unless_published(capsys: pytest.CaptureFixture[str]) -> None:
    from training.__main__ import PUBLISHED, SCRATCH, parse_command

    assert parse_command("python -m training train --kind vae").repository == SCRATCH
    assert parse_command("python -m training train --kind vae --publish").repository == PUBLISHED == Path("models")
    with pytest.raises(SystemExit):  # one or the other
        parse_command("python -m training train --kind vae --publish --repository x")


def test_every_flag_of_every_subcommand_has_help() -> None:
    import argparse

    from training.__main__ import build_parser

    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    missing = [f"{name} {'/'.join(action.option_strings) or action.dest}" for name, parser in sub.choices.items()
               for action in parser._actions if not isinstance(action, argparse._HelpAction) and not action.help]
    assert not missing, missing


def test_help_names_each_default_once(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("train", "evaluate", "export", "train-judge", "judge"):
        with pytest.raises(SystemExit):
            main([cmd, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        assert "(default: None)" not in text and "(default: )" not in text, cmd
        assert text.count("(default: data)") == 1, cmd  # --data-cache, once


def test_train_ends_with_the_line_that_serves_it(idx_dir: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    """The last line `train` prints, run exactly as printed (the port from the environment), serves the model just
    made as the default: a request naming no model gets its samples."""
    import httpx

    from tests.helpers import free_port

    assert main(_train_args(idx_dir, tmp_path, "--kind", "vae", "--latent-dim", "3", "--epochs", "1",
                            "--name", "mine")) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    assert " -m service " in line and "--default-model mine" in line
    port = free_port()
    log = (tmp_path / "server.log").open("w")
    env = {**_env(), "VAESERVE_PORT": str(port), "VAESERVE_GRPC_PORT": "0"}
    env.pop("VAESERVE_DEFAULT_MODEL", None), env.pop("VAESERVE_MODEL_REPOSITORY", None)
    proc = subprocess.Popen(["bash", "-c", line], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                r = httpx.post(f"http://127.0.0.1:{port}/sample", json={"n": 4, "seed": 1}, timeout=5)
                if r.status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        else:
            pytest.fail("the printed line did not serve: " + (tmp_path / "server.log").read_text()[-3000:])
        assert r.json()["model"] == "mine" and len(r.json()["images"]) == 4
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_ema_exports_the_average_of_the_weights(idx_dir: Path, tmp_path: Path,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """--ema D: the run evaluates and exports the moving average of its weights, not the last step's: with a decay
    near 1 the average has barely left the first step's weights, while the trained weights went on."""
    from training.finetune import weights_of

    args = ("--kind", "vae", "--arch", "mlp", "--depth", "2", "--latent-dim", "3", "--prior", "flow", "--epochs", "1")
    assert main(_train_args(idx_dir, tmp_path, *args, "--name", "base")) == 0
    start = weights_of(tmp_path / "repo" / "base" / "1" / "model.ts")
    for name, extra in (("plain", ()), ("slow", ("--ema", "0.999999"))):
        assert main(_train_args(idx_dir, tmp_path, *args, "--name", name, "--lr", "1e-2",
                                "--init-from", str(tmp_path / "repo" / "base" / "1" / "model.ts"), *extra)) == 0
    plain = weights_of(tmp_path / "repo" / "plain" / "1" / "model.ts")
    slow = weights_of(tmp_path / "repo" / "slow" / "1" / "model.ts")
    moved = {k: (plain[k] - v).abs().max().item() for k, v in start.items() if v.numel()}
    kept = {k: (slow[k] - v).abs().max().item() for k, v in start.items() if v.numel()}
    assert max(moved.values()) > 1e-3  # training moved the weights
    # the average starts at the weights after the first step (one Adam step moves a weight by at most lr) and
    # barely leaves them; the trained weights went on
    assert max(kept.values()) < 1.001e-2 and max(moved.values()) > 3 * max(kept.values())
    assert read_meta(tmp_path / "repo" / "slow" / "1" / "model.ts")["config"]["ema"] == 0.999999
    capsys.readouterr()
    assert main(_train_args(idx_dir, tmp_path, *args, "--ema", "1")) == 2
    assert "must be in [0, 1)" in capsys.readouterr().err
