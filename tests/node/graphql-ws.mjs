// graphql-transport-ws conformance against a live server, with the protocol's reference
// client (graphql-ws, pinned in package.json) and raw sockets (ws) for the cases a
// well-behaved client never produces. Prints a JSON report for tests/test_ws_spec.py.
//
//   node graphql-ws.mjs <ws URL> <http GraphQL URL> <admin token>
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';

const [wsUrl, httpUrl, token] = process.argv.slice(2);
const report = {};

async function http(query, variables = {}) {
  const response = await fetch(httpUrl, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await response.json()).data;
}

function closeOf(socket) {
  return new Promise((resolve) => socket.on('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

function opened(socket) {
  return new Promise((resolve, reject) => { socket.on('open', resolve); socket.on('error', reject); });
}

function withTimeout(promise, ms, what) {
  return Promise.race([promise, new Promise((_, reject) => setTimeout(() => reject(new Error(`timeout: ${what}`)), ms))]);
}

// 1. The reference client: ack, subscribe, next, complete; pings both ways.
const seen = { pingsReceived: 0, pongsReceived: 0, acknowledged: false };
const client = createClient({
  url: wsUrl,
  webSocketImpl: WebSocket,
  connectionParams: { Authorization: `Bearer ${token}` },
  keepAlive: 300,
  lazy: false,
  retryAttempts: 0,
  on: {
    connected: () => { seen.acknowledged = true; },
    ping: (received) => { if (received) seen.pingsReceived += 1; },
    pong: (received) => { if (received) seen.pongsReceived += 1; },
  },
});
const customer = (await http('{ esco(code: "solarvale") { customers(first: 1) { nodes { id fullName } } } }'))
  .esco.customers.nodes[0];
const iterator = client.iterate({ query: 'subscription { events(types: ["customer.updated"]) { id type subject { id } } }' });
await new Promise((resolve) => setTimeout(resolve, 500)); // subscribed before the change commits
await http('mutation ($input: UpdateCustomerInput!) { updateCustomer(input: $input) { userErrors { code } } }', {
  input: { customerId: customer.id, fullName: `${customer.fullName ?? 'Someone'} (moved)` },
});
const first = await withTimeout(iterator.next(), 10000, 'next');
report.next = first.value;
report.subjectIsTheCustomer = first.value?.data?.events?.subject?.id === customer.id;
await new Promise((resolve) => setTimeout(resolve, 700)); // a few pings
const done = await iterator.return(); // sends complete
report.completed = done.done === true;
report.acknowledged = seen.acknowledged;
report.pingsReceived = seen.pingsReceived;
report.pongsReceived = seen.pongsReceived;
await client.dispose();

// 2. Bad credentials: closed with 4403 after connection_init.
{
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  const closed = closeOf(socket);
  await opened(socket);
  socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: 'Bearer nope' } }));
  report.badCredentials = await withTimeout(closed, 5000, 'bad credentials close');
}

// 3. Subscribe before connection_init: 4401 Unauthorized.
{
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  const closed = closeOf(socket);
  await opened(socket);
  socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: 'subscription { events { id } }' } }));
  report.beforeInit = await withTimeout(closed, 5000, 'unauthorised close');
}

// 4. A second subscription with an id in use: 4409.
{
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  const closed = closeOf(socket);
  await opened(socket);
  const acked = new Promise((resolve) => socket.on('message', (data) => {
    if (JSON.parse(data.toString()).type === 'connection_ack') resolve();
  }));
  socket.send(JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } }));
  await withTimeout(acked, 5000, 'ack');
  const subscribe = JSON.stringify({ id: 'same', type: 'subscribe', payload: { query: 'subscription { events { id } }' } });
  socket.send(subscribe);
  socket.send(subscribe);
  report.duplicateId = await withTimeout(closed, 5000, 'duplicate id close');
}

// 5. A second connection_init: 4429.
{
  const socket = new WebSocket(wsUrl, 'graphql-transport-ws');
  const closed = closeOf(socket);
  await opened(socket);
  const init = JSON.stringify({ type: 'connection_init', payload: { Authorization: `Bearer ${token}` } });
  socket.send(init);
  socket.send(init);
  report.secondInit = await withTimeout(closed, 5000, 'second init close');
}

process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(0);
