import type { GuardMutant } from '../guard-mutant';

const file = 'services/api.service.ts';

/** The door of the routes taken before moleculer-web (hot-routes.ts): the same checks as the /api route. */
export const httpGuards: GuardMutant[] = [
  {
    name: 'Hot routes: the per-IP limit counts a submit and a poll',
    file,
    find: 'chain: [guardDoor, access.signIn, answerLocal],',
    replace: 'chain: [access.signIn, answerLocal],',
    tests: ['test/integration/abuse-limits.test.ts'],
  },
  {
    name: 'Hot routes: a submit or a poll needs the sign-in (AUTH_MODE=jwt)',
    file,
    find: 'chain: [guardDoor, access.signIn, answerLocal],',
    replace: 'chain: [guardDoor, answerLocal],',
    tests: ['test/integration/identity-jwt.test.ts'],
  },
];
