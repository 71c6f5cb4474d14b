import type Database from "better-sqlite3";

/** A database this package must not touch: foreign, or written by a newer version. */
export class SchemaError extends Error {
  override name = "SchemaError";
}

type Migration = (db: Database.Database) => void;

/**
 * `MIGRATIONS[n]` takes a database from `user_version` n to n + 1. To change the schema,
 * append a step; never edit a step that has shipped, since databases in the field have
 * already run it.
 */
const MIGRATIONS: Migration[] = [
  // 0 → 1. Version 0 is a new, empty file, or the pre-release layout `entries(key, value)`,
  // which had no expiry column and no primary key. Its rows are kept (never expiring, as
  // before); lock leases are short-lived and are not.
  (db) => {
    const tables = db
      .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
      .pluck()
      .all() as string[];
    const foreign = tables.filter((name) => name !== "entries" && name !== "locks");
    if (foreign.length > 0) {
      throw new SchemaError(
        `not a credcache database (it has the table(s) ${foreign.join(", ")}); point "path" at a file of its own`,
      );
    }
    db.exec(`
      CREATE TABLE entries_v1 (key TEXT PRIMARY KEY, value TEXT NOT NULL, expires_at INTEGER);
      DROP TABLE IF EXISTS locks;
      CREATE TABLE locks (key TEXT PRIMARY KEY, token TEXT NOT NULL, expires_at INTEGER NOT NULL);
    `);
    if (tables.includes("entries")) {
      const columns = db.prepare("SELECT name FROM pragma_table_info('entries')").pluck().all() as string[];
      if (!columns.includes("key") || !columns.includes("value")) {
        throw new SchemaError(`not a credcache database (entries has the columns ${columns.join(", ")})`);
      }
      db.exec(`
        INSERT OR REPLACE INTO entries_v1 (key, value)
          SELECT key, value FROM entries WHERE key IS NOT NULL AND value IS NOT NULL;
        DROP TABLE entries;
      `);
    }
    db.exec(`
      ALTER TABLE entries_v1 RENAME TO entries;
      CREATE INDEX entries_expires_at ON entries (expires_at) WHERE expires_at IS NOT NULL;
    `);
  },
];

/** The schema this package writes, kept in `PRAGMA user_version`. */
export const SCHEMA_VERSION = MIGRATIONS.length;

/**
 * Brings the database to {@link SCHEMA_VERSION}. Safe when several processes open the
 * same new file at once: the version is read again under the write lock.
 */
export function migrate(db: Database.Database): void {
  const version = () => db.pragma("user_version", { simple: true }) as number;
  if (version() === SCHEMA_VERSION) return;
  db.transaction(() => {
    const from = version();
    if (from > SCHEMA_VERSION) {
      throw new SchemaError(
        `the database has schema version ${from}, written by a newer @credcache/sqlite ` +
          `(this one knows up to ${SCHEMA_VERSION}); upgrade this process or use another path`,
      );
    }
    for (let step = from; step < SCHEMA_VERSION; step++) MIGRATIONS[step]!(db);
    db.pragma(`user_version = ${SCHEMA_VERSION}`);
  }).immediate();
}
