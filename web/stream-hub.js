// One EventSource for every tab of this origin. Browsers allow six HTTP/1.1 connections per host
// across all tabs: a stream per tab would starve the seventh tab. This hub runs in a SharedWorker
// (or, where there is none, inside the page) and serves every tab over a MessagePort: it follows
// the firehose plus the union of the jobs the tabs watch, and reconnects without a gap when that
// union changes (resuming with ?after=) or the network drops (EventSource sends Last-Event-ID).

import { followEvents } from "/live-stream.js";

export class StreamHub {
  constructor() {
    this.clients = new Map(); // port -> { job, since }
    this.source = null;
    this.key = null;
    this.lastId = null;
    this.status = "idle";
  }

  add(port) {
    this.clients.set(port, { job: null, since: null });
    port.onmessage = (message) => this.receive(port, message.data);
    port.start();
    port.postMessage({ type: "status", state: this.status });
    this.reconnect();
  }

  receive(port, message) {
    if (message.type === "watch") {
      this.clients.set(port, { job: message.job || null, since: message.since ?? null });
      this.reconnect(message.since ?? null);
    } else if (message.type === "bye") {
      this.clients.delete(port);
      this.reconnect();
    }
  }

  reconnect(since = null) {
    if (this.clients.size === 0) {
      if (this.source) this.source.close();
      this.source = null;
      this.key = null;
      return;
    }
    const jobs = [...new Set([...this.clients.values()].map((c) => c.job).filter(Boolean))].sort();
    const key = jobs.join(",");
    if (this.source && key === this.key) return;
    this.key = key;
    if (this.source) this.source.close();
    const params = new URLSearchParams({ firehose: "1", logs: "1" });
    if (jobs.length) params.set("jobs", key);
    // Resume from the older of where this stream was and where a newly watching tab's history ends.
    const after = [this.lastId, since].filter((v) => v !== null && v !== undefined).map(Number);
    if (after.length) params.set("after", String(Math.min(...after)));
    const stream = (this.source = followEvents(`/api/events?${params}`, {
      onStatus: (state) => { if (stream === this.source) this.setStatus(state); },
      onMessage: (kind, data, id) => {
        if (stream !== this.source) return;
        if (id) this.lastId = id;
        this.broadcast({ type: "event", kind, data, id });
      },
    }));
    this.setStatus("connecting");
  }

  setStatus(state) {
    this.status = state;
    this.broadcast({ type: "status", state });
  }

  broadcast(message) {
    for (const port of this.clients.keys()) port.postMessage(message);
  }
}
