import type { Config } from '../../config';
import { appError } from '../errors';
import { checkSaleTime, type SaleCalendar } from '../sale/calendar';
import { checkVerifyHash } from '../sale/verify-hash';

/** The checks of a purchase request that need no I/O: pure, so the gateway, V1 and the bench share them. */

export interface PurchaseRequest {
  userId: number;
  date: string;
  verifyHash?: string;
}

/** The sale calendar: the date is on sale and the sale is open now. Throws the SPEC error. */
export function checkSaleWindow(cal: SaleCalendar, date: string, now = new Date()): void {
  const time = checkSaleTime(cal, date, now);
  if (!time.allowed) {
    throw appError(time.reason === 'outside-hours' ? 'OUTSIDE_HOURS' : 'NO_SUCH_DAY', time.message);
  }
}

/** The verify hash: issued by this service for this user and day, not expired. Throws 6003. */
export function checkHash(config: Pick<Config, 'hashSecret'>, req: PurchaseRequest, now = new Date()): void {
  if (
    !req.verifyHash ||
    !checkVerifyHash(config.hashSecret, req.userId, req.date, req.verifyHash, now.getTime())
  ) {
    throw appError('BAD_HASH');
  }
}

/** Checks that need no I/O: the sale calendar and the verify hash. Throws the SPEC error. */
export function checkRequest(
  config: Pick<Config, 'hashSecret'>,
  cal: SaleCalendar,
  req: PurchaseRequest,
  now = new Date(),
): void {
  checkSaleWindow(cal, req.date, now);
  checkHash(config, req, now);
}
