"""The model's process: ``python -m registry.model_worker``
(started by `registry.model_process`).

It loads the packaged model, says so with one line, then answers requests
one at a time on its standard streams until its input ends:

- a request: one line, a JSON array of the texts to embed;
- an answer: 8 bytes (rows, dimensions: unsigned 32-bit, little-endian),
  then rows x dimensions float32 values (little-endian, row after row);
  a failure: rows = `FAILED`, dimensions = the length of a UTF-8 message
  that follows.

Its standard error is the gateway's (a traceback lands in its log).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO

READY = b"ready\n"
FAILED = 0xFFFFFFFF
HEADER = struct.Struct("<II")


def serve(requests: BinaryIO, answers: BinaryIO) -> None:
    from registry.tool_embedder import Embedder

    embedder = Embedder.load()
    answers.write(READY)
    answers.flush()
    for line in requests:
        try:
            texts = json.loads(line)
            if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
                raise ValueError("a request is a JSON array of strings")
            vectors = embedder.embed(texts)
        except Exception as error:
            message = repr(error).encode()
            answers.write(HEADER.pack(FAILED, len(message)) + message)
        else:
            answers.write(HEADER.pack(*vectors.shape) + vectors.astype("<f4").tobytes())
        answers.flush()


if __name__ == "__main__":
    serve(sys.stdin.buffer, sys.stdout.buffer)
