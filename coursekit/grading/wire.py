"""The message format between the grader and a sandboxed worker: data only, never code.

A message is ``b"CKW1" + <u32 header length> + <u64 blob length> + JSON header + blob``
(little-endian). The JSON header describes the value; every tensor or NumPy array in it is a
``{"__tensor__": [offset, nbytes], "dtype": ..., "shape": [...]}`` pointing into the blob of
raw little-endian bytes. Loading a message runs ``json.loads`` and copies bytes into a *fresh*
``torch.Tensor``: nothing the worker sends can run code in the grader, and a tensor subclass
with a lying ``__eq__`` or ``allclose`` arrives as a plain tensor. There is no pickle anywhere.

Two kinds of value travel only from the grader to the worker (``trusted=True`` when decoding):
``nn.Module`` objects of ``coursekit``/``torch`` classes (rebuilt from their ``__dict__``) and
known callables (a name in :data:`CALLABLES`). A message from a worker that contains either is
refused.
"""

from __future__ import annotations

import collections
import json
import socket
import struct
import time
from typing import Any

import numpy as np
import torch

MAGIC = b"CKW1"
_PREFIX = struct.Struct("<4sIQ")

_TORCH_DTYPES = {
    str(d).removeprefix("torch."): d
    for d in (
        torch.float16,
        torch.bfloat16,
        torch.float32,
        torch.float64,
        torch.int8,
        torch.int16,
        torch.int32,
        torch.int64,
        torch.uint8,
        torch.bool,
        torch.complex64,
    )
}

# Callables the grader may pass as arguments (the f-GAN bound takes a conjugate f*): filled by
# lectures.py with name -> function; the worker process builds the same table from coursekit.
CALLABLES: dict[str, Any] = {}


class WireError(ValueError):
    """A message that is malformed, too large, or holds a value the format does not carry."""


class Unsupported:
    """Stands for a value of a type the format does not carry (a generator, a custom class):
    the check then says "your output is a <type name>" as it would in the notebook."""


def _unsupported(type_name: str) -> Any:
    return type(type_name, (Unsupported,), {})()


class _Encoder:
    def __init__(self, trusted: bool):
        self.trusted = trusted
        self.blob = bytearray()

    def tensor(self, t: torch.Tensor | np.ndarray, kind: str) -> dict:
        needs_grad = isinstance(t, torch.Tensor) and bool(t.requires_grad)
        if isinstance(t, torch.Tensor):
            t = torch.Tensor.detach(t).cpu().contiguous()
            dtype = str(t.dtype).removeprefix("torch.")
            if dtype not in _TORCH_DTYPES:
                raise WireError(f"tensors of dtype {dtype} are not carried")
            data = t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b""
            shape = list(t.shape)
        else:
            a = np.ascontiguousarray(t)
            if a.dtype.kind not in "biufc":
                raise WireError(f"arrays of dtype {a.dtype} are not carried")
            dtype, data, shape = (
                a.dtype.newbyteorder("<").str,
                a.astype(a.dtype.newbyteorder("<")).tobytes(),
                list(a.shape),
            )
        offset = len(self.blob)
        self.blob += data
        spec = {kind: [offset, len(data)], "dtype": dtype, "shape": shape}
        if self.trusted and needs_grad:
            spec["rg"] = True
        return spec

    def value(self, obj: Any, depth: int = 0) -> Any:
        if depth > 50:
            raise WireError("value nested too deeply")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int):
            return obj if abs(obj) < 2**63 else {"__bigint__": str(obj)}
        if isinstance(obj, float):
            return obj if obj == obj and abs(obj) != float("inf") else {"__float__": repr(obj)}
        if isinstance(obj, torch.nn.Parameter):
            return {"__param__": self.tensor(obj, "__tensor__"), "grad": obj.requires_grad}
        if isinstance(obj, torch.Tensor):
            return self.tensor(obj, "__tensor__")
        if isinstance(obj, np.ndarray):
            return self.tensor(obj, "__ndarray__")
        if isinstance(obj, np.generic):
            return self.value(obj.item(), depth + 1)
        if isinstance(obj, torch.dtype):
            return {"__dtype__": str(obj).removeprefix("torch.")}
        if isinstance(obj, torch.device):
            return {"__device__": str(obj)}
        if isinstance(obj, list):
            return [self.value(o, depth + 1) for o in obj]
        if isinstance(obj, tuple):
            return {"__tuple__": [self.value(o, depth + 1) for o in obj]}
        if isinstance(obj, (set, frozenset)):
            return {"__set__": [self.value(o, depth + 1) for o in obj]}
        if isinstance(obj, dict):
            kind = "__odict__" if isinstance(obj, collections.OrderedDict) else "__dict__"
            items = [[self.value(k, depth + 1), self.value(v, depth + 1)] for k, v in obj.items()]
            return {kind: items}
        if self.trusted and isinstance(obj, torch.nn.Module):
            cls = type(obj)
            if not cls.__module__.startswith(("coursekit.", "torch.")):
                raise WireError(f"modules of class {cls.__qualname__} are not carried")
            return {
                "__module__": f"{cls.__module__}:{cls.__qualname__}",
                "state": self.value(obj.__dict__, depth + 1),
            }
        if self.trusted and callable(obj):
            for name, fn in CALLABLES.items():
                if fn is obj:
                    return {"__callable__": name}
            raise WireError(f"the callable {obj!r} is not in wire.CALLABLES")
        if self.trusted:
            raise WireError(f"values of type {type(obj).__name__} are not carried")
        return {"__unsupported__": type(obj).__name__[:100]}


class _Decoder:
    def __init__(self, blob: memoryview, trusted: bool):
        self.blob = blob
        self.trusted = trusted

    def tensor(self, spec: dict, where: list) -> Any:
        offset, nbytes = (int(v) for v in where)
        if offset < 0 or nbytes < 0 or offset + nbytes > len(self.blob):
            raise WireError("a tensor points outside the message")
        shape = [int(s) for s in spec["shape"]]
        raw = bytearray(self.blob[offset : offset + nbytes])  # a copy we own
        if "__ndarray__" in spec:
            dtype = np.dtype(str(spec["dtype"]))
            if dtype.kind not in "biufc":
                raise WireError(f"arrays of dtype {dtype} are not carried")
            return np.frombuffer(raw, dtype=dtype).reshape(shape).copy()
        dtype = _TORCH_DTYPES.get(str(spec["dtype"]))
        if dtype is None:
            raise WireError(f"unknown dtype {spec['dtype']!r}")
        count = int(np.prod(shape)) if shape else 1
        if count * torch.empty((), dtype=dtype).element_size() != nbytes:
            raise WireError("a tensor's shape does not match its bytes")
        if nbytes == 0:
            t = torch.empty(shape, dtype=dtype)
        else:
            t = torch.frombuffer(raw, dtype=torch.uint8).view(dtype).reshape(shape).clone()
        if self.trusted and spec.get("rg") and t.is_floating_point():
            t.requires_grad_()
        return t

    def value(self, obj: Any) -> Any:
        if obj is None or isinstance(obj, (bool, int, float, str)):
            return obj
        if isinstance(obj, list):
            return [self.value(o) for o in obj]
        if not isinstance(obj, dict) or len(obj) == 0:
            raise WireError("malformed value")
        if "__tensor__" in obj:
            return self.tensor(obj, obj["__tensor__"])
        if "__ndarray__" in obj:
            return self.tensor(obj, obj["__ndarray__"])
        if "__param__" in obj:
            t = self.value(obj["__param__"])
            if not self.trusted:
                return t
            return torch.nn.Parameter(t.detach(), requires_grad=bool(obj.get("grad", True)))
        if "__bigint__" in obj:
            return int(str(obj["__bigint__"])[:5000])
        if "__float__" in obj:
            return float(str(obj["__float__"]))
        if "__dtype__" in obj:
            dtype = _TORCH_DTYPES.get(str(obj["__dtype__"]))
            if dtype is None:
                raise WireError("unknown dtype")
            return dtype
        if "__device__" in obj:
            return torch.device(str(obj["__device__"]))
        if "__tuple__" in obj:
            return tuple(self.value(o) for o in obj["__tuple__"])
        if "__set__" in obj:
            return set(self.value(o) for o in obj["__set__"])
        if "__dict__" in obj or "__odict__" in obj:
            items = obj.get("__dict__", obj.get("__odict__"))
            out = {} if "__dict__" in obj else collections.OrderedDict()
            for k, v in items:
                out[self.value(k)] = self.value(v)
            return out
        if "__unsupported__" in obj:
            return _unsupported(str(obj["__unsupported__"]))
        if "__module__" in obj or "__callable__" in obj:
            if not self.trusted:
                raise WireError("a worker may not send modules or callables")
            if "__callable__" in obj:
                return CALLABLES[obj["__callable__"]]
            return _rebuild_module(obj["__module__"], self.value(obj["state"]))
        raise WireError("malformed value")


def _rebuild_module(path: str, state: dict) -> torch.nn.Module:
    import importlib

    module_name, qualname = path.split(":")
    if not module_name.startswith(("coursekit.", "torch.")):
        raise WireError(f"modules of {module_name} are not carried")
    cls: Any = importlib.import_module(module_name)
    for part in qualname.split("."):
        cls = getattr(cls, part)
    obj = cls.__new__(cls)
    obj.__dict__.update(state)
    return obj


def dumps(obj: Any, *, trusted: bool = False) -> bytes:
    """One message holding ``obj`` (see the module docstring)."""
    enc = _Encoder(trusted)
    header = json.dumps(enc.value(obj), separators=(",", ":")).encode()
    return _PREFIX.pack(MAGIC, len(header), len(enc.blob)) + header + bytes(enc.blob)


def loads(data: bytes | memoryview, *, trusted: bool = False) -> Any:
    """The value of one message; ``trusted`` only for messages from the grader."""
    view = memoryview(data)
    if len(view) < _PREFIX.size:
        raise WireError("message too short")
    magic, n_header, n_blob = _PREFIX.unpack(view[: _PREFIX.size])
    if magic != MAGIC or _PREFIX.size + n_header + n_blob != len(view):
        raise WireError("not a coursekit wire message")
    try:
        header = json.loads(bytes(view[_PREFIX.size : _PREFIX.size + n_header]))
        return _Decoder(view[_PREFIX.size + n_header :], trusted).value(header)
    except WireError:
        raise
    except (ValueError, TypeError, KeyError, RecursionError, AttributeError, IndexError) as e:
        raise WireError(f"malformed message ({type(e).__name__})") from None


def send(sock: socket.socket, obj: Any, *, trusted: bool = False) -> None:
    sock.sendall(dumps(obj, trusted=trusted))


def recv(
    sock: socket.socket, *, max_bytes: int, trusted: bool = False, deadline: float | None = None
) -> Any:
    """Read one message. A message longer than ``max_bytes`` raises :class:`WireError` before
    its body is read; past ``deadline`` (``time.monotonic()``) a :class:`TimeoutError`."""
    prefix = _recv_exactly(sock, _PREFIX.size, deadline)
    magic, n_header, n_blob = _PREFIX.unpack(prefix)
    if magic != MAGIC:
        raise WireError("not a coursekit wire message")
    if n_header + n_blob > max_bytes:
        raise WireError(
            f"a message of {n_header + n_blob} bytes is over the {max_bytes}-byte limit"
        )
    return loads(prefix + _recv_exactly(sock, n_header + n_blob, deadline), trusted=trusted)


def _recv_exactly(sock: socket.socket, n: int, deadline: float | None = None) -> bytes:
    chunks, left = [], n
    while left:
        if deadline is not None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no complete reply in time")
            sock.settimeout(remaining)
        chunk = sock.recv(min(left, 1 << 20))
        if not chunk:
            raise EOFError("the other end closed the connection")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)
