import { ConfigError, loadConfig } from '../../config';
import { runAudit } from './audit';
import { formatReport, type AuditOptions } from './report';

/**
 * `npm run audit [-- --json] [--live] [--stuck-after-ms N] [--dates YYYY-MM-DD,...]`
 *
 * Checks the invariants of SPEC §5 on the deployment that DATABASE_URL, REDIS_URL, NATS_URL and
 * NAMESPACE name (the same variables as the service). Exit code: 0 every check passed (warnings
 * allowed), 1 a check failed, 2 the audit could not run (bad arguments, configuration or a
 * dependency out of reach).
 */

const USAGE = `Usage: npm run audit -- [--json] [--live] [--stuck-after-ms N] [--dates D1,D2]

  --json              machine-readable report on stdout
  --live              the service is taking traffic: cache convergence and queue backlog are warnings
  --stuck-after-ms N  a non-terminal result older than N ms counts as stuck (default 60000)
  --dates D1,D2       only these sale days (YYYY-MM-DD)

Reads DATABASE_URL, REDIS_URL, NATS_URL and NAMESPACE like the service.
Exit code: 0 all checks passed, 1 a check failed, 2 the audit could not run.`;

export interface CliArgs {
  json: boolean;
  help: boolean;
  options: AuditOptions;
}

export function parseArgs(argv: string[]): CliArgs {
  const args: CliArgs = { json: false, help: false, options: {} };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [name, inline] = arg.startsWith('--') && arg.includes('=') ? arg.split(/=(.*)/s) : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined) throw new Error(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case '--json':
        args.json = true;
        break;
      case '--live':
        args.options.live = true;
        break;
      case '--help':
      case '-h':
        args.help = true;
        break;
      case '--stuck-after-ms': {
        const n = Number(value());
        if (!Number.isInteger(n) || n < 0) throw new Error('--stuck-after-ms must be a whole number >= 0');
        args.options.stuckAfterMs = n;
        break;
      }
      case '--dates': {
        const dates = value()
          .split(',')
          .map((d) => d.trim())
          .filter(Boolean);
        if (!dates.length || dates.some((d) => !/^\d{4}-\d{2}-\d{2}$/.test(d)))
          throw new Error('--dates takes YYYY-MM-DD dates separated by commas');
        args.options.dates = dates;
        break;
      }
      default:
        throw new Error(`unknown argument ${arg}`);
    }
  }
  return args;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let args: CliArgs;
  try {
    args = parseArgs(argv);
  } catch (err) {
    console.error(`${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (args.help) {
    console.log(USAGE);
    return 0;
  }
  try {
    // The audit needs no hash secret; a production environment without one must still be auditable.
    const config = loadConfig({ ...env, HASH_SECRET: env.HASH_SECRET || 'audit-'.padEnd(32, '-') });
    const report = await runAudit(config, args.options);
    console.log(args.json ? JSON.stringify(report, null, 2) : formatReport(report));
    return report.ok ? 0 : 1;
  } catch (err) {
    const message =
      err instanceof ConfigError ? err.message : `Audit could not run: ${(err as Error).message}`;
    if (args.json) console.log(JSON.stringify({ ok: false, error: message }));
    console.error(message);
    return 2;
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error(err);
      process.exit(2);
    },
  );
}
