"""Frame sources: videos written here with PyAV, image folders, globs, arrays, resizing."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

av = pytest.importorskip("av")

from steadydepth.errors import InputError  # noqa: E402
from steadydepth.io.frames import (  # noqa: E402
    ArraySource,
    ImageSequenceSource,
    VideoSource,
    open_source,
    processing_size,
    resize_frame,
)
from steadydepth.io.display import apply_display_rotation, apply_display_transform, display_transform  # noqa: E402
from steadydepth.io.images import natural_sort_key  # noqa: E402

W, H = 64, 48


def level(i: int) -> int:
    """Grey level that encodes frame i (far apart so lossy coding cannot confuse them)."""
    return 20 + 12 * i


def pattern(i: int) -> np.ndarray:
    img = np.full((H, W, 3), level(i), dtype=np.uint8)
    img[:8, :16] = 255  # white block top-left, to check orientation
    return img


def write_clip(path: Path, codec: str, pix_fmt: str, n: int = 10, *, frames=None, rotation=None,
               hflip: bool = False, options: dict | None = None, container_options: dict | None = None) -> Path:
    container = av.open(str(path), "w", options=container_options or {})
    stream = container.add_stream(codec, rate=10)
    stream.width, stream.height, stream.pix_fmt = W, H, pix_fmt
    opts = {"crf": "4"}
    if codec == "libx265":
        opts["x265-params"] = "log-level=error"
    if codec == "libvpx-vp9":
        opts["b"] = "0"
    opts.update(options or {})
    stream.options = opts
    if rotation is not None or hflip:
        stream.set_display_rotation(rotation or 0, hflip=hflip)
    for i in range(n):
        img = pattern(i) if frames is None else frames[i]
        for packet in stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
            container.mux(packet)
    for packet in stream.encode():
        container.mux(packet)
    container.close()
    return path


def frame_level(img: np.ndarray) -> float:
    return float(img[16:, 24:].mean())


def assert_levels(frames, indices):
    assert [f.index for f in frames] == list(indices)
    for f in frames:
        assert abs(frame_level(f.image) - level(f.index)) < 3, (f.index, frame_level(f.image))


# ----------------------------------------------------------------------------- videos
@pytest.mark.parametrize(
    "name,codec,pix_fmt",
    [("h264.mp4", "libx264", "yuv420p"), ("hevc10.mkv", "libx265", "yuv420p10le"), ("vp9.webm", "libvpx-vp9", "yuv420p")],
)
def test_video_codecs_decode_all_frames(tmp_path, name, codec, pix_fmt):
    if codec not in av.codecs_available:
        pytest.skip(f"encoder {codec} not in this PyAV build")
    path = write_clip(tmp_path / name, codec, pix_fmt, n=8)
    src = open_source(path)
    assert isinstance(src, VideoSource)
    assert (src.width, src.height) == (W, H)
    assert src.fps == pytest.approx(10.0)
    assert src.pix_fmt == pix_fmt
    frames = list(src)
    assert len(frames) == 8
    for f in frames:
        assert f.image.dtype == np.uint8 and f.image.shape == (H, W, 3)
    assert_levels(frames, range(8))
    assert frames[3].time == pytest.approx(0.3, abs=1e-3)
    assert src.warnings == []
    json.dumps(src.describe())  # JSON-able
    if src.num_frames is not None:  # an estimate for webm/mkv
        assert abs(src.num_frames - 8) <= 1


def test_video_range_stride_and_reiteration(tmp_path):
    path = write_clip(tmp_path / "c.mp4", "libx264", "yuv420p", n=12)
    src = open_source(path, start=2, stop=9, stride=3)
    assert src.num_frames == 3
    first = list(src)
    assert_levels(first, [2, 5, 8])
    second = list(src)
    assert [f.index for f in second] == [2, 5, 8]
    for a, b in zip(first, second):
        assert np.array_equal(a.image, b.image)
    # abandoning a pass half-way does not break the next one
    it = iter(src)
    next(it)
    it.close()
    assert len(list(src)) == 3


@pytest.mark.parametrize("rotation,hflip", [(90, False), (-90, False), (180, False), (0, True)])
def test_video_display_matrix_applied(tmp_path, rotation, hflip):
    path = write_clip(tmp_path / "r.mp4", "libx264", "yuv444p", n=2, rotation=rotation, hflip=hflip,
                      options={"crf": "0"})
    src = open_source(path)
    img = next(iter(src)).image
    # PyAV's documented meaning: rotate counter-clockwise by `rotation`, then mirror
    expected = np.rot90(pattern(0), k=rotation // 90)
    if hflip:
        expected = expected[:, ::-1]
    assert (src.width, src.height) == (expected.shape[1], expected.shape[0])
    assert img.shape == expected.shape
    assert np.abs(img.astype(int) - expected.astype(int)).max() <= 2


def test_display_helpers_by_hand():
    a = np.arange(6).reshape(2, 3)  # [[0 1 2] [3 4 5]]
    assert apply_display_rotation(a, 90).tolist() == [[2, 5], [1, 4], [0, 3]]  # counter-clockwise
    assert apply_display_rotation(a, -90).tolist() == [[3, 0], [4, 1], [5, 2]]
    assert apply_display_rotation(a, 180).tolist() == [[5, 4, 3], [2, 1, 0]]
    assert apply_display_rotation(a, 0) is a
    # FFmpeg display matrices (16.16): identity, rotation by 90 ccw as written by av_display_rotation_set(-90)
    assert display_transform([65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]) == "identity"
    assert display_transform([0, -65536, 0, 65536, 0, 0, 0, 0, 1 << 30]) == "cclock"
    assert display_transform([0, 65536, 0, -65536, 0, 0, 0, 0, 1 << 30]) == "clock"
    assert display_transform([-65536, 0, 0, 0, 65536, 0, 0, 0, 1 << 30]) == "hflip"
    assert display_transform(None) == "identity"
    assert apply_display_transform(a, "transpose").tolist() == [[0, 3], [1, 4], [2, 5]]
    assert apply_display_transform(a, "antitranspose").tolist() == [[5, 2], [4, 1], [3, 0]]


def test_truncated_mp4_decodes_what_is_there(tmp_path):
    rng = np.random.default_rng(0)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(20)]
    full = write_clip(tmp_path / "full.mp4", "libx264", "yuv420p", n=20, frames=noise,
                      options={"crf": "18"}, container_options={"movflags": "faststart"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    src = open_source(cut)
    frames = list(src)
    assert 0 < len(frames) < 20
    assert [f.index for f in frames] == list(range(len(frames)))
    assert len(src.warnings) == 1
    assert src.warnings[0].startswith(f"frame {len(frames)}")
    # a second pass gives the same frames and the same single warning
    assert len(list(src)) == len(frames) and len(src.warnings) == 1
    # cut inside the first frame: the index is there, no frame is
    stub = tmp_path / "stub.mp4"
    stub.write_bytes(data[: len(data) // 10])
    with pytest.raises(InputError, match="stub.mp4: no decodable video frame"):
        open_source(stub)


def test_truncated_mkv_warns(tmp_path):
    rng = np.random.default_rng(1)
    noise = [rng.integers(0, 256, (H, W, 3), dtype=np.uint8) for _ in range(20)]
    full = write_clip(tmp_path / "full.mkv", "libx264", "yuv420p", n=20, frames=noise, options={"crf": "18"})
    data = full.read_bytes()
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(data[: len(data) // 2])
    src = open_source(cut)
    frames = list(src)
    assert 0 < len(frames) < 20
    assert len(src.warnings) == 1 and src.warnings[0].startswith(f"frame {len(frames)}")


def test_mp4_cut_before_its_index_is_an_input_error(tmp_path):
    # without faststart the index (moov) is at the end: half a file cannot be read at all
    full = write_clip(tmp_path / "full.mp4", "libx264", "yuv420p", n=10)
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    with pytest.raises(InputError, match="cut.mp4"):
        open_source(cut)


def test_bad_video_inputs(tmp_path):
    garbage = tmp_path / "notes.mp4"
    garbage.write_text("this is not a video\n" * 20)
    with pytest.raises(InputError, match="notes.mp4"):
        open_source(garbage)
    empty = tmp_path / "empty.mov"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty.mov"):
        open_source(empty)
    with pytest.raises(InputError, match="missing.mp4"):
        open_source(tmp_path / "missing.mp4")
    clip = write_clip(tmp_path / "ok.mp4", "libx264", "yuv420p", n=3)
    with pytest.raises(InputError, match="stride"):
        open_source(clip, stride=0)
    with pytest.raises(InputError, match="stop"):
        open_source(clip, start=3, stop=2)


def test_video_range_past_the_end_warns(tmp_path):
    clip = write_clip(tmp_path / "short.mp4", "libx264", "yuv420p", n=3)
    src = open_source(clip, start=10)
    assert src.num_frames == 0
    assert list(src) == []
    assert any("selects none" in w for w in src.warnings)


# ----------------------------------------------------------------------------- image sequences
def test_folder_natural_order_and_exact_pixels(tmp_path):
    folder = tmp_path / "seq"
    folder.mkdir()
    for i in (1, 2, 10, 3, 11):
        cv2.imwrite(str(folder / f"frame{i}.png"), pattern(i)[:, :, ::-1])
    (folder / "notes.txt").write_text("ignored")
    (folder / ".hidden.png").write_bytes(b"not an image")
    src = open_source(folder)
    assert isinstance(src, ImageSequenceSource)
    frames = list(src)
    assert [f.name for f in frames] == ["frame1.png", "frame2.png", "frame3.png", "frame10.png", "frame11.png"]
    assert [f.index for f in frames] == [0, 1, 2, 3, 4]
    for f, i in zip(frames, (1, 2, 3, 10, 11)):
        assert np.array_equal(f.image, pattern(i))  # lossless, RGB order kept
    assert src.num_frames == 5 and src.fps is None
    sub = list(open_source(folder, start=1, stop=5, stride=2))
    assert [f.name for f in sub] == ["frame2.png", "frame10.png"]
    assert [f.index for f in sub] == [1, 3]
    json.dumps(src.describe())


def test_natural_sort_key():
    names = ["f10.png", "f2.png", "F1.png", "f2b.png", "g0.png", "f010x.png"]
    assert sorted(names, key=natural_sort_key) == ["F1.png", "f2.png", "f2b.png", "f10.png", "f010x.png", "g0.png"]


def test_glob_pattern(tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f"a{i}.png"), pattern(i))
        cv2.imwrite(str(tmp_path / f"a{i}.jpg"), pattern(i))
    src = open_source(str(tmp_path / "*.png"))
    assert [f.name for f in src] == ["a0.png", "a1.png", "a2.png"]
    with pytest.raises(InputError, match=r"\*\.bmp"):
        open_source(str(tmp_path / "*.bmp"))


def test_16bit_gray_rgba_png_and_jpg(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    v16 = np.arange(H * W, dtype=np.uint16).reshape(H, W) * 20  # up to 61420
    bgr16 = np.stack([v16, v16 // 2, v16 // 3], axis=2)
    cv2.imwrite(str(folder / "0.png"), bgr16)
    gray = (np.arange(H * W) % 256).astype(np.uint8).reshape(H, W)
    cv2.imwrite(str(folder / "1.png"), gray)
    bgra = np.dstack([pattern(1)[:, :, ::-1], np.full((H, W), 7, np.uint8)])
    cv2.imwrite(str(folder / "2.png"), bgra)
    cv2.imwrite(str(folder / "3.jpg"), pattern(2)[:, :, ::-1], [cv2.IMWRITE_JPEG_QUALITY, 95])
    frames = list(open_source(folder))
    assert np.array_equal(frames[0].image, np.stack([v16 // 3, v16 // 2, v16], axis=2).astype(np.uint16) >> 8)
    assert np.array_equal(frames[1].image, np.repeat(gray[:, :, None], 3, axis=2))
    assert np.array_equal(frames[2].image, pattern(1))
    assert np.abs(frames[3].image.astype(int) - pattern(2)).mean() < 3


def test_exr_images_are_srgb_encoded(tmp_path):
    import OpenEXR

    linear = np.zeros((H, W, 3), np.float32)
    linear[:, :16] = 0.0
    linear[:, 16:32] = 0.5
    linear[:, 32:48] = 0.002
    linear[:, 48:] = 2.0
    header = {"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}
    with OpenEXR.File(header, {"RGB": linear}) as fh:
        fh.write(str(tmp_path / "0.exr"))
    (frame,) = list(open_source(tmp_path))
    # by hand: 0.5 -> 1.055 * 0.5**(1/2.4) - 0.055 = 0.73536 -> 187.5 -> 188; 0.002 -> 12.92 * 0.002 * 255 = 6.59 -> 7
    assert frame.image[0, [0, 16, 32, 48], 0].tolist() == [0, 188, 7, 255]


def test_image_sequence_errors(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="empty"):
        open_source(empty)
    (empty / "readme.txt").write_text("x")
    with pytest.raises(InputError, match="no image"):
        open_source(empty)

    mixed = tmp_path / "mixed"
    mixed.mkdir()
    cv2.imwrite(str(mixed / "f1.png"), pattern(0))
    cv2.imwrite(str(mixed / "f2.png"), pattern(1))
    cv2.imwrite(str(mixed / "f3.png"), np.zeros((H + 2, W, 3), np.uint8))
    cv2.imwrite(str(mixed / "f4.png"), np.zeros((H + 4, W, 3), np.uint8))
    with pytest.raises(InputError, match="f3.png"):
        open_source(mixed)

    broken = tmp_path / "broken"
    broken.mkdir()
    cv2.imwrite(str(broken / "f1.png"), pattern(0))
    (broken / "f2.png").write_bytes(b"\x89PNG garbage")
    src = open_source(broken)  # the header probe cannot tell; decoding does
    with pytest.raises(InputError, match="f2.png"):
        list(src)
    (broken / "f0.png").write_bytes(b"")
    with pytest.raises(InputError, match="f0.png"):
        open_source(broken)

    one = tmp_path / "one"
    one.mkdir()
    cv2.imwrite(str(one / "a.png"), pattern(0))
    assert len(list(open_source(one))) == 1  # a single frame is allowed here
    with pytest.raises(InputError, match="selects none"):
        open_source(one, start=1)


# ----------------------------------------------------------------------------- arrays
def test_array_sources():
    stack = np.stack([pattern(i) for i in range(5)])
    src = open_source(stack, stride=2)
    assert isinstance(src, ArraySource)
    frames = list(src)
    assert [f.index for f in frames] == [0, 2, 4]
    assert np.array_equal(frames[1].image, pattern(2))
    floats = [pattern(i).astype(np.float32) / 255.0 for i in range(3)]
    got = list(open_source(floats))
    assert all(np.array_equal(g.image, pattern(i)) for i, g in enumerate(got))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        open_source([pattern(0).astype(np.float32)])
    with pytest.raises(InputError, match="differs"):
        list(open_source([pattern(0), pattern(1)[:40]]))
    with pytest.raises(InputError):
        open_source(np.zeros((2, 3, 4, 5, 6), np.uint8))


# ----------------------------------------------------------------------------- sizes
def test_processing_size_by_hand():
    assert processing_size(1920, 1080, 512) == (512, 288)
    # 1080 * 518/1920 = 291.4 -> 288; 518 would round up to 520 > 518 -> 512
    assert processing_size(1080, 1920, 518) == (288, 512)
    assert processing_size(64, 48, 1000) == (64, 48)  # never upscales
    assert processing_size(1918, 1078, None) == (1912, 1072)  # multiples of 8, never above the input
    assert processing_size(100, 60, None) == (96, 56)
    for w, h, m in [(1280, 720, 333), (37, 1001, 250), (640, 480, 8)]:
        tw, th = processing_size(w, h, m)
        assert tw % 8 == 0 and th % 8 == 0 and tw <= w and th <= h and max(tw, th) <= m


def test_resize_frame():
    img = np.full((480, 640, 3), 77, np.uint8)
    small = resize_frame(img, 320)
    assert small.shape == (240, 320, 3) and np.all(small == 77)
    assert resize_frame(img, None) is img
    assert resize_frame(img, 2000) is img


# ----------------------------------------------------------------------------- real data
REAL = Path("/work/shared/data/open3d_rgbd")


def test_real_rgbd_folder_and_depth_pngs():
    if not (REAL / "color").is_dir():
        pytest.skip(f"real RGB-D data not found at {REAL}")
    from steadydepth.io.depth_files import read_depth

    src = open_source(REAL / "color")
    assert (src.width, src.height, src.num_frames) == (640, 480, 5)
    frames = list(src)
    assert [f.name for f in frames] == [f"0000{i}.jpg" for i in range(5)]
    depth = read_depth(REAL / "depth" / "00000.png")
    assert depth.shape == (480, 640) and depth.dtype == np.float32
    valid = depth > 0
    assert valid.mean() > 0.5 and 0.3 < float(np.median(depth[valid])) < 2.8  # metres, indoor (README: up to 2.7 m)
    tum = read_depth(REAL / "other_formats" / "TUM_depth.png", png_scale=5000.0)
    assert 0.2 < float(np.median(tum[tum > 0])) < 10.0
