import { readFileSync } from 'node:fs';
import net from 'node:net';
import { cleanUpAfterSuite, Deployment, type Gateway, type SubmitData } from '../helpers/processes';

/**
 * SPEC §5.6 / §7: no client behaviour crashes a process. Thousands of event streams and long polls
 * are opened and dropped before their first byte (the answer is still being read when the client is
 * gone), on the single-process layout `npm start` runs, where a crash would take the workers too.
 */

jest.setTimeout(180_000);

cleanUpAfterSuite();

const DROPS = 3000;
const AT_ONCE = 16;

/** Sends a request and closes the socket at once (or after `afterMs`), without reading anything. */
function dropAfterSending(port: number, path: string, afterMs = 0): Promise<void> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1', () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
      if (afterMs === 0) socket.destroy();
      else setTimeout(() => socket.destroy(), afterMs);
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve());
  });
}

const rssMb = (pid: number): number =>
  Number(/VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? NaN) / 1024;

describe('clients that leave before the first byte', () => {
  let dep: Deployment;
  let gateway: Gateway;

  beforeAll(async () => {
    dep = Deployment.create({ SEED_USERS: '100', LOG_LEVEL: 'info' });
    gateway = await dep.startGateway({ name: 'service', env: { SERVICES: 'all' } });
    await dep.setStock(dep.dates[0], 10);
  });

  afterAll(async () => {
    await dep?.destroy();
  });

  it('never crash the process, and its memory stays bounded', async () => {
    const date = dep.dates[0];
    const done = await gateway.post<SubmitData>('/api/tickets/v2/purchase', {
      userId: 1,
      date,
      verifyHash: dep.hash(1, date),
    });
    expect(done.body.code).toBe(200);
    const known = done.body.data.messageId;
    const paths = [
      `/api/tickets/v2/purchase/stream?messageId=${known}`,
      '/api/tickets/v2/purchase/stream?messageId=no-such-message',
      `/api/tickets/v2/purchase/result?messageId=${known}&waitMs=5000`,
      '/api/tickets/v2/purchase/result?messageId=no-such-message&waitMs=5000',
      '/api/monitor/stream',
    ];
    const { pid } = gateway.process;
    let sent = 0;
    const lane = async () => {
      while (sent < DROPS) {
        const i = sent++;
        // Mostly at once; some a moment later, while the first read is under way.
        await dropAfterSending(gateway.port, paths[i % paths.length], i % 3 === 0 ? 2 : 0);
      }
    };
    await Promise.all(Array.from({ length: AT_ONCE }, lane));

    expect(gateway.process.running).toBe(true);
    expect(gateway.process.matching(/ERR_HTTP_HEADERS_SENT|uncaught|unhandled/i)).toEqual([]);
    const health = await gateway.get('/health');
    expect(health.status).toBe(200);
    // Still serving the purchase path, with its own workers.
    const next = await gateway.post<SubmitData>('/api/tickets/v2/purchase', {
      userId: 2,
      date,
      verifyHash: dep.hash(2, date),
    });
    expect(next.body.code).toBe(200);
    const result = await gateway.get<{ status: string }>(
      `/api/tickets/v2/purchase/result?messageId=${next.body.data.messageId}&waitMs=20000`,
    );
    expect(result.body.data.status).toBe('SUCCESS');
    const rss = rssMb(pid);
    expect(rss).toBeLessThan(300);
    console.log(
      `[fault] ${DROPS} streams and long polls dropped before their first byte: alive, RSS ${rss.toFixed(0)} MB`,
    );
  });
});
