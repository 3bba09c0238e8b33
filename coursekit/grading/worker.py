"""The sandbox that runs a student's code: a pre-forked server and one child per submission.

Starting an interpreter and importing torch costs seconds, so the grader starts one *server*
(``python -m coursekit.grading.worker``, a fresh interpreter that imports torch, NumPy and
coursekit once and holds nothing else: no solutions, no other submissions, no results). For
each submission the grader hands the server one end of a new socket pair; the server
``fork()``s a child that, before reading any student code:

- starts a new session (its own process group) and closes every inherited file descriptor;
- where it can (as root on Linux), unshares the network (no interface but a down loopback) and
  the mount namespace, remounts every file system read-only and puts empty tmpfs over /tmp,
  /var/tmp and /dev/shm, then drops to an unprivileged uid of its own;
- sets limits: CPU seconds, address space, processes, file size, no core dumps, open files;
- replaces ``socket`` constructors by ones that raise (defence in depth; see the limits below);
- works in a fresh empty directory, with stdout and stderr going to a capped file there.

The grader then talks to the child directly over the socket (messages of :mod:`wire`, data
only), enforces the wall time of each call, caps the size of each reply, and asks the server to
kill and reap the child's process group when it is done or misbehaves. What a child can still
do is stated in the README's "Grading" section: it runs as code on this machine, so a kernel
exploit, reading world-readable files (coursekit's own reference implementations among them),
or burning its CPU allowance are not prevented; a container or VM adds that isolation.
"""

from __future__ import annotations

import ctypes
import dataclasses
import importlib
import inspect
import linecache
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from typing import Any

import torch

from coursekit.grading import wire

SUBMISSION_FILE = "<submission>"  # the filename the student's extracted code is compiled under
_CLONE_NEWNS, _CLONE_NEWNET = 0x00020000, 0x40000000
_MS_RDONLY, _MS_NOSUID, _MS_NODEV, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = (
    1,
    2,
    4,
    32,
    4096,
    16384,
    1 << 18,
)


@dataclasses.dataclass(frozen=True)
class Limits:
    """What one submission's worker may use. ``call_seconds`` is the wall time of one call."""

    cpu_seconds: int = 60
    call_seconds: float = 10.0
    memory_mb: int = 3072  # address space above what the server already maps
    processes: int = 8
    file_mb: int = 16
    reply_mb: int = 32
    open_files: int = 64


class WorkerDied(BaseException):
    """The child stopped: crashed, killed for a limit or a timeout, or broke the protocol.

    A BaseException, so that the student-facing ``except Exception`` in the checks cannot turn
    it into an ordinary wrong answer before the grader records why."""


# --------------------------------------------------------------------------- the child


def _libc() -> Any:
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def _isolate_filesystem_and_network(libc: Any, uid: int) -> list[str]:
    """Best effort: new network and mount namespaces, read-only mounts, private tmpfs."""
    notes = []
    if libc is None or not hasattr(libc, "unshare"):
        return ["no libc unshare: network and file system not isolated"]
    if libc.unshare(_CLONE_NEWNET) != 0:
        notes.append("could not unshare the network namespace (not root?)")
    if libc.unshare(_CLONE_NEWNS) != 0:
        notes.append("could not unshare the mount namespace (not root?)")
        return notes
    libc.mount(None, b"/", None, _MS_REC | _MS_PRIVATE, None)
    # a scratch directory that holds the interpreter or the course's code (a checkout under
    # /tmp) cannot be covered: the worker would lose its own imports
    code = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, *sys.path) if p}
    scratch = []
    for d in ("/tmp", "/var/tmp", "/dev/shm"):
        if not os.path.isdir(d):
            continue
        if any(c == d or c.startswith(d + "/") for c in code):
            notes.append(f"kept {d} shared: the course's code or Python lives there")
            continue
        scratch.append(d)
    for d in scratch:
        if (
            libc.mount(
                b"tmpfs", d.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=64m,mode=1777"
            )
            != 0
        ):
            notes.append(f"could not mount a private tmpfs on {d}")
    if os.path.ismount("/tmp"):
        _expose_python(libc, uid)
    with open("/proc/self/mountinfo") as f:
        points = [line.split()[4] for line in f]
    for point in sorted(set(points), key=len):
        if point.startswith(("/proc", "/dev", "/sys")) or point in scratch:
            continue
        flags = _MS_REMOUNT | _MS_BIND | _MS_RDONLY | _MS_NOSUID | _MS_NODEV
        if libc.mount(None, point.encode(), None, flags, None) != 0:
            libc.mount(None, point.encode(), None, _MS_REMOUNT | _MS_BIND | _MS_RDONLY, None)
    return notes


def _expose_python(libc: Any, uid: int) -> None:
    """Make the interpreter's own files reachable for the unprivileged uid: a directory on the
    way to them that only its owner may enter (``/root`` for a pyenv Python) is covered, in this
    mount namespace only, by an empty tmpfs into which the needed entries are bound back."""
    needed: dict[str, set[str]] = {}
    for path in {sys.prefix, sys.base_prefix, sys.exec_prefix, *sys.path}:
        if not path or not os.path.isabs(path):
            continue
        parts = os.path.realpath(path).split("/")[1:]
        for k in range(1, len(parts)):
            ancestor = "/" + "/".join(parts[:k])
            if not os.stat(ancestor).st_mode & 0o001:
                needed.setdefault(ancestor, set()).add(parts[k])
                break
    for k, (ancestor, children) in enumerate(sorted(needed.items())):
        stage = f"/tmp/.stage{k}"
        os.mkdir(stage)
        staged = []
        for j, child in enumerate(sorted(children)):
            src = os.path.join(ancestor, child)
            dst = os.path.join(stage, str(j))
            os.mkdir(dst)
            if libc.mount(src.encode(), dst.encode(), None, _MS_BIND | _MS_REC, None) == 0:
                staged.append((child, dst))
        if (
            libc.mount(
                b"tmpfs", ancestor.encode(), b"tmpfs", _MS_NOSUID | _MS_NODEV, b"size=1m,mode=755"
            )
            != 0
        ):
            continue
        for child, dst in staged:
            target = os.path.join(ancestor, child)
            os.mkdir(target)
            libc.mount(dst.encode(), target.encode(), None, _MS_BIND | _MS_REC, None)
            libc.umount2(dst.encode(), 2)  # MNT_DETACH


def _set_limits(limits: Limits, base_address_space: int) -> None:
    def cap(which: int, value: int) -> None:
        soft, hard = resource.getrlimit(which)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        resource.setrlimit(which, (value, value))

    cap(resource.RLIMIT_CPU, limits.cpu_seconds)
    cap(resource.RLIMIT_AS, base_address_space + limits.memory_mb * 2**20)
    cap(resource.RLIMIT_FSIZE, limits.file_mb * 2**20)
    cap(resource.RLIMIT_CORE, 0)
    cap(resource.RLIMIT_NOFILE, limits.open_files)
    if os.getuid() != 0:  # as root the limit is not enforced; _child switches uid first
        running = len([p for p in os.listdir("/proc") if p.isdigit()])
        cap(resource.RLIMIT_NPROC, running + limits.processes)
    else:
        cap(resource.RLIMIT_NPROC, limits.processes)


def _block_network() -> None:
    """Defence in depth only: native code or ctypes can still make sockets (hence the
    network namespace above, where the kernel allows it)."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise PermissionError("the network is disabled while grading")

    class NoSocket(socket.socket):
        def __init__(self, *args: Any, **kwargs: Any):
            refuse()

    socket.socket = NoSocket  # type: ignore[misc]
    for name in ("create_connection", "socketpair", "fromfd", "create_server", "getaddrinfo"):
        setattr(socket, name, refuse)


def _address_space() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[0]) * resource.getpagesize()


def _child(channel: socket.socket, limits: Limits, uid: int) -> None:
    """The forked child: sandbox itself, then serve the grader's requests. Never returns."""
    try:
        os.setsid()
        keep = channel.fileno()
        devnull = os.open(os.devnull, os.O_RDWR)
        os.dup2(devnull, 0)
        libc = _libc()
        notes = _isolate_filesystem_and_network(libc, uid) if os.getuid() == 0 else []
        workdir = tempfile.mkdtemp(prefix="coursekit-grade-")
        if os.getuid() == 0:
            os.chown(workdir, uid, uid)
        os.chdir(workdir)
        out = os.open("output.txt", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        if os.getuid() == 0:
            os.fchown(out, uid, uid)
        os.dup2(out, 1)
        os.dup2(out, 2)
        os.closerange(3, keep)
        os.closerange(keep + 1, 65536)
        _set_limits(limits, _address_space())
        if os.getuid() == 0:
            os.setgroups([])
            os.setgid(uid)
            os.setuid(uid)
        _block_network()
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        torch.set_num_threads(1)
        # the same random numbers in every child: grading a file twice gives the same row even
        # when the student's code draws from the global generators
        import random

        import numpy as np

        random.seed(0)
        np.random.seed(0)
        torch.manual_seed(0)
        _serve(channel, notes)
    except BaseException:  # noqa: BLE001 - the child must never return into the server
        pass
    os._exit(0)


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _find_frame(exc: BaseException) -> tuple[str | None, int | None]:
    """The innermost frame outside coursekit, as ``check._student_frame`` picks it."""
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if not frame.filename.startswith(_PACKAGE_DIR):
            return frame.filename, frame.lineno
    return None, None


def _describe(exc: BaseException) -> dict:
    try:
        message = str(exc)[:2000]
    except BaseException:  # noqa: BLE001 - a student exception whose __str__ raises
        message = "<unprintable>"
    filename, line = _find_frame(exc)
    return {"type": type(exc).__name__[:100], "message": message, "line": line, "file": filename}


def _leaves(args: list, kwargs: dict) -> list[torch.Tensor]:
    """The tensors the grader marked as requiring a gradient, in a fixed order."""
    found = []
    for a in [*args, *kwargs.values()]:
        if isinstance(a, torch.Tensor) and a.requires_grad:
            found.append(a)
        elif isinstance(a, torch.nn.Module):
            found.extend(p for p in a.parameters() if p.requires_grad)
    return found


def probe(out: torch.Tensor) -> torch.Tensor:
    """The direction of the gradient check, exactly as ``check.Exercise.grad`` draws it."""
    if out.ndim == 0:
        return torch.ones_like(out)
    return torch.randn(out.shape, generator=torch.Generator().manual_seed(0)).to(out)


def _snapshot(value: Any) -> bytes | None:
    try:
        return wire.dumps(_module_states(value), trusted=True)
    except Exception:  # noqa: BLE001 - a value we cannot compare is not reported as changed
        return None


def _module_states(value: Any) -> Any:
    if isinstance(value, torch.nn.Module):
        return {k: v.detach() for k, v in value.state_dict().items()}
    if isinstance(value, torch.Tensor):
        return value.detach()
    if isinstance(value, list):
        return [_module_states(v) for v in value]
    if isinstance(value, dict):
        return {k: _module_states(v) for k, v in value.items()}
    return value


def _call(namespace: dict, request: dict) -> dict:
    fn = namespace.get(request["name"])
    if not callable(fn):
        return {"missing": True}
    args, kwargs = list(request["args"]), dict(request["kwargs"])
    before = [_snapshot(a) for a in args]
    before_kw = {k: _snapshot(v) for k, v in kwargs.items()}
    leaves = _leaves(args, kwargs)
    me = os.getpid()
    try:
        out = fn(*args, **kwargs)
    except BaseException as e:  # noqa: BLE001 - SystemExit and KeyboardInterrupt are answers too
        if os.getpid() != me:  # a process the student's code forked: it must never answer
            os._exit(0)
        return {"exc": _describe(e)}
    if os.getpid() != me:
        os._exit(0)
    reply: dict = {"out": out}
    changed = {str(i): _module_states(a) for i, a in enumerate(args) if _snapshot(a) != before[i]}
    changed.update(
        {f"k:{k}": _module_states(v) for k, v in kwargs.items() if _snapshot(v) != before_kw[k]}
    )
    if changed:
        reply["changed"] = changed
    if isinstance(out, torch.Tensor):
        reply.update(_gradients(out, leaves))
        reply["out"] = out.detach()
    elif isinstance(out, tuple | list) and any(isinstance(o, torch.Tensor) for o in out):
        # a pair such as (z, logdet): each tensor gets its own gradient, as each is checked
        reply["items"] = [_gradients(o, leaves) if isinstance(o, torch.Tensor) else {} for o in out]
        reply["out"] = type(out)(o.detach() if isinstance(o, torch.Tensor) else o for o in out)
    return reply


def _gradients(out: torch.Tensor, leaves: list[torch.Tensor]) -> dict:
    """Whether ``out`` requires a gradient and, if so, its gradient in the probe direction."""
    found: dict = {"requires_grad": bool(out.requires_grad)}
    if out.requires_grad and out.is_floating_point() and leaves:
        try:
            grads = torch.autograd.grad(
                out, leaves, probe(out), allow_unused=True, retain_graph=True
            )
            found["grads"] = list(grads)
        except BaseException as e:  # noqa: BLE001
            found["grad_error"] = _describe(e)
    return found


def _load(source: str) -> dict:
    """Run the extracted statements one by one; a failing one is reported, the rest still run."""
    import ast

    namespace: dict = {"__name__": "__submission__"}
    problems = []
    tree = ast.parse(source, SUBMISSION_FILE)
    for stmt in tree.body:
        module = ast.Module(body=[stmt], type_ignores=[])
        try:
            exec(compile(module, SUBMISSION_FILE, "exec"), namespace)
        except BaseException as e:  # noqa: BLE001
            problems.append(_describe(e) | {"line": stmt.lineno})
    return namespace, problems


def _serve(channel: socket.socket, notes: list[str]) -> None:
    namespace: dict = {}
    wire.send(channel, {"ready": True, "notes": notes})
    while True:
        request = wire.recv(channel, max_bytes=1 << 30, trusted=True)
        op = request.get("op")
        if op == "load":
            namespace, problems = _load(request["source"])
            reply = {"problems": problems}
        elif op == "call":
            reply = _call(namespace, request)
        else:
            return
        try:
            data = wire.dumps(reply)
        except BaseException as e:  # noqa: BLE001 - an output the format cannot carry
            data = wire.dumps(
                {
                    "exc": {
                        "type": "WireError",
                        "message": f"the grader cannot read your output: {_describe(e)['message']}",
                        "line": None,
                    }
                }
            )
        channel.sendall(data)


# --------------------------------------------------------------------------- the server


def _serve_forever(control: socket.socket, limits: Limits, uid: int) -> None:
    """Answer the grader: ``spawn`` (with a socket fd) forks a child; ``reap`` kills and waits."""
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(control, 1 << 16, 1)
        except (OSError, EOFError):
            return
        if not data:
            return
        request = wire.loads(data)
        if request["op"] == "spawn":
            channel = socket.socket(fileno=fds[0])
            pid = os.fork()
            if pid == 0:
                control.close()
                _child(channel, limits, uid)
            channel.close()
            wire.send(control, {"pid": pid})
        elif request["op"] == "reap":
            pid = int(request["pid"])
            for fd in fds:
                os.close(fd)
            _kill_all(pid, uid)
            status = _wait(pid, timeout=5.0)
            wire.send(control, {"status": status})
        else:
            return


def _kill_all(pid: int, uid: int) -> None:
    """SIGKILL the child's process group and, when it runs under its own uid, every process of
    that uid (a forked grandchild that called setsid() escapes its group, not its uid)."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    if os.getuid() == 0:
        killer = os.fork()
        if killer == 0:
            try:
                os.setgid(uid)
                os.setuid(uid)
                os.kill(-1, signal.SIGKILL)
            finally:
                os._exit(0)
        os.waitpid(killer, 0)


def _wait(pid: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            return {"unknown": True}
        if done:
            if os.WIFSIGNALED(status):
                return {"signal": os.WTERMSIG(status)}
            return {"exit": os.WEXITSTATUS(status)}
        if time.monotonic() > deadline:
            return {"unknown": True}
        time.sleep(0.005)


def _preload() -> None:
    """Import what the lectures' code uses, once, before any fork."""
    for name in (
        "math",
        "numpy",
        "sympy",  # torch imports it lazily inside autograd; the sandbox could not load it later
        "torch.nn.functional",
        "torch.distributions",
        "coursekit.vae",
        "coursekit.divergences",
        "coursekit.autoregressive",
        "coursekit.autoregressive.coding",
        "coursekit.diffusion",
        "coursekit.diffusion.schedules",
        "coursekit.diffusion.sampling",
        "coursekit.diffusion.ddpm",
        "coursekit.exercises.diffusion",
        "coursekit.grading.lectures",
    ):
        importlib.import_module(name)
    for name in ("matplotlib.pyplot", "ipywidgets", "scipy.stats"):  # what notebooks import
        try:
            importlib.import_module(name)
        except ImportError:
            pass
    # a cheap op of each kind, so that lazy initialisation happens before the fork
    x = torch.randn(3, requires_grad=True)
    torch.autograd.grad((x.exp() * x).sum(), x)


def main(argv: list[str] | None = None) -> None:
    import json

    argv = sys.argv[1:] if argv is None else argv
    control = socket.socket(fileno=int(argv[0]))
    limits = Limits(**json.loads(argv[1]))
    uid = int(argv[2])
    _preload()
    from coursekit.grading import lectures

    lectures.register_callables()
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    wire.send(control, {"ready": True})
    _serve_forever(control, limits, uid)


# --------------------------------------------------------------------------- the grader side


class Sandbox:
    """The grader's handle on one worker server; ``run()`` gives a :class:`Session` per child."""

    def __init__(self, limits: Limits | None = None, *, uid: int = 61000):
        import json

        limits = limits or Limits()
        self.limits = limits
        self.uid = uid
        self._control, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONDONTWRITEBYTECODE="1", MPLBACKEND="Agg")
        env.pop("COURSEKIT_STRICT", None)
        self._process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "coursekit.grading.worker",
                str(theirs.fileno()),
                json.dumps(dataclasses.asdict(limits)),
                str(uid),
            ],
            pass_fds=[theirs.fileno()],
            env=env,
            stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self._control.settimeout(120)
        wire.recv(self._control, max_bytes=1 << 20)

    def session(self) -> Session:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        socket.send_fds(self._control, [wire.dumps({"op": "spawn"})], [theirs.fileno()])
        theirs.close()
        pid = wire.recv(self._control, max_bytes=1 << 20)["pid"]
        return Session(self, ours, pid)

    def reap(self, pid: int) -> dict:
        self._control.sendall(wire.dumps({"op": "reap", "pid": pid}))
        return wire.recv(self._control, max_bytes=1 << 20)["status"]

    def close(self) -> None:
        try:
            self._control.close()
            self._process.wait(timeout=10)
        except Exception:  # noqa: BLE001
            self._process.kill()

    def __enter__(self) -> Sandbox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def describe_death(status: dict, limits: Limits) -> str:
    sig = status.get("signal")
    if sig == signal.SIGXCPU:
        return f"used more than {limits.cpu_seconds} s of CPU time (an endless loop?)"
    if sig == signal.SIGXFSZ:
        return f"wrote more than {limits.file_mb} MB (printed output or files)"
    if sig == signal.SIGSEGV:
        return "crashed with a segmentation fault"
    if sig is not None:
        return f"was killed by signal {signal.Signals(sig).name}"
    if "exit" in status:
        return f"exited (status {status['exit']}: os._exit or a crash) instead of returning"
    return "stopped responding"


class Session:
    """One child process, loaded with one submission's code."""

    def __init__(self, sandbox: Sandbox, sock: socket.socket, pid: int):
        self.sandbox, self.sock, self.pid = sandbox, sock, pid
        self.dead: str | None = None
        self.notes: list[str] = []
        self.cpu_deadline = time.monotonic()
        first = self._exchange(None, what="starting")
        self.notes = first.get("notes", [])

    def _exchange(self, request: dict | None, *, what: str) -> dict:
        """Send ``request`` and wait for the reply within the wall limit; any failure kills the
        child and raises :class:`WorkerDied` with the reason."""
        if self.dead:
            raise WorkerDied(self.dead)
        limits = self.sandbox.limits
        data = None if request is None else wire.dumps(request, trusted=True)  # a grader bug raises
        try:
            if data is not None:
                self.sock.settimeout(limits.call_seconds)
                self.sock.sendall(data)
            deadline = time.monotonic() + limits.call_seconds
            return wire.recv(self.sock, max_bytes=limits.reply_mb * 2**20, deadline=deadline)
        except TimeoutError:
            reason = f"did not finish {what} within {limits.call_seconds:g} s (an endless loop?)"
            self._kill(reason, timed_out=True)
        except wire.WireError as e:
            self._kill(f"sent a reply the grader refuses ({e})")
        except (EOFError, OSError):
            self._kill(None)
        raise WorkerDied(self.dead)

    def _kill(self, reason: str | None, *, timed_out: bool = False) -> None:
        status = self.sandbox.reap(self.pid)
        self.sock.close()
        if reason is None:
            reason = describe_death(status, self.sandbox.limits)
        self.dead = f"the worker running your code {reason}"

    def load(self, source: str) -> list[dict]:
        return self._exchange({"op": "load", "source": source}, what="loading your code")[
            "problems"
        ]

    def call(self, name: str, args: list, kwargs: dict) -> dict:
        return self._exchange(
            {"op": "call", "name": name, "args": args, "kwargs": kwargs}, what=f"`{name}`"
        )

    def close(self) -> None:
        if self.dead:
            return
        try:
            self.sock.sendall(wire.dumps({"op": "bye"}))
        except OSError:
            pass
        self.sandbox.reap(self.pid)
        self.sock.close()
        self.dead = "closed"


# --------------------------------------------------------------------------- the proxy


class RemoteFunction:
    """Stands for the student's function inside a check that runs in the grader: each call sends
    the (copied) arguments to the worker and returns what the student's code returned there,
    rebuilt as plain tensors. A result that needs a gradient gets one through a surrogate with
    the same value whose gradient, in the check's probe direction, is the student's."""

    def __init__(
        self,
        session_factory: Callable[[], Session],
        name: str,
        source_name: str,
        signature: inspect.Signature | None = None,
    ):
        self._session_factory = session_factory
        self.name = name
        self.source_name = source_name  # linecache name for the student's lines
        self.died: str | None = None
        self.fault: BaseException | None = None  # a failure of the grader itself, not the student
        self.__name__ = name
        self.__signature__ = signature  # the student's parameter names, for the checks' messages

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if self.died:
            raise WorkerDied(self.died)
        try:
            reply = self._session_factory().call(self.name, list(args), kwargs)
        except WorkerDied as e:
            self.died = str(e)
            raise
        except Exception as e:  # noqa: BLE001 - the sandbox broke: never score that as a 0
            self.fault = e
            self.died = f"grader fault: {type(e).__name__}: {e}"
            raise WorkerDied(self.died) from e
        if reply.get("missing"):
            raise WorkerDied(f"your notebook does not define `{self.name}`")
        if "exc" in reply:
            raise _rebuild_exception(reply["exc"], self.source_name)
        for key, new in reply.get("changed", {}).items():
            target = kwargs[key[2:]] if key.startswith("k:") else args[int(key)]
            _write_back(target, new)
        out = reply["out"]
        if isinstance(out, torch.Tensor) and reply.get("requires_grad"):
            out = _surrogate(out, _leaves(list(args), kwargs), reply)
        items = reply.get("items")
        if isinstance(out, tuple | list) and isinstance(items, list) and len(items) == len(out):
            leaves = _leaves(list(args), kwargs)
            out = type(out)(
                _surrogate(o, leaves, info)
                if isinstance(o, torch.Tensor)
                and isinstance(info, dict)
                and info.get("requires_grad")
                else o
                for o, info in zip(out, items)
            )
        return out


def _rebuild_exception(info: dict, source_name: str) -> BaseException:
    name, message = str(info["type"]), str(info["message"])
    cls = NotImplementedError if name == "NotImplementedError" else type(name, (Exception,), {})
    exc = cls(message)
    line, filename = info.get("line"), info.get("file")
    if isinstance(line, int) and 0 < line < 10**6 and isinstance(filename, str):
        # re-raise from a frame that points at the same line, so the check's message says
        # "(line N: `code`)" as it does in the notebook
        where = source_name if filename == SUBMISSION_FILE else filename
        code = compile("\n" * (line - 1) + "raise __exc", where, "exec")
        try:
            exec(code, {"__exc": exc})
        except BaseException as raised:  # noqa: BLE001
            return raised
    return exc


def _write_back(target: Any, new: Any) -> None:
    """Apply the student's in-place edit to the grader's copy, so the check sees it."""
    with torch.no_grad():
        if isinstance(target, torch.nn.Module) and isinstance(new, dict):
            for key, value in target.state_dict(keep_vars=True).items():
                if key in new and isinstance(new[key], torch.Tensor):
                    value.data = (
                        new[key].to(value.dtype) if new[key].shape == value.shape else new[key]
                    )
        elif isinstance(target, torch.Tensor) and isinstance(new, torch.Tensor):
            target.data = new
        elif isinstance(target, list) and isinstance(new, list):
            target[:] = new
        elif isinstance(target, dict) and isinstance(new, dict):
            target.clear()
            target.update(new)


def _surrogate(out: torch.Tensor, leaves: list[torch.Tensor], reply: dict) -> torch.Tensor:
    grads = reply.get("grads")
    if not grads or len(grads) != len(leaves):
        return out.requires_grad_() if out.is_floating_point() else out
    w = probe(out)
    coupling = out.new_zeros(())
    for leaf, g in zip(leaves, grads):
        if g is None or not isinstance(g, torch.Tensor) or g.shape != leaf.shape:
            continue
        g = torch.nan_to_num(g.to(leaf.dtype), nan=0.0, posinf=1e30, neginf=-1e30)
        coupling = coupling + (g * (leaf - leaf.detach())).sum().to(out.dtype)
    if not coupling.requires_grad:
        return out.requires_grad_()
    return out + w * coupling / (w * w).sum()


def signature_of(source: str, name: str) -> inspect.Signature | None:
    """The signature of ``def name`` in ``source``, read from the syntax tree (nothing runs)."""
    import ast

    try:
        tree = ast.parse(source)
    except SyntaxError:
        return None
    defs = [s for s in tree.body if isinstance(s, ast.FunctionDef) and s.name == name]
    if not defs:
        return None
    a = defs[-1].args
    P = inspect.Parameter
    params = [P(x.arg, P.POSITIONAL_ONLY) for x in a.posonlyargs]
    plain = a.args
    first_default = len(plain) - len(a.defaults)
    params += [
        P(x.arg, P.POSITIONAL_OR_KEYWORD, default=None if k >= first_default else P.empty)
        for k, x in enumerate(plain)
    ]
    if a.vararg:
        params.append(P(a.vararg.arg, P.VAR_POSITIONAL))
    params += [P(x.arg, P.KEYWORD_ONLY, default=None) for x in a.kwonlyargs]
    if a.kwarg:
        params.append(P(a.kwarg.arg, P.VAR_KEYWORD))
    try:
        return inspect.Signature(params)
    except ValueError:
        return None


def register_source(name: str, source: str) -> None:
    """Let tracebacks through ``name`` show the student's lines (see _rebuild_exception)."""
    lines = source.splitlines(keepends=True)
    linecache.cache[name] = (len(source), None, lines, name)


if __name__ == "__main__":
    main()
