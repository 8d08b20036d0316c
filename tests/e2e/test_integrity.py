"""The tamper-evident audit trail (CONTRACT §11, docs/internals/audit-integrity.md):
real traffic from several `serve` processes on one SQLite trail verifies; each
kind of tampering with the file (sqlite3, triggers dropped first) makes
`pricing audit verify` exit 1 naming the record or checkpoint."""

import gzip
import hashlib
import json
import os
import shutil
import sqlite3
import threading
import unittest

import harness
from harness import new_user, run_cli

VERIFY_OK = "audit verify: OK"


def record_hash(row, writer, wseq, prev):
    """The chain hash of a record, written independently of the C code."""
    def field(s):
        if s is None:
            return b"\xff\xff\xff\xff"
        b = s.encode()
        return len(b).to_bytes(4, "big") + b

    h = hashlib.sha256(b"pricing-audit-record/v1\n")
    for f in (writer, str(wseq), row["action"], row["status"], row["user_id"], row["product_id"],
              row["request_id"], row["correlation_id"], row["ts"], str(row["expires_at"]),
              row["principal"], row["api_request_id"]):
        h.update(field(f))
    h.update(field(row["before_json"]))
    h.update(field(row["after_json"]))
    gsi1pk = row["gsi1pk"] if "gsi1pk" in row.keys() else ""
    if gsi1pk.startswith("CONFIG#"):  # a config change binds its key
        h.update(field(gsi1pk[len("CONFIG#"):]))
    h.update(prev)
    return h.hexdigest()


@unittest.skipUnless(
    not os.environ.get("PX_E2E_AUDIT_STORE") or os.environ["PX_E2E_AUDIT_STORE"].startswith("sqlite:"),
    "tampers with a SQLite file",
)
class IntegrityTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.stores = harness.Stores()
        d = cls.stores.dir
        cls.key = str(d / "sign.key")
        cls.pub = str(d / "sign.pub")
        for prefix in ("sign", "other"):
            r = run_cli(["audit", "keygen", "--out", str(d / prefix)])
            assert r.rc == 0, r
        cls.env = {"AUDIT_SIGNING_KEY_FILE": cls.key}
        r = run_cli(["db", "seed"] + cls.stores.flags(), env=cls.env, timeout=300)
        assert r.rc == 0, r
        cls.pristine = d / "pristine.db"
        cls._traffic()

    @classmethod
    def _traffic(cls):
        """Three servers on the one trail at once, 40 look-ups each from its own
        thread, then clean stops; one more killed with SIGKILL after its answers."""
        servers = [harness.Server(cls.stores, env=cls.env) for _ in range(3)]
        try:
            for s in servers:
                s.start()
            errors = []

            def load(s):
                try:
                    for i in range(40):
                        r = s.price("PROD-%d" % (101 + i % 5), new_user())
                        if r.status != 200:
                            errors.append(r.status)
                except Exception as e:  # noqa: BLE001 - reported below
                    errors.append(e)

            threads = [threading.Thread(target=load, args=(s,)) for s in servers]
            for t in threads:
                t.start()
            for t in threads:
                t.join(120)
            assert not errors, errors
        finally:
            for s in servers:
                s.stop_ok()
        killed = harness.Server(cls.stores, env=cls.env).start()
        try:
            for i in range(5):
                assert killed.price("PROD-101", new_user()).status == 200
        finally:
            killed.kill()
        src = cls.stores.audit_sqlite
        # Every server stopped: the WAL is checkpointed into the file, or copied with it.
        con = sqlite3.connect(src)
        con.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        con.close()
        shutil.copy(src, cls.pristine)

    @classmethod
    def tearDownClass(cls):
        cls.stores.cleanup()

    # ------------------------------------------------------------ helpers

    def copy(self):
        p = self.stores.dir / ("t-%s.db" % new_user())
        shutil.copy(self.pristine, p)
        return p

    def verify(self, db, pub=None, extra=()):
        args = ["audit", "verify", "--audit-store", "sqlite:%s" % db,
                "--public-key", pub or self.pub] + list(extra)
        return run_cli(args)

    def tamper(self, sql, params=()):
        db = self.copy()
        con = sqlite3.connect(str(db))
        con.executescript(
            "DROP TRIGGER IF EXISTS audit_no_update; DROP TRIGGER IF EXISTS audit_no_delete;"
            "DROP TRIGGER IF EXISTS audit_no_replace;"
            "DROP TRIGGER IF EXISTS audit_checkpoint_no_update;"
            "DROP TRIGGER IF EXISTS audit_checkpoint_no_delete;")
        if callable(sql):
            sql(con)
        else:
            con.execute(sql, params)
        con.commit()
        con.close()
        return db

    def rows(self, db=None):
        con = sqlite3.connect(str(db or self.pristine))
        con.row_factory = sqlite3.Row
        rows = con.execute("SELECT * FROM audit ORDER BY seq").fetchall()
        con.close()
        return rows

    def a_writer(self):
        """The writer with the most records, and its rows in order."""
        by = {}
        for r in self.rows():
            by.setdefault(r["writer"], []).append(r)
        w = max(by, key=lambda k: len(by[k]))
        return w, by[w]

    def assert_broken(self, db, where, what):
        r = self.verify(db)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at " + where, r.stdout)
        self.assertIn(what, r.stdout)

    # ------------------------------------------------------------ tests

    def test_untouched_trail_verifies(self):
        rows = self.rows()
        self.assertEqual(len(rows), 3 * 40 + 5)
        writers = {r["writer"] for r in rows}
        self.assertEqual(len(writers), 4)
        r = self.verify(self.pristine)
        self.assertEqual(r.rc, 0, r)
        self.assertIn(VERIFY_OK, r.stdout)
        self.assertIn("125 records checked (125 chained by 4 writers", r.stdout)
        # The hash is what the design document says, computed here independently.
        prev = bytes(32)
        w, mine = self.a_writer()
        for row in mine:
            self.assertEqual(row["prev_hash"], prev.hex())
            self.assertEqual(row["hash"], record_hash(row, w, row["wseq"], prev))
            prev = bytes.fromhex(row["hash"])
        # The default key of the configuration is used when no --public-key is given.
        r = run_cli(["audit", "verify", "--audit-store", "sqlite:%s" % self.pristine],
                    env=self.env)
        self.assertEqual(r.rc, 0, r)

    def test_changed_field(self):
        w, mine = self.a_writer()
        seq = mine[7]["seq"]
        db = self.tamper("UPDATE audit SET status = 'ERROR' WHERE seq = ?", (seq,))
        self.assert_broken(db, "audit seq %d " % seq, "changed")

    def test_changed_field_rehashed(self):
        w, mine = self.a_writer()
        row = mine[7]
        h = record_hash(dict(row, status="ERROR"), w, row["wseq"], bytes.fromhex(row["prev_hash"]))
        db = self.tamper("UPDATE audit SET status = 'ERROR', hash = ? WHERE seq = ?", (h, row["seq"]))
        self.assert_broken(db, "audit seq %d " % mine[8]["seq"], "chain broken")

    def test_changed_key(self):
        w, mine = self.a_writer()
        seq = mine[3]["seq"]
        db = self.tamper("UPDATE audit SET pk = 'USER#00000000-0000-0000-0000-000000000000' "
                         "WHERE seq = ?", (seq,))
        self.assert_broken(db, "audit seq %d " % seq, "keys do not match")

    def test_removed_record(self):
        w, mine = self.a_writer()
        db = self.tamper("DELETE FROM audit WHERE seq = ?", (mine[10]["seq"],))
        self.assert_broken(db, "audit seq %d " % mine[11]["seq"], "wseq 11..11 missing")

    def test_reordered(self):
        w, mine = self.a_writer()
        a, b = mine[4]["seq"], mine[5]["seq"]

        def swap(con):
            con.execute("UPDATE audit SET seq = -1 WHERE seq = ?", (a,))
            con.execute("UPDATE audit SET seq = ? WHERE seq = ?", (a, b))
            con.execute("UPDATE audit SET seq = ? WHERE seq = -1", (b,))

        db = self.tamper(swap)
        self.assert_broken(db, "audit seq %d " % a, "wseq 5..5 missing")

    def test_inserted_forged_writer(self):
        """A record with a perfectly consistent chain of its own: no signed checkpoint."""
        row = dict(self.rows()[0])
        writer = "w" + "ab" * 8
        row.update(seq=None, request_id=new_user(), writer=writer, wseq=1, prev_hash="00" * 32)
        row["sk"] = row["gsi1sk"] = "AUDIT#%s#%s" % (row["ts"], row["request_id"])
        row["hash"] = record_hash(row, writer, 1, bytes(32))
        cols = [k for k in row if k != "seq"]
        db = self.tamper("INSERT INTO audit (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                         [row[k] for k in cols])
        con = sqlite3.connect(str(db))
        seq = con.execute("SELECT max(seq) FROM audit").fetchone()[0]
        con.close()
        self.assert_broken(db, "audit seq %d " % seq, "no signed checkpoint")

    def test_inserted_into_a_chain(self):
        w, mine = self.a_writer()
        row = dict(mine[2])
        row.update(request_id=new_user())
        row["sk"] = row["gsi1sk"] = "AUDIT#%s#%s" % (row["ts"], row["request_id"])
        row["hash"] = record_hash(row, w, row["wseq"], bytes.fromhex(row["prev_hash"]))
        cols = [k for k in row if k != "seq"]
        db = self.tamper("INSERT INTO audit (%s) VALUES (%s)" % (",".join(cols), ",".join("?" * len(cols))),
                         [row[k] for k in cols])
        con = sqlite3.connect(str(db))
        seq = con.execute("SELECT max(seq) FROM audit").fetchone()[0]
        con.close()
        self.assert_broken(db, "audit seq %d " % seq, "writer %s wseq 3 stored after" % w)

    def test_duplicated(self):
        """An exact copy of a row: the attacker rebuilds the table without UNIQUE."""
        w, mine = self.a_writer()

        def dup(con):
            con.execute("CREATE TABLE a2 AS SELECT * FROM audit")
            con.execute("INSERT INTO a2 SELECT * FROM audit WHERE seq = ?", (mine[6]["seq"],))
            con.execute("UPDATE a2 SET seq = (SELECT max(seq) FROM audit) + 1 WHERE rowid = "
                        "(SELECT max(rowid) FROM a2)")
            con.execute("DROP TABLE audit")
            con.execute("ALTER TABLE a2 RENAME TO audit")

        db = self.tamper(dup)
        r = self.verify(db)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("out of order or duplicated: writer %s wseq 7 stored after wseq %d"
                      % (w, len(mine)), r.stdout)

    def test_removed_tail(self):
        w, mine = self.a_writer()
        db = self.tamper("DELETE FROM audit WHERE writer = ? AND wseq > ?", (w, len(mine) - 3))
        r = self.verify(db)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at audit_checkpoint id ", r.stdout)
        self.assertIn("tail removed: writer %s signed a checkpoint at wseq %d, its last record is "
                      "wseq %d" % (w, len(mine), len(mine) - 3), r.stdout)

    def test_removed_writer(self):
        w, mine = self.a_writer()
        db = self.tamper("DELETE FROM audit WHERE writer = ?", (w,))
        self.assert_broken(db, "audit_checkpoint id ", "every record of writer %s removed" % w)

    def test_replaced_checkpoint(self):
        """A checkpoint replaced with one signed by another key."""
        d = self.stores.dir
        other = d / "other-trail.db"
        env = {"AUDIT_SIGNING_KEY_FILE": str(d / "other.key"), "AUDIT_CREATE": "1"}
        r = run_cli(["audit", "verify", "--audit-store", "sqlite:%s" % other], env=env)
        self.assertEqual(r.rc, 0, r)  # opening created an empty trail
        srv = harness.Server(harness.Stores(), env=env)
        srv.stores.audit_store = "sqlite:%s" % other
        srv.stores.seed = None
        r = run_cli(["db", "seed"] + srv.stores.flags(), env=env, timeout=300)
        self.assertEqual(r.rc, 0, r)
        srv.start()
        try:
            self.assertEqual(srv.price("PROD-101", new_user()).status, 200)
        finally:
            srv.stop_ok()
            srv.stores.cleanup()
        con = sqlite3.connect(str(other))
        note = con.execute("SELECT note FROM audit_checkpoint ORDER BY id LIMIT 1").fetchone()[0]
        con.close()
        db = self.tamper("UPDATE audit_checkpoint SET note = ? WHERE id = 2", (note,))
        self.assert_broken(db, "audit_checkpoint id 2", "not signed by the given key")

    def test_forged_checkpoint_text(self):
        con = sqlite3.connect(str(self.pristine))
        note = con.execute("SELECT note FROM audit_checkpoint WHERE id = 3").fetchone()[0]
        con.close()
        lines = note.split("\n")
        lines[1] = str(int(lines[1]) + 1)
        db = self.tamper("UPDATE audit_checkpoint SET note = ? WHERE id = 3", ("\n".join(lines),))
        self.assert_broken(db, "audit_checkpoint id 3", "not signed by the given key")

    def test_wrong_public_key(self):
        r = self.verify(self.pristine, pub=str(self.stores.dir / "other.pub"))
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not signed by the given key", r.stdout)

    def test_usage(self):
        r = run_cli(["audit", "verify", "--audit-store", "sqlite:%s" % self.pristine])
        self.assertEqual(r.rc, 2, r)
        self.assertIn("--public-key", r.stderr)
        r = run_cli(["audit", "keygen"])
        self.assertEqual(r.rc, 2, r)
        r = run_cli(["audit", "keygen", "--out", str(self.stores.dir / "sign")])
        self.assertEqual(r.rc, 1, r)
        self.assertIn("sign.key", r.stderr)
        self.assertEqual(os.stat(self.key).st_mode & 0o777, 0o600)

    def test_unchained_records_from_before_the_chain(self):
        """A trail written by the schema before the chain (version 3) upgrades;
        its old records are reported as unchained, not as broken."""
        db = self.stores.dir / "old.db"
        con = sqlite3.connect(str(db))
        con.executescript(
            "CREATE TABLE audit (seq INTEGER PRIMARY KEY, pk TEXT NOT NULL, sk TEXT NOT NULL,"
            " gsi1pk TEXT NOT NULL, gsi1sk TEXT NOT NULL, action TEXT NOT NULL, status TEXT NOT NULL,"
            " user_id TEXT NOT NULL, product_id TEXT NOT NULL, request_id TEXT NOT NULL,"
            " correlation_id TEXT NOT NULL, ts TEXT NOT NULL, expires_at INTEGER NOT NULL,"
            " principal TEXT NOT NULL DEFAULT '', api_request_id TEXT NOT NULL DEFAULT '',"
            " before_json TEXT, after_json TEXT, UNIQUE (pk, sk));"
            "PRAGMA user_version = 3;")
        for i in range(3):
            u, rid, ts = new_user(), new_user(), "2026-01-23T12:00:0%d.000Z" % i
            sk = "AUDIT#%s#%s" % (ts, rid)
            con.execute("INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id, product_id,"
                        " request_id, correlation_id, ts, expires_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                        ("USER#" + u, sk, "PRODUCT#PROD-101", sk, "PRICE_FETCH", "SUCCESS", u,
                         "PROD-101", rid, rid, ts, 4000000000))
        con.commit()
        con.close()
        stores = harness.Stores()
        stores.audit_store = "sqlite:%s" % db
        try:
            r = run_cli(["db", "migrate"] + stores.flags(), env=self.env, timeout=300)
            self.assertEqual(r.rc, 0, r)
            r = run_cli(["db", "seed"] + stores.flags(), env=self.env, timeout=300)
            self.assertEqual(r.rc, 0, r)
            srv = harness.Server(stores, env=self.env).start()
            try:
                for _ in range(4):
                    self.assertEqual(srv.price("PROD-102", new_user()).status, 200)
            finally:
                srv.stop_ok()
            r = self.verify(db)
            self.assertEqual(r.rc, 0, r)
            self.assertIn("7 records checked (4 chained by 1 writers, 3 unchained", r.stdout)
            # An old-style record added after the chain began is not unchained: it is inserted.
            db2 = self.stores.dir / "old2.db"
            shutil.copy(db, db2)
            con = sqlite3.connect(str(db2))
            con.execute("INSERT INTO audit (pk, sk, gsi1pk, gsi1sk, action, status, user_id,"
                        " product_id, request_id, correlation_id, ts, expires_at) SELECT pk,"
                        " sk || 'x', gsi1pk, gsi1sk || 'x', action, status, user_id, product_id,"
                        " request_id || 'x', correlation_id, ts, expires_at FROM audit"
                        " WHERE seq = 1")
            con.commit()
            con.close()
            r = self.verify(db2)
            self.assertEqual(r.rc, 1, r)
            self.assertIn("without chain fields inside the chained trail", r.stdout)
        finally:
            stores.cleanup()

    # ------------------------------------------------------------ export

    def export_dir(self):
        """Two exports of the pristine trail into one directory."""
        d = self.stores.dir / ("exp-%s" % new_user())
        spec = "sqlite:%s" % self.pristine
        for extra in ([], ["--from", "2000-01-01T00:00:00Z"]):
            r = run_cli(["audit", "export", "--audit-store", spec, "--out", str(d)] + extra,
                        env=self.env)
            self.assertEqual(r.rc, 0, r)
        return d

    def verify_export(self, d):
        return run_cli(["audit", "verify", "--export", str(d), "--public-key", self.pub])

    def test_export_verifies_offline(self):
        d = self.export_dir()
        names = sorted(os.listdir(d))
        self.assertEqual(names, ["digest-000001.txt", "digest-000002.txt",
                                 "records-000001-0001.jsonl.gz", "records-000002-0001.jsonl.gz"])
        with gzip.open(d / "records-000001-0001.jsonl.gz", "rt") as f:
            lines = [json.loads(l) for l in f]
        self.assertEqual(len(lines), 125)
        self.assertEqual(set(lines[0]) >= {"pk", "sk", "action", "status", "userId", "productId",
                                           "requestId", "ts", "expiresAt"}, True, lines[0])
        # Nothing but the files and the public key: the store is gone.
        r = self.verify_export(d)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("2 digest(s) chained, 2 file(s), 250 records", r.stdout)
        r = run_cli(["audit", "verify", "--export", str(d), "--public-key",
                     str(self.stores.dir / "other.pub")])
        self.assertEqual(r.rc, 1, r)
        self.assertIn("digest-000001.txt: not signed by the given key", r.stdout)

    def test_export_zstd_and_plain(self):
        """--compression zstd and none in one directory with a gzip export: verify reads
        all three kinds and counts every record; an edited .zst file is named."""
        d = self.stores.dir / ("exp-%s" % new_user())
        spec = "sqlite:%s" % self.pristine
        for comp in ("zstd", "none", "gzip"):
            r = run_cli(["audit", "export", "--audit-store", spec, "--out", str(d),
                         "--compression", comp], env=self.env)
            self.assertEqual(r.rc, 0, r)
        self.assertEqual(sorted(os.listdir(d)), [
            "digest-000001.txt", "digest-000002.txt", "digest-000003.txt",
            "records-000001-0001.jsonl.zst", "records-000002-0001.jsonl",
            "records-000003-0001.jsonl.gz"])
        with open(d / "records-000002-0001.jsonl") as f:
            plain = f.read()
        self.assertEqual(len(plain.splitlines()), 125)
        # zstd's magic number: a real zstd frame, not a renamed file
        self.assertEqual((d / "records-000001-0001.jsonl.zst").read_bytes()[:4],
                         b"\x28\xb5\x2f\xfd")
        r = self.verify_export(d)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("3 digest(s) chained, 3 file(s), 375 records", r.stdout)
        z = d / "records-000001-0001.jsonl.zst"
        data = bytearray(z.read_bytes())
        data[len(data) // 2] ^= 1
        z.write_bytes(bytes(data))
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at %s: changed" % z, r.stdout)
        r = run_cli(["audit", "export", "--audit-store", spec, "--out", str(d),
                     "--compression", "lz4"], env=self.env)
        self.assertEqual(r.rc, 2, r)

    def test_export_edited_line(self):
        d = self.export_dir()
        p = d / "records-000002-0001.jsonl.gz"
        with gzip.open(p, "rt") as f:
            lines = f.readlines()
        lines[3] = lines[3].replace('"SUCCESS"', '"ERROR"')
        with gzip.open(p, "wt") as f:
            f.writelines(lines)
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("BROKEN at %s: changed" % p, r.stdout)

    def test_export_dropped_file(self):
        d = self.export_dir()
        os.unlink(d / "records-000001-0001.jsonl.gz")
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("records-000001-0001.jsonl.gz: listed by digest 1 but missing", r.stdout)

    def test_export_added_file(self):
        d = self.export_dir()
        shutil.copy(d / "records-000001-0001.jsonl.gz", d / "records-000009-0001.jsonl.gz")
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("records-000009-0001.jsonl.gz: not listed by any digest", r.stdout)

    def test_export_dropped_digest(self):
        d = self.export_dir()
        os.unlink(d / "digest-000001.txt")
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("digest-000001.txt: missing", r.stdout)

    def test_export_digest_replaced(self):
        """digest 1 replaced by a (validly signed) digest of another export: 2 no longer follows."""
        d = self.export_dir()
        other = self.export_dir()
        shutil.copy(other / "digest-000002.txt", d / "digest-000001.txt")
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("digest-000001.txt: does not follow digest 0", r.stdout)
        d = self.export_dir()
        text = (d / "digest-000002.txt").read_text()
        (d / "digest-000002.txt").write_text(text.replace("seq 2", "seq 3"))
        r = self.verify_export(d)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("digest-000002.txt: not signed by the given key", r.stdout)

    # ------------------------------------------------------------ purge

    def test_purge_keeps_an_intact_trail_verifiable(self):
        db = self.copy()
        spec = "sqlite:%s" % db
        r = run_cli(["audit", "purge", "--audit-store", spec], env=self.env)
        self.assertEqual(r.rc, 0, r)
        self.assertIn("audit purge: 0 expired records removed", r.stdout)
        self.assertIn(VERIFY_OK, r.stdout)

    def test_purge_refuses_a_broken_trail(self):
        w, mine = self.a_writer()
        db = self.tamper("UPDATE audit SET status = 'ERROR' WHERE seq = ?", (mine[2]["seq"],))
        before = len(self.rows(db))
        r = run_cli(["audit", "purge", "--audit-store", "sqlite:%s" % db], env=self.env)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("does not verify; nothing removed", r.stderr)
        self.assertEqual(len(self.rows(db)), before)

    def test_key_rotation(self):
        """A trail signed by one key, then another: verify takes both public keys."""
        db = self.copy()
        stores = harness.Stores()
        stores.audit_store = "sqlite:%s" % db
        try:
            r = run_cli(["db", "seed"] + stores.flags(), env=self.env, timeout=300)
            self.assertEqual(r.rc, 0, r)
            env = {"AUDIT_SIGNING_KEY_FILE": str(self.stores.dir / "other.key")}
            srv = harness.Server(stores, env=env).start()
            try:
                for _ in range(3):
                    self.assertEqual(srv.price("PROD-103", new_user()).status, 200)
            finally:
                srv.stop_ok()
        finally:
            stores.cleanup()
        r = self.verify(db)
        self.assertEqual(r.rc, 1, r)
        self.assertIn("not signed by the given key", r.stdout)
        r = self.verify(db, pub="%s,%s" % (self.pub, self.stores.dir / "other.pub"))
        self.assertEqual(r.rc, 0, r)
        self.assertIn("128 records checked (128 chained by 5 writers", r.stdout)


if __name__ == "__main__":
    unittest.main()
