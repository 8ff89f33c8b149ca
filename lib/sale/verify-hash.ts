import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Verify hashes prove that a purchase went through the issuing step for this user and day.
 * Format: `<expiresAtSeconds>.<base64url HMAC-SHA256(secret, "v1|userId|date|expiresAt")>`.
 */
const sign = (secret: string, userId: number, date: string, expiresAt: number) =>
  createHmac('sha256', secret).update(`v1|${userId}|${date}|${expiresAt}`).digest();

export function issueVerifyHash(
  secret: string,
  userId: number,
  date: string,
  ttlSeconds: number,
  now = Date.now(),
): { verifyHash: string; expiresAt: string } {
  const expiresAt = Math.floor(now / 1000) + ttlSeconds;
  return {
    verifyHash: `${expiresAt}.${sign(secret, userId, date, expiresAt).toString('base64url')}`,
    expiresAt: new Date(expiresAt * 1000).toISOString(),
  };
}

export function checkVerifyHash(
  secret: string,
  userId: number,
  date: string,
  hash: string,
  now = Date.now(),
): boolean {
  const dot = hash.indexOf('.');
  if (dot <= 0 || hash.length > 128) return false;
  const expiresText = hash.slice(0, dot);
  // Only the canonical form is accepted: no leading zero in the expiry, and the signature text
  // exactly as issued (base64url decoding would ignore stray characters and the unused low bits
  // of the last character, so decoded bytes would accept altered strings).
  if (!/^[1-9]\d{0,11}$/.test(expiresText)) return false;
  const expiresAt = Number(expiresText);
  if (expiresAt * 1000 <= now) return false;
  const given = Buffer.from(hash.slice(dot + 1));
  const expected = Buffer.from(sign(secret, userId, date, expiresAt).toString('base64url'));
  return given.length === expected.length && timingSafeEqual(given, expected);
}
