"""A real HTTP server speaking the OpenAI chat-completions shape, on loopback, for the optional
language-model paths (profile summaries, new-interest proposals)."""

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer


class FakeChat(BaseHTTPRequestHandler):
    """Answers by model name: "broken" -> HTTP 500; "say:TEXT" -> TEXT; anything else a fixed summary.
    Records what it was sent."""

    received: list[dict] = []

    def do_POST(self):  # noqa: N802 (http.server's naming)
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        FakeChat.received.append({"path": self.path, "auth": self.headers.get("Authorization"), "body": body})
        if body["model"] == "broken":
            self.send_response(500)
            self.end_headers()
            return
        content = body["model"][4:] if body["model"].startswith("say:") else " They love B lately. "
        answer = {"choices": [{"message": {"role": "assistant", "content": content}}]}
        payload = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, *args):
        pass


def serve_chat():
    """Start one; returns (base URL, server)."""
    server = HTTPServer(("127.0.0.1", 0), FakeChat)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/v1", server
