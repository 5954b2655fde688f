// The GraphQL-over-HTTP audit (graphql-http's auditServer, pinned in package.json)
// against a live server, every request signed in as the given token. Prints every
// audit's result as JSON for tests/test_http_spec.py, which fails on anything not "ok".
//
//   node audit.mjs <GraphQL URL> <token>
import { auditServer } from 'graphql-http';

const [url, token] = process.argv.slice(2);

// The audit's requests carry no credentials; ours need them (401 otherwise).
function fetchFn(input, init = {}) {
  const headers = new Headers(init.headers);
  headers.set('authorization', `Bearer ${token}`);
  return fetch(input, { ...init, headers });
}

const results = await auditServer({ url, fetchFn });
const report = [];
for (const result of results) {
  const entry = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    entry.reason = result.reason;
    entry.responseStatus = result.response.status;
    entry.contentType = result.response.headers.get('content-type');
    entry.body = (await result.response.text()).slice(0, 500);
  }
  report.push(entry);
}
process.stdout.write(`${JSON.stringify(report)}\n`);
