import { createSequelize } from '../../lib/db';
import { modelsOf } from '../../lib/db/models';
import { findDays } from '../../lib/tickets/days';
import { ORDER_COLUMNS, ordersOfUser, validOrdersOfDay } from '../../lib/tickets/orders';
import { startApp, type TestApp } from '../helpers/app';
import { rowsOf, submit, terminal } from '../helpers/purchase';

/**
 * The Sequelize models (users, orders, sale days) read the tables the migrations made, as the raw
 * queries do, and belong to their pool: two pools in one process never share a model.
 */
describe('Sequelize models', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startApp();
  }, 60_000);
  afterAll(() => app?.stop());

  it('lists a user’s orders and a day’s valid orders exactly as the raw SQL reads them', async () => {
    const date = app.dates[0];
    const bought = [];
    for (const userId of [501, 502, 503]) {
      const { body } = await submit(app, userId, date);
      bought.push(await terminal(app, (body.data as { messageId: string }).messageId));
    }
    expect(bought.map((r) => r.status)).toEqual(['SUCCESS', 'SUCCESS', 'SUCCESS']);

    const raw = await rowsOf(app, `SELECT ${ORDER_COLUMNS} FROM orders WHERE user_id = $1`, [502]);
    const listed = await ordersOfUser(app.rt.db, 502);
    expect(listed).toEqual(raw);
    expect(listed[0]).toMatchObject({ userId: 502, date, status: 'valid' });
    expect(typeof listed[0].userId).toBe('number');

    const ofDay = await validOrdersOfDay(app.rt.db, date);
    expect(ofDay.map((o) => o.userId).sort()).toEqual([501, 502, 503]);
  }, 60_000);

  it('finds the sale days in date order, with their stock as numbers', async () => {
    const days = await findDays(app.rt.db, [...app.dates].reverse());
    expect(days.map((d) => d.date)).toEqual([...app.dates]);
    for (const day of days) {
      expect(day.sold + day.remaining).toBe(day.total);
      expect(day.status).toBe('on_sale');
    }
  });

  it('defines the models once per pool, never shared between pools', async () => {
    const other = createSequelize({ url: app.config.databaseUrl, poolMax: 1, name: 'models-test' });
    try {
      expect(modelsOf(app.rt.db)).toBe(modelsOf(app.rt.db));
      expect(modelsOf(other).orders).not.toBe(modelsOf(app.rt.db).orders);
      expect(modelsOf(other).orders.sequelize).toBe(other);
      expect(await modelsOf(other).users.count({ where: { id: 502 } })).toBe(1);
    } finally {
      await other.close();
    }
  });
});
