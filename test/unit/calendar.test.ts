import {
  addDays,
  checkSaleTime,
  isValidDate,
  localClock,
  saleDates,
  weekdayOf,
  type SaleCalendar,
} from '../../lib/sale/calendar';

const at = (iso: string) => new Date(iso);

describe('isValidDate', () => {
  it.each(['2025-01-01', '2025-12-31', '2024-02-29', '2000-02-29', '2025-02-28', '2099-06-30', '9999-12-31'])(
    'accepts the real date %s',
    (text) => expect(isValidDate(text)).toBe(true),
  );

  it.each([
    '2025-02-30',
    '2025-02-29', // not a leap year
    '2100-02-29', // divisible by 100, not by 400
    '2025-04-31',
    '2025-13-01',
    '2025-00-10',
    '2025-01-00',
    '2025-01-32',
    '20250101',
    '2025-1-01',
    '2025/01/01',
    ' 2025-01-01',
    '2025-01-01 ',
    '2025-01-01\n',
    '2025-01-01T00:00:00Z',
    '1999-12-31', // before the supported range
    '',
  ])('refuses %j', (text) => expect(isValidDate(text)).toBe(false));

  it.each([null, undefined, 20250101, {}, ['2025-01-01'], true, new Date('2025-01-01')])(
    'refuses the non-string %p',
    (value) => expect(isValidDate(value)).toBe(false),
  );
});

describe('addDays and weekdayOf', () => {
  it.each([
    ['2024-02-28', 1, '2024-02-29'],
    ['2024-02-29', 1, '2024-03-01'],
    ['2025-02-28', 1, '2025-03-01'],
    ['2025-12-31', 1, '2026-01-01'],
    ['2025-01-01', -1, '2024-12-31'],
    ['2025-03-01', -1, '2025-02-28'],
    ['2024-03-01', -1, '2024-02-29'],
    ['2025-01-30', 30, '2025-03-01'],
    ['2025-06-15', 0, '2025-06-15'],
  ])('%s + %i days = %s', (date, days, expected) => expect(addDays(date, days)).toBe(expected));

  it.each([
    ['2025-01-01', 'Wednesday'],
    ['2024-02-29', 'Thursday'],
    ['2025-03-09', 'Sunday'],
    ['2026-01-03', 'Saturday'],
  ])('%s is a %s', (date, weekday) => expect(weekdayOf(date)).toBe(weekday));
});

describe('localClock', () => {
  it.each([
    // Asia/Shanghai is UTC+8 all year: 16:00 UTC is local midnight.
    ['2025-03-01T15:59:00Z', 'Asia/Shanghai', '2025-03-01', 23 * 60 + 59],
    ['2025-03-01T16:00:00Z', 'Asia/Shanghai', '2025-03-02', 0],
    ['2024-02-28T16:30:00Z', 'Asia/Shanghai', '2024-02-29', 30],
    // New year in Shanghai, still the old year in UTC.
    ['2025-12-31T16:05:00Z', 'Asia/Shanghai', '2026-01-01', 5],
    ['2025-12-31T16:05:00Z', 'UTC', '2025-12-31', 16 * 60 + 5],
    // America/Los_Angeles is UTC-8 in winter and UTC-7 in summer.
    ['2025-03-01T07:59:00Z', 'America/Los_Angeles', '2025-02-28', 23 * 60 + 59],
    ['2025-03-01T08:00:00Z', 'America/Los_Angeles', '2025-03-01', 0],
    ['2025-07-01T06:59:00Z', 'America/Los_Angeles', '2025-06-30', 23 * 60 + 59],
    ['2025-07-01T07:00:00Z', 'America/Los_Angeles', '2025-07-01', 0],
    // UTC+14: a day ahead of UTC in the afternoon.
    ['2025-05-10T10:00:00Z', 'Pacific/Kiritimati', '2025-05-11', 0],
    ['2025-05-10T00:00:00Z', 'UTC', '2025-05-10', 0],
  ])('%s in %s is %s minute %i', (iso, tz, date, minute) => {
    expect(localClock(at(iso), tz)).toEqual({ date, minute });
  });
});

describe('saleDates', () => {
  const utc: SaleCalendar = { timeZone: 'UTC', days: 3, windowStart: 0, windowEnd: 1440 };
  const shanghai: SaleCalendar = { ...utc, timeZone: 'Asia/Shanghai' };

  it('covers today and the following days in the sale time zone', () => {
    const now = at('2025-12-31T16:30:00Z');
    expect(saleDates(utc, now)).toEqual(['2025-12-31', '2026-01-01', '2026-01-02']);
    expect(saleDates(shanghai, now)).toEqual(['2026-01-01', '2026-01-02', '2026-01-03']);
  });

  it('follows the configured length and crosses a leap day', () => {
    expect(saleDates({ ...utc, days: 1 }, at('2024-02-28T12:00:00Z'))).toEqual(['2024-02-28']);
    expect(saleDates({ ...utc, days: 4 }, at('2024-02-27T12:00:00Z'))).toEqual([
      '2024-02-27',
      '2024-02-28',
      '2024-02-29',
      '2024-03-01',
    ]);
  });

  it('changes exactly at local midnight', () => {
    expect(saleDates(shanghai, at('2025-03-01T15:59:59Z'))[0]).toBe('2025-03-01');
    expect(saleDates(shanghai, at('2025-03-01T16:00:00Z'))[0]).toBe('2025-03-02');
  });
});

describe('weekdays and the per-second caches', () => {
  it('names every day of a week', () => {
    expect(Array.from({ length: 7 }, (_, i) => weekdayOf(addDays('2025-03-02', i)))).toEqual([
      'Sunday',
      'Monday',
      'Tuesday',
      'Wednesday',
      'Thursday',
      'Friday',
      'Saturday',
    ]);
  });

  it('computes the local clock once per second and the sale dates once per day', () => {
    const cal: SaleCalendar = { timeZone: 'Europe/Paris', days: 2, windowStart: 0, windowEnd: 1440 };
    const first = localClock(at('2025-03-01T10:00:00.100Z'), 'Europe/Paris');
    expect(localClock(at('2025-03-01T10:00:00.900Z'), 'Europe/Paris')).toBe(first);
    expect(localClock(at('2025-03-01T10:00:01.000Z'), 'Europe/Paris')).not.toBe(first);
    const dates = saleDates(cal, at('2025-03-01T10:00:00Z'));
    expect(saleDates(cal, at('2025-03-01T18:00:00Z'))).toBe(dates);
    expect(Object.isFrozen(dates)).toBe(true);
  });
});

describe('checkSaleTime', () => {
  // 08:00-16:00 in Shanghai = 00:00-08:00 UTC.
  const cal: SaleCalendar = {
    timeZone: 'Asia/Shanghai',
    days: 3,
    windowStart: 8 * 60,
    windowEnd: 16 * 60,
  };

  it('allows the days of the window inside the daily hours', () => {
    const now = at('2025-03-01T02:00:00Z'); // 10:00 local
    for (const date of ['2025-03-01', '2025-03-02', '2025-03-03']) {
      expect(checkSaleTime(cal, date, now)).toEqual({ allowed: true });
    }
  });

  it.each([
    ['2025-02-28'], // yesterday
    ['2025-03-04'], // past the window of days
    ['2026-03-01'],
  ])('refuses %s as outside the window of days', (date) => {
    const check = checkSaleTime(cal, date, at('2025-03-01T02:00:00Z'));
    expect(check).toEqual({
      allowed: false,
      reason: 'date-outside-window',
      message: 'Only 2025-03-01 to 2025-03-03 are on sale',
    });
  });

  it.each([
    ['2025-02-28T23:59:00Z', false], // 07:59 local
    ['2025-03-01T00:00:00Z', true], // 08:00 local: start is inclusive
    ['2025-03-01T07:59:00Z', true], // 15:59 local
    ['2025-03-01T08:00:00Z', false], // 16:00 local: end is exclusive
    ['2025-03-01T15:00:00Z', false], // 23:00 local
  ])('at %s the daily hours allow: %s', (iso, allowed) => {
    // The local date of each instant is 2025-03-01, so only the hours decide.
    const check = checkSaleTime(cal, '2025-03-01', at(iso));
    expect(check.allowed).toBe(allowed);
    if (!check.allowed) {
      expect(check.reason).toBe('outside-hours');
      expect(check.message).toContain('08:00-16:00');
    }
  });

  it('reports the window of days before the daily hours', () => {
    const check = checkSaleTime(cal, '2025-03-10', at('2025-02-28T23:00:00Z'));
    expect(check).toMatchObject({ allowed: false, reason: 'date-outside-window' });
  });

  it('is open until midnight with a 24:00 end', () => {
    const allDay: SaleCalendar = { timeZone: 'UTC', days: 3, windowStart: 0, windowEnd: 1440 };
    expect(checkSaleTime(allDay, '2025-03-01', at('2025-03-01T23:59:59Z')).allowed).toBe(true);
    expect(checkSaleTime(allDay, '2025-03-01', at('2025-03-01T00:00:00Z')).allowed).toBe(true);
  });
});
