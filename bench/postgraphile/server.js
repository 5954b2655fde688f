// PostGraphile 4 over the bench database: the comparator of the dashboard and app scenarios.
//
// Started by bench/servers.py with NODE_PATH pointing at bench/.postgraphile/node_modules
// (installed by bench/setup.sh). Environment:
//   DATABASE_URL       the bench database (connects as its owner, like our migrations)
//   PORT               loopback port to listen on
//   WORKERS            processes (node cluster), like `flows-graphql serve --workers N`
//   ESCO_IDS           value of flows.esco_ids for every request (row-level security)
//
// Fairness: every request runs, like ours, as role flows_api with the tenant setting, so
// PostgreSQL applies the same row-level security policies to both servers.
"use strict";

const cluster = require("node:cluster");
const http = require("node:http");
const { Pool } = require("pg");
const { postgraphile } = require("postgraphile");
const PgSimplifyInflectorPlugin = require("@graphile-contrib/pg-simplify-inflector");
const ConnectionFilterPlugin = require("postgraphile-plugin-connection-filter");

const workers = Number(process.env.WORKERS || "1");
const port = Number(process.env.PORT || "8711");

if (cluster.isPrimary && workers > 1) {
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on("exit", (worker, code) => {
    console.error(`worker ${worker.process.pid} exited with ${code}`);
  });
} else {
  // As many connections as ours may open (FLOWS_DB_POOL_SIZE 10 plus 10 overflow).
  const pool = new Pool({ connectionString: process.env.DATABASE_URL, max: 20 });
  const middleware = postgraphile(pool, "public", {
    appendPlugins: [PgSimplifyInflectorPlugin, ConnectionFilterPlugin],
    // Lists as plain arrays as well as connections: the dashboard's nested lists are
    // arrays in our schema too.
    simpleCollections: "both",
    // Range filters (month between from and to) need the connection-filter plugin;
    // allow it only on the columns the queries filter on.
    graphileBuildOptions: {
      connectionFilterAllowedOperators: ["equalTo", "greaterThanOrEqualTo", "lessThanOrEqualTo"],
      connectionFilterComputedColumns: false,
      connectionFilterSetofFunctions: false,
    },
    pgSettings: {
      role: "flows_api",
      "flows.esco_ids": process.env.ESCO_IDS || "*",
    },
    disableQueryLog: true,
    graphiql: false,
    enableQueryBatching: false,
    watchPg: false,
    retryOnInitFail: false,
    extendedErrors: [],
  });
  http.createServer(middleware).listen(port, "127.0.0.1", () => {
    console.log(`postgraphile ${process.pid} on http://127.0.0.1:${port}/graphql`);
  });
}
