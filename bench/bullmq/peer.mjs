// The BullMQ peer of bench.batches: one role per process, timed with the wall clock both share.
//   node peer.mjs worker <redis port> <queue> <jobs>          prints "ready", then {"ended_ms"} at the n-th completion
//   node peer.mjs add|addBulk <redis port> <queue> <jobs>     prints {"started_ms"} before the first add
import { Queue, Worker } from "bullmq";
import IORedis from "ioredis";

const [role, port, name, count] = process.argv.slice(2);
// BullMQ 6 takes a client it does not construct itself in ESM; a worker's must not retry commands.
const connection = new IORedis({ host: "127.0.0.1", port: Number(port), maxRetriesPerRequest: null });
const n = Number(count);

if (role === "worker") {
  let done = 0;
  const worker = new Worker(name, async () => null, { connection, concurrency: 50 });
  worker.on("completed", async () => {
    if (++done === n) {
      console.log(JSON.stringify({ ended_ms: Date.now() }));
      await worker.close();
      process.exit(0);
    }
  });
  await worker.waitUntilReady();
  console.log("ready");
} else {
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  console.log(JSON.stringify({ started_ms: Date.now() }));
  if (role === "addBulk") {
    const chunk = Array.from({ length: 1000 }, () => ({ name: "noop", data: {} }));
    for (let sent = 0; sent < n; sent += 2000) {
      await Promise.all([queue.addBulk(chunk), sent + 1000 < n ? queue.addBulk(chunk) : null]);
    }
  } else {
    let next = 0;
    const submitter = async () => { while (next++ < n) await queue.add("noop", {}); };
    await Promise.all(Array.from({ length: 64 }, submitter));
  }
  await queue.close();
  await connection.quit();
}
