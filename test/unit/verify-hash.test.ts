import { checkVerifyHash, issueVerifyHash } from '../../lib/sale/verify-hash';

const SECRET = 'unit-test-secret-0123456789abcdefghij';
const NOW = Date.parse('2025-03-01T10:00:00Z');
const TTL = 3600;

describe('verify hash', () => {
  const { verifyHash, expiresAt } = issueVerifyHash(SECRET, 42, '2025-03-02', TTL, NOW);

  it('round-trips for the same user and day before it expires', () => {
    expect(expiresAt).toBe('2025-03-01T11:00:00.000Z');
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', verifyHash, NOW)).toBe(true);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', verifyHash, NOW + TTL * 1000 - 1)).toBe(true);
  });

  it('is not a bare digest of public values: another secret gives another hash', () => {
    const other = issueVerifyHash(`${SECRET}x`, 42, '2025-03-02', TTL, NOW).verifyHash;
    expect(other).not.toBe(verifyHash);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', other, NOW)).toBe(false);
  });

  it('refuses another user', () => {
    expect(checkVerifyHash(SECRET, 43, '2025-03-02', verifyHash, NOW)).toBe(false);
    // "4" + "2|…" must not read as "42|…".
    expect(checkVerifyHash(SECRET, 4, '2025-03-02', verifyHash, NOW)).toBe(false);
  });

  it('refuses another day', () => {
    expect(checkVerifyHash(SECRET, 42, '2025-03-03', verifyHash, NOW)).toBe(false);
  });

  it('refuses it once expired', () => {
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', verifyHash, NOW + TTL * 1000)).toBe(false);
    const old = issueVerifyHash(SECRET, 42, '2025-03-02', TTL, NOW - 2 * 3600 * 1000).verifyHash;
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', old, NOW)).toBe(false);
  });

  it('refuses a tampered signature', () => {
    const [exp, sig] = verifyHash.split('.');
    const flipped = sig[0] === 'A' ? `B${sig.slice(1)}` : `A${sig.slice(1)}`;
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${exp}.${flipped}`, NOW)).toBe(false);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${exp}.${sig.slice(0, -2)}`, NOW)).toBe(false);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${exp}.${sig}AA`, NOW)).toBe(false);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${exp}.`, NOW)).toBe(false);
  });

  it('accepts only the canonical expiry text (the signature covers the number, not the text)', () => {
    const [exp, sig] = verifyHash.split('.');
    for (const variant of [`0${exp}`, `+${exp}`, `${exp} `, ` ${exp}`, `${exp}.0`])
      expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${variant}.${sig}`, NOW)).toBe(false);
  });

  it('refuses a tampered expiry (extending the lifetime)', () => {
    const [exp, sig] = verifyHash.split('.');
    const later = String(Number(exp) + 86400);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${later}.${sig}`, NOW)).toBe(false);
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', `${Number(exp) + 1}.${sig}`, NOW)).toBe(false);
  });

  it.each([
    '',
    '.',
    'abc',
    'not.a.hash',
    '.signature',
    '-1.abc',
    '1e12.abc',
    '99999999999999.abc',
    `${'9'.repeat(12)}.${'A'.repeat(43)}`,
    'x'.repeat(200),
    `${'9'.repeat(12)}.${'A'.repeat(200)}`,
    '\u0000\u0000',
    '💥.💥',
  ])('refuses the garbage string %j', (garbage) => {
    expect(checkVerifyHash(SECRET, 42, '2025-03-02', garbage, NOW)).toBe(false);
  });
});
