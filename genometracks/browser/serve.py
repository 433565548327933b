"""`genometracks serve DIR`: a small HTTP server for a run directory, with byte ranges.

bigWig/bigBed/tabix/indexed-FASTA readers (igv.js, UCSC) fetch byte ranges, so GET answers
`Range: bytes=a-b` with 206 + Content-Range (416 when unsatisfiable). Loopback by default; never
lists folders, never serves hidden files or anything outside the root (`..`, absolute paths and
symlinks that leave it get 403/404).
"""

from __future__ import annotations

import argparse
import re
import socket
import sys
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
    ".xml": "application/xml",
    ".css": "text/css",
    ".png": "image/png",
    ".svg": "image/svg+xml",
    ".txt": "text/plain; charset=utf-8",
    ".md": "text/markdown; charset=utf-8",  # RFC 7763: report.md, card.md shown, not downloaded
    ".tsv": "text/tab-separated-values; charset=utf-8",
    ".csv": "text/csv; charset=utf-8",
    ".bed": "text/plain; charset=utf-8",
    ".gff": "text/plain; charset=utf-8",
    ".gff3": "text/plain; charset=utf-8",
    ".meme": "text/plain; charset=utf-8",
    ".log": "text/plain; charset=utf-8",
    ".fa": "text/plain",
    ".fasta": "text/plain",
    ".fai": "text/plain",
    ".sizes": "text/plain",
    ".map": "application/json",
}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_CHUNK = 1 << 16


def content_type(path: Path) -> str:
    """MIME type by suffix; binary formats (.bw .bb .2bit .gz .tbi ...) are octet-stream, never
    Content-Encoding gzip (a browser would otherwise inflate a .bed.gz that tabix must read raw)."""
    return _TYPES.get(path.suffix.lower(), "application/octet-stream")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """`bytes=a-b` / `bytes=a-` / `bytes=-n` → inclusive (first, last); None if unsatisfiable.

    Raises ValueError for a header we do not understand (the caller then sends the whole file)."""
    match = _RANGE.match(header.strip())
    if not match or match.groups() == ("", ""):
        raise ValueError(header)
    first, last = match.groups()
    if first == "":
        length = int(last)
        if length == 0 or size == 0:
            return None
        return max(size - length, 0), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return None
    return start, end


class _Handler(BaseHTTPRequestHandler):
    server_version = "genometracks"
    root: Path = Path(".")
    quiet = True

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - signature of the base class
        if not self.quiet:
            super().log_message(format, *args)

    def _resolve(self) -> Path | None:
        """The file the URL names inside the root, or None after sending an error."""
        raw = unquote(urlsplit(self.path).path)
        parts = raw.split("/")
        if "\0" in raw or "\\" in raw or ".." in parts or not raw.startswith("/"):
            self.send_error(HTTPStatus.FORBIDDEN, "path outside the served folder")
            return None
        if any(p.startswith(".") for p in parts if p):
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        target = (self.root / raw.lstrip("/")).resolve()
        if target != self.root and self.root not in target.parents:
            self.send_error(HTTPStatus.FORBIDDEN, "path outside the served folder")
            return None
        if target.is_dir():
            if not raw.endswith("/"):  # so the page's relative URLs resolve inside the folder
                self.send_response(HTTPStatus.MOVED_PERMANENTLY)
                self.send_header("Location", urlsplit(self.path).path + "/")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            target = target / "index.html"
        if not target.is_file():
            self.send_error(HTTPStatus.NOT_FOUND)
            return None
        return target

    def do_HEAD(self) -> None:
        self._serve(body=False)

    def do_GET(self) -> None:
        self._serve(body=True)

    def _serve(self, body: bool) -> None:
        path = self._resolve()
        if path is None:
            return
        size = path.stat().st_size
        first, last, status = 0, size - 1, HTTPStatus.OK
        header = self.headers.get("Range")
        if header:
            try:
                span = parse_range(header, size)
            except ValueError:
                span = (0, size - 1)  # not a single byte range: ignore it, send everything
            else:
                if span is None:
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                status = HTTPStatus.PARTIAL_CONTENT
            first, last = span
        self.send_response(status)
        self.send_header("Content-Type", content_type(path))
        self.send_header("Content-Length", str(max(last - first + 1, 0)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Expose-Headers", "Content-Length, Content-Range, Accept-Ranges")
        if status == HTTPStatus.PARTIAL_CONTENT:
            self.send_header("Content-Range", f"bytes {first}-{last}/{size}")
        self.end_headers()
        if body:
            self._copy(path, first, last - first + 1)

    def _copy(self, path: Path, offset: int, length: int) -> None:
        with open(path, "rb") as handle:
            handle.seek(offset)
            while length > 0:
                chunk = handle.read(min(_CHUNK, length))
                if not chunk:
                    break
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return
                length -= len(chunk)


class RunServer(ThreadingHTTPServer):
    """HTTP server for one folder; `.url`, `.start()` (background thread), `.stop()`, context manager."""

    daemon_threads = True

    def __init__(self, root: Path, host: str, port: int, quiet: bool = True) -> None:
        handler = type("Handler", (_Handler,), {"root": root, "quiet": quiet})
        self.address_family = socket.AF_INET6 if ":" in host else socket.AF_INET
        super().__init__((host, port), handler)
        self.root = root
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{'[' + host + ']' if ':' in host else host}:{port}/"

    def start(self) -> RunServer:
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, name="genometracks-serve", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> RunServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def serve(root: str | Path, host: str = "127.0.0.1", port: int = 0, quiet: bool = True) -> RunServer:
    """A server for `root` bound to host:port (port 0 = any free port); not started yet."""
    root = Path(root).resolve()
    if root.is_file():
        raise FileNotFoundError(f"{root}: a file, not a folder; pass the run directory that holds it ({root.parent})")
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: folder to serve not found; pass a run directory")
    return RunServer(root, host, port, quiet)


def served_pages(root: Path, url: str) -> str:
    """The pages worth opening under `root`, as links: a run's IGV and JBrowse 2 pages, or a collection's
    index.html (its genomes' pages are linked from there), else the folder listing."""
    pages = [("IGV page", "igv/index.html"), ("JBrowse 2 page", "jbrowse/index.html"), ("collection page", "index.html")]
    found = [f"{what}: {url}{path}" for what, path in pages if (root / path).is_file()]
    return ", ".join(found[:2]) if found else f"no IGV or JBrowse page here yet (genometracks export writes them): {url}"


def main_serve(argv: list[str] | None = None) -> int:
    """`genometracks serve DIR [--port N] [--host H]`: serve until interrupted."""
    parser = argparse.ArgumentParser(prog="genometracks serve", description="Serve a run directory over HTTP.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default: loopback only)")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        print(f"genometracks serve: --port {args.port}: give a port from 1 to 65535 (0: any free port)", file=sys.stderr)
        return 2
    try:
        server = serve(args.run_dir, args.host, args.port, quiet=False)
    except (FileNotFoundError, OSError) as err:
        import errno

        hint = f"; port {args.port} is taken (another server?): pass --port N, e.g. --port 8001" if err.errno == errno.EADDRINUSE else ""
        print(f"genometracks serve: {err}{hint}", file=sys.stderr)
        return 2
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving {server.root} on {args.host}, reachable from other machines", file=sys.stderr)
    print(f"serving {server.root} at {server.url}  ({served_pages(Path(server.root), server.url)}; Ctrl-C stops)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
