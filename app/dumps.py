"""pg_dump output: which format a dump is in, reading it through, and restoring it.

The backup_files check and the restore drills both come here, so a dump is recognised, checked
and decompressed one way:

* :func:`detect_format` looks at the contents, never the name: custom dumps start with
  ``PGDMP``, a directory dump holds ``toc.dat``, tar archives say ``ustar`` at byte 257;
  gzip and zstd streams are looked into.
* :func:`verify` reads a dump the way its format allows (``pg_restore --list`` and a full read,
  a full tar read, or a decompressed read of a plain SQL script up to its "dump complete"
  marker) and says what is wrong with it.
* :func:`decompress_to` and :func:`restore` decompress, and pipe a dump into ``pg_restore`` or
  ``psql``.
* :func:`run_programs` is the one way drwatch runs a program: in its own process group, killed
  with its children when the caller is cancelled or drwatch dies, stderr kept for the message.

gzip and zstd are decompressed in this process (``gzip``, ``zstandard``), never by a program:
``zstandard`` feeds a pipe at about 400 MB/s on one core, several times what psql can apply, so
the ``zstd`` binary would only add a dependency and a second set of error messages.
"""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import ctypes
import ctypes.util
import gzip
import hashlib
import os
import re
import shutil
import signal
import sys
import tarfile
import threading
import zlib
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import zstandard

from app import redact
from app.errors import CorruptDump

Layout = Literal["custom", "directory", "tar", "plain"]
Compression = Literal["gzip", "zstd"]
# How the backup_files check names a dump's format in its details. A compressed file is taken
# for a compressed SQL script; verify() says so when it holds something else.
DumpFormat = Literal["custom", "directory", "tar", "plain", "plain.gz", "plain.zst"]
CODEC = {"plain.gz": "gzip", "plain.zst": "zstd", "plain": "plain text"}

SIDECAR_SUFFIX = ".sha256"
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_READ_CHUNK = 1 << 20
# Enough of the end of a plain dump to hold the "dump complete" marker and what pg_dump writes
# after it (a ``\unrestrict`` line since 17.6/16.10/15.14).
_TAIL_BYTES = 16 * 1024
_PLAIN_MARKERS = (
    b"-- PostgreSQL database dump complete",
    b"-- PostgreSQL database cluster dump complete",
)
# Both pg_dump and pg_dumpall scripts open with this comment.
_PLAIN_HEADER = b"-- PostgreSQL database"
# Plain dumps are read this far to find ones that switch databases (pg_dump --create,
# pg_dumpall).
_PLAIN_HEAD_BYTES = 256 * 1024
# A program's stderr is kept up to this much; its first error line is what a person reads.
_STDERR_LIMIT = 64 * 1024


class _Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


# --- what a dump is -------------------------------------------------------------------------------


def detect_format(path: Path) -> tuple[Layout, Compression | None]:
    """The layout of the dump at ``path`` and the compression around it, from its contents.

    Raises OSError, or ValueError for a directory that is not a pg_dump directory dump.
    """
    if path.is_dir():
        if (path / "toc.dat").is_file():
            return "directory", None
        raise ValueError(f"{path} is a directory without toc.dat, not a pg_dump directory dump")
    head = read_head(path, None, 512)
    if head.startswith(_GZIP_MAGIC):
        return _layout(read_head(path, "gzip", 512)), "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return _layout(read_head(path, "zstd", 512)), "zstd"
    return _layout(head), None


def dump_format(path: Path) -> DumpFormat:
    """The format as the backup_files check reports it (``plain.gz``); raises OSError."""
    try:
        layout, compression = detect_format(path)
    except ValueError:
        # A directory without toc.dat: pg_restore --list says why it is no dump.
        return "directory"
    if compression == "gzip":
        return "plain.gz"
    if compression == "zstd":
        return "plain.zst"
    return layout


def _layout(head: bytes) -> Layout:
    if head.startswith(b"PGDMP"):
        return "custom"
    if head[257:262] == b"ustar":
        return "tar"
    return "plain"


@contextlib.contextmanager
def open_dump(path: Path, compression: Compression | None) -> Iterator[_Readable]:
    """The file's (decompressed) bytes. Reading a broken stream raises OSError, EOFError,
    zlib.error or zstandard.ZstdError."""
    with path.open("rb") as raw:
        if compression == "gzip":
            yield gzip.GzipFile(fileobj=raw, mode="rb")
        elif compression == "zstd":
            yield _ZstdStream(raw)
        else:
            yield raw


class _ZstdStream:
    """The frames of a zstd file one after another, decompressed.

    zstandard's own stream_reader ends quietly where a truncated file ends, so a dump cut short
    would look complete up to there; this raises ZstdError instead, as the zstd program does.
    """

    def __init__(self, raw: _Readable) -> None:
        self._raw = raw
        self._decompressor = zstandard.ZstdDecompressor()
        self._frame: zstandard.ZstdDecompressionObj | None = None
        self._pending = bytearray()

    def read(self, size: int = -1, /) -> bytes:
        while size < 0 or len(self._pending) < size:
            # A small input step keeps the decompressed output of one step near _READ_CHUNK.
            data = self._raw.read(_READ_CHUNK // 8)
            if not data:
                if self._frame is not None and not self._frame.eof:
                    raise zstandard.ZstdError("unexpected end of file inside a zstd frame")
                break
            while data:
                if self._frame is None or self._frame.eof:
                    self._frame = self._decompressor.decompressobj()
                self._pending += self._frame.decompress(data)
                data = self._frame.unused_data if self._frame.eof else b""
        size = len(self._pending) if size < 0 else min(size, len(self._pending))
        chunk = bytes(self._pending[:size])
        # Deleting from the front of a bytearray does not copy the rest.
        del self._pending[:size]
        return chunk


def read_head(path: Path, compression: Compression | None, size: int) -> bytes:
    """Up to ``size`` (decompressed) bytes from the start; as much as a broken stream gives."""
    head = b""
    # A broken stream still has a readable start; verify() is the one that complains.
    broken: tuple[type[BaseException], ...] = (
        (OSError, EOFError, zlib.error, zstandard.ZstdError) if compression else ()
    )
    with open_dump(path, compression) as stream, contextlib.suppress(*broken):
        while len(head) < size:
            chunk = stream.read(size - len(head))
            if not chunk:
                break
            head += chunk
    return head


def switches_database(path: Path, compression: Compression | None) -> bool:
    """Whether a plain SQL dump creates or connects to a database (pg_dump --create,
    pg_dumpall): psql would follow its ``\\connect`` out of the database it was given."""
    head = read_head(path, compression, _PLAIN_HEAD_BYTES)
    return re.search(rb"^\s*(\\connect|\\c\s|CREATE DATABASE)", head, re.MULTILINE) is not None


def _chunks(stream: _Readable, cancel: threading.Event) -> Iterator[bytes]:
    while True:
        if cancel.is_set():
            raise CorruptDump("not verified: the run was cancelled")
        chunk = stream.read(_READ_CHUNK)
        if not chunk:
            return
        yield chunk


# --- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    method: str
    problem: str = ""


async def verify(path: Path, fmt: DumpFormat, *, sidecar: bool, pg_restore: str) -> Verification:
    """Read the dump the way its format allows; never raises except on cancellation.

    ``sidecar`` says a ``<name>.sha256`` lies beside it, whose SHA-256 must match.
    """
    cancel = threading.Event()
    methods: list[str] = []
    try:
        if sidecar and fmt != "directory":
            await asyncio.to_thread(_check_sidecar, path, cancel)
            methods.append("sha256 sidecar")
        if fmt in ("custom", "directory", "tar"):
            entries = await _pg_restore_list(pg_restore, path)
            methods.append(f"pg_restore --list ({entries} TOC entries)")
            if fmt == "tar":
                await asyncio.to_thread(_read_tar, path, cancel)
                methods.append("full tar read")
            else:
                await _pg_restore_full_read(pg_restore, path)
                methods.append("full pg_restore read")
        else:
            await asyncio.to_thread(_read_plain, path, fmt, cancel)
            codec = "" if fmt == "plain" else f"{CODEC[fmt]} "
            methods.append(f"full {codec}read and dump complete marker")
    except CorruptDump as exc:
        return Verification(False, ", ".join(methods), str(exc))
    except OSError as exc:
        return Verification(False, ", ".join(methods), f"unreadable ({exc.strerror or exc})")
    finally:
        # Stops a reader thread that is still running when the run is cancelled.
        cancel.set()
    return Verification(True, " and ".join(methods))


def _check_sidecar(path: Path, cancel: threading.Event) -> None:
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    text = sidecar.read_text(errors="replace").strip()
    expected = text.split()[0].lower() if text else ""
    if not re.fullmatch(r"[0-9a-f]{64}", expected):
        raise CorruptDump(f"paired with an unreadable sidecar {sidecar.name} (no SHA-256 in it)")
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in _chunks(f, cancel):
            digest.update(chunk)
    if digest.hexdigest() != expected:
        raise CorruptDump(
            f"not the file its {sidecar.name} describes (SHA-256 mismatch: corrupted or "
            "overwritten after the checksum was taken)"
        )


def _read_plain(path: Path, fmt: DumpFormat, cancel: threading.Event) -> None:
    first = True
    tail = b""
    decode: Callable[[bytes, bool], object] | None = None
    compression: Compression | None = (
        "gzip" if fmt == "plain.gz" else "zstd" if fmt == "plain.zst" else None
    )
    with open_dump(path, compression) as stream:
        try:
            for chunk in _chunks(stream, cancel):
                if first:
                    first = False
                    head = chunk[:4096]
                    if _PLAIN_HEADER not in head[:256]:
                        raise CorruptDump("not a pg_dump SQL script (no PostgreSQL dump header)")
                    if b"client_encoding = 'UTF8'" in head:
                        decode = codecs.getincrementaldecoder("utf-8")(errors="strict").decode
                if decode is not None:
                    decode(chunk, False)
                tail = (tail + chunk[-_TAIL_BYTES:])[-_TAIL_BYTES:]
            if decode is not None:
                decode(b"", True)
        except (OSError, EOFError, zlib.error, zstandard.ZstdError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise
            raise CorruptDump(f"a broken {CODEC[fmt]} stream ({exc})") from None
        except UnicodeDecodeError:
            raise CorruptDump("corrupt: it holds bytes that are not UTF-8 in a UTF8 dump") from None
    if first:
        raise CorruptDump("empty after decompression")
    if not any(marker in tail for marker in _PLAIN_MARKERS):
        raise CorruptDump("truncated: it does not end with PostgreSQL's 'dump complete' marker")


def _read_tar(path: Path, cancel: threading.Event) -> None:
    try:
        with tarfile.open(path, mode="r:") as archive:
            for member in archive:
                if cancel.is_set():
                    raise CorruptDump("not verified: the run was cancelled")
                extracted = archive.extractfile(member)
                if extracted is None:
                    continue
                for _ in _chunks(extracted, cancel):
                    pass
    except tarfile.TarError as exc:
        raise CorruptDump(f"a broken tar archive ({exc}); it is truncated or corrupted") from None


async def _pg_restore_list(pg_restore: str, path: Path) -> int:
    entries = 0

    async def count(stdout: asyncio.StreamReader) -> None:
        nonlocal entries
        async for line in stdout:
            if line[:1].isdigit():
                entries += 1

    outcome = await _verifying(pg_restore, ["--list", str(path)], count)
    if outcome.returncode != 0:
        raise CorruptDump(f"not a readable pg_dump archive ({outcome.first_line})")
    if entries == 0:
        raise CorruptDump("an archive with no TOC entries")
    return entries


async def _pg_restore_full_read(pg_restore: str, path: Path) -> None:
    outcome = await _verifying(pg_restore, ["--file", os.devnull, str(path)], None)
    if outcome.returncode != 0:
        raise CorruptDump(f"truncated or corrupted ({outcome.first_line})")


async def _verifying(
    program: str,
    args: list[str],
    read_stdout: Callable[[asyncio.StreamReader], Awaitable[None]] | None,
) -> Outcome:
    try:
        [outcome] = await run_programs([(program, [program, *args])], read_stdout=read_stdout)
    except FileNotFoundError:
        raise CorruptDump(f"not verified: {program} is not installed") from None
    return outcome


# --- decompressing and restoring ------------------------------------------------------------------


async def decompress_to(path: Path, compression: Compression, destination: Path) -> None:
    """Write the decompressed ``path`` to ``destination`` (mode 0600).

    Raises CorruptDump with the decompressor's complaint when the stream is broken.
    """
    stop = threading.Event()

    def copy() -> None:
        fd = os.open(destination, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out, open_dump(path, compression) as stream:
            try:
                for chunk in _chunks(stream, stop):
                    out.write(chunk)
            except (EOFError, zlib.error, zstandard.ZstdError, gzip.BadGzipFile) as exc:
                raise CorruptDump(str(exc) or type(exc).__name__) from None

    try:
        await asyncio.to_thread(copy)
    finally:
        stop.set()


def pg_program(name: str, pg_bin: Path | None) -> str:
    """A PostgreSQL client program: from ``pg_bin``, the newest installed version, or PATH."""
    if pg_bin is not None and (pg_bin / name).is_file():
        return str(pg_bin / name)
    versions = sorted(
        Path("/usr/lib/postgresql").glob(f"*/bin/{name}"),
        key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0,
        reverse=True,
    )
    if versions:
        return str(versions[0])
    return shutil.which(name) or name


async def restore(
    path: Path,
    layout: Layout,
    compression: Compression | None,
    *,
    database: str,
    env: Mapping[str, str],
    jobs: int,
    pg_bin: Path | None,
) -> Outcome | None:
    """Restore a dump into ``database`` on the server ``env``'s libpq variables name.

    Plain SQL goes through ``psql -v ON_ERROR_STOP=1`` (decompressed on its way in), the others
    through ``pg_restore`` (with ``--jobs`` above 1), which reads neither gzip nor zstd: those
    are decompressed with :func:`decompress_to` first. Returns the step that failed, or None.
    """
    if layout == "plain":
        psql = [pg_program("psql", pg_bin), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", database]
        if compression is None:
            outcomes = await run_programs([("psql", [*psql, "-f", str(path)])], env)
        else:
            outcomes = await run_programs([("psql", psql)], env, stdin=(path, compression))
    else:
        if compression is not None:
            raise ValueError(f"pg_restore reads no {compression} stream; decompress it first")
        command = [pg_program("pg_restore", pg_bin)]
        if jobs > 1:
            command += ["--jobs", str(jobs)]
        command += ["--no-owner", "--no-privileges"]
        outcomes = await run_programs([("pg_restore", [*command, "-d", database, str(path)])], env)
    # The consumer's error explains more than the decompressor's broken pipe.
    return next((outcome for outcome in reversed(outcomes) if outcome.returncode), None)


# --- running programs -----------------------------------------------------------------------------


@dataclass
class Outcome:
    """How a program (or the decompressor feeding it) ended."""

    program: str
    returncode: int
    stderr: str

    @property
    def last_error(self) -> str:
        """The line of stderr that says what went wrong, scrubbed of secrets."""
        lines = [line.strip() for line in self.stderr.splitlines() if line.strip()]
        errors = [line for line in lines if "error" in line.lower() or "fatal" in line.lower()]
        chosen = (errors or lines or [f"exit code {self.returncode}"])[0]
        return redact.scrub(chosen)[:400]

    @property
    def first_line(self) -> str:
        """The first line of stderr, without pg_restore's ``pg_restore: error:`` prefix."""
        for line in self.stderr.splitlines():
            line = line.strip()
            if line:
                return line.removeprefix("pg_restore: ").removeprefix("error: ")
        return "no error message"


_PR_SET_PDEATHSIG = 1


def _load_prctl() -> Callable[..., int] | None:
    if sys.platform != "linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    except OSError:
        return None
    prctl: Callable[..., int] = libc.prctl
    return prctl


_prctl = _load_prctl()


def _child_setup() -> None:
    # Runs in the child before exec: if drwatch dies (kill -9, OOM), the program dies with it
    # instead of writing on into a database nobody watches.
    if _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _kill_group(proc: asyncio.subprocess.Process) -> None:
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def run_programs(
    steps: Sequence[tuple[str, Sequence[str]]],
    env: Mapping[str, str] | None = None,
    *,
    stdin: tuple[Path, Compression] | None = None,
    read_stdout: Callable[[asyncio.StreamReader], Awaitable[None]] | None = None,
) -> list[Outcome]:
    """Run ``(name, argv)`` programs as a pipeline, the stdout of each into the next.

    ``stdin`` is a compressed file the first program reads decompressed; a thread decompresses
    it, and its outcome (named after the compression) comes first in the list when it is given.
    ``read_stdout`` consumes the last program's output (else it goes to /dev/null). Each program
    gets its own process group, so pg_restore's workers die with it: all are killed when the
    caller is cancelled. Raises FileNotFoundError for a program that is not installed.
    """
    procs: list[asyncio.subprocess.Process] = []
    stop = threading.Event()
    feeder: asyncio.Future[Outcome] | None = None
    try:
        previous_read: int | None = None
        if stdin is not None:
            previous_read, feed_end = os.pipe()
            feeder = asyncio.ensure_future(asyncio.to_thread(_feed, stdin, feed_end, stop))
        for index, (_, args) in enumerate(steps):
            last = index == len(steps) - 1
            read_end, write_end = (None, None) if last else os.pipe()
            stdout: int | None = write_end
            if last:
                stdout = asyncio.subprocess.PIPE if read_stdout else asyncio.subprocess.DEVNULL
            first_stdin = asyncio.subprocess.DEVNULL if previous_read is None else previous_read
            creating = asyncio.ensure_future(
                asyncio.create_subprocess_exec(
                    *args,
                    stdin=first_stdin,
                    stdout=stdout,
                    stderr=asyncio.subprocess.PIPE,
                    env=None if env is None else dict(env),
                    start_new_session=True,
                    preexec_fn=_child_setup,
                )
            )
            try:
                proc = await asyncio.shield(creating)
            except asyncio.CancelledError:
                # Cancelled after the fork, while asyncio connected the pipes: the program runs
                # (and may have children already). Cancelling the creation would kill only its
                # own pid; finish it instead, so the whole group is killed below.
                with contextlib.suppress(Exception):
                    procs.append(await creating)
                raise
            finally:
                for fd in (previous_read, write_end):
                    if fd is not None:
                        os.close(fd)
                previous_read = None
            procs.append(proc)
            previous_read = read_end
        waits = [
            _finish(proc, read_stdout if i == len(procs) - 1 else None)
            for i, proc in enumerate(procs)
        ]
        results = await asyncio.gather(*waits)
        fed = [await feeder] if feeder is not None else []
    except BaseException:
        stop.set()
        for proc in procs:
            _kill_group(proc)
        for proc in procs:
            with contextlib.suppress(Exception):
                await asyncio.shield(proc.wait())
        if feeder is not None:
            # Unblocked by the killed reader (a broken pipe) or by stop, between two chunks.
            with contextlib.suppress(BaseException):
                await asyncio.shield(feeder)
        raise
    return fed + [
        Outcome(name, returncode, stderr)
        for (name, _), (returncode, stderr) in zip(steps, results, strict=True)
    ]


async def _finish(
    proc: asyncio.subprocess.Process,
    read_stdout: Callable[[asyncio.StreamReader], Awaitable[None]] | None,
) -> tuple[int, str]:
    assert proc.stderr is not None
    stderr = asyncio.ensure_future(_read_limited(proc.stderr))
    try:
        if read_stdout is not None:
            assert proc.stdout is not None
            await read_stdout(proc.stdout)
        text = await stderr
        return await proc.wait(), text
    finally:
        stderr.cancel()


async def _read_limited(stream: asyncio.StreamReader) -> str:
    """The start of a stream, read to its end (a program blocks when its stderr pipe is full)."""
    kept = b""
    while chunk := await stream.read(65536):
        if len(kept) < _STDERR_LIMIT:
            kept += chunk[: _STDERR_LIMIT - len(kept)]
    return kept.decode(errors="replace")


def _feed(source: tuple[Path, Compression], fd: int, stop: threading.Event) -> Outcome:
    path, compression = source
    try:
        with os.fdopen(fd, "wb") as out, open_dump(path, compression) as stream:
            for chunk in _chunks(stream, stop):
                out.write(chunk)
    except (BrokenPipeError, CorruptDump):
        # The reader ended (its own outcome says why) or the caller was cancelled.
        pass
    except (EOFError, zlib.error, zstandard.ZstdError, OSError) as exc:
        return Outcome(compression, 1, f"{compression}: {exc or type(exc).__name__}")
    return Outcome(compression, 0, "")
