/** Calendar arithmetic for the sale: local dates and clock times in the configured time zone. */

const DATE_RE = /^(\d{4})-(\d{2})-(\d{2})$/;
const WEEKDAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** True for a real calendar date written YYYY-MM-DD (rejects 2025-02-30). */
export function isValidDate(text: unknown): text is string {
  if (typeof text !== 'string') return false;
  const m = DATE_RE.exec(text);
  if (!m) return false;
  const [y, mo, d] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (y < 2000 || y > 9999) return false;
  const date = new Date(Date.UTC(y, mo - 1, d));
  return date.getUTCFullYear() === y && date.getUTCMonth() === mo - 1 && date.getUTCDate() === d;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timeZone: string): Intl.DateTimeFormat {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', {
      timeZone,
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, f);
  }
  return f;
}

// Every admission asks the clock: remember the answer for the current second per time zone.
const lastClock = new Map<string, { second: number; clock: { date: string; minute: number } }>();

/** The local date (YYYY-MM-DD) and minute of the day at `now` in `timeZone`. */
export function localClock(now: Date, timeZone: string): { date: string; minute: number } {
  const second = Math.floor(now.getTime() / 1000);
  const cached = lastClock.get(timeZone);
  if (cached?.second === second) return cached.clock;
  const clock = computeLocalClock(now, timeZone);
  lastClock.set(timeZone, { second, clock });
  return clock;
}

function computeLocalClock(now: Date, timeZone: string): { date: string; minute: number } {
  const parts = Object.fromEntries(
    formatter(timeZone)
      .formatToParts(now)
      .map((p) => [p.type, p.value]),
  );
  return {
    date: `${parts.year}-${parts.month}-${parts.day}`,
    minute: Number(parts.hour) * 60 + Number(parts.minute),
  };
}

export function addDays(date: string, days: number): string {
  const [y, m, d] = date.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d + days)).toISOString().slice(0, 10);
}

export function weekdayOf(date: string): string {
  const [y, m, d] = date.split('-').map(Number);
  return WEEKDAYS[new Date(Date.UTC(y, m - 1, d)).getUTCDay()];
}

export interface SaleCalendar {
  timeZone: string;
  days: number;
  windowStart: number;
  windowEnd: number;
}

const lastDates = new Map<string, readonly string[]>();

/** The dates on sale: today and the following `days - 1` days, local to the sale's time zone. */
export function saleDates(cal: SaleCalendar, now = new Date()): readonly string[] {
  const today = localClock(now, cal.timeZone).date;
  const key = `${cal.timeZone}|${cal.days}|${today}`;
  let dates = lastDates.get(key);
  if (!dates) {
    dates = Object.freeze(Array.from({ length: cal.days }, (_, i) => addDays(today, i)));
    lastDates.clear(); // one entry per configuration and day is all a process needs
    lastDates.set(key, dates);
  }
  return dates;
}

export type TimeCheck =
  { allowed: true } | { allowed: false; reason: 'date-outside-window' | 'outside-hours'; message: string };

/** Whether a purchase for `date` is allowed at `now` (window of days and daily hours). */
export function checkSaleTime(cal: SaleCalendar, date: string, now = new Date()): TimeCheck {
  const dates = saleDates(cal, now);
  if (!dates.includes(date)) {
    return {
      allowed: false,
      reason: 'date-outside-window',
      message: `Only ${dates[0]} to ${dates[dates.length - 1]} are on sale`,
    };
  }
  const { minute } = localClock(now, cal.timeZone);
  if (minute < cal.windowStart || minute >= cal.windowEnd) {
    const hhmm = (m: number) =>
      `${String(Math.floor(m / 60)).padStart(2, '0')}:${String(m % 60).padStart(2, '0')}`;
    return {
      allowed: false,
      reason: 'outside-hours',
      message: `The sale is open ${hhmm(cal.windowStart)}-${hhmm(cal.windowEnd)} (${cal.timeZone})`,
    };
  }
  return { allowed: true };
}
