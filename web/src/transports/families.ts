/**
 * The hubs of the other families, each loading its client's code with a dynamic `import()` on
 * its first connection attempt: esbuild puts SignalR, its MessagePack protocol and MQTT.js in
 * chunks of their own, fetched only when picked.
 */

import type { RemoteTransport } from "./hub.js";
import type { LinkOpener } from "./link.js";
import { RemoteHub } from "./remote.js";
import type { SignalRKind } from "./signalr.js";

const SIGNALR_KIND: Record<Exclude<RemoteTransport, "mqtt">, SignalRKind> = {
  "signalr-websockets": "websockets",
  "signalr-websockets-msgpack": "websockets",
  "signalr-sse": "sse",
  "signalr-long-polling": "long-polling",
};

/** A hub on `name` for the server at `baseUrl`, with the page's token if it has one. */
export function remoteHub(name: RemoteTransport, baseUrl: string, token: string | undefined): RemoteHub {
  const credential = token ? { token } : {};
  const load = (): Promise<LinkOpener> =>
    name === "mqtt"
      ? import("./mqtt.js").then((m) => m.mqttLink({ baseUrl, ...credential }))
      : import("./signalr.js").then((m) =>
          m.signalrLink({ baseUrl, transport: SIGNALR_KIND[name], messagePack: name === "signalr-websockets-msgpack", ...credential }),
        );
  return new RemoteHub(name, { load });
}
