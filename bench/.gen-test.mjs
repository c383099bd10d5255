import { startRedis, info } from '/work/main/bench/lib/redis.mjs';
import { writeLargeCollections, writeMixedDataset, populateSmallKeys } from '/work/main/bench/lib/datasets.mjs';
import { statSync } from 'node:fs';
for (const [name, fn] of [['small', (c) => populateSmallKeys(c)], ['large', writeLargeCollections], ['mixed', writeMixedDataset]]) {
  const s = await startRedis({ name });
  const c = s.client();
  let t = Date.now();
  await fn(c);
  const gen = Date.now() - t; t = Date.now();
  await c.save();
  const save = Date.now() - t;
  console.log(name, 'gen ms', gen, 'save ms', save, 'size MB', (statSync(s.dir + '/dump.rdb').size / 1048576).toFixed(1), 'keys', await c.dbsize(), 'mem', (await info(c, 'memory')).used_memory_human);
  await s.stop();
}
process.exit(0);
