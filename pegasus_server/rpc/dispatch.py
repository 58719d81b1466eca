"""Request dispatch shared by the meta and replica servers: handler tables, replies, HTTP routes.

A handler is ``fn(conn, request, argument) -> result`` for the RPC's result type. It may raise
``HeaderError(err)`` to answer with a header error and no body, return ``NO_REPLY`` (one-way
RPCs, clear_scanner), or return ``DEFERRED`` and later call ``reply_later``. Unknown names get
``ERR_HANDLER_NOT_FOUND`` (protocol.md §4.4); an argument that cannot be decoded gets
``ERR_INVALID_DATA``; a handler bug is logged with its traceback and answered ``ERR_UNKNOWN``.
HTTP routes map a path to ``fn(http_request) -> (status, content_type, body)``.
Must not import storage, meta or replica code.
"""
from __future__ import annotations

import json
from typing import Callable, Dict

from loguru import logger

from pegasus_server import errors
from pegasus_server.errors import ProtocolError
from pegasus_server.rpc import catalogue, codec


class HeaderError(Exception):
    def __init__(self, err: str):
        super().__init__(err)
        self.err = err


NO_REPLY = object()
DEFERRED = object()

HTTP_REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 500: "Internal Server Error"}


class Dispatcher:
    def __init__(self):
        self.handlers: Dict[str, Callable] = {}
        self.routes: Dict[str, Callable] = {}

    def register(self, name: str, fn: Callable) -> None:
        if catalogue.find(name) is None:
            raise KeyError(f"{name} is not in the RPC catalogue")
        self.handlers[name] = fn

    def route(self, path: str, fn: Callable) -> None:
        self.routes[path] = fn

    # THFT ---------------------------------------------------------------------------------
    def dispatch(self, conn, req: codec.Request):
        fn = self.handlers.get(req.name)
        if fn is None:
            return codec.encode_reply(req.name, req.seqid, errors.ERR_HANDLER_NOT_FOUND)
        return self.call(fn, conn, req)

    def call(self, fn, conn, req: codec.Request):
        entry = catalogue.get(req.name)
        try:
            arg = codec.decode_argument(req, entry.arg_spec)
        except ProtocolError as e:
            logger.warning("{} from {}: undecodable argument: {}", req.name,
                           getattr(conn, "peer", "?"), e)
            return codec.encode_reply(req.name, req.seqid, errors.ERR_INVALID_DATA)
        try:
            out = fn(conn, req, arg)
        except HeaderError as e:
            return codec.encode_reply(req.name, req.seqid, e.err)
        except Exception:
            logger.exception("handler of {} failed", req.name)
            return codec.encode_reply(req.name, req.seqid, errors.ERR_UNKNOWN)
        if out is NO_REPLY or out is DEFERRED or entry.result_spec is None:
            return None
        try:
            result = codec.encode_result(entry.result_spec, out)
        except Exception:
            logger.exception("cannot encode the reply of {}", req.name)
            return codec.encode_reply(req.name, req.seqid, errors.ERR_UNKNOWN)
        return codec.encode_reply(req.name, req.seqid, errors.ERR_OK, result)

    @staticmethod
    def reply_later(conn, req: codec.Request, err: str, value=None) -> None:
        entry = catalogue.get(req.name)
        result = b""
        if err == errors.ERR_OK and entry.result_spec is not None:
            result = codec.encode_result(entry.result_spec, value)
        conn.send(codec.encode_reply(req.name, req.seqid, err, result))

    # HTTP ---------------------------------------------------------------------------------
    def http(self, conn, hreq: codec.HttpRequest) -> bytes:
        fn = self.routes.get(hreq.path)
        if fn is None:
            status, ctype, body = 404, "application/json", json.dumps(
                {"error_message": f"{hreq.path} not found"})
        else:
            try:
                status, ctype, body = fn(hreq)
            except Exception as e:
                logger.exception("HTTP handler of {} failed", hreq.path)
                status, ctype, body = 500, "application/json", json.dumps({"error_message": str(e)})
        if isinstance(body, str):
            body = body.encode()
        head = (f"HTTP/1.1 {status} {HTTP_REASONS.get(status, 'OK')}\r\n"
                f"Content-Type: {ctype}\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n")
        return head.encode() + body


def parse_query(query: str) -> Dict[str, str]:
    from urllib.parse import parse_qsl
    return dict(parse_qsl(query, keep_blank_values=True))

