"""HTTP server: exact byte ranges, HEAD, 416, content types, and nothing served from outside the root."""

from __future__ import annotations

import http.client
import os

import pytest

from genometracks.browser.serve import parse_range, serve

DATA = bytes(range(256)) * 10  # 2560 bytes, every offset's value known


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("serve")
    root = tmp_path / "run"
    (root / "tracks").mkdir(parents=True)
    (root / "tracks" / "tss.plus.bw").write_bytes(DATA)
    (root / "tracks" / "peaks.bed.gz").write_bytes(b"\x1f\x8b" + DATA[:10])
    (root / "tracks" / "tss_peaks.bed").write_text("c\t0\t1\tTSS_1+\t900\t+\n")
    (root / "report.md").write_text("# report\n")
    (root / "heads.tsv").write_text("head\tbits\n")
    (root / "igv").mkdir()
    (root / "igv" / "index.html").write_text("<html>page</html>")
    (root / ".hub.staging-1-x").mkdir()
    (root / ".hub.staging-1-x" / "hub.txt").write_text("hidden")
    (tmp_path / "secret.txt").write_text("outside the root")
    os.symlink(tmp_path / "secret.txt", root / "escape.txt")
    os.symlink(root / "tracks" / "tss.plus.bw", root / "inside.bw")
    with serve(root) as srv:
        yield srv


def request(server, path: str, method: str = "GET", headers: dict | None = None):
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(host, port, timeout=10)
    conn.request(method, path, headers=headers or {})  # path sent as given, not normalised
    response = conn.getresponse()
    body = response.read()
    conn.close()
    return response, body


def test_binds_loopback_by_default(server):
    assert server.server_address[0] == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")


def test_full_file_and_head(server):
    response, body = request(server, "/tracks/tss.plus.bw")
    assert response.status == 200 and body == DATA
    assert response.getheader("Accept-Ranges") == "bytes"
    assert response.getheader("Content-Type") == "application/octet-stream"
    response, body = request(server, "/tracks/tss.plus.bw", "HEAD")
    assert response.status == 200 and body == b"" and response.getheader("Content-Length") == "2560"


@pytest.mark.parametrize(
    "header, first, last",
    [("bytes=10-19", 10, 19), ("bytes=2550-", 2550, 2559), ("bytes=-5", 2555, 2559), ("bytes=2500-9999", 2500, 2559), ("bytes=0-0", 0, 0)],
)
def test_range_returns_exact_bytes(server, header, first, last):
    response, body = request(server, "/tracks/tss.plus.bw", headers={"Range": header})
    assert response.status == 206
    assert body == DATA[first : last + 1]
    assert response.getheader("Content-Range") == f"bytes {first}-{last}/2560"
    assert response.getheader("Content-Length") == str(last - first + 1)


def test_unsatisfiable_range(server):
    response, body = request(server, "/tracks/tss.plus.bw", headers={"Range": "bytes=2560-"})
    assert response.status == 416 and response.getheader("Content-Range") == "bytes */2560" and body == b""


def test_gz_is_not_content_encoded(server):
    response, body = request(server, "/tracks/peaks.bed.gz")
    assert body[:2] == b"\x1f\x8b" and response.getheader("Content-Encoding") is None
    assert response.getheader("Content-Type") == "application/octet-stream"


@pytest.mark.parametrize(
    "path, expected",
    [
        ("/report.md", "text/markdown; charset=utf-8"),
        ("/heads.tsv", "text/tab-separated-values; charset=utf-8"),
        ("/tracks/tss_peaks.bed", "text/plain; charset=utf-8"),
    ],
)
def test_text_files_are_shown_not_downloaded(server, path, expected):
    # octet-stream made a browser download report.md and BED files instead of showing them
    response, body = request(server, path)
    assert response.status == 200 and response.getheader("Content-Type") == expected and body.endswith(b"\n")


def test_index_page_and_no_listing(server):
    response, body = request(server, "/igv/")
    assert response.status == 200 and body == b"<html>page</html>"
    assert response.getheader("Content-Type") == "text/html; charset=utf-8"
    response, _ = request(server, "/igv")
    assert response.status == 301 and response.getheader("Location") == "/igv/"
    response, body = request(server, "/tracks/")
    assert response.status == 404 and b"tss.plus.bw" not in body  # no directory listing


@pytest.mark.parametrize(
    "path",
    [
        "/../secret.txt",
        "/tracks/../../secret.txt",
        "/%2e%2e/secret.txt",
        "/tracks/%2E%2E/%2E%2E/secret.txt",
        "/escape.txt",
        "/tracks/..%2f..%2fsecret.txt",
    ],
)
def test_outside_root_refused(server, path):
    response, body = request(server, path)
    assert response.status == 403 and b"outside the root" not in body


@pytest.mark.parametrize("path", ["//etc/passwd", "/.hub.staging-1-x/hub.txt", "/nothing.bw"])
def test_hidden_absolute_and_missing_not_found(server, path):
    response, body = request(server, path)
    assert response.status == 404 and b"root:" not in body and b"hidden" not in body


def test_symlink_inside_root_allowed(server):
    response, body = request(server, "/inside.bw", headers={"Range": "bytes=256-259"})
    assert response.status == 206 and body == bytes([0, 1, 2, 3])


def test_parse_range():
    assert parse_range("bytes=0-9", 100) == (0, 9)
    assert parse_range("bytes=-200", 100) == (0, 99)
    assert parse_range("bytes=100-", 100) is None
    assert parse_range("bytes=9-5", 100) is None
    with pytest.raises(ValueError):
        parse_range("bytes=0-1,5-6", 100)
    with pytest.raises(ValueError):
        parse_range("items=0-1", 100)


def test_missing_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="folder to serve not found"):
        serve(tmp_path / "none")


def test_port_and_path_mistakes_are_one_line(tmp_path, capsys):
    # --port 99999 ended in an OverflowError traceback; a taken port gave no hint; a file was 'not found'
    import socket

    from genometracks.browser.serve import main_serve

    assert main_serve([str(tmp_path), "--port", "99999"]) == 2
    assert "--port 99999: give a port from 1 to 65535" in capsys.readouterr().err
    (tmp_path / "g.fa").write_text(">c\nA\n")
    assert main_serve([str(tmp_path / "g.fa")]) == 2
    assert "a file, not a folder; pass the run directory that holds it" in capsys.readouterr().err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main_serve([str(tmp_path), "--port", str(port)]) == 2
    err = capsys.readouterr().err
    assert f"port {port} is taken (another server?): pass --port N" in err and len(err.strip().splitlines()) == 1


def test_the_pages_serve_names_exist(tmp_path):
    """`serve COLL` named DIR/igv/index.html and DIR/jbrowse/index.html, which a collection does not have (404)."""
    from genometracks.browser.serve import served_pages

    run = tmp_path / "run"
    (run / "igv").mkdir(parents=True)
    (run / "jbrowse").mkdir()
    for page in ("igv/index.html", "jbrowse/index.html"):
        (run / page).write_text("<html></html>")
    url = "http://127.0.0.1:8000/"
    assert served_pages(run, url) == f"IGV page: {url}igv/index.html, JBrowse 2 page: {url}jbrowse/index.html"
    coll = tmp_path / "coll"
    (coll / "strainX" / "igv").mkdir(parents=True)
    (coll / "index.html").write_text("<html></html>")
    assert served_pages(coll, url) == f"collection page: {url}index.html"
    assert served_pages(tmp_path, url).startswith("no IGV or JBrowse page here yet")
