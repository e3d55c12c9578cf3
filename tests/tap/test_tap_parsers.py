import gzip
import io
import zlib

import pytest

from tap_mparticle.jsondocs import iter_json_documents
from tap_mparticle.parsers import OTHER_FORMATS, BadInputError, iter_lines, open_decompressed

LOC = "s3://bucket/f.txt"


def lines_of(raw: bytes) -> list[tuple[int, bytes]]:
    return list(iter_lines(open_decompressed(io.BytesIO(raw)), LOC))


def test_plain_lines_are_numbered_like_an_editor_and_blank_lines_skipped():
    assert lines_of(b'{"a":1}\n\n  \n{"b":2}\r\n{"c":3}') == [
        (1, b'{"a":1}'),
        (4, b'{"b":2}'),
        (5, b'{"c":3}'),
    ]


def test_gzip_is_detected_from_magic_bytes_whatever_the_name():
    assert lines_of(gzip.compress(b'{"a":1}\n{"b":2}\n')) == [(1, b'{"a":1}'), (2, b'{"b":2}')]


def test_concatenated_gzip_members_are_read_whole():
    raw = gzip.compress(b'{"a":1}\n') + gzip.compress(b'{"b":2}\n')
    assert [n for n, _ in lines_of(raw)] == [1, 2]


def collect_into(seen: list, stream) -> None:
    for item in iter_lines(stream, LOC):
        seen.append(item)  # noqa: PERF402  (the list must keep what came before the raise)


def test_corrupt_gzip_is_bad_input():
    raw = bytearray(gzip.compress(b'{"a":1}\n' * 100))
    raw[20:30] = b"\xff" * 10
    with pytest.raises(BadInputError, match="truncated or corrupt gzip"):
        lines_of(bytes(raw))


def test_truncated_gzip_names_the_first_unreadable_line():
    body = b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * 50) for i in range(2000))
    compressed = gzip.compress(body)
    cut = compressed[: len(compressed) // 2]
    recoverable = zlib.decompressobj(wbits=31).decompress(cut).count(b"\n")
    stream = open_decompressed(io.BytesIO(cut))
    seen = []
    with pytest.raises(BadInputError) as caught:
        collect_into(seen, stream)
    assert seen, "intact lines before the cut are still yielded"
    # every line wholly before the cut is read; the cut line is the one reported
    assert len(seen) == recoverable
    assert seen == [(i + 1, b'{"n":%d,"pad":"%s"}' % (i, b"x" * 50)) for i in range(len(seen))]
    assert caught.value.lineno == seen[-1][0] + 1
    assert str(caught.value).startswith(f"{LOC}:{seen[-1][0] + 1}: truncated or corrupt gzip")


def documents(raw: bytes) -> list:
    return list(iter_json_documents(open_decompressed(io.BytesIO(raw)), LOC))


def test_not_utf8_and_not_json_name_file_and_line():
    bad_utf8, bad_json, good = documents(b'{"a":"\xff\xfe"}\n{"a":\n{"b":1}\n')
    assert str(bad_utf8).startswith("s3://bucket/f.txt:1: bytes that are not UTF-8")
    assert str(bad_json).startswith("s3://bucket/f.txt:2: not valid JSON")
    assert good == (3, {"b": 1})


def test_huge_and_negative_integers_survive_decoding():
    assert documents(b'{"mpid":-9223372036854775807}') == [(1, {"mpid": -9223372036854775807})]


def test_reading_past_the_end_of_a_gzip_stream_keeps_answering_end():
    # A last line with no newline makes a line reader ask again after the end.
    stream = open_decompressed(io.BytesIO(gzip.compress(b'{"a":1}{"b":2}', mtime=0)))
    assert stream.readline() == b'{"a":1}{"b":2}'
    assert stream.readline() == b""
    assert stream.read() == b""


def other_format_samples() -> list[tuple[bytes, str]]:
    """Real encoders' output where the standard library has one, else the documented magic."""
    import bz2  # noqa: PLC0415
    import lzma  # noqa: PLC0415
    import zipfile  # noqa: PLC0415

    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("batch.json", '{"events": []}\n')
    made = {
        "a zip archive": archive.getvalue(),
        "bzip2 data": bz2.compress(b'{"events": []}\n'),
        "xz data": lzma.compress(b'{"events": []}\n'),
    }
    return [(made.get(what, magic + b"\x00" * 32), what) for magic, what in OTHER_FORMATS]


@pytest.mark.parametrize(("raw", "what"), other_format_samples())
@pytest.mark.parametrize("gzipped", [False, True])
def test_another_format_is_one_error_naming_it_not_a_line_per_garbage_line(raw, what, gzipped):
    data = gzip.compress(raw, mtime=0) if gzipped else raw
    with pytest.raises(BadInputError) as caught:
        documents(data)
    assert str(caught.value) == (
        f"{LOC}:1: {what}, not JSON lines: only gzip is decompressed; the file was not read"
    )


@pytest.mark.parametrize("text", [b"PAR", b"BZ", b'  {"events": []}', b"", b"P"])
def test_json_and_short_files_are_not_taken_for_another_format(text):
    # Short prefixes of a magic are plain bad lines (or good JSON), read as such.
    assert not any("only gzip is decompressed" in str(d) for d in documents(text))
