"""The speed settings of ``train`` change how a step runs, not what it computes: microbatch
accumulation gives the whole batch's gradient, mixed precision and channels-last train, and a
run's draws come from a checkpointed generator of their own."""

import json

import pytest
import torch

from genkit.training.loop import Trainer
from genkit.training.run import RunFolder

from conftest import assert_close_tensors, assert_same_tensors, straight_and_resumed


def trained(config, registries, folder) -> Trainer:
    trainer = Trainer(config, RunFolder(folder), registries)
    trainer.train()
    return trainer


def assert_close_weights(a: Trainer, b: Trainer) -> None:
    assert_close_tensors(a.method.model.state_dict(), b.method.model.state_dict())


@pytest.mark.parametrize("method", ["ict", "ct", "edm"])
def test_microbatches_accumulate_to_the_whole_batch(tiny_config, registries, tmp_path, method):
    # 64 = 24 + 24 + 16: unequal chunks weigh by their size
    whole = trained(tiny_config(method, steps=6), registries, tmp_path / "whole")
    chunked = trained(tiny_config(method, steps=6, extra=["train.microbatch=24"]), registries, tmp_path / "chunked")
    assert_close_weights(whole, chunked)
    losses = [[record["loss"] for record in map(json.loads, t.run.metrics_path.read_text().splitlines())] for t in (whole, chunked)]
    assert losses[0] == pytest.approx(losses[1], rel=1e-5)


def test_unweighted_chunks_would_differ(tiny_config, registries, tmp_path, monkeypatch):
    """The comparison above can fail: summing chunk means (no weights) gives other weights."""
    import genkit.training.loop as loop

    whole = trained(tiny_config("edm", steps=6), registries, tmp_path / "whole")
    original = loop.Trainer._accumulate_gradients

    def unweighted(self, batch, labels, draws):
        self.speed.backward = lambda loss, speed=self.speed: type(speed).backward(speed, loss * 2)
        return original(self, batch, labels, draws)

    monkeypatch.setattr(loop.Trainer, "_accumulate_gradients", unweighted)
    doubled = trained(tiny_config("edm", steps=6, extra=["train.microbatch=32"]), registries, tmp_path / "doubled")
    with pytest.raises(AssertionError):
        assert_close_weights(whole, doubled)


def test_draw_generator_is_checkpointed_so_resume_stays_exact(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=20, extra=["train.microbatch=16"])
    straight, resumed = straight_and_resumed(config, registries, tmp_path, stop_at=10)
    assert_same_tensors(straight.method.model.state_dict(), resumed.method.model.state_dict())
    assert torch.equal(straight.draw_generator.get_state(), resumed.draw_generator.get_state())


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_close_to_fp32(tiny_config, registries, tmp_path, precision):
    fp32 = trained(tiny_config("edm", steps=10), registries, tmp_path / "fp32")
    mixed = trained(tiny_config("edm", steps=10, extra=[f"train.precision='{precision}'"]), registries, tmp_path / precision)
    assert next(mixed.method.model.parameters()).dtype == torch.float32  # weights stay fp32
    for key, value in fp32.method.model.state_dict().items():
        other = mixed.method.model.state_dict()[key]
        assert torch.isfinite(other).all()
        assert (value - other).abs().max() < 0.05, key  # same direction, lower precision
    assert (mixed.speed.scaler is not None) == (precision == "fp16")


def test_fp16_scaler_state_resumes_exactly(tiny_config, registries, tmp_path):
    config = tiny_config("ict", steps=12, extra=["train.precision='fp16'"])
    straight, resumed = straight_and_resumed(config, registries, tmp_path, stop_at=5)
    assert_same_tensors(straight.method.model.state_dict(), resumed.method.model.state_dict())
    assert straight.speed.scaler.get_scale() == resumed.speed.scaler.get_scale()


def test_threads_setting_applies(tiny_config, registries, tmp_path):
    before = torch.get_num_threads()
    try:
        Trainer(tiny_config("ict", steps=1, extra=["train.threads=2"]), RunFolder(tmp_path / "run"), registries).close()
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


def test_channels_last_trains_a_unet_to_the_same_weights(registries, tmp_path):
    from test_image_training import image_config, tiny_images

    data = tiny_images(tmp_path)
    plain = trained(image_config(registries, data, "ict", steps=3), registries, tmp_path / "plain")
    last = trained(image_config(registries, data, "ict", steps=3, extra=["train.channels_last=true"]), registries, tmp_path / "last")
    conv = next(p for p in last.method.model.parameters() if p.dim() == 4)
    assert conv.is_contiguous(memory_format=torch.channels_last)
    for key, value in plain.method.model.state_dict().items():
        torch.testing.assert_close(last.method.model.state_dict()[key], value, rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.slow
def test_compiled_training_pass_trains_to_the_eager_weights(tiny_config, registries, tmp_path):
    eager = trained(tiny_config("ict", steps=4), registries, tmp_path / "eager")
    compiled = trained(tiny_config("ict", steps=4, extra=["train.compile=true"]), registries, tmp_path / "compiled")
    assert compiled.student is not compiled.method.model  # the wrapper, sharing the parameters
    assert "_orig_mod" not in "".join(compiled.method.state_dict())  # checkpoints keep plain keys
    assert_close_weights(eager, compiled)


def test_regionally_compiled_blocks_train_to_the_eager_weights(tiny_config, registries, tmp_path):
    eager = trained(tiny_config("ict", steps=4), registries, tmp_path / "eager")
    regional = trained(tiny_config("ict", steps=4, extra=["train.compile=true", "train.compile_scope='blocks'"]), registries, tmp_path / "blocks")
    assert regional.student is regional.method.model  # compiled in place, block by block
    assert all(hasattr(block, "_compiled_call_impl") and block._compiled_call_impl is not None for block in regional.method.model.net.blocks)
    assert "_orig_mod" not in "".join(regional.method.state_dict())
    assert_close_weights(eager, regional)


# operators that read a tensor's value on the host: on a GPU each one waits for the device
READS_VALUE = {"aten::item", "aten::_local_scalar_dense", "aten::nonzero", "aten::is_nonzero", "aten::equal", "aten::allclose"}


def host_reads(step) -> list[str]:
    """The operators of one call of ``step`` that read a tensor's value on the host, outside the
    optimizer's step: torch's optimizers keep their step counts on the host (capturable=False), so
    their reads of them never wait for a GPU."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    found = []
    for event in prof.events():
        parents, parent = [], event.cpu_parent
        while parent is not None:
            parents.append(parent.name)
            parent = parent.cpu_parent
        if event.name in READS_VALUE and not any(name.startswith("Optimizer.step") for name in parents):
            found.append(" < ".join([event.name, *parents[:3]]))
    return found


@pytest.mark.parametrize("method", ["ict", "ct", "edm", "sct", "meanflow"])
def test_a_training_step_reads_no_tensor_value_on_the_host(tiny_config, registries, tmp_path, method):
    """The CPU counterpart of the GPU test below: between log lines a step never reads a tensor's
    value (an .item(), a data-dependent shape), each of which would make the host wait for a GPU."""
    extra = ["train.log_every=1000", "train.checkpoint_every=1000"] + (["network.second_time=true"] if method == "meanflow" else [])
    trainer = Trainer(tiny_config(method, steps=10, extra=extra), RunFolder(tmp_path / "run"), registries)
    try:
        trainer.train_step()  # the first step builds caches (levels, probabilities)
        assert host_reads(trainer.train_step) == []
    finally:
        trainer.close()


@pytest.mark.gpu
def test_a_training_step_on_the_gpu_never_waits_for_the_device(tiny_config, registries, tmp_path):
    """No host-device synchronisation inside a step (between log lines): torch raises on one."""
    config = tiny_config("ict", steps=6, extra=["train.device='cuda'", "train.log_every=1000", "train.checkpoint_every=1000"])
    trainer = Trainer(config, RunFolder(tmp_path / "run"), registries)
    trainer.train_step()  # the first step builds caches (levels, probabilities)
    torch.cuda.set_sync_debug_mode("error")
    try:
        for _ in range(3):
            trainer.train_step()
    finally:
        torch.cuda.set_sync_debug_mode("default")
        trainer.close()
