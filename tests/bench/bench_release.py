#!/usr/bin/env python3
"""Chart upload + push through landlord, as a ratio to the floor measured in
the same run: libcurl doing exactly the same HTTP sequence against the same
registry (tests/bench/oci_push_floor.c, built as build/tests/bench_oci_floor).

The registry is Debian's docker-registry with htpasswd (bcrypt) auth on
127.0.0.1 (tests/support/ociregistry.py).  landlord runs with --oci-url
pointing at it; every upload is a new chart version (a full push: HEAD the
tag, HEAD + POST + PUT the config blob and the chart layer, PUT the
manifest), sent on one kept-alive connection and timed from the first byte
of the request to the last byte of the 201.  The floor does the same eight
requests per push on one kept-alive libcurl handle with Basic credentials,
for charts of the same size.  Small batches alternate (landlord then floor,
floor then landlord, ...) so that drift on a shared machine hits both.  "push part" is landlord's own timing of
the registry exchange (its "chart pushed ... ms=" log line).

Prints figures; asserts nothing.  Usage:
    tests/bench/bench_release.py [--n 40] [--bin build/landlord] [--floor build/tests/bench_oci_floor]
"""

import argparse
import hashlib
import http.client
import os
import re
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import SOURCE_DIR, Server  # noqa: E402
from ociregistry import Registry, chart_config, chart_manifest, make_chart_tgz  # noqa: E402

NAME = "helm-tenant-chart"
PASSWORD = "bench-password"
SIZES = [("10 KB", 10 * 1024), ("1 MB", 1024 * 1024)]
BATCH = 5


def pct(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100.0 * (len(s) - 1))))]


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def chart(version, size):
    """A chart whose .tgz is about size bytes (random, so gzip cannot shrink it)."""
    filler = max(0, size - 700)
    return make_chart_tgz(NAME, version, files={"files/blob.bin": os.urandom(filler)})


def landlord_batch(server, conn, versions, size):
    times = []
    for v in versions:
        body = chart(v, size)
        t0 = time.perf_counter()
        conn.request("POST", "/api/v1/releases", body=body, headers={"Content-Type": "application/gzip"})
        r = conn.getresponse()
        data = r.read()
        times.append((time.perf_counter() - t0) * 1000)
        if r.status != 201:
            raise SystemExit("upload %s answered %d: %r\n%s" % (v, r.status, data[:400], server.logs()))
    return times


def floor_batch(floor, reg, tmp, tags, size):
    lines = []
    for tag in tags:
        tgz = chart(tag, size)
        config = chart_config(NAME, tag)
        manifest = chart_manifest(config, tgz, {"org.opencontainers.image.title": NAME,
                                                "org.opencontainers.image.version": tag,
                                                "org.opencontainers.image.created": "2026-11-23T10:00:00.000Z"})
        paths = []
        for kind, data in (("config", config), ("tgz", tgz), ("manifest", manifest)):
            p = os.path.join(tmp, "%s.%s" % (tag, kind))
            with open(p, "wb") as f:
                f.write(data)
            paths.append(p)
        lines.append("%s %s %s %s %s %s" % (tag, sha256(config), paths[0], sha256(tgz), paths[1], paths[2]))
    listfile = os.path.join(tmp, "list.%s" % tags[0])
    with open(listfile, "w") as f:
        f.write("\n".join(lines) + "\n")
    p = subprocess.run([floor, reg.url, "bench/floor", "landlord:%s" % PASSWORD, listfile],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if p.returncode != 0:
        raise SystemExit("floor failed: %s" % p.stderr)
    return [float(x) for x in p.stdout.split()]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=40, help="timed uploads per size and side")
    ap.add_argument("--bin", default=os.path.join(SOURCE_DIR, "build", "landlord"))
    ap.add_argument("--floor", default=os.path.join(SOURCE_DIR, "build", "tests", "bench_oci_floor"))
    args = ap.parse_args()
    os.environ["LANDLORD_BIN"] = os.path.abspath(args.bin)
    if not os.access(args.floor, os.X_OK):
        raise SystemExit("%s is missing: cmake --build build" % args.floor)

    reg = Registry(auth="htpasswd", users={"landlord": PASSWORD}).start()
    tmp = tempfile.mkdtemp(prefix="landlord-bench-release-")
    server = Server(args=["--oci-url", "oci://%s/charts" % reg.host, "--oci-plain-http", "1",
                          "--oci-username", "landlord", "--oci-password-file", reg.write_password_file(PASSWORD),
                          "--release-max-size", str(8 << 20)]).start()
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=60)
    try:
        print("chart upload + push: landlord vs libcurl doing the same HTTP sequence (the floor)")
        print("registry: docker-registry %s, htpasswd (bcrypt), 127.0.0.1; %d timed pushes per size and side"
              % (reg.host, args.n))
        print()
        print("%-6s %8s %8s | %8s %8s %9s | %8s %8s" % ("chart", "floor50", "floor90", "ll p50", "ll p90",
                                                       "push p50", "ratio50", "ratio90"))
        # Warm up both sides (connections, the registry's challenge, page cache).
        landlord_batch(server, conn, ["0.0.%d" % i for i in range(3)], 10 * 1024)
        floor_batch(args.floor, reg, tmp, ["w.%d" % i for i in range(3)], 10 * 1024)
        for si, (label, size) in enumerate(SIZES):
            ll, fl = [], []
            mark = len(server.stderr_text())
            for b in range(max(1, args.n // BATCH)):
                lv = ["%d.%d.%d" % (si + 1, b, i) for i in range(BATCH)]
                ft = ["s%d.b%d.%d" % (si, b, i) for i in range(BATCH)]
                if b % 2 == 0:
                    ll += landlord_batch(server, conn, lv, size)
                    fl += floor_batch(args.floor, reg, tmp, ft, size)
                else:
                    fl += floor_batch(args.floor, reg, tmp, ft, size)
                    ll += landlord_batch(server, conn, lv, size)
            push = [float(m) for m in re.findall(r'msg="chart pushed" .* ms=(\d+)', server.stderr_text()[mark:])]
            print("%-6s %6.1fms %6.1fms | %6.1fms %6.1fms %7.1fms | %7.2fx %7.2fx"
                  % (label, pct(fl, 50), pct(fl, 90), pct(ll, 50), pct(ll, 90), pct(push, 50) if push else -1,
                     pct(ll, 50) / pct(fl, 50), pct(ll, 90) / pct(fl, 90)))
        print()
        print("DESIGN target: landlord p50 <= 1.2x the floor")
    finally:
        conn.close()
        server.stop()
        reg.stop()
        reg.cleanup()


if __name__ == "__main__":
    main()
