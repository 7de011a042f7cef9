"""The Open Inference Protocol's gRPC messages.

`grpc_predict_v2.proto` is KServe's published protocol definition (kserve/kserve,
docs/predict-api/v2/grpc_predict_v2.proto, Apache-2.0, unchanged). Its Python messages
(`grpc_predict_v2_pb2.py` and the `.pyi` types) are generated from it by
`python -m maestro.serving.proto.generate` (`make grpc-stubs`, needs the dev dependency
grpcio-tools) and committed; a unit test regenerates them and fails on any difference.

The messages live in a descriptor pool of their own, not protobuf's default pool: a client
library in the same process (Triton's, in the tests) may register the same `inference.*`
names from its own copy of the protocol, and the default pool refuses a second definition.
The wire format does not depend on the pool.
"""
