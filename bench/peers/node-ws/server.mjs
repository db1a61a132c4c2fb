// Peer for `livehub bench --target node-ws`: the broadcast server of the `ws` README, with
// subscribers on GET / and publishers on GET /publish. Every message a publisher sends goes,
// as it came, to every open subscriber.
//
//   node server.mjs --port P
import http from 'node:http';
import { WebSocketServer, WebSocket } from 'ws';

const HOST = '127.0.0.1';

function parsePort(argv) {
  const i = argv.indexOf('--port');
  const port = i >= 0 ? Number(argv[i + 1]) : NaN;
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error('usage: node server.mjs --port PORT');
    process.exit(2);
  }
  return port;
}

const port = parsePort(process.argv.slice(2));

// One WebSocketServer owns every connection, so `wss.clients` is the README's broadcast set.
// perMessageDeflate is off: compressing each send would cost more than it saves on loopback.
const wss = new WebSocketServer({ noServer: true, perMessageDeflate: false });

wss.on('connection', (ws, req) => {
  ws.isPublisher = req.url === '/publish';
  if (!ws.isPublisher) return; // subscribers' messages are ignored (no 'message' listener)
  ws.on('message', (data, isBinary) => {
    wss.clients.forEach((client) => {
      if (!client.isPublisher && client.readyState === WebSocket.OPEN) {
        client.send(data, { binary: isBinary });
      }
    });
  });
});

// A plain HTTP server in front so that only the two paths upgrade; anything else gets 404.
const server = http.createServer((req, res) => {
  res.writeHead(404).end();
});
server.on('upgrade', (req, socket, head) => {
  if (req.url !== '/' && req.url !== '/publish') {
    socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});

server.listen({ host: HOST, port, backlog: 4096 }, () => {
  console.log(`listening ${HOST}:${server.address().port}`);
});

function shutdown() {
  for (const client of wss.clients) client.terminate();
  wss.close();
  server.close(() => process.exit(0));
  // Connections that are still handshaking would keep server.close() waiting.
  setTimeout(() => process.exit(0), 1000).unref();
}
process.on('SIGTERM', shutdown);
process.on('SIGINT', shutdown);
