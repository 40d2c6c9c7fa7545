"""The sandbox every run of the candidate's code goes through: a launcher, standard library only.

The runner starts a run as ``python -I -S -c LAUNCH DIR SPEC -- COMMAND...`` (see isolation's ``wrap``). The
launcher is the runner's own code; what it starts is not. Two levels:

``namespaces`` (Linux, where unprivileged user namespaces work)
    A new user, mount, PID and (unless the network is allowed) network namespace. Inside, the
    whole filesystem is read-only but for the run's own folder (and the folders SPEC lists as
    writable), ``/tmp`` and ``/dev/shm`` are private and empty, the paths SPEC hides are covered
    (an empty folder, or /dev/null for a file), ``/proc`` shows only the run's processes, and
    the command runs under a user id other than root, so it holds no capability: it cannot undo
    a mount, trace the launcher, or reach outside. The launcher is the namespace's init: when the
    command exits, it exits, and the kernel ends every process left in the namespace (a
    double-forked daemon included). GPUs work as outside: device files are untouched.

``subreaper`` (anywhere else, or where namespaces are refused: macOS, locked-down containers,
Ubuntu's AppArmor restriction of unprivileged user namespaces)
    The launcher makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``, Linux), so whatever
    the command leaves behind, however detached, becomes the launcher's child, and is killed
    when the command exits. The filesystem is not protected: the run folder is still a fresh
    copy without ``.git``, and the runner checks its records and the repository after every run.

The launcher's exit status is the command's (128 + n for a signal, as a shell reports it).
"""
from __future__ import annotations

import os
import sys
import time

import _signal as signal  # the C module: `signal` would import enum, several ms per run for nothing

# clone flags, mount flags, prctl options (linux/sched.h, linux/mount.h, linux/prctl.h)
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC, MS_BIND, MS_REC, MS_PRIVATE = 1, 2, 4, 8, 4096, 16384, 1 << 18
MOUNT_ATTR_RDONLY, AT_RECURSIVE, SYS_MOUNT_SETATTR = 0x1, 0x8000, 442
PR_SET_CHILD_SUBREAPER, PR_SET_DUMPABLE, PR_SET_PDEATHSIG = 36, 4, 1
SIOCSIFFLAGS, IFF_UP, IFF_LOOPBACK, IFF_RUNNING = 0x8914, 0x1, 0x8, 0x40
UNPRIVILEGED_UID = 65000  # the command's user id inside the namespace: not root, so no capabilities

LEVELS = ("namespaces", "subreaper", "none")


class SandboxError(Exception):
    pass


def _libc():
    """libc through ctypes, imported only here: a launcher without a sandbox starts in a few ms."""
    global ctypes
    import ctypes

    return ctypes.CDLL(None, use_errno=True)


def encode(spec: dict) -> str:
    """The spec as one argument the launcher reads without importing json (or re, which json
    needs): ``key=value`` records separated by RS, a list's items by US, booleans as 1 or 0."""
    out = []
    for key, value in spec.items():
        if isinstance(value, dict):
            out += [f"{key}.{k}={v}" for k, v in value.items()]
        elif isinstance(value, (list, tuple)):
            out.append(f"{key}=" + "\x1f".join(map(str, value)))
        elif isinstance(value, bool):
            out.append(f"{key}={int(value)}")
        else:
            out.append(f"{key}={value}")
    return "\x1e".join(out)


LISTS = ("writable", "readonly", "expose", "hide")


def decode(text: str) -> dict:
    spec: dict = {"limits": {}}
    for record in text.split("\x1e") if text else []:
        key, _, value = record.partition("=")
        if key.startswith("limits."):
            spec["limits"][key[7:]] = int(value)
        elif key in LISTS:
            spec[key] = value.split("\x1f") if value else []
        elif key == "network":
            spec[key] = value == "1"
        else:
            spec[key] = value
    return spec


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise SandboxError(f"{what}: {os.strerror(err)} (errno {err})")


def _mount(libc, source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    _check(libc.mount(source.encode() if source else None, target.encode(), fstype.encode() if fstype else None,
                      ctypes.c_ulong(flags), data.encode() if data else None), f"mount {target}")


def _setattr(libc, path: str, set_: int, clear: int, recursive: bool) -> None:
    import struct

    attr = struct.pack("QQQQ", set_, clear, 0, 0)
    buf = ctypes.create_string_buffer(attr, len(attr))
    _check(libc.syscall(SYS_MOUNT_SETATTR, -100, path.encode(), AT_RECURSIVE if recursive else 0, buf,
                        ctypes.c_size_t(len(attr))), f"mount_setattr {path}")


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _enter_namespaces(libc, network: bool) -> None:
    """A new user namespace (uid_map: UNPRIVILEGED_UID inside is us outside), mount, PID and net."""
    uid, gid = os.geteuid(), os.getegid()
    flags = CLONE_NEWUSER | CLONE_NEWNS | CLONE_NEWPID | (0 if network else CLONE_NEWNET)
    _check(libc.unshare(ctypes.c_int(flags)), "unshare")
    _write("/proc/self/setgroups", "deny")
    _write("/proc/self/uid_map", f"{UNPRIVILEGED_UID} {uid} 1\n")
    _write("/proc/self/gid_map", f"{UNPRIVILEGED_UID} {gid} 1\n")


def _loopback_up() -> None:
    try:
        import _socket  # the C module, as for signal: `socket` imports enum
        import fcntl
        import struct

        s = _socket.socket(_socket.AF_INET, _socket.SOCK_DGRAM)
        try:
            fcntl.ioctl(s.fileno(), SIOCSIFFLAGS, struct.pack("16sH14x", b"lo", IFF_UP | IFF_LOOPBACK | IFF_RUNNING))
        finally:
            s.close()
    except OSError:
        pass  # no loopback: nothing that needs one will work, and nothing else is lost


def _filesystem(libc, spec: dict) -> None:
    """Inside the new mount namespace (as its init, holding its capabilities): everything read-only
    but the writable folders, private /tmp and /dev/shm, hidden paths covered, a /proc of our own.

    The writable and read-only folders are opened first and mounted from those handles, so a
    folder inside /tmp (where run folders usually are) is found again under the private /tmp."""
    _mount(libc, None, "/", None, MS_REC | MS_PRIVATE)
    binds = [(os.path.realpath(p), False) for p in spec.get("writable", [])]
    binds += [(os.path.realpath(p), True) for p in spec.get("readonly", [])]
    covered = [p for p in ("/tmp", "/dev/shm", "/var/tmp") if os.path.isdir(p) and not os.path.islink(p)]
    for path in spec.get("expose", []):  # what the run needs from a folder the private ones cover (a venv)
        path = os.path.realpath(path)
        if os.path.exists(path) and any(path.startswith(c + "/") for c in covered):  # never a private one whole
            binds.append((path, True))
    binds.sort(key=lambda b: b[0].count("/"))  # a folder before the folders inside it
    binds = [b for i, b in enumerate(binds) if b[0] not in [x[0] for x in binds[:i]]]
    handles = [(path, readonly, os.open(path, os.O_PATH)) for path, readonly in binds]
    _setattr(libc, "/", MOUNT_ATTR_RDONLY, 0, recursive=True)
    for path in covered:
        _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=50%")
    for path, readonly, fd in handles:
        try:  # under a private /tmp: the mount point, made anew
            if os.path.isdir(f"/proc/self/fd/{fd}"):
                os.makedirs(path, exist_ok=True)
            elif not os.path.exists(path):
                os.makedirs(os.path.dirname(path), exist_ok=True)
                open(path, "a").close()
        except OSError:
            pass
        _mount(libc, f"/proc/self/fd/{fd}", path, None, MS_BIND | MS_REC)
        _setattr(libc, path, MOUNT_ATTR_RDONLY if readonly else 0, 0 if readonly else MOUNT_ATTR_RDONLY,
                 recursive=True)
        os.close(fd)
    for path in spec.get("hide", []):
        path = os.path.realpath(os.path.expanduser(path))
        if os.path.isdir(path):
            _mount(libc, "tmpfs", path, "tmpfs", MS_NOSUID | MS_NODEV | MS_RDONLY, "size=4k,mode=555")
        elif os.path.exists(path):
            _mount(libc, "/dev/null", path, None, MS_BIND)
    try:  # a /proc that shows the namespace's processes only (refused where /proc is partly covered)
        _mount(libc, "proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC)
    except SandboxError:
        pass


def _exit_status(status: int) -> int:
    if os.WIFSIGNALED(status):
        return 128 + os.WTERMSIG(status)
    return os.WEXITSTATUS(status)


def _supervise(libc, command: list[str], env: dict[str, str], cwd: str, limits: dict) -> int:
    """Start the command, forward stops to it, reap whatever ends, and when the command itself has
    ended, kill everything it left (orphans are ours: we are init, or a subreaper)."""
    if libc is not None and hasattr(libc, "prctl"):  # Linux: the command cannot trace us or read our memory
        libc.prctl(PR_SET_DUMPABLE, 0, 0, 0, 0)
    pid = os.fork()
    if pid == 0:
        try:  # in the launcher's process group: the runner's kill of the group reaches it directly
            os.chdir(cwd)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            if limits.get("fsize"):
                import resource

                resource.setrlimit(resource.RLIMIT_FSIZE, (int(limits["fsize"]),) * 2)
            os.execvpe(command[0], command, env)
        except BaseException as exc:  # noqa: BLE001 - nothing may escape the child
            try:
                os.write(2, f"autoresearch: cannot start {command[0]}: {exc}\n".encode())
            finally:
                os._exit(127)

    _forward_stops(pid)
    status = 0
    while True:
        try:
            done, st = os.waitpid(-1, 0)
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if done == pid:
            status = _exit_status(st)
            break
    _kill_children()
    return status


def _forward_stops(pid: int) -> None:
    """SIGTERM, SIGINT and SIGHUP to the launcher go on to `pid` (which ends as it chooses)."""
    def forward(signum, frame) -> None:
        try:
            os.kill(pid, signum)
        except OSError:
            pass

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, forward)


def _children() -> list[int]:
    """The launcher's children that have not ended: from /proc/self/task/PID/children where the
    kernel has it (the launcher is one thread), else a scan of every process's stat in /proc."""
    me = os.getpid()
    try:
        with open(f"/proc/self/task/{me}/children") as f:
            listed = [int(pid) for pid in f.read().split()]
        if listed:
            return listed
    except (OSError, ValueError):
        pass
    found = []
    for name in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[1] == str(me) and fields[0] != "Z":
                found.append(int(name))
    return found


def _reap() -> bool:
    """Reap every child that has ended; True while one is left (the kernel's word: an orphan the
    command left is our child, as init or subreaper, so none left means nothing of the run is)."""
    while True:
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                return True
        except ChildProcessError:
            return False
        except InterruptedError:
            continue


def _kill_children() -> None:
    """Everything the command left behind (reparented to us): killed and reaped, until none is left.
    The usual case, nothing left, costs one waitpid: /proc is read only when a child remains."""
    for _ in range(100):
        if not _reap():
            return
        for pid in _children():
            try:
                os.killpg(pid, signal.SIGKILL)
            except OSError:
                pass
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        time.sleep(0.002)  # SIGKILL takes a moment: the next round reaps it (about 0.2 s in all at most)


def launch(spec: dict, command: list[str]) -> int:
    """The launcher's work (runs in its own process): enter the sandbox, run the command."""
    libc = _libc() if spec.get("level") in ("namespaces", "subreaper") else None
    env = spec.get("env", os.environ.copy())
    cwd = spec.get("cwd", os.getcwd())
    limits = spec.get("limits", {})
    if spec.get("level") == "namespaces":
        _enter_namespaces(libc, bool(spec.get("network")))
        init = os.fork()  # the first child is the PID namespace's init
        if init:
            _forward_stops(init)
            while True:
                try:
                    _, st = os.waitpid(init, 0)
                    return _exit_status(st)
                except InterruptedError:
                    continue
        try:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)  # the launcher gone: so are we
            _filesystem(libc, spec)
            if not spec.get("network"):
                _loopback_up()
        except (SandboxError, OSError) as exc:
            os.write(2, f"autoresearch: sandbox: {exc}\n".encode())
            os._exit(125)
        os._exit(_supervise(libc, command, env, cwd, limits))
    if spec.get("level") == "subreaper":
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    return _supervise(libc, command, env, cwd, limits)


def end_as(status: int) -> int:
    """End the launcher as the command ended: killed by the same signal, so the runner reads a run
    killed from outside (the kernel's out-of-memory killer) as such; else its exit code."""
    if 128 < status <= 128 + 64 and status - 128 in signal.valid_signals():
        try:
            signal.signal(status - 128, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
        os.kill(os.getpid(), status - 128)
    return status


def main(argv: list[str]) -> int:
    if len(argv) < 3 or argv[1] != "--":
        print("usage: sandbox.py SPEC -- COMMAND [ARGS...]   (SPEC: see encode)", file=sys.stderr)
        return 2
    return end_as(launch(decode(argv[0]), argv[2:]))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
