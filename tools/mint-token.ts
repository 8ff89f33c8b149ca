import { SignJWT } from 'jose';
import { ConfigError, loadConfig } from '../config';

/**
 * Development sign-in: `npm run token -- <userId> [ttl]` prints an HS256 token for AUTH_MODE=jwt,
 * signed with AUTH_JWT_SECRET and carrying AUTH_JWT_ISSUER / AUTH_JWT_AUDIENCE when they are set.
 * In production the platform's identity provider issues the tokens, not this.
 */
async function main(): Promise<void> {
  const [userId, ttl = '1h'] = process.argv.slice(2);
  if (!userId || !/^[1-9]\d{0,15}$/.test(userId))
    throw new Error('usage: npm run token -- <userId> [ttl, e.g. 1h]');
  const { auth } = loadConfig({ ...process.env, AUTH_MODE: 'jwt' });
  if (!auth.secret)
    throw new Error('set AUTH_JWT_SECRET (the tokens of a public key or JWKS come from their provider)');
  const jwt = new SignJWT({})
    .setProtectedHeader({ alg: 'HS256' })
    .setSubject(userId)
    .setIssuedAt()
    .setExpirationTime(ttl);
  if (auth.issuer) jwt.setIssuer(auth.issuer);
  if (auth.audience) jwt.setAudience(auth.audience);
  console.log(await jwt.sign(new TextEncoder().encode(auth.secret)));
}

main().catch((err: unknown) => {
  console.error(err instanceof ConfigError || err instanceof Error ? err.message : err);
  process.exit(1);
});
