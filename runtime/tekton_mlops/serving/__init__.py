"""Model serving: the Open Inference Protocol (KServe V2) over onnxruntime."""
