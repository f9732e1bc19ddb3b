"""uvicorn's HTTP/1.1 protocol, with its one answer of its own as problem+json.

A request uvicorn cannot parse (broken framing, an invalid header line, a bad chunk
size) never reaches the app: uvicorn answers it ``400`` with a text/plain body and
closes the connection. Every other error of the API is ``application/problem+json``
with a reason code, so clients handle one error shape; this protocol writes that shape
for the parser's 400 too (reason ``request.malformed``).

``send_400_response`` is uvicorn's hook for exactly this answer (in its httptools
protocol since 0.13). If a uvicorn release renames it, :data:`PROTOCOL` falls back to
uvicorn's own choice ("auto") and the answer is text/plain again, with the same status.
"""

from __future__ import annotations

import json
from typing import Any

from verify_api.problems import PROBLEM_JSON

_BASE = "https://certledger.example/problems/"


def problem_body(detail: str) -> bytes:
    return json.dumps(
        {
            "type": _BASE + "request.malformed",
            "title": "Malformed request",
            "status": 400,
            "detail": detail,
            "reason": "request.malformed",
        }
    ).encode()


def _problem_400(protocol: Any, msg: str) -> None:
    """Our ``send_400_response``: the same answer as uvicorn's (status, headers, close), as a problem."""
    body = problem_body(msg)
    content = [b"HTTP/1.1 400 Bad Request\r\n"]
    for name, value in protocol.server_state.default_headers:
        content.extend([name, b": ", value, b"\r\n"])
    content.extend(
        [
            b"content-type: " + PROBLEM_JSON.encode() + b"\r\n",
            b"content-length: " + str(len(body)).encode("ascii") + b"\r\n",
            b"connection: close\r\n",
            b"\r\n",
            body,
        ]
    )
    protocol.transport.write(b"".join(content))
    protocol.transport.close()


#: what to pass as uvicorn's ``http`` setting: a class at module level, so that uvicorn's
#: worker processes (``serve --workers``) can import it by name
PROTOCOL: Any = "auto"

try:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
except ImportError:  # no httptools: uvicorn's h11 protocol, with its text/plain 400s
    pass
else:
    if callable(getattr(HttpToolsProtocol, "send_400_response", None)):

        class ProblemHttpToolsProtocol(HttpToolsProtocol):
            def send_400_response(self, msg: str) -> None:
                _problem_400(self, msg)

        PROTOCOL = ProblemHttpToolsProtocol
