// GraphiQL for flows-graphql, from the build vendored beside this file (no CDN).
// The editor starts with the README's dashboard query; the Headers tab is open for the
// `Authorization` header. Headers are not saved in the browser: tokens are credentials.
(function () {
  'use strict';

  // The README's dashboard query, verbatim (tests/test_graphiql.py checks it).
  var DASHBOARD = `# The README's dashboard query. Paste a token printed by \`serve --demo\` into
# Headers below as { "Authorization": "Bearer <token>" }, then press ▶ (Ctrl-Enter).
{
  esco(code: "solarvale") {
    name
    customers(first: 20) {
      totalCount
      pageInfo { hasNextPage endCursor }
      nodes {
        email
        currentTariff { unitRate standingCharge discountPercent }
        accounts {
          role
          account {
            accountNumber
            property {
              plot
              supplyMeter {
                serial
                circuits { type }
                monthlyUsage(from: "2025-12-01") { month powerKwh heatKwh costs { total savings } }
              }
            }
          }
        }
      }
    }
  }
}
`;

  // This page's own URL, so the API is found behind a path prefix too.
  var url = window.location.href.split(/[?#]/)[0];

  // Subscriptions go over graphql-transport-ws on the same path (GraphiQL's bundled
  // graphql-ws client); the Headers editor's JSON is sent as connection_init's payload,
  // which is where the server reads credentials (docs/live-updates.md).
  var socketUrl = url.replace(/^http/, 'ws');

  function makeFetcher() {
    return GraphiQL.createFetcher({ url: url, subscriptionUrl: socketUrl });
  }

  function FlowsGraphiQL() {
    // A new fetcher makes GraphiQL introspect again: the schema (docs, completion)
    // arrives once a valid header is in place, without a reload.
    var state = React.useState(makeFetcher);
    var fetcher = state[0];
    var setFetcher = state[1];
    var last = React.useRef(null);
    var timer = React.useRef(null);

    function onEditHeaders(text) {
      clearTimeout(timer.current);
      timer.current = setTimeout(function () {
        try {
          JSON.parse(text || '{}');
        } catch (e) {
          return;
        }
        if (text !== last.current) {
          last.current = text;
          setFetcher(makeFetcher);
        }
      }, 400);
    }

    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      defaultQuery: DASHBOARD,
      defaultEditorToolsVisibility: 'headers',
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: false,
      inputValueDeprecation: true,
      onEditHeaders: onEditHeaders,
    });
  }

  ReactDOM.createRoot(document.getElementById('graphiql')).render(
    React.createElement(FlowsGraphiQL),
  );
})();
