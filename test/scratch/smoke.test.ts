import { NatsCluster, RedisSentinelSet } from '../helpers/cluster';
jest.setTimeout(120000);
it('nats', async () => {
  const t=Date.now();
  const c = await NatsCluster.start();
  console.log('nats up', Date.now()-t, c.url);
  const jsm = await c.jsm();
  await jsm.streams.add({ name: 'S', subjects: ['s.>'], num_replicas: 3 });
  const leader = await c.leaderOf('S');
  console.log('leader', leader.name);
  const t2=Date.now();
  await leader.server.kill();
  const nl = await c.leaderOf('S');
  console.log('new leader', nl.name, Date.now()-t2);
  await leader.server.start();
  await c.waitCurrentReplica('S', leader);
  console.log('rejoined', Date.now()-t2);
  await c.stop();
});
it('redis', async () => {
  const t=Date.now();
  const r = await RedisSentinelSet.start();
  console.log('redis up', Date.now()-t, await r.primaryPort());
  const t2=Date.now();
  await r.primary.kill();
  await r.waitPrimary(r.replica.port);
  console.log('promoted', Date.now()-t2);
  await r.stop();
});
