import {
  CROWD_GRACE_MS,
  CrowdNearby,
  CrowdWatch,
  inCrowd,
  lasts,
  runwayMs,
  type CrowdReport,
} from '../../lib/purchase/crowd';

/**
 * When the workers of a machine give its gateway the cores (lib/purchase/crowd.ts): admissions
 * arriving at a busy gateway, reported to the workers of the same host only, believed for a short
 * while, and ended at once by the gateway's last report.
 */
describe('crowd detection', () => {
  it('is a crowd only while admissions arrive at a busy event loop', () => {
    expect(inCrowd(0.9, 120)).toBe(true);
    expect(inCrowd(0.5, 1)).toBe(true);
    // The sold-out storm: a busy gateway answering from memory admits nothing.
    expect(inCrowd(0.95, 0)).toBe(false);
    // A few purchases at an idle gateway.
    expect(inCrowd(0.2, 30)).toBe(false);
  });

  it("is not yielded to when the day's stock runs out within seconds at the crowd's rate", () => {
    // 5000 tickets left at 2000 admissions a second (400 in 200 ms): 2.5 s, a flash sale ending.
    expect(runwayMs(5000, 400, 200)).toBe(2500);
    expect(lasts(runwayMs(5000, 400, 200))).toBe(false);
    // 100k tickets at the same rate: 50 s of crowd, yielded to.
    expect(lasts(runwayMs(100_000, 400, 200))).toBe(true);
    expect(lasts(runwayMs(6000, 400, 200))).toBe(true);
    // Nothing admitted: nothing says the crowd ends soon.
    expect(runwayMs(10, 0, 200)).toBe(Infinity);
  });

  it('workers count gateways of their own host, until the report ends or runs out', () => {
    const nearby = new CrowdNearby('host-a');
    const report = (nodeID: string, host: string, crowd: boolean): CrowdReport => ({ nodeID, host, crowd });
    const t = 1_000_000;
    expect(nearby.active(t)).toBe(false);

    nearby.onReport(report('gw-far', 'host-b', true), t);
    expect(nearby.active(t)).toBe(false);

    nearby.onReport(report('gw-1', 'host-a', true), t);
    nearby.onReport(report('gw-2', 'host-a', true), t);
    expect(nearby.active(t + 100)).toBe(true);
    nearby.onReport(report('gw-1', 'host-a', false), t + 100);
    expect(nearby.active(t + 100)).toBe(true); // gw-2 still in its crowd
    nearby.onReport(report('gw-2', 'host-a', false), t + 100);
    expect(nearby.active(t + 100)).toBe(false);

    // A gateway that died in a crowd sends no end: its last report runs out.
    nearby.onReport(report('gw-3', 'host-a', true), t);
    expect(nearby.active(t + 400)).toBe(true);
    expect(nearby.active(t + 10_000)).toBe(false);
  });

  it('a gateway reports a crowd that outlasts the grace, while it lasts and once when it ends', async () => {
    const reports: boolean[] = [];
    const watch = new CrowdWatch((crowd) => reports.push(crowd));
    watch.start();
    let stockLeft = 10_000_000;
    const admitWhileBusy = async (ms: number) => {
      const until = Date.now() + ms;
      while (Date.now() < until) {
        watch.admission(--stockLeft);
        await new Promise((resolve) => setImmediate(resolve));
      }
    };
    try {
      // A burst of a moment, shorter than the grace: its orders are not held back.
      await admitWhileBusy(CROWD_GRACE_MS / 2);
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(reports).toEqual([]);
      // Admissions that keep the event loop busy past the grace: a crowd.
      while (!reports.includes(true)) await admitWhileBusy(CROWD_GRACE_MS);
      // Nothing admitted any more: one report that it ended, then silence.
      while (reports.at(-1) !== false) await new Promise((resolve) => setTimeout(resolve, 20));
      const ended = reports.length;
      await new Promise((resolve) => setTimeout(resolve, 250));
      expect(reports.length).toBe(ended);
    } finally {
      watch.stop();
    }
    expect(reports.filter((crowd) => !crowd)).toHaveLength(1);
  });

  it('a gateway does not report a crowd that is about to sell its day out', async () => {
    const reports: boolean[] = [];
    const watch = new CrowdWatch((crowd) => reports.push(crowd));
    watch.start();
    try {
      // Busy admitting for twice the grace, each admission leaving just a few tickets.
      const until = Date.now() + 2000;
      while (Date.now() < until) {
        watch.admission(5);
        await new Promise((resolve) => setImmediate(resolve));
      }
    } finally {
      watch.stop();
    }
    expect(reports).toEqual([]);
  });
});
