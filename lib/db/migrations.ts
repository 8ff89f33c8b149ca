import type { QueryInterface } from 'sequelize';
import type { RunnableMigration } from 'umzug';

type Migration = RunnableMigration<QueryInterface>;

const sql =
  (text: string) =>
  async ({ context }: { context: QueryInterface }) => {
    await context.sequelize.query(text);
  };

/**
 * Schema migrations, applied in order and recorded in `schema_migrations`.
 * Never edit a landed migration: add a new one.
 */
export const migrations: Migration[] = [
  {
    name: '001-initial-schema',
    up: sql(`
      CREATE TABLE ticket_days (
        id          SERIAL PRIMARY KEY,
        date        DATE NOT NULL UNIQUE,
        name        VARCHAR(100) NOT NULL,
        total       INTEGER NOT NULL,
        remaining   INTEGER NOT NULL,
        sold        INTEGER NOT NULL DEFAULT 0,
        version     INTEGER NOT NULL DEFAULT 0,
        status      VARCHAR(16) NOT NULL DEFAULT 'on_sale' CHECK (status IN ('on_sale', 'stopped')),
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        CONSTRAINT ticket_days_stock_balanced CHECK (remaining >= 0 AND sold >= 0 AND sold + remaining = total)
      );

      CREATE TABLE users (
        id          BIGINT PRIMARY KEY CHECK (id > 0 AND id <= 9007199254740991),
        name        VARCHAR(100) NOT NULL,
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
      );

      CREATE SEQUENCE order_no_seq;
      CREATE SEQUENCE ticket_code_seq;

      -- Readable and unique by construction: the sale date, a sequence number and a random tail
      -- that keeps codes from being guessed.
      CREATE FUNCTION make_ticket_code(d DATE) RETURNS VARCHAR AS $$
        SELECT 'T' || to_char(d, 'YYMMDD') || '-' || lpad(upper(to_hex(nextval('ticket_code_seq'))), 6, '0')
               || '-' || upper(substr(md5(random()::text), 1, 4))
      $$ LANGUAGE sql VOLATILE;

      CREATE FUNCTION make_order_no() RETURNS VARCHAR AS $$
        SELECT 'O' || to_char(clock_timestamp() AT TIME ZONE 'UTC', 'YYYYMMDD')
               || lpad(nextval('order_no_seq')::text, 10, '0')
      $$ LANGUAGE sql VOLATILE;

      CREATE TABLE orders (
        id            BIGSERIAL PRIMARY KEY,
        order_no      VARCHAR(32) NOT NULL UNIQUE DEFAULT make_order_no(),
        message_id    VARCHAR(64) UNIQUE,
        user_id       BIGINT NOT NULL REFERENCES users (id),
        date          DATE NOT NULL REFERENCES ticket_days (date),
        ticket_code   VARCHAR(32) NOT NULL UNIQUE,
        status        VARCHAR(16) NOT NULL DEFAULT 'valid' CHECK (status IN ('valid', 'cancelled')),
        created_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at    TIMESTAMPTZ NOT NULL DEFAULT now(),
        cancelled_at  TIMESTAMPTZ
      );
      CREATE UNIQUE INDEX orders_one_valid_per_user_day ON orders (user_id, date) WHERE status = 'valid';
      CREATE INDEX orders_date_status ON orders (date, status);
    `),
    down: sql(`
      DROP TABLE orders; DROP TABLE users; DROP TABLE ticket_days;
      DROP FUNCTION make_ticket_code(DATE); DROP FUNCTION make_order_no();
      DROP SEQUENCE order_no_seq; DROP SEQUENCE ticket_code_seq;
    `),
  },
];
