import Validator from 'fastest-validator';
import {
  dateRule,
  limitRule,
  messageIdRule,
  orderNoRule,
  purchaseParams,
  resultParams,
  totalRule,
  userIdQueryRule,
  userIdRule,
  waitMsRule,
} from '../../lib/validation';

/** The rules of lib/validation.ts, compiled by fastest-validator as Moleculer's validator does. */

type Check = (value: Record<string, unknown>) => true | { type: string; field: string; message?: string }[];

// Moleculer's own validator options: custom checkers get an error list.
const v = new Validator({ useNewCustomCheckerFunction: true });
const compile = (schema: object) => v.compile(schema) as Check;
const one = (rule: object) => {
  const check = compile({ x: rule });
  return (x: unknown) => {
    const params: Record<string, unknown> = x === undefined ? {} : { x };
    const answer = check(params);
    return { ok: answer === true, errors: answer === true ? [] : answer, value: params.x };
  };
};

describe('validation rules', () => {
  it('userIdRule takes positive safe integers only', () => {
    const check = one(userIdRule);
    for (const good of [1, 42, Number.MAX_SAFE_INTEGER]) expect(check(good).ok).toBe(true);
    for (const bad of [0, -1, 1.5, '7', Number.MAX_SAFE_INTEGER + 2, null]) expect(check(bad).ok).toBe(false);
  });

  describe('query integers', () => {
    it('convert decimal digits to a number within the bounds', () => {
      const check = one(userIdQueryRule);
      expect(check('7')).toEqual({ ok: true, errors: [], value: 7 });
      expect(check('9007199254740991').value).toBe(Number.MAX_SAFE_INTEGER);
      expect(check(12)).toEqual({ ok: true, errors: [], value: 12 });
    });

    it('refuse anything but decimal digits, naming the field and the bounds', () => {
      const check = one(userIdQueryRule);
      for (const bad of [
        '0',
        '-1',
        '1e3',
        '0x10',
        ' 7',
        '7 ',
        '',
        '1.5',
        ['7'],
        '99999999999999999',
        0,
        1.5,
      ]) {
        const r = check(bad);
        expect(r.ok).toBe(false);
        expect(r.errors[0]).toMatchObject({ type: 'queryInteger', field: 'x' });
        expect(r.errors[0].message).toBe(
          `The 'x' field must be an integer from 1..${Number.MAX_SAFE_INTEGER}, written in decimal digits.`,
        );
      }
      // A value above the safe range but within 16 digits.
      expect(check('9007199254740993').ok).toBe(false);
    });

    it('waitMs is optional and at most 30000', () => {
      const check = one(waitMsRule);
      expect(check(undefined)).toEqual({ ok: true, errors: [], value: undefined });
      expect(check('0').value).toBe(0);
      expect(check('30000').value).toBe(30_000);
      expect(check('30001').ok).toBe(false);
    });

    it('limit is optional and within 1..1000', () => {
      const check = one(limitRule);
      expect(check(undefined).ok).toBe(true);
      expect(check('1').value).toBe(1);
      expect(check('1000').value).toBe(1000);
      expect(check('0').ok).toBe(false);
      expect(check('1001').ok).toBe(false);
    });

    it('a required query integer refuses a missing value', () => {
      expect(one(userIdQueryRule)(undefined).ok).toBe(false);
    });
  });

  it('dateRule takes real YYYY-MM-DD dates only, with its own message', () => {
    const check = one(dateRule);
    expect(check('2025-02-28').ok).toBe(true);
    for (const bad of ['2025-02-30', '2025-2-28', '20250228', 20250228, '2025-02-28T00']) {
      const r = check(bad);
      expect(r.ok).toBe(false);
      if (typeof bad === 'string' && bad.length <= 10) {
        expect(r.errors[0]).toMatchObject({ type: 'date' });
        expect(r.errors[0].message).toBe("The 'x' field must be a real date written YYYY-MM-DD.");
      }
    }
  });

  it('messageIdRule and orderNoRule bound length and characters', () => {
    const message = one(messageIdRule);
    expect(message('abc_DEF-123').ok).toBe(true);
    expect(message('a'.repeat(64)).ok).toBe(true);
    for (const bad of ['', 'a'.repeat(65), 'a b', 'a/b', 'a.b']) expect(message(bad).ok).toBe(false);
    const order = one(orderNoRule);
    expect(order('O20250101-0001').ok).toBe(true);
    expect(order('a'.repeat(32)).ok).toBe(true);
    for (const bad of ['', 'a'.repeat(33), 'a_b', 'a b']) expect(order(bad).ok).toBe(false);
  });

  it('totalRule takes integers from 0 to 10 000 000', () => {
    const check = one(totalRule);
    for (const good of [0, 1, 10_000_000]) expect(check(good).ok).toBe(true);
    for (const bad of [-1, 10_000_001, 1.5, '5']) expect(check(bad).ok).toBe(false);
  });

  it('purchaseParams is strict and leaves the verify hash optional', () => {
    const check = compile(purchaseParams);
    expect(check({ userId: 1, date: '2025-03-01' })).toBe(true);
    expect(check({ userId: 1, date: '2025-03-01', verifyHash: 'abc' })).toBe(true);
    expect(check({ userId: 1, date: '2025-03-01', verifyHash: 'a'.repeat(129) })).not.toBe(true);
    expect(check({ userId: 1, date: '2025-03-01', extra: 1 })).not.toBe(true);
    expect(check({ date: '2025-03-01' })).not.toBe(true);
  });

  it('resultParams is strict: a message id and an optional waitMs', () => {
    const check = compile(resultParams);
    expect(check({ messageId: 'm1' })).toBe(true);
    expect(check({ messageId: 'm1', waitMs: '100' })).toBe(true);
    expect(check({ messageId: 'm1', other: 'x' })).not.toBe(true);
  });
});
