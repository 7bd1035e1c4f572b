"""Optional peers for benchmarks/embed.py: OpenVINO and ONNX Runtime on the same sentence-transformers folder.

Install them with the benchmark-only extra (``pip install -e '.[bench]'``: openvino, onnxruntime,
onnx, onnxscript, nncf). A peer whose package is missing raises :class:`Unavailable` with the
reason, and embed.py skips it.

Every peer runs the transformer exported once from the folder's ``config.json`` and weights
(transformers' ``AutoModel``, eager attention, ``torch.onnx.export`` with dynamic batch and
sequence axes), then does what sentence-transformers does around it: texts sorted by length
(longest first), batches of 32 padded to their longest, the folder's pooling (mean or CLS, from ``1_Pooling``) and
its ``Normalize`` module when present. Exports and quantized models are cached under
``$BERTZOO_BENCH_CACHE`` (default ``<tmp>/bertzoo-bench-cache``), keyed by the folder's path and
its weights' size and mtime.

Peers:

- ``ov f32``: OpenVINO CPU with ``INFERENCE_PRECISION_HINT=f32``;
- ``ov default``: OpenVINO CPU as shipped: it computes in bf16 where the CPU has bf16 instructions
  (AMX / AVX512-BF16) and in f32 elsewhere; the chosen precision is printed;
- ``ov int8``: NNCF post-training quantization of the OpenVINO model (``nncf.quantize``,
  ``ModelType.TRANSFORMER``: int8 weights and activations), calibrated on ``calibration`` texts;
- ``ort f32``: ONNX Runtime CPU, default graph optimizations;
- ``ort qint8``: ``onnxruntime.quantization.quantize_dynamic`` (int8 per-channel weights with
  ``reduce_range``, dynamic per-tensor activation scales).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

EmbedFn = Callable[[list[str]], np.ndarray]
BATCH_SIZE = 32
INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # the order torch.onnx.export sees them


class Unavailable(Exception):
    """A peer cannot run here; the message says why (a missing package, a failed export)."""


def require(*modules: str) -> None:
    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if missing:
        raise Unavailable(f"{', '.join(missing)} not installed (pip install -e '.[bench]')")


def cache_dir(folder: str) -> Path:
    weights = next((p for p in (Path(folder) / n for n in ("model.safetensors", "pytorch_model.bin")) if p.exists()),
                   Path(folder) / "config.json")
    stat = weights.stat()
    key = hashlib.sha256(f"{Path(folder).resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    root = Path(os.environ.get("BERTZOO_BENCH_CACHE", Path(tempfile.gettempdir()) / "bertzoo-bench-cache"))
    out = root / key
    out.mkdir(parents=True, exist_ok=True)
    return out


def max_seq_length(folder: str) -> int:
    """The truncation length sentence-transformers uses: the smallest of the folder's limits.

    ``sentence_bert_config.json`` ``max_seq_length`` (sentence-transformers 6 writes it to
    ``tokenizer_config.json`` ``model_max_length`` instead) and the model's positions, as resolved
    by ``bertzoo.inference.tokenizer_files.resolve_max_length``.
    """
    from bertzoo.inference.tokenizer_files import resolve_max_length

    return int(resolve_max_length(Path(folder)).value)


def pooling(folder: str) -> tuple[str, bool]:
    """(``"mean"`` or ``"cls"``, normalize) as the folder's modules say."""
    mode = "mean"
    pool = Path(folder) / "1_Pooling" / "config.json"
    if pool.exists() and json.loads(pool.read_text()).get("pooling_mode_cls_token"):
        mode = "cls"
    modules = Path(folder) / "modules.json"
    normalize = modules.exists() and any("Normalize" in m.get("type", "") for m in json.loads(modules.read_text()))
    return mode, normalize


def export_onnx(folder: str) -> Path:
    """The folder's transformer as ONNX (last_hidden_state), exported once and cached."""
    require("onnx", "onnxscript")
    out = cache_dir(folder) / "model.onnx"
    if out.exists():
        return out
    import torch
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(folder, attn_implementation="eager").eval()
    names = [n for n in INPUTS if n in AutoTokenizer.from_pretrained(folder).model_input_names]

    class Trunk(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            return self.model(**dict(zip(names, args, strict=True))).last_hidden_state

    example = tuple(torch.ones(2, 8, dtype=torch.long) for _ in names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("seq", max=4096)
    t0 = time.perf_counter()
    tmp = out.with_suffix(".tmp.onnx")
    try:
        torch.onnx.export(Trunk(), example, str(tmp), input_names=names, output_names=["last_hidden_state"],
                          dynamic_shapes={"args": ({0: batch, 1: seq},) * len(names)}, dynamo=True,
                          external_data=False, verbose=False)
    except Exception as e:  # an exporter failure skips the peers, it does not stop the benchmark
        raise Unavailable(f"torch.onnx.export failed: {type(e).__name__}: {str(e)[:300]}") from e
    tmp.replace(out)
    print(f"  exported {folder} to {out} in {time.perf_counter() - t0:.1f} s")
    return out


class Padded:
    """sentence-transformers' loop around any ``run(feed) -> last_hidden_state``: sort, pad 32, pool."""

    def __init__(self, folder: str, run: Callable[[dict[str, np.ndarray]], np.ndarray], names: list[str]) -> None:
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(folder)
        self.max_length = max_seq_length(folder)
        self.mode, self.normalize = pooling(folder)
        self.run, self.names = run, names

    def feed(self, texts: list[str]) -> dict[str, np.ndarray]:
        enc = self.tokenizer(texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="np")
        feed = {n: enc[n].astype(np.int64) for n in self.names if n in enc}
        if "token_type_ids" in self.names and "token_type_ids" not in feed:
            feed["token_type_ids"] = np.zeros_like(feed["input_ids"])
        return feed

    def __call__(self, texts: list[str]) -> np.ndarray:
        order = np.argsort([-len(t) for t in texts], kind="stable")  # as sentence-transformers sorts
        out: np.ndarray | None = None
        for start in range(0, len(texts), BATCH_SIZE):
            idx = order[start:start + BATCH_SIZE]
            feed = self.feed([texts[i] for i in idx])
            hidden = np.asarray(self.run(feed), dtype=np.float32)
            if self.mode == "cls":
                vec = hidden[:, 0]
            else:
                mask = feed["attention_mask"][..., None].astype(np.float32)
                vec = (hidden * mask).sum(1) / np.maximum(mask.sum(1), 1e-9)
            if self.normalize:
                vec = vec / np.maximum(np.linalg.norm(vec, axis=1, keepdims=True), 1e-12)
            if out is None:
                out = np.empty((len(texts), vec.shape[1]), dtype=np.float32)
            out[idx] = vec
        return out if out is not None else np.zeros((0, 0), dtype=np.float32)


# -- ONNX Runtime -----------------------------------------------------------------------------------


def ort_session(model: Path, threads: int | None) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def ort_embed(folder: str, model: Path, threads: int | None) -> EmbedFn:
    session = ort_session(model, threads)
    names = [i.name for i in session.get_inputs()]
    return Padded(folder, lambda feed: session.run(["last_hidden_state"], feed)[0], names)


def ort_f32(folder: str, threads: int | None, calibration: list[str]) -> EmbedFn:
    require("onnxruntime")
    return ort_embed(folder, export_onnx(folder), threads)


def ort_qint8(folder: str, threads: int | None, calibration: list[str]) -> EmbedFn:
    require("onnxruntime")
    source = export_onnx(folder)
    out = source.with_name("model-qint8-pc-rr.onnx")
    if not out.exists():
        from onnxruntime.quantization import QuantType, quantize_dynamic

        tmp = out.with_suffix(".tmp.onnx")
        # per-channel weights with reduce_range (7-bit, no u8×s8 overflow on CPUs without VNNI): min
        # cosine 0.983 on 64 corpus texts, against 0.900 with quantize_dynamic's defaults
        quantize_dynamic(str(source), str(tmp), weight_type=QuantType.QInt8, per_channel=True, reduce_range=True)
        tmp.replace(out)
    return ort_embed(folder, out, threads)


# -- OpenVINO -----------------------------------------------------------------------------------------


def ov_compiled(model: Any, config: dict[str, str], threads: int | None) -> Any:
    import openvino as ov

    if threads:
        config = {**config, "INFERENCE_NUM_THREADS": str(threads)}
    return ov.Core().compile_model(model, "CPU", config)


def ov_embed(folder: str, compiled: Any) -> EmbedFn:
    names = [p.get_any_name() for p in compiled.inputs]
    output = compiled.outputs[0]
    request = compiled.create_infer_request()
    return Padded(folder, lambda feed: request.infer(feed)[output], names)


def ov_f32(folder: str, threads: int | None, calibration: list[str]) -> EmbedFn:
    require("openvino")
    return ov_embed(folder, ov_compiled(str(export_onnx(folder)), {"INFERENCE_PRECISION_HINT": "f32"}, threads))


def ov_default(folder: str, threads: int | None, calibration: list[str]) -> EmbedFn:
    require("openvino")
    compiled = ov_compiled(str(export_onnx(folder)), {}, threads)
    print(f"  ov default computes in {compiled.get_property('INFERENCE_PRECISION_HINT')} on this CPU")
    return ov_embed(folder, compiled)


def ov_int8(folder: str, threads: int | None, calibration: list[str]) -> EmbedFn:
    require("openvino", "nncf")
    import openvino as ov

    source = export_onnx(folder)
    out = source.with_name(f"ov-int8-{len(calibration)}.xml")
    if not out.exists():
        import nncf

        model = ov.Core().read_model(str(source))
        names = [p.get_any_name() for p in model.inputs]
        padded = Padded(folder, lambda feed: feed["input_ids"], names)  # only its tokenizer is used here
        samples = [padded.feed([t]) for t in calibration]
        t0 = time.perf_counter()
        quantized = nncf.quantize(model, nncf.Dataset(samples), model_type=nncf.ModelType.TRANSFORMER,
                                  subset_size=len(samples))
        ov.save_model(quantized, str(out))
        print(f"  nncf.quantize on {len(samples)} calibration texts: {time.perf_counter() - t0:.1f} s")
    return ov_embed(folder, ov_compiled(str(out), {}, threads))


PEERS: dict[str, Callable[[str, int | None, list[str]], EmbedFn]] = {
    "ov f32": ov_f32,
    "ov default": ov_default,
    "ov int8": ov_int8,
    "ort f32": ort_f32,
    "ort qint8": ort_qint8,
}
