"""Accelerator placement: batches follow the model, every tensor of a model follows ``.to()``, CUDA
refused in one line without a GPU; the ``cuda``-marked tests run on a GPU (benchmarks/gpu_check.sh)."""

import json

import pytest
import torch
from torch import nn

from analog_snu.cli import main
from analog_snu.errors import ConfigError
from analog_snu.experiments import build_config, evaluate_run, load_run, train_run
from analog_snu.experiments.accelerator import resolve_accelerator
from analog_snu.experiments.checkpoint import model_tensors
from analog_snu.hardware import drift, program
from analog_snu.models import SNUNetwork
from analog_snu.pcm import preset
from analog_snu.tasks.placement import batches_on, model_accelerator, to_accelerator
from analog_snu.tiles import device_rpu_config
from analog_snu.training import loop

META = torch.device("meta")
#: attributes of aihwkit 1.2.0's InferenceTileWithPeriphery that its .to()/.cuda() leave where they are
AIHWKIT_UNMOVED = ("drift_baseline", "drift_noise_parameters", "drift_readout_tensor", "programmed_weights",
                   "reference_combined_weights")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a CUDA GPU")


def tiny(**flags):
    return build_config(flags={"task": "digits", "layers": [8], "train-limit": 48, "epochs": 1, **flags})


def all_tensors(obj, prefix="", seen=None, depth=0):
    """Every tensor reachable from ``obj``: parameters, buffers and plain tensor attributes of modules
    and of the plain objects they hold (aihwkit tiles, noise models and their state), lists included."""
    seen = set() if seen is None else seen
    if id(obj) in seen or depth > 16:
        return {}
    seen.add(id(obj))
    if isinstance(obj, torch.Tensor):
        return {prefix: obj}
    found = {}
    if isinstance(obj, (list, tuple)):
        items = enumerate(obj)
    elif isinstance(obj, dict):
        items = obj.items()
    elif hasattr(obj, "__dict__") and type(obj).__module__.split(".")[0] in ("analog_snu", "aihwkit", "torch"):
        items = vars(obj).items()
    else:
        return {}
    for key, value in items:
        if isinstance(value, (torch.Generator, torch.device, torch.dtype)) or key in ("_forward_hooks",):
            continue
        found.update(all_tensors(value, f"{prefix}.{key}" if prefix else str(key), seen, depth + 1))
    return found


# --- CPU: placement logic ------------------------------------------------------------------------------


def test_to_accelerator_moves_every_tensor_of_a_nested_batch():
    x, y, m, z = torch.ones(2), torch.zeros(3), torch.ones(3, dtype=torch.bool), torch.arange(4)
    moved = to_accelerator((x, (y, m), [z], {"k": x}, 7, "label"), META)
    assert moved[0].device == META and moved[1][0].device == META and moved[1][1].dtype == torch.bool
    assert moved[2][0].device == META and moved[3]["k"].device == META and moved[4:] == (7, "label")
    assert to_accelerator(x, torch.device("cpu")) is x  # already there: no copy


def test_model_accelerator_is_where_the_model_lives():
    assert model_accelerator(nn.Linear(2, 2)) == torch.device("cpu")
    assert model_accelerator(nn.Linear(2, 2).to(META)) == META
    only_buffer = nn.Module()
    only_buffer.register_buffer("b", torch.zeros(1, device=META))
    assert model_accelerator(only_buffer) == META
    assert model_accelerator(nn.Module()) == torch.device("cpu")
    batches = list(batches_on(nn.Linear(2, 2).to(META), [(torch.ones(1, 2), (torch.zeros(1), torch.ones(1)))]))
    assert batches[0][0].device == META and batches[0][1][1].device == META


class _Recorder(nn.Module):
    """Records the device of each input; computes on the CPU (meta tensors cannot give a loss value)."""

    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))
        self.seen = []

    def forward(self, inputs):
        self.seen.append(inputs.device)
        return self.w.expand(3)


def test_train_epoch_and_evaluate_move_batches_to_the_model(monkeypatch):
    monkeypatch.setattr(loop, "model_accelerator", lambda model: META)
    model, targets_seen = _Recorder(), []

    def loss_fn(outputs, targets):
        targets_seen.append(targets[0].device)
        return (outputs ** 2).sum()

    batches = [(torch.ones(3), (torch.zeros(3), torch.ones(3)))] * 2
    loop.train_epoch(model, batches, torch.optim.SGD(model.parameters(), lr=0.1), loss_fn, progress=False)
    assert model.seen == [META, META] and targets_seen == [META, META]
    model.seen.clear()
    loop.evaluate(model, [(torch.ones(3), torch.zeros(3))], lambda out, tgt: torch.tensor(tgt.device == META, dtype=torch.float))
    assert model.seen == [META]


@pytest.mark.parametrize("mode", ["digital", "hwa"])
def test_every_tensor_of_a_model_follows_to(mode):
    """``.to(dtype)`` reaches every floating tensor a model holds (parameters, buffers, aihwkit tile weights
    and periphery state); the same ``_apply`` path moves them to an accelerator. Our PCM noise model's
    device state is the one exception by design: float64 on the CPU, drawn from CPU generators, so a
    seed programs the same conductances whatever the accelerator (its programmed weights are handed
    to the tile on the tile's device)."""
    rpu = None if mode == "digital" else device_rpu_config(preset("pcm_joshi2020"), "hwa")
    net = SNUNetwork([6, 5, 3], rpu_config=rpu)
    if mode == "hwa":
        program(net, seed=0)
    before = {k: v for k, v in all_tensors(net).items() if v.is_floating_point()}
    assert before, "the walk found no tensors"
    net = net.to(torch.float64)
    after = all_tensors(net)
    stale = sorted(k for k, v in after.items() if v.is_floating_point() and v.dtype != torch.float64
                   and ".state." not in f".{k}." and "noise_model" not in k)
    # aihwkit 1.2.0's inference tiles keep their programming/drift state in plain attributes that its
    # .to()/.cuda() do not touch: program a network after placing it (train_run and evaluate_run do)
    assert {k.rsplit("analog_module.", 1)[-1].split(".")[0] for k in stale} <= set(AIHWKIT_UNMOVED)
    if mode == "hwa":
        tile_weights = [k for k in after if k.endswith("analog_ctx")]  # a torch tile's weights
        assert len(tile_weights) == 2 and all(after[k].dtype == torch.float64 for k in tile_weights)
        states = [v for k, v in after.items() if ".state." in f".{k}." and v.is_floating_point()]
        assert states and all(v.device.type == "cpu" for v in states)


def test_resolve_accelerator():
    assert resolve_accelerator("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match=r"accelerator must be 'cpu' or 'cuda', got 'tpu'"):
        resolve_accelerator("tpu")


@no_cuda
def test_cuda_is_refused_in_one_line_without_a_gpu(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"--accelerator cuda: no CUDA GPU is available"):
        resolve_accelerator("cuda")
    code = main(["train", "--task", "digits", "--layers", "8", "--train-limit", "16", "--epochs", "1",
                 "--accelerator", "cuda", "--out", str(tmp_path / "run"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "no CUDA GPU is available" in err and "Traceback" not in err
    assert not (tmp_path / "run" / "checkpoint.safetensors").exists()


# --- CUDA: run by benchmarks/gpu_check.sh on a GPU machine ---------------------------------------------


@pytest.mark.cuda
@needs_cuda
@pytest.mark.parametrize("device", [None, "pcm_joshi2020"])
def test_training_on_cuda_keeps_every_tensor_there_and_is_reproducible(tmp_path, device):
    flags = {} if device is None else {"device": device}
    config = tiny(accelerator="cuda", epochs=2, **flags)
    first = train_run(config, tmp_path / "a", progress=False)
    off = sorted(k for k, v in all_tensors(first.model).items() if v.device.type != "cuda"
                 and ".state." not in f".{k}." and "noise_model" not in k)
    assert off == []
    second = train_run(config, tmp_path / "b", progress=False)
    a, b = model_tensors(first.model), model_tensors(second.model)
    assert all(torch.equal(a[k], b[k]) for k in a), "seeded CUDA runs differ run to run"
    cpu = train_run(tiny(epochs=2, **flags), tmp_path / "cpu", progress=False)
    assert abs(first.final["test_accuracy"] - cpu.final["test_accuracy"]) <= 0.15


@pytest.mark.cuda
@needs_cuda
def test_programming_and_drift_on_cuda_match_the_cpu(tmp_path):
    train_run(tiny(device="pcm_joshi2020"), tmp_path / "run", progress=False)
    model, _ = load_run(tmp_path / "run")
    on_gpu, _ = load_run(tmp_path / "run")
    on_gpu = on_gpu.cuda()
    for net in (model, on_gpu):
        program(net, seed=3)
        drift(net, 86400.0)
    a, b = model_tensors(model), model_tensors(on_gpu)
    assert all(torch.allclose(a[k], b[k].cpu(), atol=1e-5) for k in a)  # same draws: CPU generators
    result = evaluate_run(tmp_path / "run", drift_times=[86400.0], seed=3)
    assert 0.0 <= result["drift"]["1d"] <= 1.0
    assert json.loads((tmp_path / "run" / "final.json").read_text())["epochs"] == 1
