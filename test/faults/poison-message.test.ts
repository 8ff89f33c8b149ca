import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  startLoad,
  waitFor,
  waitTerminal,
  type Gateway,
  type SubmitData,
} from '../helpers/processes';
import type { ResultRecord } from '../../lib/purchase/results';

/**
 * SPEC §4 / §9: a poison message — one that fails for a reason retrying cannot cure — is
 * dead-lettered with FAILED 5000 and its reservation released, without holding up its neighbours;
 * the dead letter is visible to the operator, and a resend after the repair succeeds.
 * The poison: a trigger in this instance's database that raises on one user's order insert.
 */

const USERS = 200;
const STOCK = 250; // more than the crowd: the resend after the repair finds a ticket
const POISONED = 13;

jest.setTimeout(180_000);

cleanUpAfterSuite();

interface DlqView {
  total: number;
  letters: { messageId: string; userId: number; date: string; error: string; deliveries: number }[];
}

describe('poison message', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    dep = Deployment.create({ SEED_USERS: String(USERS + 10), MONITOR_INTERVAL_MS: '200', ALERT_HOLD: '2' });
    // The gateway also runs the monitor, whose alerts include the dead-letter one.
    gateway = await dep.startSale({
      stock: STOCK,
      gateway: { env: { SERVICES: 'api,tickets,purchase,monitor' } },
    });
    await dep.sql(`
      CREATE FUNCTION fault_poison() RETURNS trigger AS $$
      BEGIN
        IF NEW.user_id = ${POISONED} THEN RAISE EXCEPTION 'poisoned order for user %', NEW.user_id; END IF;
        RETURN NEW;
      END $$ LANGUAGE plpgsql`);
    await dep.sql(
      'CREATE TRIGGER fault_poison BEFORE INSERT ON orders FOR EACH ROW EXECUTE FUNCTION fault_poison()',
    );
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('dead-letters it (FAILED 5000, visible in the DLQ), sells on, and a resend after the repair succeeds', async () => {
    const date = dep.dates[0];
    const load = startLoad(dep, [gateway], { requests: buyers(date, USERS), concurrency: 6, pauseMs: 10 });
    const answers = await load.done;
    const ids = acceptedIds(answers);
    const poisoned = answers.find((a) => a.userId === POISONED && a.code === 200)!.messageId!;

    // The poisoned message ends FAILED 5000 (a system error), without many deliveries.
    const final = await waitTerminal(dep, gateway, ids);
    const failed = final.get(poisoned)!;
    expect(failed).toMatchObject({ status: 'FAILED', errorCode: 5000 });
    expect(failed.errorMessage).not.toMatch(/INSERT|SELECT|orders/); // no SQL in the message
    // Its neighbours in the same batches were written.
    const others = [...final.values()].filter((r) => r.messageId !== poisoned);
    expect(others.filter((r) => r.status === 'SUCCESS').length).toBe(Math.min(STOCK, others.length));

    // Visible to the operator: the dead-letter queue names it, with the error.
    let listed: unknown;
    const dlq = await waitFor(
      async () => {
        const r = await gateway.get<DlqView>('/api/admin/dlq', dep.admin);
        listed = r.body;
        return r.body.code === 200 && r.body.data.total > 0 ? r.body.data : undefined;
      },
      20_000,
      () => `no dead letter listed: ${JSON.stringify(listed)}\n${dep.output()}`,
    );
    expect(dlq.total).toBe(1);
    expect(dlq.letters[0]).toMatchObject({ messageId: poisoned, userId: POISONED, date });
    expect(dlq.letters[0].error).toMatch(/poisoned order/);
    expect((await gateway.get('/api/admin/dlq')).body.code).toBe(4001);
    // And alerted: the monitor raises its dead-letter alert.
    const alert = await waitFor(
      async () => {
        const r = await gateway.get<{ active: { rule: string; message: string; value: number | null }[] }>(
          '/api/admin/alerts',
          dep.admin,
        );
        return r.body.code === 200 ? r.body.data.active.find((a) => a.rule === 'dead-letters') : undefined;
      },
      20_000,
      () => `no dead-letter alert raised\n${dep.output()}`,
    );
    expect(alert.value).toBe(1);
    const audit = await dep.audit();
    expect(audit.checks.find((c) => c.id === 'dead-letters')).toMatchObject({
      status: 'warn',
      figures: { deadLetters: 1 },
    });

    // The reservation was released: nothing leaked while the letter waits.
    expect(audit.failed).toEqual([]);

    // Repair, then resend: the same message id goes through the queue again and succeeds.
    await dep.sql('DROP TRIGGER fault_poison ON orders');
    const resend = await gateway.post<SubmitData>(`/api/admin/dlq/${poisoned}/resend`, {}, dep.admin);
    expect(resend.body.code).toBe(200);
    const after = await gateway.get<ResultRecord>(
      `/api/tickets/v2/purchase/result?messageId=${poisoned}&waitMs=20000`,
    );
    expect(after.body.data).toMatchObject({ messageId: poisoned, userId: POISONED, status: 'SUCCESS' });
    expect(after.body.data.errorCode).toBeUndefined();
    const dlqAfter = await gateway.get<DlqView>('/api/admin/dlq', dep.admin);
    expect(dlqAfter.body.data.total).toBe(0);

    const f = await assertInvariants(dep, gateway, date, ids);
    console.log(
      describeRun(
        'poison message (DB trigger raising for one user)',
        { users: USERS, codes: countBy(answers.map((a) => a.code)) },
        `user ${POISONED}'s insert raises: dead-lettered after ${failed.attempts} tries as FAILED 5000, ` +
          `DLQ total ${dlq.total}, alert "${alert.message}"; trigger dropped, resend → ${after.body.data.status}`,
        f,
      ),
    );
  });
});
