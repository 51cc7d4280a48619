"""landlord backup and restore, and the data dir's lock: a backup taken
while onboardings go on is one consistent registry and never overwrites a
file; a restore puts it back while landlord is stopped (refused while it
serves, refused for a file that is no sound registry, changing nothing
then); after a restore landlord follows the repository again, so a tenant
onboarded after the backup is adopted from its file; two landlords never
share a data dir."""

import hashlib
import os
import sqlite3
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

from harness import (  # noqa: E402
    LandlordTestCase,
    Server,
    StartError,
    make_temp_dir,
    onboard,
    run_landlord,
)


def digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def tenant_ids(db):
    conn = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
    try:
        return {r[0] for r in conn.execute("SELECT id FROM tenants")}
    finally:
        conn.close()


class BackupRestore(LandlordTestCase):
    def wait_committed(self, server, tenant_id, timeout=60.0):
        deadline = time.monotonic() + timeout
        while True:
            r = server.get("/api/v1/tenants/%s" % tenant_id)
            self.assertEqual(r.status, 200, r.body)
            if r.json["sync"] == "committed":
                return
            self.assertLess(time.monotonic(), deadline, r.body)
            time.sleep(0.05)

    def test_backup_while_serving_then_restore(self):
        s = Server().start()
        for i in range(5):
            self.assertIn(onboard(s, "early-%d" % i, "basic").status, (201, 202))
        for i in range(5):
            self.wait_committed(s, "early-%d" % i)

        # A backup while onboardings go on beside it.
        out = make_temp_dir("landlord-backup-")
        backup = os.path.join(out, "registry.db")
        errors = []

        def writer():
            for i in range(20):
                r = onboard(s, "during-%d" % i, "basic")
                if r.status not in (201, 202):
                    errors.append(r.body)

        t = threading.Thread(target=writer)
        t.start()
        p = run_landlord(["backup", "--data", s.data, "--to", backup], timeout=60)
        t.join()
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(errors, [])
        self.assertIn("backed up", p.stdout)
        conn = sqlite3.connect("file:%s?mode=ro" % backup, uri=True)
        self.assertEqual(conn.execute("PRAGMA integrity_check").fetchone()[0], "ok")
        conn.close()
        kept = tenant_ids(backup)
        self.assertTrue({"early-%d" % i for i in range(5)} <= kept, kept)
        self.assertFalse(os.path.exists(backup + ".partial"))

        # Never over an existing file: refused, the file unchanged.
        before = digest(backup)
        p = run_landlord(["backup", "--data", s.data, "--to", backup], timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("exists", p.stderr)
        self.assertIn("hint:", p.stderr)
        self.assertEqual(digest(backup), before)

        # Restoring while landlord serves the dir is refused; nothing changes.
        for i in range(20):
            self.wait_committed(s, "during-%d" % i)
        self.assertIn(onboard(s, "after", "basic").status, (201, 202))
        self.wait_committed(s, "after")
        live = s.snapshot(["tenants", "operations"])
        p = run_landlord(["restore", "--data", s.data, "--from", backup], timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("another landlord process uses the data dir", p.stderr)
        self.assertEqual(s.snapshot(["tenants", "operations"]), live)
        self.assertFalse(os.path.exists(s.db + ".before-restore"))

        # Stopped, the backup goes back; the old registry is kept aside.
        s.stop()
        p = run_landlord(["restore", "--data", s.data, "--from", backup], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertTrue(os.path.exists(s.db + ".before-restore"))
        self.assertEqual(tenant_ids(s.db), kept)
        self.assertIn("after", tenant_ids(s.db + ".before-restore"))

        # Started again, landlord follows the repository: "after" (onboarded
        # after the backup, its file pushed) is adopted; the rest is as kept.
        s.start()
        r = s.get("/api/v1/tenants/after")
        self.assertEqual(r.status, 200, r.body)
        self.assertEqual(r.json["origin"], "adopted")
        for i in range(5):
            self.assertEqual(s.get("/api/v1/tenants/early-%d" % i).json["origin"], "api")
        self.assertIn(onboard(s, "later", "basic").status, (201, 202))
        self.wait_committed(s, "later")
        s.stop()

    def test_restore_refuses_what_is_no_registry(self):
        s = Server().start()
        self.assertIn(onboard(s, "acme", "basic").status, (201, 202))
        self.wait_committed(s, "acme")
        s.stop()
        before = digest(s.db)
        d = make_temp_dir("landlord-badbackup-")
        garbage = os.path.join(d, "garbage.db")
        with open(garbage, "wb") as f:
            f.write(b"not a database at all\n" * 100)
        other = os.path.join(d, "other.db")
        conn = sqlite3.connect(other)
        conn.execute("CREATE TABLE notes (x TEXT)")
        conn.commit()
        conn.close()
        for path, says in ((garbage, "not a SQLite database"), (other, "not a landlord registry"),
                           (os.path.join(d, "missing.db"), "cannot open")):
            p = run_landlord(["restore", "--data", s.data, "--from", path], timeout=60)
            self.assertNotEqual(p.returncode, 0, path)
            self.assertIn(says, p.stderr)
            self.assertEqual(digest(s.db), before, path)
            self.assertFalse(os.path.exists(s.db + ".before-restore"))

        # A backup of a newer schema than this binary knows: refused, the
        # registry put back as it was.
        newer = os.path.join(d, "newer.db")
        p = run_landlord(["backup", "--data", s.data, "--to", newer], timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        conn = sqlite3.connect(newer)
        conn.execute("PRAGMA user_version = 999")
        conn.commit()
        conn.close()
        p = run_landlord(["restore", "--data", s.data, "--from", newer], timeout=60)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("schema version 999", p.stderr)
        self.assertEqual(tenant_ids(s.db), {"acme"})
        self.assertFalse(os.path.exists(s.db + ".before-restore"))
        s.start()
        self.assertEqual(s.get("/api/v1/tenants/acme").status, 200)
        s.stop()

    def test_usage(self):
        p = run_landlord(["backup", "--data", make_temp_dir()], timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("--to FILE", p.stderr)
        p = run_landlord(["restore", "--help"], timeout=30)
        self.assertEqual(p.returncode, 0)
        self.assertIn("--from FILE", p.stdout)


class DataDirLock(LandlordTestCase):
    def test_two_landlords_never_share_a_data_dir(self):
        s = Server().start()
        second = Server(data=s.data)
        with self.assertRaises(StartError) as ctx:
            second.start()
        self.assertIn("another landlord process uses the data dir", str(ctx.exception))
        # The first one is untouched and goes on; after it stops (or dies) the
        # dir is free again.
        self.assertIn(onboard(s, "acme", "basic").status, (201, 202))
        s.kill()
        s.start()
        self.assertEqual(s.get("/api/v1/tenants/acme").status, 200)
        s.stop()


if __name__ == "__main__":
    unittest.main()
