// Following the gateway's live event stream (/api/events): one EventSource, a listener for every
// kind it sends (from the contract's vocabulary), each event's id handed on for resuming. Used by the
// dashboard's shared hub (stream-hub.js) and by the drop-in elements (jobline.js).

import { KINDS as EVENT_KINDS } from "./vocabulary.js";

export const STREAM_KINDS = Object.freeze(["snapshot", "reset", ...EVENT_KINDS]);

/** Open `url` (it is "connecting" until told otherwise); `onMessage(kind, text, id)` for each event
 *  (its data unparsed), `onStatus(state)` with "live" | "reconnecting" | "closed". A closed stream
 *  (refused: an expired token, a 5xx) is not reopened here: the caller decides when, resuming from
 *  the last id it was given. */
export function followEvents(url, { onMessage, onStatus = () => {} }) {
  const source = new EventSource(url);
  source.onopen = () => onStatus("live");
  // While open, EventSource resumes by itself after a drop (it sends Last-Event-ID).
  source.onerror = () => onStatus(source.readyState === EventSource.CLOSED ? "closed" : "reconnecting");
  for (const kind of STREAM_KINDS) {
    source.addEventListener(kind, (message) => {
      onMessage(kind, message.data, message.lastEventId);
    });
  }
  return { close: () => source.close() };
}
