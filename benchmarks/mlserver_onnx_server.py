"""A peer for `python benchmarks/run.py serve`: the same ONNX model behind Seldon MLServer.

Run with the `mlserver` package (installed by hack/system-deps.sh --bench into
.bench/mlserver-venv, never into the project's venv):

    python benchmarks/mlserver_onnx_server.py MODEL.onnx NAME HTTP_PORT GRPC_PORT [WORKERS]

MLServer ships no ONNX runtime, so this is a custom `mlserver.MLModel` whose
predict runs onnxruntime with the same session settings as `tekton-mlops serve`
(one intra-op thread): the servers differ only in their HTTP and protocol
layers. MLServer is given its fastest settings for this: no debug logging (which
also turns off its access log), no metrics server, and by default inference in
the server process (WORKERS=0) rather than in a pool process behind a queue,
which on two cores only adds a hop. (MLServer's default, one pool process, does
not start with 1.7.1 and uvloop 0.23: the worker's `asyncio.get_event_loop()`
raises "There is no current event loop".) It runs as `mlserver start` on a settings
folder written beside the model, the way MLServer is deployed.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
from mlserver import MLModel
from mlserver.codecs import NumpyCodec
from mlserver.types import InferenceRequest, InferenceResponse, ResponseOutput

DATATYPES = {np.dtype("float32"): "FP32", np.dtype("int64"): "INT64"}


class OnnxModel(MLModel):  # type: ignore[misc]
    async def load(self) -> bool:
        assert self.settings.parameters is not None
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            self.settings.parameters.uri, options, providers=["CPUExecutionProvider"]
        )
        self.input_name = self.session.get_inputs()[0].name
        self.output_names = [o.name for o in self.session.get_outputs()]
        return True

    async def predict(self, payload: InferenceRequest) -> InferenceResponse:
        features = NumpyCodec.decode_input(payload.inputs[0]).astype(np.float32, copy=False)
        values = self.session.run(self.output_names, {self.input_name: features})
        return InferenceResponse(
            id=payload.id,
            model_name=self.name,
            outputs=[
                ResponseOutput(
                    name=name,
                    shape=list(v.shape),
                    datatype=DATATYPES[v.dtype],
                    data=v.reshape(-1).tolist(),
                )
                for name, v in zip(self.output_names, values, strict=True)
            ],
        )


def main(path: str, name: str, http_port: int, grpc_port: int, workers: int) -> None:
    """Write MLServer's settings beside the model and become `mlserver start` on them.

    Its own command line, not an MLServer object made here: the pool processes of
    parallel inference are set up by it (made from here, they fail to start).
    """
    folder = Path(path).parent / f"mlserver-{http_port}"
    folder.mkdir(exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": grpc_port,
        "debug": False,
        "metrics_endpoint": None,
        "parallel_workers": workers,
    }
    model = {
        "name": name,
        "implementation": f"{Path(__file__).stem}.OnnxModel",
        "parameters": {"uri": str(Path(path).resolve())},
    }
    (folder / "settings.json").write_text(json.dumps(settings))
    (folder / "model-settings.json").write_text(json.dumps(model))
    here = str(Path(__file__).resolve().parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([here, os.environ.get("PYTHONPATH", "")])}
    mlserver = str(Path(sys.executable).parent / "mlserver")
    os.execve(mlserver, [mlserver, "start", str(folder)], env)


if __name__ == "__main__":
    workers = int(sys.argv[5]) if len(sys.argv) > 5 else 0
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), workers)
