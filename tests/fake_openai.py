"""A fake OpenAI-compatible chat server on 127.0.0.1 (stdlib http.server) for the judge tests.

``reply(path, headers, body) -> (status, content)`` or ``(status, content, extra_headers)`` decides
each answer; a ``str`` content is wrapped in a chat-completions payload, ``bytes`` are sent as they are.
The server records every POST as ``(path, headers, body)`` in ``requests`` and every request of any
method as ``(method, path, headers)`` in ``seen``; a GET is answered by ``reply`` with ``body`` ``{}``.
"""

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

Reply = Callable[[str, dict, dict], tuple[int, str]]


class FakeOpenAIServer:
    def __init__(self, reply: Reply) -> None:
        self.requests: list[tuple[str, dict, dict]] = []
        self.seen: list[tuple[str, str, dict]] = []
        lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with lock:
                    server.requests.append((self.path, dict(self.headers), body))
                self.answer("POST", body)

            def do_GET(self):
                self.answer("GET", {})

            def answer(self, method, body):
                with lock:
                    server.seen.append((method, self.path, dict(self.headers)))
                status, content, *extra = reply(self.path, dict(self.headers), body)
                if isinstance(content, bytes):
                    payload = content
                else:
                    message = {"role": "assistant", "content": content}
                    payload = json.dumps({"object": "chat.completion", "choices": [{"message": message}]}).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    for name, value in (extra[0] if extra else {}).items():
                        self.send_header(name, value)
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (a timeout test)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def bodies(self) -> list[dict]:
        return [body for _, _, body in self.requests]

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
