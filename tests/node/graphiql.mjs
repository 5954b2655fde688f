// GraphiQL in a real headless Chromium, as a user would use it: open /graphql, type the
// Authorization header into the Headers editor, put in a query, press Run, read the
// result pane. Prints a JSON report for tests/test_graphiql.py, which asserts on it.
//
//   node graphiql.mjs <server base URL> <token> <file with the query> [screenshot.png]
//                     [file with a subscription]
// With a subscription, it is run after the query: its first result, and the frames the
// page sent over its WebSocket, are in the report too.
import { readFileSync } from 'node:fs';
import { chromium } from 'playwright-core';

const [base, token, queryFile, screenshot, subscriptionFile] = process.argv.slice(2);
const query = readFileSync(queryFile, 'utf8');
const origin = new URL(base).origin;
const started = Date.now();
const report = {
  requests: [],
  external: [],
  failed: [],
  consoleErrors: [],
  pageErrors: [],
  graphqlRequests: [],
};
// Before the header is typed GraphiQL's schema request is refused (401): expected, and
// kept apart from what happens once the header is in place.
let phase = 'before header';

const browser = await chromium.launch({
  executablePath: process.env.FLOWS_CHROMIUM || '/usr/bin/chromium',
  headless: true,
  // This machine has no internet: without these, Chromium's own background
  // connections stall it. Playwright gives it a fresh --user-data-dir of its own.
  args: [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  // Anything not on our server is refused and reported: the page must need nothing else.
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (url.startsWith(origin) || url.startsWith('data:')) return route.continue();
    report.external.push(url);
    return route.abort();
  });
  page.on('request', (request) => report.requests.push(`${request.method()} ${request.url()}`));
  page.on('requestfailed', (request) =>
    report.failed.push(`${request.url()} ${request.failure()?.errorText}`),
  );
  page.on('console', (message) => {
    if (message.type() === 'error') report.consoleErrors.push(`${phase}: ${message.text()}`);
  });
  page.on('response', async (response) => {
    const request = response.request();
    if (request.method() !== 'POST' || !response.url().startsWith(`${base}/graphql`)) return;
    report.graphqlRequests.push({
      phase,
      status: response.status(),
      authorization: request.headers()['authorization'] || null,
      accept: request.headers()['accept'] || null,
      body: JSON.parse(request.postData() || 'null'),
    });
  });
  page.on('pageerror', (error) => report.pageErrors.push(String(error)));
  report.socketFrames = [];
  page.on('websocket', (socket) => {
    report.socketUrl = socket.url();
    socket.on('framesent', (frame) => report.socketFrames.push(JSON.parse(frame.payload)));
  });

  await page.goto(`${base}/graphql`, { waitUntil: 'load' });
  report.title = await page.title();
  await page.waitForSelector('.graphiql-query-editor .CodeMirror', { timeout: 20000 });
  report.loadedMs = Date.now() - started;
  report.defaultQuery = await page.evaluate(
    () => document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.getValue(),
  );

  // The Headers tab (the page opens it; a user may have closed it), then the editor.
  const headersTab = page.locator('.graphiql-editor-tools button[data-name="headers"]');
  report.headersTabOpen = ((await headersTab.getAttribute('class')) || '').includes('active');
  if (!report.headersTabOpen) await headersTab.click();
  const headersEditor = page.locator('.graphiql-editor-tool .graphiql-editor:not(.hidden) .CodeMirror');
  await headersEditor.click();
  await page.keyboard.press('Control+A');
  await page.keyboard.press('Delete');
  // The page asks for the schema again once the headers hold valid JSON.
  const schemaFetched = page.waitForResponse(
    (response) =>
      response.request().method() === 'POST' &&
      !!response.request().headers()['authorization'] &&
      (response.request().postData() || '').includes('IntrospectionQuery'),
    { timeout: 20000 },
  );
  // Typed key by key; the editor closes brackets and quotes as it goes, as for a user.
  await page.keyboard.type(`{"Authorization": "Bearer ${token}"}`);
  report.headersText = await headersEditor.evaluate((el) => el.CodeMirror.getValue());
  phase = 'with header';
  await schemaFetched;

  // The query: set in the editor as a paste would (typing it would fight the
  // editor's auto-indent and bracket closing).
  await page.evaluate((text) => {
    document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
  }, query);

  const answered = page.waitForResponse(
    (response) =>
      response.url().startsWith(`${base}/graphql`) &&
      response.request().method() === 'POST' &&
      (response.request().postData() || '').includes('esco('),
    { timeout: 20000 },
  );
  await page.locator('.graphiql-execute-button').click();
  await answered;

  // The result pane, once GraphiQL has written the answer into it.
  await page.waitForFunction(
    () => {
      const pane = document.querySelector('.result-window .CodeMirror');
      return pane && pane.CodeMirror.getValue().includes('"data"');
    },
    null,
    { timeout: 20000 },
  );
  report.resultText = await page.evaluate(() =>
    document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
  );
  // What a person sees: the rendered text of the pane's visible lines.
  report.resultVisibleText = await page.locator('.result-window').innerText();
  if (screenshot) await page.screenshot({ path: screenshot });

  if (subscriptionFile) {
    const subscription = readFileSync(subscriptionFile, 'utf8');
    await page.evaluate((text) => {
      document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(text);
    }, subscription);
    // GraphiQL picks the transport from the editor's parsed document, which it updates
    // shortly after a change: clicking at once could send the subscription over HTTP.
    await page.waitForTimeout(1500);
    await page.locator('.graphiql-execute-button').click();
    await page.waitForFunction(
      () => {
        const pane = document.querySelector('.result-window .CodeMirror');
        return pane && pane.CodeMirror.getValue().includes('"events"');
      },
      null,
      { timeout: 20000 },
    );
    report.subscriptionText = await page.evaluate(() =>
      document.querySelector('.result-window .CodeMirror').CodeMirror.getValue(),
    );
    // Stop it (the button toggles) before the browser closes.
    await page.locator('.graphiql-execute-button').click();
  }
} finally {
  await browser.close();
}
report.totalMs = Date.now() - started;
process.stdout.write(`${JSON.stringify(report)}\n`);
