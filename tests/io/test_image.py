"""Tests for :func:`perface.io.load_image`: bad inputs fail with one clear line, real images decode right."""

from __future__ import annotations

import io
import struct
import warnings
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFile

from perface.errors import ImageLoadError
from perface.io import load_image, sniff_format
from perface.io.image import DEFAULT_MAX_PIXELS

LFW_SAMPLE = ("AJ_Cook", "AJ_Cook_0001.jpg")


# ----------------------------------------------------------------------------------------------------------
# helpers


@pytest.fixture(scope="module")
def lfw_path(lfw) -> Path:
    path = lfw / "images" / LFW_SAMPLE[0] / LFW_SAMPLE[1]
    assert path.is_file(), f"LFW sample missing: {path}"
    return path


@pytest.fixture(scope="module")
def original(lfw_path) -> np.ndarray:
    """The LFW sample as Pillow decodes it: uint8 (250, 250, 3) RGB."""
    with Image.open(lfw_path) as img:
        arr = np.array(img.convert("RGB"))
    assert arr.shape == (250, 250, 3)
    return arr


def _assert_rgb(arr: np.ndarray, shape_hw: tuple[int, int]) -> None:
    assert isinstance(arr, np.ndarray)
    assert arr.dtype == np.uint8
    assert arr.shape == (*shape_hw, 3)
    assert arr.flags.c_contiguous
    assert arr.flags.writeable


def _mean_abs(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def _load_error(source, **kwargs) -> str:
    """Load ``source``, expect ImageLoadError, check the message is one actionable line, and return it."""
    with pytest.raises(ImageLoadError) as info:
        load_image(source, **kwargs)
    msg = str(info.value)
    assert "\n" not in msg
    assert msg.startswith("could not read ")
    assert "; " in msg, f"message has no fix: {msg}"
    return msg


def _png_header(width: int, height: int) -> bytes:
    """A PNG whose IHDR claims ``width`` x ``height`` RGB pixels, with one tiny IDAT: a decompression bomb stub."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b"")


# ----------------------------------------------------------------------------------------------------------
# bad inputs: one test each, all ImageLoadError naming the input


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jpg"
    path.write_bytes(b"")
    msg = _load_error(path)
    assert str(path) in msg and "empty" in msg and "0 bytes" in msg


def test_empty_bytes():
    assert "empty" in _load_error(b"")


def test_truncated_jpeg(tmp_path, lfw_path):
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False
    data = lfw_path.read_bytes()
    path = tmp_path / "half.jpg"
    path.write_bytes(data[: len(data) // 2])
    # The header is intact, so Pillow opens it lazily; only a full decode notices the missing half.
    with Image.open(path) as img:
        assert img.size == (250, 250)
    msg = _load_error(path)
    assert str(path) in msg and "truncated" in msg
    assert ImageFile.LOAD_TRUNCATED_IMAGES is False


def test_truncated_png(tmp_path, original):
    buf = io.BytesIO()
    Image.fromarray(original).save(buf, "PNG")
    path = tmp_path / "half.png"
    path.write_bytes(buf.getvalue()[: len(buf.getvalue()) // 2])
    assert "truncated" in _load_error(path)


def test_corrupt_png_data(tmp_path, original):
    buf = io.BytesIO()
    Image.fromarray(original).save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.find(b"IDAT") + 100
    for i in range(start, start + 100):  # scramble compressed pixel data, keep the header
        data[i] ^= 0x5A
    path = tmp_path / "scrambled.png"
    path.write_bytes(bytes(data))
    msg = _load_error(path)
    assert str(path) in msg and "corrupt" in msg


def test_random_bytes(tmp_path):
    path = tmp_path / "noise.jpg"
    path.write_bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8).tobytes())
    msg = _load_error(path)
    assert str(path) in msg and "not a recognised image" in msg


def test_text_file(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("these are not the pixels you are looking for\n")
    msg = _load_error(path)
    assert str(path) in msg and "text" in msg


def test_directory(tmp_path):
    msg = _load_error(tmp_path)
    assert str(tmp_path) in msg and "directory" in msg


def test_missing_file(tmp_path):
    path = tmp_path / "nope.jpg"
    msg = _load_error(path)
    assert str(path) in msg and "no such file" in msg


def test_missing_file_as_str(tmp_path):
    path = str(tmp_path / "nope.jpg")
    assert path in _load_error(path)


def test_bomb_beyond_pillow_hard_limit(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(100_000, 100_000))  # 1e10 pixels: Pillow itself raises DecompressionBombError
    msg = _load_error(path)
    assert str(path) in msg and "too large" in msg


def test_bomb_above_max_pixels_raises_instead_of_warning(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(_png_header(10_000, 10_000))  # 1e8 pixels: above the default, Pillow would only warn
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a leaked DecompressionBombWarning would surface as that, not ImageLoadError
        msg = _load_error(path)
    assert str(path) in msg and "10000x10000" in msg and "max_pixels" in msg
    assert 10_000 * 10_000 > DEFAULT_MAX_PIXELS


def test_lowered_max_pixels_on_real_image(lfw_path, original):
    msg = _load_error(lfw_path, max_pixels=250 * 250 - 1)
    assert str(lfw_path) in msg and "250x250" in msg
    np.testing.assert_array_equal(load_image(lfw_path, max_pixels=250 * 250), original)


def test_max_pixels_applies_to_bytes_and_pil(lfw_path):
    _load_error(lfw_path.read_bytes(), max_pixels=100)
    with Image.open(lfw_path) as img:
        _load_error(img, max_pixels=100)


def test_unsupported_source_type():
    msg = _load_error(12345)
    assert "'int'" in msg


@pytest.mark.parametrize(
    "arr, needle",
    [
        (np.zeros((8, 8), dtype=np.int32), "dtype int32"),
        (np.zeros((8, 8), dtype=bool), "dtype bool"),
        (np.zeros((8, 8, 2), dtype=np.uint8), "shape"),
        (np.zeros((8,), dtype=np.uint8), "shape"),
        (np.zeros((0, 8, 3), dtype=np.uint8), "no pixels"),
        (np.full((8, 8, 3), 2.0, dtype=np.float32), "outside [0, 1]"),
        (np.full((8, 8, 3), np.nan, dtype=np.float32), "NaN"),
    ],
    ids=["int32", "bool", "two-channels", "1d", "empty", "float-range", "nan"],
)
def test_bad_arrays(arr, needle):
    msg = _load_error(arr)
    assert needle in msg and "ndarray" in msg


# ----------------------------------------------------------------------------------------------------------
# real images


def test_lfw_path_bytes_and_pathlike_agree(lfw_path, original):
    from_path = load_image(lfw_path)
    _assert_rgb(from_path, (250, 250))
    np.testing.assert_array_equal(from_path, original)
    np.testing.assert_array_equal(load_image(str(lfw_path)), original)
    data = lfw_path.read_bytes()
    for buf in (data, bytearray(data), memoryview(data)):
        np.testing.assert_array_equal(load_image(buf), original)


def test_webp_named_jpg_is_sniffed(photos):
    path = photos / "img47.jpg"
    assert sniff_format(path) == "WEBP"
    assert path.read_bytes()[8:12] == b"WEBP"
    arr = load_image(path)
    _assert_rgb(arr, (1800, 1350))
    with Image.open(path) as img:
        np.testing.assert_array_equal(arr, np.array(img.convert("RGB")))


def test_sniff_format_non_images(tmp_path):
    text = tmp_path / "a.jpg"
    text.write_text("hello")
    assert sniff_format(text) is None
    assert sniff_format(tmp_path / "missing.png") is None
    assert sniff_format(b"") is None


def _save(img: Image.Image, path: Path, fmt: str, **kwargs) -> Path:
    img.save(path, fmt, **kwargs)
    assert sniff_format(path) == fmt
    return path


# (format, mean-abs tolerance, max-abs tolerance); lossless ones must match exactly.
ROUND_TRIPS = [("PNG", 0, 0), ("BMP", 0, 0), ("TIFF", 0, 0), ("WEBP", 4.0, 64), ("GIF", 5.0, 64)]


@pytest.mark.parametrize("fmt, mean_tol, max_tol", ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS])
def test_format_round_trip(tmp_path, original, fmt, mean_tol, max_tol):
    path = _save(Image.fromarray(original), tmp_path / "face.img", fmt)  # extension says nothing
    arr = load_image(path)
    _assert_rgb(arr, (250, 250))
    assert _mean_abs(arr, original) <= mean_tol
    assert int(np.abs(arr.astype(int) - original.astype(int)).max()) <= max_tol


def test_gif_first_frame(tmp_path, original):
    first = Image.fromarray(original)
    second = Image.fromarray(255 - original)
    path = tmp_path / "anim.gif"
    first.save(path, "GIF", save_all=True, append_images=[second], duration=100)
    with Image.open(path) as img:
        assert img.n_frames == 2
    arr = load_image(path)
    assert _mean_abs(arr, original) < 5.0
    assert _mean_abs(arr, 255 - original) > 50.0


def test_grayscale_png(tmp_path, original):
    gray = np.array(Image.fromarray(original).convert("L"))
    arr = load_image(_save(Image.fromarray(gray), tmp_path / "gray.png", "PNG"))
    _assert_rgb(arr, (250, 250))
    for c in range(3):
        np.testing.assert_array_equal(arr[:, :, c], gray)


def test_bilevel_png(tmp_path, original):
    mono = Image.fromarray(original).convert("1")
    arr = load_image(_save(mono, tmp_path / "mono.png", "PNG"))
    assert set(np.unique(arr).tolist()) <= {0, 255}
    np.testing.assert_array_equal(arr[:, :, 0], np.array(mono, dtype=np.uint8) * 255)


def test_palette_png(tmp_path, original):
    pal = Image.fromarray(original).quantize(64)
    expected = np.array(pal.convert("RGB"))
    arr = load_image(_save(pal, tmp_path / "pal.png", "PNG"))
    np.testing.assert_array_equal(arr, expected)
    assert _mean_abs(arr, original) < 6.0


def test_palette_with_transparency_goes_white(tmp_path, original):
    pal = Image.fromarray(original).quantize(64)
    idx = np.array(pal)
    idx[:50, :] = 63  # top band uses the transparent index
    pal_t = Image.fromarray(idx, mode="P")
    pal_t.putpalette(pal.getpalette())
    path = _save(pal_t, tmp_path / "pal_t.png", "PNG", transparency=63)
    with Image.open(path) as img:
        assert img.mode == "P" and img.info.get("transparency") == 63
    arr = load_image(path)
    assert (arr[:50] == 255).all()
    opaque = idx[50:] != 63
    np.testing.assert_array_equal(arr[50:][opaque], np.array(pal_t.convert("RGB"))[50:][opaque])


def test_rgba_composited_on_white(tmp_path, original):
    alpha = np.zeros((250, 250), dtype=np.uint8)
    alpha[:, 100:200] = 255  # opaque
    alpha[:, 200:] = 128  # half
    rgba = np.dstack([original, alpha])
    path = _save(Image.fromarray(rgba), tmp_path / "rgba.png", "PNG")
    arr = load_image(path)
    _assert_rgb(arr, (250, 250))
    assert (arr[:, :100] == 255).all()  # fully transparent -> white, not the hidden face pixels
    np.testing.assert_array_equal(arr[:, 100:200], original[:, 100:200])
    half = original[:, 200:].astype(float) * 128 / 255 + 255 * (1 - 128 / 255)
    assert np.abs(arr[:, 200:].astype(float) - half).max() <= 1.0


def test_la_composited_on_white(tmp_path, original):
    gray = np.array(Image.fromarray(original).convert("L"))
    alpha = np.full_like(gray, 255)
    alpha[:, :100] = 0
    img = Image.merge("LA", [Image.fromarray(gray), Image.fromarray(alpha)])
    arr = load_image(_save(img, tmp_path / "la.png", "PNG"))
    assert (arr[:, :100] == 255).all()
    np.testing.assert_array_equal(arr[:, 100:, 1], gray[:, 100:])


def test_cmyk_jpeg(tmp_path, original):
    path = _save(Image.fromarray(original).convert("CMYK"), tmp_path / "cmyk.jpg", "JPEG", quality=95)
    with Image.open(path) as img:
        assert img.mode == "CMYK"
    arr = load_image(path)
    _assert_rgb(arr, (250, 250))
    assert _mean_abs(arr, original) < 2.0


def test_16bit_png_scaled(tmp_path, original):
    gray = np.array(Image.fromarray(original).convert("L"))
    sixteen = gray.astype(np.uint16) * 257  # 0..255 -> 0..65535
    sixteen[0, 0] = 65535
    sixteen[0, 1] = 128  # rounds to 0
    sixteen[0, 2] = 129  # rounds to 1
    img = Image.fromarray(sixteen)
    assert img.mode.startswith("I;16")
    path = _save(img, tmp_path / "deep.png", "PNG")
    with Image.open(path) as reopened:
        assert reopened.mode in ("I;16", "I")
    arr = load_image(path)
    _assert_rgb(arr, (250, 250))
    expected = gray.copy()
    expected[0, :3] = (255, 0, 1)
    for c in range(3):
        np.testing.assert_array_equal(arr[:, :, c], expected)


def test_32bit_int_mode_scaled_as_16bit(original):
    gray = np.array(Image.fromarray(original).convert("L")).astype(np.int32) * 257
    gray[0, 0] = 100_000  # out of 16-bit range: clipped
    gray[0, 1] = -5
    img = Image.fromarray(gray)
    assert img.mode == "I"
    arr = load_image(img)
    assert arr[0, 0, 0] == 255 and arr[0, 1, 0] == 0
    np.testing.assert_array_equal(arr[1:, :, 0], (gray[1:] // 257).astype(np.uint8))


def _write_oriented_jpeg(path: Path, pixels: np.ndarray, orientation: int) -> None:
    img = Image.fromarray(pixels)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, "JPEG", quality=95, exif=exif.tobytes())


def test_exif_orientation_6_rotates_clockwise(tmp_path, original):
    stored = np.ascontiguousarray(original[:, :150])  # 250 tall x 150 wide, so rotation shows in the shape
    path = tmp_path / "rotated.jpg"
    _write_oriented_jpeg(path, stored, 6)
    with Image.open(path) as img:
        assert img.getexif().get(0x0112) == 6
        decoded = np.array(img.convert("RGB"))  # raw pixels, as stored
    arr = load_image(path)
    _assert_rgb(arr, (150, 250))
    np.testing.assert_array_equal(arr, np.rot90(decoded, k=-1))  # orientation 6 = rotate 90 deg clockwise
    # and the PIL-image entry point honours it too
    with Image.open(path) as img:
        np.testing.assert_array_equal(load_image(img), arr)


def test_exif_orientation_1_is_untouched(tmp_path, original):
    stored = np.ascontiguousarray(original[:, :150])
    path = tmp_path / "upright.jpg"
    _write_oriented_jpeg(path, stored, 1)
    _assert_rgb(load_image(path), (250, 150))


# ----------------------------------------------------------------------------------------------------------
# PIL and ndarray inputs


@pytest.mark.parametrize("mode", ["RGB", "L", "P", "RGBA", "CMYK", "YCbCr"])
def test_pil_modes(original, mode):
    img = Image.fromarray(original).convert(mode)
    arr = load_image(img)
    _assert_rgb(arr, (250, 250))
    # Same pixels as Pillow's own conversion (opaque RGBA: no compositing visible) ...
    np.testing.assert_array_equal(arr, np.array(img.convert("RGB")))
    # ... and close to the source (P uses Pillow's dithered web palette, L drops colour).
    tol = {"RGB": 0.0, "RGBA": 0.0, "CMYK": 1.0, "YCbCr": 2.0, "P": 20.0, "L": 30.0}[mode]
    assert _mean_abs(arr, original) <= tol


def test_pil_lazy_file(lfw_path, original):
    with Image.open(lfw_path) as img:
        np.testing.assert_array_equal(load_image(img), original)


def test_ndarray_uint8_rgb_is_copied(original):
    arr = load_image(original)
    _assert_rgb(arr, (250, 250))
    np.testing.assert_array_equal(arr, original)
    assert not np.shares_memory(arr, original)


def test_ndarray_non_contiguous(original):
    flipped = original[:, ::-1]
    assert not flipped.flags.c_contiguous
    arr = load_image(flipped)
    _assert_rgb(arr, (250, 250))
    np.testing.assert_array_equal(arr, flipped)


@pytest.mark.parametrize("shape", [(250, 250), (250, 250, 1)])
def test_ndarray_gray(original, shape):
    gray = original[:, :, 0].reshape(shape)
    arr = load_image(gray)
    _assert_rgb(arr, (250, 250))
    for c in range(3):
        np.testing.assert_array_equal(arr[:, :, c], original[:, :, 0])


def test_ndarray_rgba(original):
    alpha = np.full((250, 250, 1), 255, dtype=np.uint8)
    alpha[:10] = 0
    arr = load_image(np.concatenate([original, alpha], axis=2))
    assert (arr[:10] == 255).all()
    np.testing.assert_array_equal(arr[10:], original[10:])


def test_ndarray_uint16(original):
    arr = load_image(original.astype(np.uint16) * 257)
    np.testing.assert_array_equal(arr, original)
    assert load_image(np.array([[65535, 0]], dtype=np.uint16))[0].tolist() == [[255] * 3, [0] * 3]


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_ndarray_float(original, dtype):
    arr = load_image(original.astype(dtype) / dtype(255))
    _assert_rgb(arr, (250, 250))
    assert int(np.abs(arr.astype(int) - original.astype(int)).max()) <= (1 if dtype is np.float16 else 0)
