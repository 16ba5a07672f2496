"""The example's database migration, run as the web workers'
before_start hook: it brings the schema to the current version. Each
worker's hook runs it, so it is idempotent, and BEGIN IMMEDIATE makes
concurrent runs take turns (the first does the work, the others find it
done)."""

import os
import sqlite3
import sys

SCHEMA_VERSION = 2
DATABASE = os.environ["WEBAPP_DB"]

os.makedirs(os.path.dirname(DATABASE), exist_ok=True)
db = sqlite3.connect(DATABASE, timeout=30, isolation_level=None)
db.execute("BEGIN IMMEDIATE")
db.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL)")
row = db.execute("SELECT version FROM schema_version").fetchone()
current = row[0] if row else 0
if current < 1:
    db.execute("CREATE TABLE visits (at TEXT NOT NULL, worker TEXT NOT NULL)")
if current < 2:
    db.execute("CREATE INDEX visits_at ON visits (at)")
if current < SCHEMA_VERSION:
    db.execute("DELETE FROM schema_version")
    db.execute("INSERT INTO schema_version VALUES (?)", (SCHEMA_VERSION,))
db.execute("COMMIT")
print("schema at version %d (was %d) for %s" % (SCHEMA_VERSION, current,
      os.environ.get("RINGMASTER_PROCESS", "?")))
sys.stdout.flush()
