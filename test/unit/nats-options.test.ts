import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { natsOptions } from '../../lib/nats-options';

/** NATS credentials from NATS_URL and NATS_CREDS (the servers are tested in nats-auth.test.ts). */
describe('natsOptions', () => {
  it('keeps plain servers as they are, without credentials', () => {
    expect(natsOptions({ natsUrl: 'nats://a:4222,nats://b:4223', natsCreds: null })).toEqual({
      servers: ['nats://a:4222', 'nats://b:4223'],
    });
  });

  it('takes user:password@ or token@ out of the URLs (percent-decoded), leaving bare servers', () => {
    expect(natsOptions({ natsUrl: 'nats://svc:p%40ss@a:4222,nats://b:4222', natsCreds: null })).toEqual({
      servers: ['nats://a:4222', 'nats://b:4222'],
      user: 'svc',
      pass: 'p@ss',
    });
    expect(natsOptions({ natsUrl: 'nats://s3cr3t@a:4222', natsCreds: null })).toEqual({
      servers: ['nats://a:4222'],
      token: 's3cr3t',
    });
    expect(natsOptions({ natsUrl: '127.0.0.1:4222', natsCreds: null }).servers).toEqual([
      'nats://127.0.0.1:4222',
    ]);
  });

  it('reads NATS_CREDS into an authenticator', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'creds-'));
    try {
      const file = path.join(dir, 'user.creds');
      writeFileSync(file, '-----BEGIN NATS USER JWT-----\neyJ0\n------END NATS USER JWT------\n');
      expect(typeof natsOptions({ natsUrl: 'nats://a:4222', natsCreds: file }).authenticator).toBe(
        'function',
      );
      expect(() => natsOptions({ natsUrl: 'nats://a:4222', natsCreds: path.join(dir, 'missing') })).toThrow(
        /ENOENT/,
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
