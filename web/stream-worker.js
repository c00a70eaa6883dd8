// The SharedWorker every tab of this origin connects to: one live connection for all of them.
import { StreamHub } from "/stream-hub.js";

const hub = new StreamHub();
self.onconnect = (event) => hub.add(event.ports[0]);
