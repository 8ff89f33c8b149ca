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
  {
    name: '002-place-orders',
    // The order writer's whole batch in one statement (one round trip, one implicit transaction):
    // lock the day, sort each request into its outcome, insert the granted orders, move the stock.
    // Outcomes: 'inserted' (a new order), 'exists' (the order was made by an earlier delivery, or this
    // is a later copy of a message in the same batch: a redelivery racing its original),
    // 'no_such_day', 'unknown_user', 'already_purchased', 'sold_out'.
    up: sql(`
      CREATE FUNCTION place_orders(d DATE, message_ids VARCHAR[], user_ids BIGINT[], lock_ms INTEGER)
      RETURNS TABLE (n INTEGER, outcome VARCHAR, order_no VARCHAR, ticket_code VARCHAR)
      -- One plan for every call: planning this statement anew for each batch costs more than running it.
      LANGUAGE plpgsql SET plan_cache_mode = force_generic_plan AS $$
      #variable_conflict use_column
      DECLARE
        left_over INTEGER;
        day_status VARCHAR;
      BEGIN
        PERFORM set_config('lock_timeout', lock_ms::text, true);
        SELECT t.remaining, t.status INTO left_over, day_status FROM ticket_days t WHERE t.date = d FOR UPDATE;
        IF NOT FOUND OR day_status <> 'on_sale' THEN
          RETURN QUERY SELECT x.n::int, 'no_such_day'::varchar, NULL::varchar, NULL::varchar
            FROM unnest(message_ids) WITH ORDINALITY AS x(m, n);
          RETURN;
        END IF;
        RETURN QUERY
        WITH req AS (
          SELECT x.m, x.u, x.n::int AS n FROM unnest(message_ids, user_ids) WITH ORDINALITY AS x(m, u, n)
        ), firsts AS (
          SELECT DISTINCT ON (r.m) r.m, r.u, r.n FROM req r ORDER BY r.m, r.n
        ), looked AS (
          -- Lookups one row at a time by index (LATERAL ... LIMIT 1), never a scan of the day's orders.
          SELECT f.m, f.u, f.n, o.order_no AS done_no, o.ticket_code AS done_code,
            k.id IS NOT NULL AS known, h.user_id IS NOT NULL AS holds
          FROM firsts f
          LEFT JOIN LATERAL (SELECT x.order_no, x.ticket_code FROM orders x WHERE x.message_id = f.m LIMIT 1) o ON true
          LEFT JOIN LATERAL (SELECT x.id FROM users x WHERE x.id = f.u LIMIT 1) k ON true
          LEFT JOIN LATERAL (
            SELECT x.user_id FROM orders x WHERE x.user_id = f.u AND x.date = d AND x.status = 'valid' LIMIT 1
          ) h ON true
        ), one_per_user AS (
          SELECT DISTINCT ON (l.u) l.m, l.n FROM looked l
          WHERE l.done_no IS NULL AND l.known AND NOT l.holds ORDER BY l.u, l.n
        ), granted AS (
          SELECT c.m, c.n FROM one_per_user c ORDER BY c.n LIMIT greatest(left_over, 0)
        ), ins AS (
          INSERT INTO orders (message_id, user_id, date, ticket_code)
          SELECT l.m, l.u, d, make_ticket_code(d) FROM granted g JOIN looked l ON l.m = g.m ORDER BY g.n
          ON CONFLICT DO NOTHING
          RETURNING orders.message_id, orders.order_no, orders.ticket_code
        ), moved AS (
          UPDATE ticket_days t SET remaining = t.remaining - c.placed, sold = t.sold + c.placed,
            version = t.version + 1, updated_at = now()
          FROM (SELECT count(*)::int AS placed FROM ins) c
          WHERE t.date = d AND c.placed > 0
        )
        SELECT r.n,
          (CASE
            WHEN l.done_no IS NOT NULL THEN 'exists'
            WHEN NOT l.known THEN 'unknown_user'
            WHEN i.message_id IS NOT NULL AND r.n = l.n THEN 'inserted'
            WHEN i.message_id IS NOT NULL THEN 'exists'
            WHEN g.m IS NOT NULL OR l.holds OR c.m IS NULL THEN 'already_purchased'
            ELSE 'sold_out'
          END)::varchar,
          coalesce(l.done_no, i.order_no), coalesce(l.done_code, i.ticket_code)
        FROM req r
        JOIN looked l ON l.m = r.m
        LEFT JOIN one_per_user c ON c.m = r.m
        LEFT JOIN granted g ON g.m = r.m
        LEFT JOIN ins i ON i.message_id = r.m
        ORDER BY r.n;
      END
      $$;
    `),
    down: sql('DROP FUNCTION place_orders(DATE, VARCHAR[], BIGINT[], INTEGER);'),
  },
  {
    name: '003-sale-state',
    // Sale-wide switches that must outlive the cache: a pause survives the loss of Redis (the
    // rebuild restores it from here). One row.
    up: sql(`
      CREATE TABLE sale_state (
        id          BOOLEAN PRIMARY KEY DEFAULT true CHECK (id),
        paused_at   TIMESTAMPTZ,
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
      );
      INSERT INTO sale_state (id) VALUES (true);
    `),
    down: sql('DROP TABLE sale_state;'),
  },
  {
    name: '004-orders-day-index-with-user',
    // place_orders keeps one generic plan per connection, made at its first call, often on an empty
    // table or with stale statistics. For "this user's valid order of the day" the planner could then
    // pick (date, status) and read every valid order of the day per lookup: seen as a drain of
    // 160 orders/s with 100k orders. With user_id in it, any index it picks finds one row.
    up: sql(`
      CREATE INDEX orders_date_status_user ON orders (date, status, user_id);
      DROP INDEX orders_date_status;
    `),
    down: sql(`
      CREATE INDEX orders_date_status ON orders (date, status);
      DROP INDEX orders_date_status_user;
    `),
  },
  {
    name: '005-place-orders-never-scans',
    // Statistics taken while the orders table was small (autovacuum analyzes it after the sale's first
    // fifty orders; a reset leaves it empty) make a sequential scan the cheapest lookup, and the generic
    // plan a connection caches at its first call keeps it as the table grows: each batch then reads
    // every order, and the drain falls with every order placed (measured: 15 ms a batch of 100 when
    // empty, 63 ms at 6,000 orders). Without sequential scans every lookup goes through its index.
    up: sql('ALTER FUNCTION place_orders(DATE, VARCHAR[], BIGINT[], INTEGER) SET enable_seqscan = off;'),
    down: sql('ALTER FUNCTION place_orders(DATE, VARCHAR[], BIGINT[], INTEGER) RESET enable_seqscan;'),
  },
];
