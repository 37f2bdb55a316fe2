"""Defensive reading and atomic writing of zip archives (the plumbing under `easyrl.serialization`).

Everything here assumes the archive came from a stranger: the central directory is checked (names, count,
sizes, compression) before any member is read, every read is capped at the member's declared size, and
every failure becomes one `ModelFileError` that names the file.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import secrets
import stat
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

MiB = 1 << 20
GiB = 1 << 30
METADATA_NAME = "metadata.json"
_SAFE_STEM = r"[A-Za-z0-9_.-]+"
_SAFE_STEM_RE = re.compile(_SAFE_STEM)
_CHUNK = 16 * MiB

PathOrFile = str | os.PathLike[str] | IO[bytes]


class ModelFileError(ValueError):
    """A saved file is missing pieces, damaged, foreign, too new, or unsafe to load.

    The message names the file and the problem, and says what to do where there is something to do.
    """

    def __init__(self, path: object, problem: str) -> None:
        self.path = str(path)
        self.problem = problem
        super().__init__(f"{self.path} {problem}")

    def __reduce__(self) -> tuple[type[ModelFileError], tuple[str, str]]:
        return type(self), (self.path, self.problem)


@dataclass(frozen=True)
class ZipLimits:
    """Bounds a file must respect before anything in it is read (defence against zip bombs)."""

    max_members: int = 1024
    max_metadata_bytes: int = 1 * MiB
    max_member_bytes: int = 4 * GiB
    max_total_bytes: int = 16 * GiB
    # Deflate cannot exceed ~1032:1; a big member near that ratio is almost surely a bomb.
    max_compression_ratio: float = 1000.0
    ratio_check_min_bytes: int = 1 * MiB


DEFAULT_LIMITS = ZipLimits()


def check_name(name: str) -> str:
    """Return `name` if it can be a member stem (`policy`, `actor.optimizer`), else raise ValueError."""
    if not isinstance(name, str) or not _SAFE_STEM_RE.fullmatch(name) or name in {".", ".."}:
        raise ValueError(
            f"{name!r} cannot name a member of a saved file: names may only use A-Z a-z 0-9 _ . -"
        )
    return name


def display_name(source: PathOrFile) -> str:
    """How a path or an open file is named in messages."""
    if isinstance(source, str | os.PathLike):
        return os.fspath(source)
    name = getattr(source, "name", None)
    return name if isinstance(name, str) else "<binary stream>"


# ---------------------------------------------------------------------------------------------------------
# Atomic writing
# ---------------------------------------------------------------------------------------------------------


def resolve_save_path(path: str | os.PathLike[str]) -> Path:
    """SB3's convention: a path without a suffix gets `.zip`; missing parent folders are created."""
    target = Path(path)
    if target.suffix == "":
        target = target.with_suffix(".zip")
    if target.is_dir():
        raise IsADirectoryError(f"Cannot save to {target}: it is a directory; give a file name instead.")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise write_error(target, error) from error
    return target


@contextlib.contextmanager
def atomic_output(target: Path) -> Iterator[IO[bytes]]:
    """Yield a file that replaces `target` only once it is completely written and synced to disk.

    A crash or an exception leaves the previous `target` untouched and removes the temporary file. Through a
    symlink, the file it points to is replaced. Each writer has its own temporary file, so two processes
    saving to one path leave one of their files, complete. A failure of the file system (a full disk, a
    read-only folder) becomes one `OSError` that names `target` and what to do (:func:`write_error`); a
    process killed mid-write (SIGKILL) leaves its hidden temporary file, `.<name>.<hex>.tmp`, beside the
    intact `target`.
    """
    if target.is_symlink():
        target = target.resolve()
    while True:
        temp = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            # os.open applies the umask, unlike mkstemp's 0600, so the saved file gets the usual permissions.
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
            break
        except FileExistsError:
            continue
        except OSError as error:
            raise write_error(target, error) from error
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temp, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temp, target)
    except BaseException as error:
        with contextlib.suppress(OSError):
            os.unlink(temp)
        if isinstance(error, OSError) and error.errno is not None:
            raise write_error(target, error) from error
        raise
    _fsync_directory(target.parent)


_WRITE_HINTS = {
    errno.ENOSPC: "the disk is full: free some space, or save to another disk",
    errno.EDQUOT: "the disk quota is used up: free some space, or save to another disk",
    errno.EACCES: "the folder is not writable: save to a writable folder, or change its permissions",
    errno.EPERM: "the folder is not writable: save to a writable folder, or change its permissions",
    errno.EROFS: "the file system is read-only: save to a writable one",
}


def write_error(target: Path, error: OSError) -> OSError:
    """One clear error for a failed save: the path, the cause, that the old file is intact, and what to do.

    Built as ``OSError(errno, message)``, which Python turns into the matching subclass (PermissionError
    for EACCES), so ``except`` clauses written for the original error still catch it.
    """
    code = error.errno if error.errno is not None else 0
    hint = _WRITE_HINTS.get(code, "check the folder and the disk, then save again")
    reason = error.strerror or str(error)
    return OSError(
        code,
        f"Could not save {target}: {reason}. The file that was there, if any, is unchanged and no partial file "
        f"was left; {hint}.",
    )


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def fixed_time_info(member: str, compression: int) -> zipfile.ZipInfo:
    """A member entry with a constant timestamp, so saving the same model twice gives identical bytes."""
    info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
    info.compress_type = compression
    info.external_attr = 0o644 << 16
    return info


# ---------------------------------------------------------------------------------------------------------
# Checked reading
# ---------------------------------------------------------------------------------------------------------


def _locate(source: str | os.PathLike[str]) -> Path:
    path = Path(source)
    if not path.exists() and path.suffix == "" and path.with_suffix(".zip").exists():
        path = path.with_suffix(".zip")
    if not path.exists():
        raise FileNotFoundError(
            2, "No such file (check the path; easyrl files end in .zip)", os.fspath(source)
        )
    if path.is_dir():
        raise ModelFileError(path, "is a directory, not a saved file.")
    return path


def _describe_non_zip(head: bytes) -> str:
    if head.startswith(b"PK\x03\x04"):
        return (
            "starts like a zip archive but is damaged or truncated; it may be an incomplete download or copy."
        )
    if head.startswith(b"version https://git-lfs"):
        return "is a Git LFS pointer, not the file itself; fetch the real file with `git lfs pull`."
    if head.lstrip()[:1] == b"<":
        return "looks like an HTML/XML page, not a saved file (did a download link return a web page?)."
    return "is not a zip archive, so it was not written by easyrl's save()."


@contextlib.contextmanager
def open_checked_zip(source: PathOrFile, pattern: re.Pattern[str], limits: ZipLimits) -> Iterator[ZipReader]:
    """Open `source` as a zip whose members all match `pattern`, after checking its central directory."""
    name = display_name(source)
    if isinstance(source, str | os.PathLike):
        path = _locate(source)
        name = os.fspath(path)
        size = path.stat().st_size
        with open(path, "rb") as file:
            head = file.read(64)
            yield from _open_stream(file, name, size, head, pattern, limits)
    else:
        try:
            start = source.tell()
            size = source.seek(0, os.SEEK_END) - start
            source.seek(start)
            head = source.read(64)
            source.seek(start)
        except (OSError, ValueError) as error:
            raise ModelFileError(name, f"cannot be read as a seekable binary file ({error}).") from None
        yield from _open_stream(source, name, size, head, pattern, limits)


def _open_stream(
    file: IO[bytes], name: str, size: int, head: bytes, pattern: re.Pattern[str], limits: ZipLimits
) -> Iterator[ZipReader]:
    if size == 0:
        raise ModelFileError(
            name, "is empty (0 bytes); it was probably cut short by an interrupted save, copy or download."
        )
    if not zipfile.is_zipfile(file):
        raise ModelFileError(name, _describe_non_zip(head))
    try:
        archive = zipfile.ZipFile(file)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, EOFError, ValueError) as error:
        raise ModelFileError(name, f"is a damaged zip archive ({error}).") from None
    with archive:
        reader = ZipReader(archive, name, limits)
        reader.check_directory(pattern)
        yield reader


class ZipReader:
    """A validated archive: member names are known to be safe, sizes within limits."""

    def __init__(self, archive: zipfile.ZipFile, name: str, limits: ZipLimits) -> None:
        self.archive = archive
        self.name = name
        self.limits = limits

    def error(self, problem: str) -> ModelFileError:
        """A `ModelFileError` naming this file."""
        return ModelFileError(self.name, problem)

    @property
    def names(self) -> list[str]:
        """Member names, in archive order."""
        return self.archive.namelist()

    def check_directory(self, pattern: re.Pattern[str]) -> None:
        """Refuse unsafe, unexpected, oversized, encrypted or oddly compressed members."""
        infos = self.archive.infolist()
        if infos and min(info.header_offset for info in infos) != 0:
            # zipfile tolerates data before an archive; for us it means the file was cut short and what was
            # found is a zip nested inside (a stored .pt member is itself a zip).
            raise self.error(
                "is damaged or truncated (its zip directory does not start at the beginning of the file); "
                "it may be an incomplete download or copy."
            )
        if len(infos) > self.limits.max_members:
            raise self.error(f"has {len(infos)} members, more than the {self.limits.max_members} allowed.")
        seen: set[str] = set()
        for info in infos:
            member = info.orig_filename
            if (
                member != info.filename
                or member.startswith(("/", "\\"))
                or "\\" in member
                or ":" in member
                or ".." in member.split("/")
            ):
                raise self.error(f"contains a member with an unsafe name ({member!r}) and was refused.")
            if member in seen:
                raise self.error(f"contains the member {member!r} twice and was refused.")
            seen.add(member)
        if METADATA_NAME not in seen:
            hint = ""
            if "_stable_baselines3_version" in seen:
                hint = " It looks like a Stable-Baselines3 file: import it with easyrl.import_sb3(path) or SAC.load_sb3(path) (TD3, DDPG), which never unpickle."
            elif any(member.endswith("data.pkl") for member in seen):
                hint = " It looks like a file written by torch.save()."
            raise self.error(f"is not an easyrl file: it has no {METADATA_NAME}.{hint}")
        total = 0
        for info in infos:
            self._check_member(info, pattern)
            total += info.file_size
        if total > self.limits.max_total_bytes:
            raise self.error(
                f"would unpack to {total} bytes, more than the {self.limits.max_total_bytes} allowed "
                "(pass larger `limits=ZipLimits(...)` if you trust this file)."
            )

    def _check_member(self, info: zipfile.ZipInfo, pattern: re.Pattern[str]) -> None:
        member = info.filename
        if not pattern.fullmatch(member):
            raise self.error(f"contains an unexpected member {member!r} and was refused.")
        if info.flag_bits & 0x1:
            raise self.error(f"has an encrypted member {member!r}; easyrl files are never encrypted.")
        if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
            raise self.error(f"uses an unsupported compression method for {member!r}.")
        cap = self.limits.max_metadata_bytes if member == METADATA_NAME else self.limits.max_member_bytes
        if info.file_size > cap:
            raise self.error(
                f"declares a member {member!r} of {info.file_size} bytes, more than the {cap} allowed "
                "(pass larger `limits=ZipLimits(...)` if you trust this file)."
            )
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= self.limits.ratio_check_min_bytes and ratio > self.limits.max_compression_ratio:
            raise self.error(f"has a member {member!r} compressed {ratio:.0f}:1, a likely zip bomb; refused.")

    def info(self, member: str) -> zipfile.ZipInfo:
        """The checked entry of `member`."""
        return self.archive.getinfo(member)

    def read(self, member: str) -> bytes:
        """All bytes of `member`, never more than its (already bounded) declared size."""
        info = self.archive.getinfo(member)
        parts: list[bytes] = []
        received = 0
        with self.open(member) as stream:
            while received <= info.file_size:
                part = stream.read(min(_CHUNK, info.file_size + 1 - received))
                if not part:
                    break
                parts.append(part)
                received += len(part)
        if received != info.file_size:
            raise self.error(f"has a damaged member {member!r} (size differs from its header).")
        return b"".join(parts)

    @contextlib.contextmanager
    def open(self, member: str) -> Iterator[IO[bytes]]:
        """A stream over `member`; zip-level damage inside the block becomes a `ModelFileError`."""
        try:
            with self.archive.open(member) as stream:
                yield stream
        except (
            zipfile.BadZipFile,
            EOFError,
            zlib.error,
            NotImplementedError,
            RuntimeError,
            OSError,
            UnicodeDecodeError,  # a member's local header flags a UTF-8 name that is not UTF-8
        ) as error:
            raise self.error(f"has a damaged member {member!r} ({error}).") from None


def member_pattern(*alternatives: str) -> re.Pattern[str]:
    """A pattern accepting `metadata.json` and each `alternatives` template, `{stem}` a safe stem."""
    parts = [re.escape(METADATA_NAME)] + [a.replace("{stem}", _SAFE_STEM) for a in alternatives]
    return re.compile("|".join(f"(?:{part})" for part in parts))
