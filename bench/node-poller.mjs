// The baseline a peer tool would be: Node.js global fetch (undici, keep-alive), a fixed number of
// workers, JSON.parse of each body. Used by bench/raw.py.
//
//     node bench/node-poller.mjs URLS_FILE CONCURRENCY TOKEN
//
// URLS_FILE has one URL a line. Exits 1 when any request fails or an answer is not JSON.
import { randomUUID } from "node:crypto";
import { readFileSync } from "node:fs";

const [file, concurrencyArg, token] = process.argv.slice(2);
const urls = readFileSync(file, "utf8").split("\n").filter((u) => u.length > 0);
const concurrency = Number(concurrencyArg) || 64;
// the headers provwatch sends (fetch itself asks for compressed answers)
const fixed = {
  Authorization: `Bearer ${token}`,
  Accept: "application/json",
  "X-Locale": "en-US",
  "User-Agent": "provwatch/0.1.0",
};

let next = 0;
let failed = 0;
let items = 0;

async function worker() {
  while (next < urls.length) {
    const url = urls[next++];
    try {
      const headers = { ...fixed, "MS-CorrelationId": randomUUID(), "MS-RequestId": randomUUID() };
      const res = await fetch(url, { headers });
      let text = await res.text();
      if (res.status !== 200) {
        failed++;
        continue;
      }
      if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
      items += JSON.parse(text).items.length;
    } catch (e) {
      failed++;
    }
  }
}

await Promise.all(Array.from({ length: concurrency }, worker));
process.stderr.write(`node-poller: ${urls.length} URLs, ${items} line items, ${failed} failed\n`);
process.exit(failed ? 1 : 0);
