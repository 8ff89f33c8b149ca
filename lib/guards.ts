import type { GuardMutant } from './guard-mutant';
import { dbGuards } from './db/guards';
import { httpGuards } from './http/guards';
import { storeGuards } from './store/guards';
import { outboxGuards, v1Guards } from './purchase/guards';
import { ticketGuards } from './tickets/guards';

/** Every guard mutant (the type and the runner: guard-mutant.ts). */
export const guardMutants: readonly GuardMutant[] = [
  ...dbGuards,
  ...storeGuards,
  ...v1Guards,
  ...outboxGuards,
  ...ticketGuards,
  ...httpGuards,
];
