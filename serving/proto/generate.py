"""Regenerate the committed messages of grpc_predict_v2.proto (see the package docstring):
`python -m maestro.serving.proto.generate [DIR]` writes them to DIR (default: beside the
.proto). Needs grpcio-tools, a dev dependency only."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
PROTO = "grpc_predict_v2.proto"
MODULE = "grpc_predict_v2_pb2"
OUTPUTS = (f"{MODULE}.py", f"{MODULE}.pyi")
_DEFAULT_POOL = "_descriptor_pool.Default().AddSerializedFile("
_OWN_POOL = "_descriptor_pool.DescriptorPool().AddSerializedFile("


def generate() -> dict[str, str]:
    """The generated files by name: protoc's output, the message module moved to a pool
    of its own and named as the package imports it."""
    from grpc_tools import protoc

    with tempfile.TemporaryDirectory() as out:
        status = protoc.main(
            ["protoc", f"-I{HERE}", f"--python_out={out}", f"--pyi_out={out}", str(HERE / PROTO)]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status}")
        files = {name: (Path(out) / name).read_text() for name in OUTPUTS}
    module = files[OUTPUTS[0]]
    if module.count(_DEFAULT_POOL) != 1:
        raise RuntimeError(f"protoc's output no longer adds the file with {_DEFAULT_POOL!r}")
    module = module.replace(_DEFAULT_POOL, _OWN_POOL)
    module = module.replace(f"'{MODULE}'", f"'maestro.serving.proto.{MODULE}'")
    files[OUTPUTS[0]] = module
    return files


def main(argv: list[str]) -> int:
    target = Path(argv[0]) if argv else HERE
    for name, text in generate().items():
        (target / name).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
