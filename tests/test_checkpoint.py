"""Official checkpoint formats load and reproduce outputs; unsafe or mismatched files are refused."""
import argparse
import os

import pytest
import torch
from helpers import rel_err

import repnext_bench
from repnext_bench.models import CheckpointError, convert, load_checkpoint
from repnext_bench.models.randomize import randomize


@pytest.fixture(scope="module")
def source():
    """A train-time M0 with random weights and BN statistics: the 'trained' model."""
    return randomize(repnext_bench.create_model("M0"), seed=3)


@pytest.fixture(scope="module")
def x():
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(5))


def training_args() -> argparse.Namespace:
    return argparse.Namespace(model="repnext_m0", batch_size=256, lr=6e-3, distillation_type="hard",
                              input_size=224, output_dir="checkpoints/repnext_m0", clip_grad=0.02, resume="")


def official_pth(source, path):
    state = source.state_dict()
    torch.save({
        "model": state,
        "optimizer": {"state": {}, "param_groups": [{"lr": 0.006, "weight_decay": 0.025, "params": [0, 1]}]},
        "lr_scheduler": {"last_epoch": 299, "base_lrs": [0.006]},
        "epoch": 299,
        "model_ema": state,
        "scaler": {"scale": 65536.0, "growth_factor": 2.0, "_growth_tracker": 0},
        "args": training_args(),
    }, path)


def starnet_pth_tar(source, path):
    torch.save({"epoch": 300, "arch": "repnext_m0", "state_dict": source.state_dict(),
                "optimizer": {"state": {}, "param_groups": []}, "version": 2, "args": training_args(),
                "metric": 72.6}, path)


def bare(source, path):
    torch.save(source.state_dict(), path)


def data_parallel(source, path):
    torch.save({"model": {f"module.{k}": v for k, v in source.state_dict().items()}}, path)


@pytest.mark.parametrize("writer,suffix", [
    (official_pth, ".pth"), (starnet_pth_tar, ".pth.tar"), (bare, ".pth"), (data_parallel, ".pth"),
])
@pytest.mark.parametrize("form", ["train", "fused"])
def test_train_time_checkpoints_load_and_reproduce_outputs(source, x, tmp_path, writer, suffix, form):
    path = tmp_path / f"repnext_m0{suffix}"
    writer(source, path)
    model = repnext_bench.create_model("M0", form=form)
    assert load_checkpoint(model, path) is model
    with torch.no_grad():
        assert rel_err(model(x), source(x)) < 1e-5


@pytest.mark.parametrize("form", ["official", "fused"])
def test_fused_torchscript_loads_into_fused_forms(source, x, tmp_path, form):
    official = convert(source, "official")
    path = tmp_path / "repnext_m0_distill_300e_fused.pt"
    torch.jit.trace(official, torch.randn(1, 3, 64, 64)).save(str(path))
    model = repnext_bench.create_model("M0", form=form)
    load_checkpoint(model, path)
    with torch.no_grad():
        assert rel_err(model(x), source(x)) < 1e-5


def test_fused_checkpoint_is_refused_by_a_train_time_model(source, tmp_path):
    path = tmp_path / "fused.pt"
    torch.jit.trace(convert(source, "official"), torch.randn(1, 3, 64, 64)).save(str(path))
    with pytest.raises(CheckpointError, match="cannot be loaded into a train model"):
        load_checkpoint(repnext_bench.create_model("M0"), path)


class RunsCode:
    """A pickle that runs a shell command when loaded."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("wrap", [lambda evil, sd: evil, lambda evil, sd: {"model": sd, "args": evil}])
def test_pickle_that_would_run_code_is_refused(source, tmp_path, wrap):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save(wrap(RunsCode(marker), source.state_dict()), path)
    with pytest.raises(CheckpointError, match="refused to load .*system"):
        load_checkpoint(repnext_bench.create_model("M0"), path)
    assert not marker.exists()


def test_mismatched_checkpoint_names_the_bad_keys(source, tmp_path):
    state = dict(source.state_dict())
    del state["stages.2.blocks.3.norm.running_var"]
    state["stages.9.extra.weight"] = torch.zeros(3)
    state["head.head.linear.weight"] = torch.zeros(10, 320)
    path = tmp_path / "bad.pth"
    torch.save({"model": state}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(repnext_bench.create_model("M0"), path)
    message = str(info.value)
    assert "1 missing: stages.2.blocks.3.norm.running_var" in message
    assert "1 unexpected: stages.9.extra.weight" in message
    assert "head.head.linear.weight (checkpoint (10, 320), model (1000, 320))" in message


def test_checkpoint_of_another_variant_is_reported(source, tmp_path):
    path = tmp_path / "m0.pth"
    bare(source, path)
    with pytest.raises(CheckpointError, match="does not fit RepNeXt-M1 .*wrong shape"):
        load_checkpoint(repnext_bench.create_model("M1"), path)


def test_unreadable_files_are_reported(tmp_path):
    model = repnext_bench.create_model("M0")
    with pytest.raises(CheckpointError, match="no checkpoint file"):
        load_checkpoint(model, tmp_path / "missing.pth")
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="not a readable PyTorch checkpoint"):
        load_checkpoint(model, junk)
    other = tmp_path / "other.pth"
    torch.save({"epoch": 3, "notes": "no weights here"}, other)
    with pytest.raises(CheckpointError, match="holds no state_dict"):
        load_checkpoint(model, other)
