import { startApp, type TestApp } from '../helpers/app';

describe('service smoke', () => {
  let app: TestApp;
  beforeAll(async () => {
    app = await startApp();
  });
  afterAll(async () => {
    await app.stop();
  });

  it('serves the sale days and buys a ticket through V2', async () => {
    const list = await app.get<{ date: string; total: number }[]>('/api/tickets/list');
    expect(list.status).toBe(200);
    expect(list.body.data.map((d) => d.total)).toEqual([100, 150, 200]);
    const date = app.dates[0];
    const submit = await app.post<{ messageId: string }>('/api/tickets/v2/purchase', {
      userId: 42,
      date,
      verifyHash: app.hash(42, date),
    });
    expect(submit.body.code).toBe(200);
    const result = await app.get<{ status: string; ticketCode: string }>(
      `/api/tickets/v2/purchase/result?messageId=${submit.body.data.messageId}&waitMs=5000`,
    );
    expect(result.body.data.status).toBe('SUCCESS');
    const [[row]] = (await app.rt.db.query('SELECT ticket_code FROM orders WHERE user_id = 42')) as [
      { ticket_code: string }[],
      unknown,
    ];
    expect(row.ticket_code).toBe(result.body.data.ticketCode);
  });
});
