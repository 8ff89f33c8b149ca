import pg from 'pg';
import { Sequelize, type QueryInterface } from 'sequelize';
import { SequelizeStorage, Umzug } from 'umzug';
import { migrations } from './migrations';

// Every BIGINT the service stores (user ids, order ids, counts) fits a JS safe integer.
pg.types.setTypeParser(pg.types.builtins.INT8, (value: string) => Number(value));
// DATE columns stay 'YYYY-MM-DD' strings: a sale day is a calendar date, not an instant.
pg.types.setTypeParser(pg.types.builtins.DATE, (value: string) => value);

export interface DbOptions {
  url: string;
  poolMax: number;
  log?: (sql: string) => void;
  /** The connection's name in pg_stat_activity. */
  name?: string;
}

export function createSequelize({ url, poolMax, log, name = 'miaosha' }: DbOptions): Sequelize {
  return new Sequelize(url, {
    dialect: 'postgres',
    logging: log ?? false,
    pool: { max: poolMax, min: 0, idle: 10_000, acquire: 10_000 },
    dialectOptions: { application_name: name, statement_timeout: 15_000 },
  });
}

const databaseName = (url: string) => decodeURIComponent(new URL(url).pathname.replace(/^\//, ''));

/** Creates the database `url` names when it does not exist yet (several nodes may race here). */
export async function ensureDatabase(url: string): Promise<void> {
  const name = databaseName(url);
  if (!name) throw new Error('DATABASE_URL names no database');
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    const found = await client.query('SELECT 1 FROM pg_database WHERE datname = $1', [name]);
    if (found.rowCount === 0) {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`).catch((err: { code?: string }) => {
        if (err.code !== '42P04' && err.code !== '23505') throw err; // created meanwhile by another node
      });
    }
  } finally {
    await client.end();
  }
}

/** Drops a database (tests and benchmarks clean up after themselves). */
export async function dropDatabase(url: string): Promise<void> {
  const admin = new URL(url);
  admin.pathname = '/postgres';
  const client = new pg.Client({ connectionString: admin.toString() });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(databaseName(url))} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

const MIGRATION_LOCK = 727_001;

/** Applies pending migrations under an advisory lock so that nodes starting together migrate once. */
export async function migrate(sequelize: Sequelize, url: string): Promise<string[]> {
  const lock = new pg.Client({ connectionString: url });
  await lock.connect();
  try {
    await lock.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK]);
    const umzug = new Umzug<QueryInterface>({
      migrations,
      context: sequelize.getQueryInterface(),
      storage: new SequelizeStorage({ sequelize, tableName: 'schema_migrations' }),
      logger: undefined,
    });
    const applied = await umzug.up();
    return applied.map((m) => m.name);
  } finally {
    await lock.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK]).catch(() => undefined);
    await lock.end();
  }
}

/** Creates users 1..count in one statement; existing ones are left alone. */
export async function seedUsers(sequelize: Sequelize, count: number): Promise<number> {
  if (count <= 0) return 0;
  const [[present]] = (await sequelize.query('SELECT count(*) AS n FROM users WHERE id BETWEEN 1 AND $1', {
    bind: [count],
  })) as [{ n: number }[], unknown];
  if (present.n === count) return 0;
  const [, inserted] = await sequelize.query(
    `INSERT INTO users (id, name) SELECT g, 'user' || g FROM generate_series(1, $1::bigint) AS g
     ON CONFLICT (id) DO NOTHING`,
    { bind: [count] },
  );
  return typeof inserted === 'number' ? inserted : ((inserted as { rowCount?: number })?.rowCount ?? 0);
}
