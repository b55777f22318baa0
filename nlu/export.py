"""ONNX export of a trained model, optionally int8-quantized, for fast CPU serving with onnxruntime.

The exported directory is a complete model directory (tokenizer, labels, thresholds,
training examples' embeddings: everything `load_bundle` reads) plus `model.onnx`, so
`FRONTDESK_MODEL_DIR` can point at it directly and the engine serves it through
onnxruntime. One graph computes both heads and the pooled embedding, like the PyTorch
model. Dynamic int8 quantization (weights int8, activations quantized on the fly) needs
no calibration data and suits a transformer's large matrix multiplications on a CPU.

Before quantizing, onnxruntime's transformer optimizer fuses each layer's attention,
layer norms and GELU into single kernels. It only recognises the attention of the plain
("eager") implementation, so that is what the export traces; the fused graph is checked
against the unfused one on sample texts and dropped if they disagree (an architecture
the optimizer does not know is still exported, unfused).
"""

from __future__ import annotations

import json
import logging
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import torch

from nlu.artifacts import load_bundle
from nlu.onnx_backend import ONNX_FILE

log = logging.getLogger(__name__)
EXPORT_INFO = "onnx_export.json"
OPSET = 17
FUSION_TOLERANCE = 1e-4  # largest probability change fusion may cause (it is exact up to float rounding)


class _Graph(torch.nn.Module):
    """The joint model with plain tensor outputs, which is what an ONNX graph can return."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor):
        out = self.model(input_ids, attention_mask)
        return out.intent_logits.softmax(-1), out.sentiment_logits.softmax(-1), out.embeddings


def export_onnx(model_dir: str | Path, out_dir: str | Path, quantize: str | None = None) -> Path:
    """Write `out_dir`: a copy of the model directory plus `model.onnx` (int8 when `quantize == "int8"`)."""
    if quantize not in (None, "int8"):
        raise ValueError(f"--quantize must be int8 (got {quantize!r})")
    source, out = Path(model_dir), Path(out_dir)
    bundle = load_bundle(source, "cpu")  # validates the directory first, with a clear error
    if out.resolve() == source.resolve():
        raise ValueError("--out must differ from --model: the export is a new directory")
    out.mkdir(parents=True, exist_ok=True)
    for item in source.iterdir():
        if item.name in (ONNX_FILE, EXPORT_INFO):
            continue
        target = out / item.name
        if item.is_dir():
            shutil.copytree(item, target, dirs_exist_ok=True)
        else:
            shutil.copy2(item, target)

    model = bundle.model.cpu().eval()
    if hasattr(model.encoder, "set_attn_implementation"):
        model.encoder.set_attn_implementation("eager")  # the attention pattern the optimizer can fuse
    graph = _Graph(model)
    sample = bundle.tokenizer(["where is my order", "hi"], padding=True, return_tensors="pt")
    with tempfile.TemporaryDirectory() as scratch:
        fp32 = Path(scratch) / "fp32.onnx"
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer notes about Python control flow in the HF attention code
            torch.onnx.export(
                graph, (sample["input_ids"], sample["attention_mask"]), str(fp32), dynamo=False,
                input_names=["input_ids", "attention_mask"],
                output_names=["intent_probs", "sentiment_probs", "embeddings"],
                dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                              "intent_probs": {0: "batch"}, "sentiment_probs": {0: "batch"},
                              "embeddings": {0: "batch"}},
                opset_version=OPSET, do_constant_folding=True,
            )
        fused = fuse(fp32, Path(scratch) / "fused.onnx", model.encoder.config, bundle.tokenizer, compared=2)
        if quantize == "int8":
            quantize_int8(fused or fp32, out / ONNX_FILE)
        else:
            shutil.copy2(fused or fp32, out / ONNX_FILE)
    (out / EXPORT_INFO).write_text(json.dumps({"source": str(source.resolve()), "quantize": quantize,
                                               "fused": fused is not None, "opset": OPSET,
                                               "file": ONNX_FILE}, indent=2) + "\n")
    return out


def quantize_int8(graph: Path, target: Path) -> None:
    """Dynamic int8 quantization of `graph` (weights int8 per channel, activations on the fly) into `target`."""
    from onnx import TensorProto
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # Fused kernels live outside the standard ONNX domain, where shape inference cannot type their
    # outputs; they are all float32 here.
    hint = _DropLogRecords("pre-processing before quantization")  # the fusion (`fuse`) is that step
    logging.getLogger().addFilter(hint)
    try:
        quantize_dynamic(str(graph), str(target), weight_type=QuantType.QInt8,
                         per_channel=True, extra_options={"DefaultTensorType": TensorProto.FLOAT})
    finally:
        logging.getLogger().removeFilter(hint)


def fuse(fp32: Path, target: Path, config, tokenizer, compared: int) -> Path | None:
    """Write the optimizer-fused graph to `target` and return it, or None when fusion is not exact
    (its first `compared` outputs checked against the plain graph's on sample texts)."""
    import onnxruntime as ort
    from onnxruntime.transformers.optimizer import optimize_model

    heads, hidden = getattr(config, "num_attention_heads", 0), getattr(config, "hidden_size", 0)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            optimized = optimize_model(str(fp32), model_type="bert", num_heads=heads, hidden_size=hidden,
                                       opt_level=1)
        optimized.save_model_to_file(str(target))
    except Exception as exc:  # an architecture the optimizer chokes on still exports, unfused
        log.warning("onnxruntime's transformer optimizer failed (%s); exporting the unfused graph", exc)
        return None
    batch = tokenizer(["where is my order", "i want my money back for the broken lamp", "hi", ""],
                      padding=True, return_tensors="np")
    feeds = {name: batch[name].astype(np.int64) for name in ("input_ids", "attention_mask")}
    plain, fused = (ort.InferenceSession(str(p), providers=["CPUExecutionProvider"]).run(None, feeds)
                    for p in (fp32, target))
    worst = max(float(np.abs(a - b).max()) for a, b in zip(plain[:compared], fused[:compared], strict=True))
    return target if worst <= FUSION_TOLERANCE else None


class _DropLogRecords(logging.Filter):
    """Drops log records containing `text`: advice from a library that does not apply here."""

    def __init__(self, text: str):
        super().__init__()
        self.text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self.text not in record.getMessage()
