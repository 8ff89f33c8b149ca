import { readFileSync } from 'node:fs';
import { credsAuthenticator, type ConnectionOptions } from 'nats';

/**
 * Servers and credentials for every NATS connection of a process (the broker's transporter and the
 * JetStream client, SPEC §3.1): `NATS_URL` may carry `user:password@` or `token@` (on any of its
 * comma-separated servers), `NATS_CREDS` names a credentials file (JWT and nkey seed).
 */
export function natsOptions(config: {
  natsUrl: string;
  natsCreds: string | null;
}): Pick<ConnectionOptions, 'servers' | 'user' | 'pass' | 'token' | 'authenticator'> {
  const options: ReturnType<typeof natsOptions> = { servers: [] };
  const servers: string[] = [];
  for (const entry of config.natsUrl.split(',')) {
    const url = new URL(entry.includes('://') ? entry : `nats://${entry}`);
    const user = decodeURIComponent(url.username);
    const pass = decodeURIComponent(url.password);
    if (user && pass) Object.assign(options, { user, pass });
    else if (user) options.token = user;
    servers.push(`${url.protocol}//${url.host}`);
  }
  options.servers = servers;
  if (config.natsCreds) options.authenticator = credsAuthenticator(readFileSync(config.natsCreds));
  return options;
}
