"""The serif font minutes PDFs embed: one with every Vietnamese letter (Liberation Serif 2, else
DejaVu Serif), found on the system or in given folders."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from sessions.errors import DomainError

SYSTEM_FONT_DIRS = ("/usr/share/fonts", "/usr/local/share/fonts", "~/.local/share/fonts", "~/.fonts")
FONT_FAMILIES: tuple[tuple[str, Mapping[str, str]], ...] = (
    ("LiberationSerif", {"": "LiberationSerif-Regular.ttf", "B": "LiberationSerif-Bold.ttf",
                         "I": "LiberationSerif-Italic.ttf", "BI": "LiberationSerif-BoldItalic.ttf"}),
    ("DejaVuSerif", {"": "DejaVuSerif.ttf", "B": "DejaVuSerif-Bold.ttf", "I": "DejaVuSerif-Italic.ttf",
                     "BI": "DejaVuSerif-BoldItalic.ttf"}),
)


class FontMissing(DomainError):
    code = "pdf_font_missing"
    status = 503


@dataclass(frozen=True, slots=True)
class SerifFont:
    """One family's TrueType files by fpdf2 style ("", "B", "I", "BI")."""

    family: str
    files: Mapping[str, Path]


def find_serif_font(extra_dirs: Iterable[str | Path] = (), *, system: bool = True) -> SerifFont:
    """The first family of :data:`FONT_FAMILIES` whose regular and bold faces exist under the
    given folders or (``system``) the system and per-user font folders, and cover the
    Vietnamese alphabet. Liberation Serif 1.x (Debian ``fonts-liberation``, which Chromium pulls
    in) lacks most Vietnamese letters and is skipped; 2.x (``fonts-liberation2``) has them. A
    missing italic falls back to the upright face (DejaVu's italics are in ``fonts-dejavu-extra``)."""
    dirs = (*extra_dirs, *(SYSTEM_FONT_DIRS if system else ()))
    return _find(tuple(str(Path(d).expanduser()) for d in dirs))


VIETNAMESE = "".join(chr(c) for c in range(0x1EA0, 0x1EFA)) + "ĂăĐđĨĩŨũƠơƯưÀÁÂÃÈÉÊÌÍÒÓÔÕÙÚÝàáâãèéêìíòóôõùúý"


@cache
def covers_vietnamese(path: Path) -> bool:
    from fontTools.ttLib import TTFont  # fpdf2 depends on fontTools

    try:
        cmap = TTFont(str(path), lazy=True).getBestCmap() or {}
    except Exception:  # an unreadable file is simply not a candidate
        return False
    return all(ord(c) in cmap for c in VIETNAMESE)


@cache
def _find(dirs: tuple[str, ...]) -> SerifFont:
    wanted = {name for _, files in FONT_FAMILIES for name in files.values()}
    by_folder: dict[Path, dict[str, Path]] = {}
    for folder in dirs:
        root = Path(folder)
        if root.is_dir():
            for path in sorted(root.rglob("*.ttf")):
                if path.name in wanted:
                    by_folder.setdefault(path.parent, {})[path.name] = path
    for family, files in FONT_FAMILIES:
        for found in by_folder.values():
            regular, bold = found.get(files[""]), found.get(files["B"])
            if regular is None or bold is None or not covers_vietnamese(regular):
                continue
            faces = {"": regular, "B": bold, "I": found.get(files["I"]) or regular,
                     "BI": found.get(files["BI"]) or bold}
            return SerifFont(family, faces)
    raise FontMissing("Không tìm thấy phông chữ có đủ dấu tiếng Việt để xuất PDF (Liberation Serif 2 hoặc "
                      "DejaVu Serif). Cài gói: apt-get install fonts-liberation2 fonts-dejavu-core, hoặc chép "
                      "các tệp LiberationSerif-*.ttf vào ~/.local/share/fonts")


# --- PDF ---------------------------------------------------------------------------------------------
