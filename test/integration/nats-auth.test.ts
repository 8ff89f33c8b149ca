import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { ServiceBroker } from 'moleculer';
import { connect } from 'nats';
import { loadConfig } from '../../config';
import { brokerOptions } from '../../moleculer.config';
import { natsOptions } from '../../lib/nats-options';
import { PurchaseQueue } from '../../lib/purchase/queue';
import { eventually, isolatedEnv, startApp, uniqueNamespace } from '../helpers/app';
import { terminal, submit } from '../helpers/purchase';
import { freePort } from '../helpers/processes';

/**
 * SPEC §3.1: NATS credentials from NATS_URL (`user:password@`, `token@`) reach both the broker's
 * transporter and the JetStream client. Each case runs against a nats-server that the test starts
 * with authorization on a free loopback port (never the shared server).
 */
interface NatsServer {
  port: number;
  stop(): Promise<void>;
}

async function startNats(auth: string[]): Promise<NatsServer> {
  const port = await freePort();
  const store = mkdtempSync(path.join(tmpdir(), 'nats-auth-'));
  const child: ChildProcess = spawn(
    'nats-server',
    ['-a', '127.0.0.1', '-p', String(port), '-js', '-sd', store, ...auth],
    { stdio: 'ignore' },
  );
  const exited = new Promise((resolve) => child.once('exit', resolve));
  // Up when it answers the protocol; with authorization it then refuses the anonymous connection.
  await eventually(async () => {
    try {
      const nc = await connect({ servers: `127.0.0.1:${port}`, timeout: 1000, maxReconnectAttempts: 0 });
      await nc.close();
      return true;
    } catch (err) {
      return /Authorization/i.test(String(err)) ? true : undefined;
    }
  });
  return {
    port,
    async stop() {
      child.kill('SIGTERM');
      await exited;
      rmSync(store, { recursive: true, force: true });
    },
  };
}

const refusal = async (natsUrl: string) => {
  try {
    const nc = await connect({ ...natsOptions({ natsUrl, natsCreds: null }), maxReconnectAttempts: 0 });
    await nc.close();
    return 'connected';
  } catch (err) {
    return String(err);
  }
};

describe('NATS with authorization', () => {
  it('user:password@ in NATS_URL: the whole service sells through it; without or wrong, refused', async () => {
    const server = await startNats(['--user', 'miaosha', '--pass', 's3cret-pass']);
    const natsUrl = `nats://miaosha:s3cret-pass@127.0.0.1:${server.port}`;
    const app = await startApp({ NATS_URL: natsUrl });
    try {
      // The broker (transporter) and the queue (JetStream) both connected: a V2 purchase goes through.
      const answer = await submit(app, 7, app.dates[0]);
      expect(answer.body.code).toBe(200);
      expect((await terminal(app, answer.body.data.messageId)).status).toBe('SUCCESS');

      const bare = `nats://127.0.0.1:${server.port}`;
      expect(await refusal(bare)).toMatch(/Authorization/i);
      expect(await refusal(`nats://miaosha:wrong@127.0.0.1:${server.port}`)).toMatch(/Authorization/i);
      const config = loadConfig(isolatedEnv(uniqueNamespace(), { NATS_URL: bare }));
      await expect(PurchaseQueue.open(config, 'no-credentials')).rejects.toThrow(/Authorization/i);
    } finally {
      await app.stop();
      await server.stop();
    }
  });

  it('token@ in NATS_URL: the transporter and the JetStream client connect with it', async () => {
    const server = await startNats(['--auth', 'tok-0123456789abcdef']);
    const config = loadConfig(
      isolatedEnv(uniqueNamespace(), { NATS_URL: `nats://tok-0123456789abcdef@127.0.0.1:${server.port}` }),
    );
    const broker = new ServiceBroker({ ...brokerOptions(config), logger: false });
    try {
      await broker.start();
      expect(broker.transit?.connected).toBe(true);
      const queue = await PurchaseQueue.open(config, 'token');
      await queue.destroy();
      await queue.close();
      expect(await refusal(`nats://wrong-token@127.0.0.1:${server.port}`)).toMatch(/Authorization/i);
    } finally {
      await broker.stop();
      await server.stop();
    }
  });
});
