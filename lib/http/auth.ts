import { createRemoteJWKSet, jwtVerify, type JWTVerifyGetKey, type KeyObject } from 'jose';
import type { Config } from '../../config';
import { appError } from '../errors';

/** Verifies a bearer token and answers the user id it stands for; throws 4002 when it cannot. */
export type Authenticate = (authorization: string | undefined) => Promise<number>;

const USER_ID = /^[1-9]\d{0,15}$/;

/**
 * The platform's sign-in (SPEC §3.1, AUTH_MODE=jwt): a JWT signed with the configured key, `exp`
 * required, issuer and audience when configured; the user is its `sub`. The algorithms follow the
 * key, so `alg: none` and an HS256 token signed with a public key as its secret never pass.
 */
export function createAuthenticator(auth: Config['auth']): Authenticate {
  let key: Uint8Array | KeyObject | JWTVerifyGetKey;
  let algorithms: string[];
  if (auth.secret) {
    key = new TextEncoder().encode(auth.secret);
    algorithms = ['HS256'];
  } else if (auth.publicKey) {
    key = auth.publicKey;
    algorithms = auth.publicKey.asymmetricKeyType === 'rsa' ? ['RS256'] : ['ES256'];
  } else if (auth.jwksUrl) {
    key = createRemoteJWKSet(new URL(auth.jwksUrl));
    algorithms = ['RS256', 'ES256'];
  } else {
    throw new Error('AUTH_MODE=jwt without a key'); // loadConfig refuses this configuration
  }
  const options = {
    algorithms,
    requiredClaims: ['exp', 'sub'],
    ...(auth.issuer ? { issuer: auth.issuer } : {}),
    ...(auth.audience ? { audience: auth.audience } : {}),
  };
  return async (authorization) => {
    const token = /^Bearer ([\w-]+\.[\w-]+\.[\w-]*)$/.exec(authorization ?? '')?.[1];
    if (!token) throw appError('UNAUTHENTICATED');
    let sub: unknown;
    try {
      // One call for both kinds of key: jose overloads jwtVerify on the key's type.
      ({
        payload: { sub },
      } = await jwtVerify(token, key as Uint8Array, options));
    } catch (err) {
      // The identity provider's key set unreachable is an outage, not a bad token.
      if ((err as { code?: string }).code === 'ERR_JWKS_TIMEOUT' || err instanceof TypeError) {
        throw appError('UNAVAILABLE', 'The sign-in keys cannot be fetched, try again shortly');
      }
      throw appError('UNAUTHENTICATED');
    }
    const userId = Number(sub);
    // A string of decimal digits only: `[1]` or `1.0` would read as user 1 through Number().
    if (typeof sub !== 'string' || !USER_ID.test(sub) || !Number.isSafeInteger(userId)) {
      throw appError('UNAUTHENTICATED', 'The token does not name a user');
    }
    return userId;
  };
}
