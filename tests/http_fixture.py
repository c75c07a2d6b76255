"""A small HTTP server on 127.0.0.1 for download tests: Range, dropped connections,
and misbehaving servers (error pages, wrong ranges, endless streams)."""

from __future__ import annotations

import contextlib
import shutil
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# The server shuts itself down after this long even if a test forgets to.
_LIFETIME = 120.0


class FileServer:
    """Serves the files of ``root`` at ``url/<name>``.

    ``drop_after[name] = n`` makes the first request of ``name`` send only
    ``n`` bytes and close the connection (a broken download);
    ``ignore_range = True`` answers Range requests with the whole file.
    ``pages[name] = (status, content_type, body)`` answers ``name`` with that
    body whatever was asked (an HTML error page with status 200, say).
    ``wrong_range.add(name)`` answers a Range request for ``name`` with 206
    and the whole file, labelled ``Content-Range: bytes 0-...`` (not where
    the client's file ends). ``endless[name] = n`` streams zeros for ``name``
    without a Content-Length until ``n`` bytes are sent or the client hangs
    up; ``sent[name]`` counts them and ``streaming`` is the number of such
    streams still running.
    ``requests`` records (path, Range header) of every request.
    """

    def __init__(self, root):
        self.root = Path(root)
        self.drop_after: dict[str, int] = {}
        self.ignore_range = False
        self.pages: dict[str, tuple[int, str, bytes]] = {}
        self.wrong_range: set[str] = set()
        self.endless: dict[str, int] = {}
        self.sent: dict[str, int] = {}
        self.streaming = 0  # endless streams still being written
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                name = self.path.lstrip("/")
                server.requests.append((name, self.headers.get("Range")))
                if name in server.pages:
                    status, kind, body = server.pages[name]
                    self.send_response(status)
                    self.send_header("Content-Type", kind)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                if name in server.endless:
                    self._stream_zeros(name, server.endless[name])
                    return
                path = server.root / name
                if not path.is_file():
                    self.send_error(404)
                    return
                data = path.read_bytes()
                start, status = 0, 200
                wanted = self.headers.get("Range")
                if wanted and name in server.wrong_range:
                    self.send_response(206)
                    self.send_header("Content-Length", str(len(data)))
                    self.send_header("Content-Range", f"bytes 0-{len(data) - 1}/{len(data)}")
                    self.end_headers()
                    self.wfile.write(data)
                    return
                if wanted and not server.ignore_range:
                    start = int(wanted.split("=")[1].split("-")[0])
                    if start >= len(data):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(data)}")
                        self.end_headers()
                        return
                    status = 206
                body = data[start:]
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                if status == 206:
                    self.send_header("Content-Range",
                                     f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.end_headers()
                drop = server.drop_after.pop(name, None)
                if drop is not None:
                    self.wfile.write(body[:drop])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(body)

            def _stream_zeros(self, name, most):
                # HTTP/1.0 without Content-Length: the body ends when the
                # connection closes, which this server never does by itself.
                self.send_response(200)
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                block = bytes(1 << 16)
                server.sent[name] = 0
                server.streaming += 1
                try:
                    while server.sent[name] < most:
                        self.wfile.write(block)
                        server.sent[name] += len(block)
                except OSError:  # the client hung up
                    pass
                finally:
                    server.streaming -= 1
                self.close_connection = True

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self._thread = threading.Thread(target=self.httpd.serve_forever,
                                        kwargs={"poll_interval": 0.05}, daemon=True)
        self._timer = threading.Timer(_LIFETIME, self.httpd.shutdown)
        self._timer.daemon = True

    def start(self):
        self._thread.start()
        self._timer.start()
        return self

    def stop(self):
        self._timer.cancel()
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(5)


@contextlib.contextmanager
def serve(root):
    server = FileServer(root).start()
    try:
        yield server
    finally:
        server.stop()


@contextlib.contextmanager
def serve_files(folder, files):
    """Write ``files`` ({name: bytes}) into ``folder`` and serve them."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    with serve(folder) as server:
        yield server


@contextlib.contextmanager
def serve_model_hub(folder, files, monkeypatch):
    """Copy ``files`` ({path on the server: local file}) into ``folder`` and serve
    them as the Hugging Face endpoint (``hf://`` URLs resolve there), with an
    HTML page at ``page.safetensors`` and a private model cache."""
    from pdmer.estimators.remote import HF_ENDPOINT_ENV

    folder = Path(folder)
    for rel, source in files.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, folder / rel)
    (folder / "page.safetensors").write_text("<!DOCTYPE html><html>Sign in</html>")
    monkeypatch.setenv("PDMER_CACHE_DIR", str(folder.parent / "cache"))
    with serve(folder) as server:
        monkeypatch.setenv(HF_ENDPOINT_ENV, server.url)
        yield server
