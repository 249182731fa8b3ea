// Which store the gateways and CLI calls of the Node tests use: SQLite in their
// data directory (the default), or, with MCPGATE_TEST_STORE=postgres (scripts/test's
// second run), a PostgreSQL database of their own on MCPGATE_TEST_POSTGRES_URL
// (else 127.0.0.1:5432), one per data directory, so that a CLI call (`users add`,
// `clients add`) and the gateway on that --data-dir share it, as they share
// mcpgate.sqlite. It reaches mcpgate as DATABASE_URL. The same scheme as
// tests/python/store.py and the Rust suite's e2e harness (harness/store.rs).
//
// A database is created with psql on first use and dropped by dropStore(dataDir)
// when the gateway on it has stopped; a run that was killed leaves its databases
// (mcpgate_node_pg_<pid>_…) to scripts/test's sweep.

import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { resolve } from 'node:path';

const PREFIX = 'mcpgate_node_pg_';
const created = new Set();

/** Whether this run puts the store on PostgreSQL. */
export function onPostgres() {
  return process.env.MCPGATE_TEST_STORE === 'postgres';
}

function server() {
  return process.env.MCPGATE_TEST_POSTGRES_URL || 'postgres://postgres@127.0.0.1:5432/postgres';
}

function psql(sql) {
  try {
    execFileSync('psql', [server(), '-v', 'ON_ERROR_STOP=1', '-Atqc', sql], { encoding: 'utf8', stdio: 'pipe' });
  } catch (e) {
    const why = e.code === 'ENOENT' ? 'psql is not installed (Debian: postgresql-client)' : String(e.stderr || e.message);
    throw new Error(`psql ${JSON.stringify(sql)} on ${server()} failed: ${why} (set MCPGATE_TEST_POSTGRES_URL or run PostgreSQL on 127.0.0.1:5432; scripts/test does)`);
  }
}

function nameFor(dataDir) {
  const digest = createHash('sha256').update(resolve(dataDir)).digest('hex').slice(0, 16);
  return `${PREFIX}${process.pid}_${digest}`;
}

function urlOf(name) {
  const [base, query] = server().split('?', 2);
  return `${base.slice(0, base.lastIndexOf('/'))}/${name}${query ? `?${query}` : ''}`;
}

/**
 * `env` for an mcpgate process on `dataDir`: a DATABASE_URL of the caller's own
 * never leaks into it; on PostgreSQL runs it gets the directory's database,
 * created on first use.
 */
export function storeEnv(env, dataDir) {
  const out = Object.fromEntries(Object.entries(env).filter(([k]) => k !== 'DATABASE_URL'));
  if (!onPostgres()) return out;
  const name = nameFor(dataDir);
  if (!created.has(name)) {
    psql(`CREATE DATABASE ${name}`);
    created.add(name);
  }
  return { ...out, DATABASE_URL: urlOf(name) };
}

/** Drops the database of `dataDir`, if this process created one (best effort). */
export function dropStore(dataDir) {
  const name = nameFor(dataDir);
  if (!created.delete(name)) return;
  try {
    psql(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
  } catch {
    // scripts/test's sweep drops what is left.
  }
}
