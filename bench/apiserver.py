#!/usr/bin/env python3
"""A loopback HTTP server answering as the providers' Admin APIs do, from the pages a
`tokenledger synth` run wrote (for bench/pull.sh; the tests use their own Rust server with fault
injection, tests/it/apiserver.rs). Every bucket of the requested range is answered (empty ones as
`results: []`), `limit` buckets per page chained by `next_page`; lists by `after_id`/`after`.
Keys: ANTHROPIC_ADMIN_KEY / OPENAI_ADMIN_KEY must match what the client sends.

  python3 bench/apiserver.py EXPORTS_DIR PORT_FILE
"""
import datetime as dt
import glob
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse

EXPORTS, PORT_FILE = sys.argv[1], sys.argv[2]
A_KEY, O_KEY = os.environ["ANTHROPIC_ADMIN_KEY"], os.environ["OPENAI_ADMIN_KEY"]
buckets, widths, lists = {}, {}, {}


def ts(v):
    if isinstance(v, int):
        return v
    return int(dt.datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp())


def add_pages(route, pattern):
    for f in sorted(glob.glob(os.path.join(EXPORTS, pattern))):
        for b in json.load(open(f))["data"]:
            s, e = ts(b.get("starting_at", b.get("start_time"))), ts(b.get("ending_at", b.get("end_time")))
            buckets.setdefault(route, {})[s] = b
            widths[route] = e - s


add_pages("/v1/organizations/usage_report/messages", "usage/*.json")
add_pages("/v1/organizations/cost_report", "cost/*.json")
add_pages("/v1/organization/costs", "openai/costs-*.json")
for f in glob.glob(os.path.join(EXPORTS, "openai/usage-*.json")):
    ep = os.path.basename(f)[len("usage-"):].rsplit("-", 2)[0].replace("-", "_")
    add_pages(f"/v1/organization/usage/{ep}", os.path.relpath(f, EXPORTS))
for route, name in [("/v1/organizations/workspaces", "workspaces.json"), ("/v1/organizations/api_keys", "api_keys.json"),
                    ("/v1/organization/projects", "openai/projects.json"), ("project-keys", "openai/project-api-keys.json")]:
    p = os.path.join(EXPORTS, name)
    if os.path.exists(p):
        lists[route] = json.load(open(p))["data"]


def iso(t):
    return dt.datetime.fromtimestamp(t, dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def send(self, code, body):
        raw = json.dumps(body).encode()
        self.send_response(code)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def do_GET(self):
        u = urlparse(self.path)
        q = {k: v[-1] for k, v in parse_qs(u.query).items()}
        openai = u.path.startswith("/v1/organization/")
        ok = self.headers.get("authorization") == f"Bearer {O_KEY}" if openai else self.headers.get("x-api-key") == A_KEY
        if not ok:
            return self.send(401, {"type": "error", "error": {"type": "authentication_error", "message": "invalid key"}})
        route = "project-keys" if u.path.endswith("/api_keys") and "/projects/" in u.path else u.path
        if route in lists:
            items = lists[route] if route != "project-keys" or lists["/v1/organization/projects"][0]["id"] in u.path else []
            after = q.get("after_id", q.get("after"))
            start = next((i + 1 for i, x in enumerate(items) if x["id"] == after), 0)
            page = items[start:start + int(q.get("limit", "20"))]
            return self.send(200, {"object": "list", "data": page, "has_more": start + len(page) < len(items),
                                   "first_id": page[0]["id"] if page else None, "last_id": page[-1]["id"] if page else None})
        if route not in buckets:
            return self.send(404, {"type": "error", "error": {"type": "not_found_error", "message": route}})
        w = widths[route]
        s = ts(q.get("starting_at") or int(q["start_time"]))
        e = ts(q.get("ending_at") or int(q["end_time"]))
        starts = list(range(s, e, w))
        off = int(q.get("page", "page_0")[5:])
        page = starts[off:off + int(q.get("limit", "7"))]
        data = [buckets[route].get(t) or ({"object": "bucket", "start_time": t, "end_time": t + w, "results": []} if openai
                                          else {"starting_at": iso(t), "ending_at": iso(t + w), "results": []}) for t in page]
        more = off + len(page) < len(starts)
        self.send(200, {"object": "page", "data": data, "has_more": more, "next_page": f"page_{off + len(page)}" if more else None})


srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(PORT_FILE, "w") as f:
    f.write(str(srv.server_address[1]))
threading.Thread(target=srv.serve_forever, daemon=True).start()
threading.Event().wait(float(os.environ.get("SERVE_SECONDS", "900")))
