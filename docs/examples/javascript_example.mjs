// keygate from JavaScript (Node 18+, fetch): list tracked symbols, claim backfill work, report it.
//   NODE_EXTRA_CA_CERTS=.run/tls/cert.pem KG_URL=https://127.0.0.1:8443 \
//   KG_ADMIN_KEY=$(cat .run/admin.key) node docs/examples/javascript_example.mjs
// (Node reads the self-signed development CA from NODE_EXTRA_CA_CERTS.)
const url = process.env.KG_URL ?? "https://127.0.0.1:8443";
const headers = { "X-API-Key": process.env.KG_ADMIN_KEY, "Content-Type": "application/json" };

async function call(method, path, body) {
  const response = await fetch(url + path, { method, headers, body: body && JSON.stringify(body) });
  const payload = response.status === 204 ? null : await response.json();
  if (!response.ok) {
    // RFC 9457 problem details
    throw new Error(`${method} ${path}: ${payload.status} ${payload.detail} (request ${payload.request_id})`);
  }
  return payload;
}

const symbol = "JS" + Math.random().toString(36).slice(2, 6).toUpperCase().replace(/[0-9]/g, "X");
await call("POST", "/api/v1/admin/symbols", { symbol, asset_class: "stock" });
const page = await call("GET", "/api/v1/admin/symbols?limit=5");
const claim = await call("POST", "/api/v1/admin/backfill/claim", { limit: 100 });
const mine = claim.items.find((s) => s.symbol === symbol);
if (!mine) throw new Error(`${symbol} was not claimable`);
await call("PUT", `/api/v1/admin/symbols/${symbol}`, { backfill_status: "completed" });
const done = await call("GET", `/api/v1/admin/symbols/${symbol}`);
console.log(`listed ${page.items.length}, claimed ${claim.items.length}, ${symbol} is ${done.backfill_status} (last ${done.last_backfill})`);
if (done.backfill_status !== "completed" || !done.last_backfill) process.exit(1);
