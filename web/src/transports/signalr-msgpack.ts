/** SignalR's MessagePack hub protocol, in a chunk of its own: loaded only when it is picked. */

import type { IHubProtocol } from "@microsoft/signalr";
import { MessagePackHubProtocol } from "@microsoft/signalr-protocol-msgpack";

export function messagePack(): IHubProtocol {
  return new MessagePackHubProtocol();
}
