"""Safe extraction of uploaded zip/tar archives (no absolute paths, no '..', bounded size)."""
import io
import os
import tarfile
import zipfile
from pathlib import Path

from .errors import InputError

MAX_MEMBERS = 20_000


def extract_archive(source, dest: Path, max_unpacked_bytes: int) -> Path:
    """`source`: bytes or a seekable binary file (an upload spooled to disk)."""
    fileobj = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    dest.mkdir(parents=True, exist_ok=True)
    fileobj.seek(0)
    is_zip = zipfile.is_zipfile(fileobj)
    fileobj.seek(0)
    if is_zip:
        _extract_zip(fileobj, dest, max_unpacked_bytes)
    else:
        _extract_tar(fileobj, dest, max_unpacked_bytes)
    return _data_root(dest)


def _safe_target(dest: Path, name: str) -> Path:
    target = (dest / name).resolve()
    if not target.is_relative_to(dest.resolve()):
        raise InputError(f"archive member '{name}' points outside the archive; pack relative paths only")
    return target


def _extract_zip(fileobj, dest: Path, limit: int) -> None:
    with zipfile.ZipFile(fileobj) as zf:
        members = zf.infolist()
        if len(members) > MAX_MEMBERS or sum(m.file_size for m in members) > limit:
            raise InputError(f"the archive unpacks to more than {limit} bytes or {MAX_MEMBERS} files; send a smaller set")
        for m in members:
            _safe_target(dest, m.filename)
        zf.extractall(dest)


def _extract_tar(fileobj, dest: Path, limit: int) -> None:
    try:
        tf = tarfile.open(fileobj=fileobj, mode="r:*")
    except tarfile.TarError:
        raise InputError("the upload is neither a zip nor a tar archive; send .zip, .tar, .tar.gz or .tgz",
                         status=415) from None
    with tf:
        members = tf.getmembers()
        if len(members) > MAX_MEMBERS or sum(m.size for m in members) > limit:
            raise InputError(f"the archive unpacks to more than {limit} bytes or {MAX_MEMBERS} files; send a smaller set")
        for m in members:
            _safe_target(dest, m.name)
        try:
            tf.extractall(dest, filter="data")  # refuses links and devices that could escape dest
        except tarfile.TarError as exc:
            raise InputError(f"the tar archive could not be unpacked: {inside_archive(str(exc), dest)}") from None


def inside_archive(message: str, folder: Path) -> str:
    """Reader messages name files by their path on this server; the client knows them by their place in
    the archive. Both spellings: tarfile reports the resolved one."""
    for spelling in sorted({str(folder), str(Path(folder).resolve())}, key=len, reverse=True):
        message = message.replace(spelling + os.sep, "").replace(spelling, "the archive")
    return message


def _data_root(dest: Path) -> Path:
    """Archives made with `zip -r set.zip set/` hold one top folder; use it as the dataset root."""
    entries = [p for p in dest.iterdir() if not p.name.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and entries[0].is_dir():
        return entries[0]
    return dest
