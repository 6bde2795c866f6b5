"""The peer for `make bench serve`: the same ONNX model behind KServe's own Python model server.

Run with the `kserve` package (installed by hack/system-deps.sh --bench into
.bench/kserve-venv, never into the project's venv):

    python benchmarks/kserve_onnx_server.py MODEL.onnx NAME PORT

A `kserve.Model` whose predict runs onnxruntime with the same session settings as
`tekton-mlops serve` (one intra-op thread), so the two servers differ only in
their HTTP and protocol layers.
"""

from __future__ import annotations

import sys

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer

DATATYPES = {np.dtype("float32"): "FP32", np.dtype("int64"): "INT64"}


class OnnxModel(Model):
    def __init__(self, name: str, path: str) -> None:
        super().__init__(name)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.ready = True

    async def predict(self, payload, headers=None, response_headers=None):  # type: ignore[no-untyped-def]
        request: InferRequest = payload
        features = request.inputs[0].as_numpy()
        values = self.session.run(self.output_names, {self.input_name: features})
        outputs = [
            InferOutput(name, list(v.shape), DATATYPES[v.dtype], v.reshape(-1).tolist())
            for name, v in zip(self.output_names, values, strict=True)
        ]
        return InferResponse(response_id=request.id, model_name=self.name, infer_outputs=outputs)


if __name__ == "__main__":
    path, name, port = sys.argv[1], sys.argv[2], sys.argv[3]
    sys.argv = [sys.argv[0], f"--http_port={port}", "--enable_grpc=false",
                "--enable_latency_logging=false"]  # fmt: skip
    ModelServer(http_port=int(port), enable_grpc=False).start([OnnxModel(name, path)])
