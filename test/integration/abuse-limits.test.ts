import { randomUUID } from 'node:crypto';
import { cleanUpAfterSuite, Deployment, type Gateway } from '../helpers/processes';
import { eventually } from '../helpers/app';

/**
 * SPEC §3.1 and §7, abuse limits, with two gateway processes of one instance (no worker, so a
 * purchase stays PENDING and a stream or long-poll of it stays open):
 * - the per-client-IP limit is kept in Redis: requests of one address spread over both gateways
 *   are refused with 7001/429 past RATE_LIMIT_IP_MAX in all, and other addresses go on; with
 *   TRUST_PROXY=1 only the proxy's entry of X-Forwarded-For counts, not what the client wrote before it;
 * - verify hashes issued to one user are capped over both gateways;
 * - open streams and long-polls are capped per IP and per gateway (7001), and a slot comes back when
 *   its client leaves.
 */
const IP_MAX = 100;
const dep = Deployment.create(
  {
    RATE_LIMIT_IP_MAX: String(IP_MAX),
    RATE_LIMIT_IP_WINDOW_MS: '600000',
    TRUST_PROXY: '1',
    VERIFY_HASH_USER_MAX: '3',
    VERIFY_HASH_WINDOW_MS: '600000',
    WAIT_SLOTS_PER_IP: '2',
    WAIT_SLOTS_PER_GATEWAY: '3',
  },
  'lim',
);
cleanUpAfterSuite(() => dep.destroy());

const from = (ip: string) => ({ 'x-forwarded-for': ip });
let g1: Gateway;
let g2: Gateway;

beforeAll(async () => {
  [g1, g2] = await Promise.all([dep.startGateway(), dep.startGateway()]);
}, 120_000);

describe('abuse limits across two gateway processes', () => {
  it('holds the per-IP limit over both gateways, per client address', async () => {
    const ip = '198.51.100.7';
    const answers = await Promise.all(
      Array.from({ length: IP_MAX + 10 }, (_, i) =>
        (i % 2 ? g2 : g1).get('/api/tickets/list', from(i % 4 < 2 ? ip : `203.0.113.9, ${ip}`)),
      ),
    );
    const statuses = answers.map((a) => `${a.status}/${a.body.code}`).sort();
    expect(statuses.filter((s) => s === '200/200')).toHaveLength(IP_MAX);
    expect(statuses.filter((s) => s === '429/7001')).toHaveLength(10);
    // Another client address is not affected, on either gateway; pages count too.
    expect((await g2.get('/api/tickets/list', from('198.51.100.8'))).status).toBe(200);
    expect((await fetch(`${g1.url}/`, { headers: from(ip) })).status).toBe(429);
    expect((await fetch(`${g1.url}/`, { headers: from('198.51.100.8') })).status).toBe(200);
    // The routes a crowd hits, taken before moleculer-web (lib/http/hot-routes.ts), pass the same door.
    const date = dep.dates[0];
    const hot = [
      await g1.post('/api/tickets/v2/purchase', { userId: 8, date, verifyHash: dep.hash(8, date) }, from(ip)),
      await g2.get(`/api/tickets/v2/purchase/result?messageId=${randomUUID()}`, from(ip)),
    ];
    expect(hot.map((a) => `${a.status}/${a.body.code}`)).toEqual(['429/7001', '429/7001']);
  });

  it('caps the verify hashes issued to one user over both gateways', async () => {
    const date = dep.dates[0];
    const answers = await Promise.all(
      [g1, g2, g1, g2].map((g, i) =>
        g.get(`/api/tickets/verify-hash?userId=5&date=${date}`, from(`192.0.2.${10 + i}`)),
      ),
    );
    expect(answers.map((a) => a.body.code).sort()).toEqual([200, 200, 200, 7001]);
    expect(
      (await g2.get(`/api/tickets/verify-hash?userId=6&date=${date}`, from('192.0.2.20'))).body.code,
    ).toBe(200);
  });

  it('caps open streams and long-polls per IP and per gateway, and frees a slot when its client leaves', async () => {
    const date = dep.dates[0];
    const submitted = await g1.post<{ messageId: string }>(
      '/api/tickets/v2/purchase',
      { userId: 9, date, verifyHash: dep.hash(9, date) },
      from('192.0.2.30'),
    );
    expect(submitted.body.code).toBe(200);
    const { messageId } = submitted.body.data;
    const streamUrl = (g: Gateway) => `${g.url}/api/tickets/v2/purchase/stream?messageId=${messageId}`;
    const pollPath = (waitMs: number) =>
      `/api/tickets/v2/purchase/result?messageId=${messageId}&waitMs=${waitMs}`;
    const open: AbortController[] = [];
    /** Opens a stream; resolves with its status once the answer's head arrived (it stays open on 200). */
    const stream = async (g: Gateway, ip: string) => {
      const ctrl = new AbortController();
      const res = await fetch(streamUrl(g), { headers: from(ip), signal: ctrl.signal });
      if (res.status === 200) open.push(ctrl);
      else await res.text();
      return { status: res.status, ctrl };
    };
    try {
      const P = '192.0.2.41';
      expect((await stream(g1, P)).status).toBe(200);
      const second = await stream(g1, P);
      expect(second.status).toBe(200);
      // A third wait of the same address, stream or long-poll, is refused at once.
      expect((await stream(g1, P)).status).toBe(429);
      const refusedPoll = await g1.get(pollPath(20_000), from(P));
      expect([refusedPoll.status, refusedPoll.body.code]).toEqual([429, 7001]);
      // The other gateway counts its own.
      expect((await stream(g2, P)).status).toBe(200);

      // The client leaves: its slot comes back, and a long-poll may take it (it answers PENDING at its end).
      second.ctrl.abort();
      const poll = await eventually(async () => {
        const answer = await g1.get<{ status: string }>(pollPath(200), from(P));
        return answer.body.code === 200 ? answer : undefined;
      });
      expect(poll.body.data.status).toBe('PENDING');

      // A long-poll holds its slot while it waits, and gives it back when its client leaves.
      const waiting = new AbortController();
      const held = fetch(`${g1.url}${pollPath(30_000)}`, { headers: from(P), signal: waiting.signal }).catch(
        () => undefined,
      );
      await eventually(async () => {
        const probe = await stream(g1, P);
        if (probe.status === 429) return true;
        probe.ctrl.abort(); // taken before the long-poll arrived: give it back and look again
        return undefined;
      });
      waiting.abort();
      await held;
      const again = await eventually(async () => {
        const probe = await stream(g1, P);
        return probe.status === 200 ? probe : undefined;
      });
      expect(again.status).toBe(200);

      // Per gateway: P holds 2 on g1, another address takes the third, a fourth address is refused.
      expect((await stream(g1, '192.0.2.42')).status).toBe(200);
      const full = await stream(g1, '192.0.2.43');
      expect(full.status).toBe(429);
      expect((await stream(g2, '192.0.2.43')).status).toBe(200);
    } finally {
      for (const ctrl of open) ctrl.abort();
    }
  });
});
