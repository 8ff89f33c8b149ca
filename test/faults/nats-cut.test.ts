import {
  acceptedIds,
  assertInvariants,
  buyers,
  cleanUpAfterSuite,
  countBy,
  Deployment,
  describeRun,
  startLoad,
  waitAccepted,
  type Gateway,
  type SubmitData,
} from '../helpers/processes';
import { TcpProxy } from '../helpers/tcp-proxy';

/**
 * SPEC §7: the gateway's NATS connection dropped and restored (through a proxy the test owns; the
 * worker stays connected directly). While a publish cannot be acknowledged by JetStream, submits
 * answer 5030; nothing answered "accepted" (200 with a messageId) is lost.
 */

const USERS = 300;
const STOCK = 200;

jest.setTimeout(180_000);

let proxy: TcpProxy | undefined;

cleanUpAfterSuite(() => proxy?.close());

describe('NATS connection of the gateway cut and restored', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    proxy = await TcpProxy.start(4222);
    // A cut longer than the publish retry bound: the submits in it answer 5030.
    dep = Deployment.create({ SEED_USERS: String(USERS + 10), QUEUE_PUBLISH_RETRY_MS: '1000' });
    gateway = await dep.startSale({
      stock: STOCK,
      gateway: { env: { NATS_URL: `nats://127.0.0.1:${proxy.port}` } },
    });
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('answers 5030 while the queue cannot acknowledge, and loses nothing it accepted', async () => {
    const date = dep.dates[0];
    const load = startLoad(dep, [gateway], {
      requests: buyers(date, USERS),
      concurrency: 6,
      pauseMs: 20,
      retries: 100,
      retryPauseMs: 250,
    });
    await waitAccepted(load, 50);

    proxy!.cut();
    const cutAt = load.answers.length;
    // A submit while the connection is down cannot be confirmed by JetStream: 5030, not 200.
    const probeUser = USERS + 1;
    const during = await gateway.post<SubmitData>('/api/tickets/v2/purchase', {
      userId: probeUser,
      date,
      verifyHash: dep.hash(probeUser, date),
    });
    expect({ status: during.status, code: during.body.code }).toEqual({ status: 503, code: 5030 });
    const health = await gateway.get<{ dependencies: { nats: { up: boolean } } }>('/health');
    expect(health.status).toBe(503);
    const refusedWhileCut = load.answers.slice(cutAt).filter((a) => a.code === 5030).length;
    proxy!.restore();

    // The gateway reconnects by itself and accepts again.
    await dep.waitHealthy(gateway);
    const answers = await load.done;
    const ids = acceptedIds(answers);
    const codes = countBy(answers.map((a) => a.code));
    expect(codes[5030] ?? 0).toBeGreaterThan(0);
    expect(Object.keys(codes).filter((c) => !['200', '5030', '6002', '6005'].includes(c))).toEqual([]);

    const f = await assertInvariants(dep, gateway, date, ids);
    expect(f.sold).toBeLessThanOrEqual(STOCK);
    // Publishes that reached the stream although their submit was answered 5030 (a publish whose
    // acknowledgement was lost) are processed like any message: the invariants above hold for them.
    const published = (await dep.consumerInfo()).delivered.stream_seq;
    console.log(
      describeRun(
        'NATS connection of the gateway cut + restored',
        { users: USERS, codes },
        `gateway's NATS (transporter and JetStream) cut after ${cutAt} answers; ${refusedWhileCut} load ` +
          `submits answered 5030 while cut (retried by the clients); proxy refused ${proxy!.stats.refused} ` +
          `reconnects; messages on the stream ${published} for ${ids.length} accepted`,
        f,
      ),
    );
  });
});
