#!/usr/bin/env python3
"""A stand-in for https://httpbin.org in the lab's "internet" namespace.

Answers every GET with httpbin-style JSON whose "origin" is the address the
connection came from: in the lab that is the egress gateway's outside address,
never the sleep pod's, which is the point. Each TLS handshake is logged with
the SNI the client sent.

    fake-httpbin.py --cert httpbin.crt --key httpbin.key --bind 10.99.0.10 --port 443
"""
import argparse
import http.server
import json
import ssl
import sys
import time


def log(msg):
    sys.stderr.write("%s fake-httpbin: %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), msg))
    sys.stderr.flush()


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "fake-httpbin/1"
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        host = self.headers.get("Host", "httpbin.org")
        body = json.dumps(
            {
                "args": {},
                "headers": {k: v for k, v in self.headers.items()},
                "origin": self.client_address[0],
                "sni": getattr(self.connection, "chokepoint_sni", None),
                "url": "https://%s%s" % (host, self.path),
            },
            indent=2,
        ).encode() + b"\n"
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        log("%s %s" % (self.client_address[0], fmt % args))


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, ctx):
        self.ctx = ctx
        super().__init__(addr, Handler)

    def finish_request(self, request, client_address):
        # The TLS handshake runs in the connection's own thread, so a client
        # that never sends a ClientHello cannot stall the others.
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            log("%s TLS handshake failed: %s" % (client_address[0], e))
            return
        tls.chokepoint_sni = getattr(tls, "_sni", None)
        super().finish_request(tls, client_address)

    def handle_error(self, request, client_address):
        log("%s connection error: %s" % (client_address[0], sys.exc_info()[1]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--bind", default="0.0.0.0")
    ap.add_argument("--port", type=int, default=443)
    a = ap.parse_args()

    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(a.cert, a.key)

    def on_sni(sslobj, name, _ctx):
        log("TLS ClientHello SNI=%s" % name)
        sslobj._sni = name  # read back after the handshake

    ctx.sni_callback = on_sni

    srv = Server((a.bind, a.port), ctx)
    host, port = srv.server_address[:2]
    print("listening on %s:%d" % (host, port), flush=True)
    log("listening on %s:%d" % (host, port))
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
