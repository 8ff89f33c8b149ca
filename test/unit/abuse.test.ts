import type { IncomingMessage } from 'node:http';
import { clientIp, WaitSlots } from '../../lib/http/abuse';

/** Unit checks of the abuse helpers: which address is the client's, and the wait-slot bookkeeping. */
const request = (peer: string, forwarded?: string) =>
  ({
    socket: { remoteAddress: peer },
    connection: { remoteAddress: peer },
    headers: forwarded === undefined ? {} : { 'x-forwarded-for': forwarded },
  }) as unknown as IncomingMessage;

describe('clientIp', () => {
  it('is the peer without trusted proxies, whatever X-Forwarded-For says', () => {
    expect(clientIp(request('10.0.0.5', '1.2.3.4'), 0)).toBe('10.0.0.5');
  });

  it('reads as many hops from the right as there are trusted proxies, never what the client wrote', () => {
    const req = request('10.0.0.5', '6.6.6.6, 198.51.100.7, 10.0.0.9');
    expect(clientIp(req, 1)).toBe('10.0.0.9');
    expect(clientIp(req, 2)).toBe('198.51.100.7');
    expect(clientIp(request('10.0.0.5'), 1)).toBe('10.0.0.5');
  });

  it('falls back to the peer when the forwarded entry is no address', () => {
    for (const junk of ['bind', 'a'.repeat(500), '1.2.3.4.5', '::zz', ''])
      expect(clientIp(request('10.0.0.5', junk), 1)).toBe('10.0.0.5');
  });
});

describe('WaitSlots', () => {
  it('caps per address and in all, and a release (once) frees the slot', () => {
    const slots = new WaitSlots(2, 3);
    const a1 = slots.take('a');
    const a2 = slots.take('a');
    expect(a1 && a2).toBeTruthy();
    expect(slots.take('a')).toBeUndefined();
    const b1 = slots.take('b');
    expect(b1).toBeDefined();
    expect(slots.take('c')).toBeUndefined(); // the gateway is full
    a1!();
    a1!(); // a second release of the same slot frees nothing more
    expect(slots.size).toBe(2);
    expect(slots.take('c')).toBeDefined();
    expect(slots.take('a')).toBeUndefined();
  });

  it('has no cap at 0', () => {
    const slots = new WaitSlots(0, 0);
    for (let i = 0; i < 100; i++) expect(slots.take('a')).toBeDefined();
    expect(slots.size).toBe(100);
  });
});
