// Mints a token for each vector input read as JSON from stdin; writes, for each,
// {"token": ...} or {"error": ...} as JSON. Inputs without issued_at or ttl get the
// function's defaults (now, 7 days).
"use strict";
const { readFileSync } = require("node:fs");
const { mintToken } = require("../clients/node/clickthru-token.cjs");

const results = JSON.parse(readFileSync(0, "utf8")).map((given) => {
  try {
    return {
      token: mintToken({
        site: given.site,
        keyId: given.key_id,
        secret: given.secret_hex,
        listId: given.list_id,
        item: given.item,
        position: given.position,
        placement: given.placement,
        ttl: given.ttl,
        now: given.issued_at,
        variant: given.variant,
      }),
    };
  } catch (error) {
    return { error: `${error.name}: ${error.message}` };
  }
});
process.stdout.write(JSON.stringify(results));
