"""The HTTP edge under abuse, with raw sockets: connections per client
address, deadlines for request headers (slowloris, idle and kept-alive
connections), room kept for health checks and normal requests while slow
connections are held, and strict framing: several Content-Lengths,
Content-Length with Transfer-Encoding, control characters, NULs, bare LFs
and folded lines in header values are refused with one 400 problem and the
connection closed, so nothing after them is read as a request.  Each refusal
leaves the registry (the outbox included), the repository and the chart
store as they were, and a request smuggled behind one is never run.

Loopback has many addresses: clients bound to 127.0.0.2 and 127.0.0.3 are
other addresses to landlord than the ones on 127.0.0.1."""

import http.client
import json
import os
import re
import select
import socket
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import PROBLEM, SharedServerTestCase, make_temp_dir, run_landlord  # noqa: E402

WAIT = 15.0  # seconds to wait for something that must happen much sooner


def connect(port, source="127.0.0.1", timeout=WAIT):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.bind((source, 0))
    s.connect(("127.0.0.1", port))
    return s


def read_until_closed(sock, timeout=WAIT):
    """Everything the server sends until it closes the connection: (bytes,
    closed); closed is False when timeout passed with the connection open."""
    chunks, deadline = [], time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return b"".join(chunks), False
        sock.settimeout(left)
        try:
            c = sock.recv(65536)
        except socket.timeout:
            return b"".join(chunks), False
        except (ConnectionResetError, BrokenPipeError):
            return b"".join(chunks), True
        if not c:
            return b"".join(chunks), True
        chunks.append(c)


def exchange(port, data, source="127.0.0.1"):
    """Sends data on a new connection and reads until the server closes it."""
    s = connect(port, source)
    try:
        try:
            s.sendall(data)
        except (ConnectionResetError, BrokenPipeError):
            pass
        return read_until_closed(s)
    finally:
        s.close()


def status_lines(raw):
    """How many HTTP status lines raw holds (at its start or after a CRLF)."""
    return len(re.findall(rb"(?:^|\r\n)HTTP/1\.[01] \d{3} ", raw))


def parse_one(raw):
    """(status, headers, body) of the one response in raw, which must hold
    exactly one status line and exactly the body its Content-Length says."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    assert sep, "no complete response head in %r" % raw[:300]
    lines = head.decode("latin-1").split("\r\n")
    m = re.match(r"^HTTP/1\.[01] (\d{3}) ", lines[0])
    assert m, "no status line in %r" % raw[:300]
    headers = {}
    for line in lines[1:]:
        k, _, v = line.partition(":")
        headers.setdefault(k.strip().lower(), v.strip())
    assert int(headers.get("content-length", "-1")) == len(body), \
        "the body is not what Content-Length says: %r" % raw[:600]
    return int(m.group(1)), headers, body


def get(port, path, source="127.0.0.1", token=None, timeout=WAIT):
    """A GET on a new connection from source: (status, body)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout, source_address=(source, 0))
    try:
        c.request("GET", path, headers={"Authorization": "Bearer " + token} if token else {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


class Edge(SharedServerTestCase):
    """One server with a 2 s header deadline and no limit per address."""

    shared_args = ("--http-header-timeout", "2", "--http-connection-timeout", "2",
                   "--http-per-address-limit", "0", "--http-connection-limit", "64",
                   "--rate-limit", "0")
    shared_sanitizer_clean = True

    def state(self):
        oci = []
        for root, _dirs, files in os.walk(os.path.join(self.s.data, "oci")):
            oci += [os.path.join(root, f) for f in files]
        return self.s.snapshot(), self.s.head(), self.s.audit(), sorted(oci)

    def assertNothingChanged(self, before, what, audited):
        snap, head, audit, oci = before
        now = self.state()
        self.assertEqual(now[0], snap, "%s changed the registry" % what)
        self.assertEqual(now[1], head, "%s changed the repository" % what)
        self.assertEqual(now[3], oci, "%s changed the chart store" % what)
        self.assertEqual(now[2][:len(audit)], audit, "%s rewrote audit records" % what)
        self.assertEqual([(a["status"], a["problem"]) for a in now[2][len(audit):]],
                         [(400, "malformed-request")] * audited,
                         "%s: the refusal's record only" % what)

    def onboarding(self, tenant, headers=b"", length=None):
        """A complete onboarding request (bytes) with extra header lines."""
        body = json.dumps({"id": tenant, "tier": "basic"}).encode()
        return (b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + self.s.auth_line() + headers
                + b"Content-Length: " + (b"%d" % len(body) if length is None else length) + b"\r\n\r\n"
                + body)

    def assertRefused400(self, raw, closed, what, header=None):
        self.assertTrue(closed, "%s: the connection stayed open: %r" % (what, raw[:300]))
        self.assertEqual(status_lines(raw), 1, "%s: not exactly one response: %r" % (what, raw[:600]))
        status, headers, body = parse_one(raw)
        self.assertEqual(status, 400, "%s: %r" % (what, raw[:600]))
        self.assertEqual(headers.get("content-type"), "application/problem+json", what)
        self.assertIn("close", headers.get("connection", "").lower(), what)
        problem = json.loads(body)
        self.assertEqual(problem["type"], PROBLEM + "malformed-request", what)
        self.assertEqual(problem["status"], 400, what)
        self.assertIsInstance(problem.get("detail"), str, what)
        if header:
            self.assertEqual(problem.get("header"), header, what)
        return problem

    # -- framing ---------------------------------------------------------

    def test_duplicate_content_length_smuggles_nothing(self):
        smuggled = self.onboarding("smuggled")
        cases = [
            ("2 then the rest", b"Content-Length: 2\r\nContent-Length: %d\r\n" % (2 + len(smuggled))),
            ("the same twice", b"Content-Length: 2\r\nContent-Length: 2\r\n"),
            ("0 then the rest", b"Content-Length: 0\r\nContent-Length: %d\r\n" % (2 + len(smuggled))),
        ]
        for what, lengths in cases:
            with self.subTest(what):
                before = self.state()
                outer = (b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + self.s.auth_line() + lengths + b"\r\n{}")
                raw, closed = exchange(self.s.port, outer + smuggled)
                self.assertRefused400(raw, closed, what, "Content-Length")
                self.assertEqual(self.s.get("/api/v1/tenants/smuggled").status, 404, what)
                self.assertNothingChanged(before, what, audited=1)

    def test_framing_is_checked_on_every_request_of_a_connection(self):
        before = self.state()
        smuggled = self.onboarding("smuggled-ka")
        first = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
        second = (b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  + self.s.auth_line() + b"Content-Length: 2\r\nContent-Length: %d\r\n\r\n{}"
                  % (2 + len(smuggled)))
        raw, closed = exchange(self.s.port, first + second + smuggled)
        self.assertTrue(closed, raw[:300])
        ok_len = int(re.search(rb"(?i)content-length:\s*(\d+)", raw).group(1))
        head, _, rest = raw.partition(b"\r\n\r\n")
        self.assertTrue(head.startswith(b"HTTP/1.1 200"), raw[:300])
        self.assertRefused400(rest[ok_len:], True, "on a kept-alive connection", "Content-Length")
        self.assertEqual(self.s.get("/api/v1/tenants/smuggled-ka").status, 404)
        self.assertNothingChanged(before, "on a kept-alive connection", audited=1)

    def test_content_length_with_transfer_encoding_smuggles_nothing(self):
        smuggled = self.onboarding("smuggled-te")
        chunked = b"0\r\n\r\n"
        cases = [
            ("chunked and a length", b"Transfer-Encoding: chunked\r\nContent-Length: %d\r\n"
             % (len(chunked) + len(smuggled)), chunked + smuggled),
            ("a length and chunked", b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
             chunked + smuggled),
        ]
        for what, framing, body in cases:
            with self.subTest(what):
                before = self.state()
                outer = (b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                         + self.s.auth_line() + framing + b"\r\n")
                raw, closed = exchange(self.s.port, outer + body)
                self.assertRefused400(raw, closed, what, "Transfer-Encoding")
                self.assertEqual(self.s.get("/api/v1/tenants/smuggled-te").status, 404, what)
                self.assertNothingChanged(before, what, audited=1)

    def test_transfer_encoding_other_than_chunked_once(self):
        body = json.dumps({"id": "te-odd", "tier": "basic"}).encode()
        chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
        cases = [
            ("gzip, chunked", b"HTTP/1.1", b"Transfer-Encoding: gzip, chunked\r\n"),
            ("identity", b"HTTP/1.1", b"Transfer-Encoding: identity\r\n"),
            ("chunked twice", b"HTTP/1.1", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
            ("HTTP/1.0", b"HTTP/1.0", b"Transfer-Encoding: chunked\r\n"),
        ]
        for what, version, te in cases:
            with self.subTest(what):
                before = self.state()
                req = (b"POST /api/v1/tenants " + version + b"\r\nHost: x\r\n"
                       b"Content-Type: application/json\r\n" + self.s.auth_line() + te + b"\r\n" + chunked)
                raw, closed = exchange(self.s.port, req)
                self.assertRefused400(raw, closed, what, "Transfer-Encoding")
                self.assertNothingChanged(before, what, audited=1)
        # chunked alone is how HTTP/1.1 sends a body of unknown length
        req = (b"POST /api/v1/tenants?wait=0 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               + self.s.auth_line() + b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n" + chunked)
        raw, _ = exchange(self.s.port, req)
        status, _, body = parse_one(raw)
        self.assertIn(status, (201, 202), raw[:600])
        self.assertEqual(json.loads(body)["id"], "te-odd")

    def test_control_characters_in_header_values(self):
        token = self.s.auth_line()[len(b"Authorization: "):-2]
        cases = [
            ("NUL in Authorization", b"Authorization: " + token[:20] + b"\x00" + token[20:] + b"\r\n", "Authorization"),
            ("NUL after Authorization", b"Authorization: " + token + b"\x00x\r\n", "Authorization"),
            ("NUL at the end of a value", b"Authorization: " + token + b"\x00\r\n", "Authorization"),
            ("NUL in another header", b"Authorization: " + token + b"\r\nX-Request-Id: a\x00b\r\n", "X-Request-Id"),
            ("SOH", b"Authorization: " + token + b"\x01\r\n", "Authorization"),
            ("ESC", b"Authorization: " + token + b"\r\nX-Note: \x1b[31m\r\n", "X-Note"),
            ("DEL", b"Authorization: " + token + b"\x7f\r\n", "Authorization"),
            ("CR alone", b"Authorization: " + token + b"\rX-Evil: 1\r\n", "Authorization"),
            ("bare LF", b"Authorization: " + token + b"\nX-Evil: 1\r\n", "Authorization"),
            ("folded line", b"Authorization: Bearer\r\n " + token[7:] + b"\r\n", None),
            ("space before the colon", b"Authorization: " + token + b"\r\nX-Evil : 1\r\n", None),
        ]
        for what, lines, header in cases:
            with self.subTest(what):
                before = self.state()
                body = json.dumps({"id": "ctl", "tier": "basic"}).encode()
                req = (b"POST /api/v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       + lines + b"Content-Length: %d\r\n\r\n" % len(body) + body)
                raw, closed = exchange(self.s.port, req)
                problem = self.assertRefused400(raw, closed, what)
                if header:
                    self.assertEqual(problem.get("header"), header, what)
                self.assertEqual(self.s.get("/api/v1/tenants/ctl").status, 404, what)
                self.assertNothingChanged(before, what, audited=1)
        # a tab and bytes above 0x7f are allowed in values
        raw, _ = exchange(self.s.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Note: a\tb \xe9\r\n"
                                       b"Connection: close\r\n\r\n")
        self.assertEqual(parse_one(raw)[0], 200, raw[:300])

    def test_bad_content_length_runs_nothing(self):
        # libmicrohttpd 0.9.75 refuses these itself, before landlord sees the
        # request, and sends its status line and headers twice (see
        # docs/api.md, "The edge"): the connection is closed after it and
        # nothing runs, which is what is asserted here.
        too_large = b"18446744073709551616"  # 2^64
        for value in (b"-1", b"abc", too_large, b"1e3", b"+5", b" 5 5"):
            with self.subTest(value=value):
                before = self.state()
                raw, closed = exchange(self.s.port, self.onboarding("badlen", length=value))
                self.assertTrue(closed, raw[:300])
                m = re.match(rb"HTTP/1\.1 (\d{3}) ", raw)
                self.assertIsNotNone(m, raw[:300])
                self.assertEqual(int(m.group(1)), 413 if value == too_large else 400, raw[:300])
                self.assertEqual(self.s.get("/api/v1/tenants/badlen").status, 404)
                snap, head, audit, oci = before
                self.assertEqual(self.state(), (snap, head, audit, oci), value)

    # -- deadlines and room ---------------------------------------------------

    def wait_for_log(self, text):
        deadline = time.monotonic() + WAIT
        while text not in self.s.stderr_text():
            self.assertLess(time.monotonic(), deadline, "no log line with %r" % text)
            time.sleep(0.1)

    def test_slowloris_is_closed_while_requests_are_answered(self):
        port = self.s.port
        results = {}
        started = threading.Semaphore(0)

        def trickle(n):
            try:
                sock = connect(port)
            except OSError as e:
                results[n] = ("refused: %s" % e, b"")
                started.release()
                return
            got, t0, how = b"", time.monotonic(), "open"
            try:
                try:
                    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                finally:
                    started.release()
                while time.monotonic() - t0 < WAIT:
                    sock.sendall(b"a")
                    r, _, _ = select.select([sock], [], [], 0.3)
                    if r:
                        data, closed = read_until_closed(sock, 1)
                        got += data
                        if closed:
                            how = "closed"
                            break
            except (ConnectionResetError, BrokenPipeError):
                how = "closed"
            finally:
                results[n] = (how, got)
                sock.close()

        idle = [connect(port) for _ in range(10)]
        threads = [threading.Thread(target=trickle, args=(n,)) for n in range(40)]
        for t in threads:
            t.start()
        # every slow connection is open (or already closed to make room)
        # before the normal requests come
        for _ in threads:
            started.acquire()
        token = self.s.admin_token
        try:
            for n in range(5):
                self.assertEqual(get(port, "/healthz", source="127.0.0.2")[0], 200)
                status, body = get(port, "/api/v1/tenants", source="127.0.0.3", token=token)
                self.assertEqual(status, 200, body[:300])
        finally:
            for t in threads:
                t.join()
        self.assertEqual(sorted(results), list(range(40)))
        for n, (how, got) in sorted(results.items()):
            self.assertEqual((how, got), ("closed", b""), "trickling connection %d" % n)
        for sock in idle:
            data, closed = read_until_closed(sock)
            sock.close()
            self.assertEqual((data, closed), (b"", True), "an idle connection was not closed")
        self.wait_for_log("sent no request header in time")

    def test_kept_alive_connection_trickling_its_next_header_is_closed(self):
        sock = connect(self.s.port)
        try:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            first = b""
            while b"\r\n\r\n" not in first:
                first += sock.recv(4096)
            length = int(re.search(rb"(?im)^content-length:\s*(\d+)", first).group(1))
            while len(first.partition(b"\r\n\r\n")[2]) < length:
                first += sock.recv(4096)
            self.assertEqual(parse_one(first)[0], 200, first)
            # the next request's header, a byte at a time
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Slow: ")
            t0, more, closed = time.monotonic(), b"", False
            while not closed and time.monotonic() - t0 < 3 * WAIT:
                try:
                    sock.sendall(b"a")
                except (ConnectionResetError, BrokenPipeError):
                    closed = True
                    break
                r, _, _ = select.select([sock], [], [], 0.5)
                if r:
                    data, closed = read_until_closed(sock, 1)
                    more += data
            self.assertTrue(closed, "a kept-alive connection trickling a header was kept")
            self.assertEqual(more, b"", "the trickled request was answered")
        finally:
            sock.close()


class PerAddress(SharedServerTestCase):
    """At most 8 connections from one address; headers may take a minute,
    so connections held stay held."""

    shared_args = ("--http-per-address-limit", "8", "--http-header-timeout", "60", "--rate-limit", "0")
    shared_sanitizer_clean = True

    def test_one_address_cannot_take_every_connection(self):
        port = self.s.port
        socks = [connect(port) for _ in range(12)]
        try:
            # libmicrohttpd accepts the four over the limit and closes them
            closed, deadline = set(), time.monotonic() + WAIT
            while len(closed) < 4 and time.monotonic() < deadline:
                r, _, _ = select.select([s for s in socks if s not in closed], [], [], 0.5)
                for s in r:
                    data, eof = read_until_closed(s, 0.1)
                    self.assertEqual(data, b"")
                    if eof:
                        closed.add(s)
            self.assertEqual(len(closed), 4, "connections over the limit were not closed")
            held = [s for s in socks if s not in closed]
            # the address is full: one more is closed without an answer
            raw, eof = exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual((raw, eof), (b"", True))
            # other addresses are served at once, health checks and requests alike
            self.assertEqual(get(port, "/healthz", source="127.0.0.2")[0], 200)
            status, body = get(port, "/api/v1/tenants", source="127.0.0.2", token=self.s.admin_token)
            self.assertEqual(status, 200, body[:300])
            # the eight held were kept all along: each still gets its answer
            for s in held:
                s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                raw, eof = read_until_closed(s)
                self.assertEqual(parse_one(raw)[0], 200, raw[:300])
        finally:
            for s in socks:
                s.close()
        # once they are gone the address is served again
        deadline = time.monotonic() + WAIT
        while True:
            try:
                if get(port, "/healthz")[0] == 200:
                    break
            except (ConnectionError, http.client.HTTPException):
                pass
            self.assertLess(time.monotonic(), deadline, "127.0.0.1 was not served again")
            time.sleep(0.1)

    def test_pending_limit_must_leave_room(self):
        r = run_landlord(["serve", "--listen", "127.0.0.1:0", "--data", make_temp_dir(),
                          "--http-connection-limit", "100", "--http-pending-limit", "100"])
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertIn("http-pending-limit (100) must be below http-connection-limit (100)", r.stderr)


if __name__ == "__main__":
    unittest.main()
