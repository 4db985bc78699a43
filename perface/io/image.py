"""Load any image perface may be handed as one uint8 RGB array.

Every entry point of the library funnels images through :func:`load_image`, so there is exactly one place
that decides how files are decoded and how odd pixel formats become RGB:

* The format is sniffed from the content by Pillow, never from the extension (a WEBP named ``.jpg`` loads).
* JPEG, PNG, WEBP, BMP, TIFF and GIF are supported (plus whatever else Pillow reads); for multi-frame files
  (GIF, animated WEBP, multi-page TIFF) the first frame is used.
* The EXIF orientation tag is applied, so the array is upright as a photo viewer shows it.
* Grayscale, bilevel and palette images are expanded to RGB; CMYK and YCbCr are converted.
* Transparency (RGBA, LA, PA, palette with a transparent index, HxWx4 arrays) is **composited onto white**,
  not dropped: dropping alpha would expose whatever colour happens to sit under transparent pixels.
* 16-bit images (``I;16*`` and ``I`` modes, uint16 arrays) are scaled to 8 bits with ``round(v / 257)``,
  so 65535 maps to 255; ``I`` values outside 0..65535 are clipped.
* Files are fully decoded with ``Image.load()`` and ``ImageFile.LOAD_TRUNCATED_IMAGES`` is left alone, so a
  truncated file fails loudly instead of coming back half grey.

Every failure is an :class:`~perface.errors.ImageLoadError` whose one-line message names the input and the fix.
"""

from __future__ import annotations

import io
import os
import warnings
from pathlib import Path
from typing import Union

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from perface.errors import ImageLoadError

__all__ = ["DEFAULT_MAX_PIXELS", "ImageSource", "load_image", "sniff_format"]

#: Pillow's own default decompression-bomb threshold (about 89.5 megapixels, e.g. 9459 x 9459).
DEFAULT_MAX_PIXELS = 89_478_485

ImageSource = Union[str, "os.PathLike[str]", bytes, bytearray, memoryview, Image.Image, np.ndarray]

_FORMATS_HINT = "JPEG, PNG, WEBP, BMP, TIFF or GIF"
_ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")
_SIXTEEN_BIT_MODES = ("I;16", "I;16L", "I;16B", "I;16N", "I")


def load_image(source: ImageSource, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> np.ndarray:
    """Decode an image into an upright RGB array.

    Args:
        source: One of
            * a path (``str`` or ``os.PathLike``) to an image file, of any supported format whatever its extension;
            * the raw bytes of an image file (``bytes``, ``bytearray`` or ``memoryview``);
            * a ``PIL.Image.Image`` of any mode (its EXIF orientation, if any, is applied);
            * a numpy array in **RGB** channel order (convert OpenCV's BGR first) of shape (H, W), (H, W, 1),
              (H, W, 3) or (H, W, 4) with dtype uint8 (used as is), uint16 (scaled by 1/257) or float16/32/64
              with values in [0, 1] (scaled by 255). A 4th channel is alpha and is composited onto white.
        max_pixels: Largest width x height accepted for files, bytes and PIL images; bigger ones are treated as
            decompression bombs. Pillow's own hard limit (``2 * PIL.Image.MAX_IMAGE_PIXELS``) still applies on
            top when opening files and bytes. Arrays are already in memory and are not checked.

    Returns:
        uint8 array of shape (H, W, 3), RGB, C-contiguous and writeable. It is always a new array, never a
        view of ``source``.

    Raises:
        ImageLoadError: The input is missing, a directory, empty, truncated, corrupt, not an image, larger than
            ``max_pixels``, or an array/image of an unsupported shape, dtype or mode.
    """
    if isinstance(source, np.ndarray):
        return _from_array(source, _array_name(source))
    if isinstance(source, Image.Image):
        name = _pil_name(source)
        _check_pixels(source.size, max_pixels, name)
        with _no_bomb_warnings():
            try:
                source.load()
            except Exception as exc:  # noqa: BLE001 - Pillow decoders raise many types
                raise ImageLoadError(_msg(name, f"image data could not be decoded ({_why(exc)})",
                                          "re-open it from an intact file")) from exc
        return _from_pil(source, name)
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        name = f"<{len(data)} bytes>"
        if not data:
            raise ImageLoadError(_msg(name, "buffer is empty (0 bytes)", "pass the bytes of an image file"))
        return _decode(io.BytesIO(data), name, max_pixels, head=data[:16])
    if isinstance(source, (str, os.PathLike)):
        path = Path(os.fspath(source))
        name = os.fspath(source)
        head = _check_file(path, name)
        with open(path, "rb") as fh:
            return _decode(fh, name, max_pixels, head=head)
    raise ImageLoadError(
        f"could not read {type(source).__name__!r} object: expected a path, bytes, a PIL.Image.Image "
        "or a numpy array; pass one of those"
    )


def sniff_format(source: str | os.PathLike | bytes) -> str | None:
    """Name the image format of a file or buffer from its content, ignoring any extension.

    Only the header is read. Unreadable, missing, empty and non-image inputs all give ``None``.

    Args:
        source: A path to a file or the raw bytes of one.

    Returns:
        Pillow's format name (``"JPEG"``, ``"PNG"``, ``"WEBP"``, ``"BMP"``, ``"TIFF"``, ``"GIF"``, ...) or ``None``.
    """
    try:
        fp = io.BytesIO(bytes(source)) if isinstance(source, (bytes, bytearray, memoryview)) else source
        with _no_bomb_warnings(), Image.open(fp) as img:
            return img.format
    except Exception:  # noqa: BLE001 - "not recognisable" is the answer, whatever the reason
        return None


# ----------------------------------------------------------------------------------------------------------
# files and buffers


def _check_file(path: Path, name: str) -> bytes:
    """Fail early, with a precise message, for inputs that are not readable regular files; return the header."""
    try:
        if path.is_dir():
            raise ImageLoadError(_msg(name, "it is a directory, not an image file", "pass the path of an image file"))
        if not path.exists():
            where = "" if path.is_absolute() else f" (relative paths start at '{os.getcwd()}')"
            raise ImageLoadError(_msg(name, "no such file", f"check the path{where}"))
        size = path.stat().st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except PermissionError as exc:
        raise ImageLoadError(_msg(name, "permission denied", "make the file readable")) from exc
    except OSError as exc:
        raise ImageLoadError(_msg(name, f"file could not be opened ({_why(exc)})", "check the path")) from exc
    if size == 0 or not head:
        raise ImageLoadError(_msg(name, "file is empty (0 bytes)", "re-export or remove it"))
    return head


def _decode(fp, name: str, max_pixels: int, head: bytes) -> np.ndarray:
    """Open ``fp`` with Pillow, enforce ``max_pixels``, fully decode and convert to RGB."""
    with _no_bomb_warnings():
        try:
            img = Image.open(fp)
        except Image.DecompressionBombError as exc:
            raise ImageLoadError(_msg(name, f"image is too large to decode safely ({_why(exc)})",
                                      "downscale it first")) from exc
        except UnidentifiedImageError as exc:
            raise ImageLoadError(_msg(name, _not_an_image_reason(head), _not_an_image_fix(head))) from exc
        except Exception as exc:  # noqa: BLE001 - a corrupt header can raise almost anything
            raise ImageLoadError(_msg(name, f"image header is corrupt ({_why(exc)})",
                                      "re-download or re-export it")) from exc
        with img:
            _check_pixels(img.size, max_pixels, name)
            try:
                img.load()  # full decode: truncation and corrupt data show up here, not later
            except Image.DecompressionBombError as exc:
                raise ImageLoadError(_msg(name, f"image is too large to decode safely ({_why(exc)})",
                                          "downscale it first")) from exc
            except Exception as exc:  # noqa: BLE001 - OSError, SyntaxError, ValueError, struct.error, ...
                raise ImageLoadError(_msg(name, f"file is truncated or corrupt ({_why(exc)})",
                                          "re-download or re-export it")) from exc
            return _from_pil(img, name)


def _check_pixels(size: tuple[int, int], max_pixels: int, name: str) -> None:
    w, h = size
    if w <= 0 or h <= 0:
        raise ImageLoadError(_msg(name, f"image has no pixels ({w}x{h})", "re-export it"))
    if w * h > max_pixels:
        raise ImageLoadError(_msg(
            name,
            f"image is {w}x{h} = {w * h:,} pixels, above the limit of {max_pixels:,} (possible decompression bomb)",
            "downscale it, or pass a larger max_pixels if you trust the file",
        ))


class _no_bomb_warnings(warnings.catch_warnings):
    """Silence Pillow's DecompressionBombWarning; :func:`_check_pixels` enforces ``max_pixels`` itself."""

    def __enter__(self):
        out = super().__enter__()
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        return out


def _not_an_image_reason(head: bytes) -> str:
    if head[4:12] in (b"ftypheic", b"ftypheix", b"ftypmif1", b"ftyphevc", b"ftypavif"):
        return f"HEIC/AVIF image ({head[8:12].decode()}), which perface cannot decode"
    stripped = head.lstrip()
    if stripped[:1] == b"<":
        return f"file looks like HTML/XML, not an image (starts with {head[:12]!r})"
    if head and all(32 <= c < 127 or c in (9, 10, 13) for c in head):
        return f"file is text, not an image (starts with {head[:12]!r})"
    return f"not a recognised image format (starts with {head[:8]!r})"


def _not_an_image_fix(head: bytes) -> str:
    if head[4:8] == b"ftyp":
        return "convert it to JPEG or PNG"
    return f"pass a {_FORMATS_HINT} file (the extension is ignored; only the content counts)"


# ----------------------------------------------------------------------------------------------------------
# pixel conversion


def _from_pil(img: Image.Image, name: str) -> np.ndarray:
    """Upright, RGB, uint8 array from an already-loaded Pillow image (first frame)."""
    try:
        img = ImageOps.exif_transpose(img)
    except Exception:  # noqa: BLE001 - a mangled EXIF block must not make a decodable photo unreadable
        pass
    mode = img.mode
    if mode in _SIXTEEN_BIT_MODES:
        return _gray_to_rgb(_scale_uint16(np.asarray(img).astype(np.float64), clip=True))
    if mode == "F":
        vals = np.nan_to_num(np.asarray(img, dtype=np.float64))
        if vals.size and vals.min() >= 0.0 and vals.max() <= 1.0:
            vals = vals * 255.0
        return _gray_to_rgb(np.clip(np.rint(vals), 0, 255).astype(np.uint8))
    try:
        if mode in _ALPHA_MODES or (mode in ("P", "L", "RGB") and "transparency" in img.info):
            rgb = _composite_on_white(img.convert("RGBA"))
        elif mode == "RGB":
            rgb = img
        else:  # 1, L, P, CMYK, YCbCr, LAB, HSV, ...
            rgb = img.convert("RGB")
    except Exception as exc:  # noqa: BLE001
        raise ImageLoadError(_msg(name, f"pixel mode {mode!r} cannot be converted to RGB ({_why(exc)})",
                                  "convert the image to RGB first")) from exc
    return np.array(rgb, dtype=np.uint8, order="C", copy=True)


def _composite_on_white(rgba: Image.Image) -> Image.Image:
    background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
    return Image.alpha_composite(background, rgba).convert("RGB")


def _from_array(arr: np.ndarray, name: str) -> np.ndarray:
    if arr.ndim == 3 and arr.shape[2] == 1:
        arr = arr[:, :, 0]
    if not (arr.ndim == 2 or (arr.ndim == 3 and arr.shape[2] in (3, 4))):
        raise ImageLoadError(_msg(name, f"array shape {arr.shape} is not an image",
                                  "pass (H, W), (H, W, 1), (H, W, 3) RGB or (H, W, 4) RGBA"))
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ImageLoadError(_msg(name, f"array has no pixels (shape {arr.shape})", "pass a non-empty image"))

    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype == np.uint16:
        out = _scale_uint16(arr.astype(np.float64), clip=False)
    elif np.issubdtype(arr.dtype, np.floating):
        if not np.isfinite(arr).all():
            raise ImageLoadError(_msg(name, "float array contains NaN or infinity", "clean the array first"))
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1e-6 or hi > 1.0 + 1e-6:
            raise ImageLoadError(_msg(name, f"float values span [{lo:g}, {hi:g}], outside [0, 1]",
                                      "divide by 255 (or pass uint8)"))
        out = np.clip(np.rint(arr.astype(np.float64) * 255.0), 0, 255).astype(np.uint8)
    else:
        raise ImageLoadError(_msg(name, f"dtype {arr.dtype} is not supported",
                                  "pass uint8, uint16, or float in [0, 1]"))

    if out.ndim == 2:
        return _gray_to_rgb(out)
    if out.shape[2] == 4:
        rgba = Image.fromarray(np.ascontiguousarray(out))  # uint8 (H, W, 4) -> mode "RGBA"
        return np.array(_composite_on_white(rgba), dtype=np.uint8, order="C", copy=True)
    return np.array(out, dtype=np.uint8, order="C", copy=True)


def _scale_uint16(vals: np.ndarray, *, clip: bool) -> np.ndarray:
    """16-bit values (float64 array) to uint8 with ``round(v / 257)``."""
    if clip:
        vals = np.clip(vals, 0, 65535)
    return np.rint(vals / 257.0).astype(np.uint8)


def _gray_to_rgb(gray: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(np.repeat(gray[:, :, None], 3, axis=2), dtype=np.uint8)


# ----------------------------------------------------------------------------------------------------------
# messages


def _msg(name: str, problem: str, fix: str) -> str:
    return " ".join(f"could not read {_quote(name)}: {problem}; {fix}".split())


def _quote(name: str) -> str:
    return name if name.startswith("<") else f"'{name}'"


def _why(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _pil_name(img: Image.Image) -> str:
    filename = getattr(img, "filename", "")
    return os.fspath(filename) if filename else f"<PIL.Image {img.mode} {img.width}x{img.height}>"


def _array_name(arr: np.ndarray) -> str:
    return f"<ndarray {arr.dtype} {arr.shape}>"
