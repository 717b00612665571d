// Mints clickthru attribution tokens (format v1, docs/tokens.md) in Node.js 18 or later.
// One file, no dependencies: copy it into your service.
//
//   const { mintToken } = require("./clickthru-token.cjs");
//   // or: import { mintToken } from "./clickthru-token.cjs";
//   const token = mintToken({
//     site: "bookshop", keyId: "k1", secret: process.env.CLICKTHRU_SECRET, // hex, as printed
//     listId: "3f2a9c", item: "emma", position: 1, placement: "product-page-bottom",
//     variant: "B", // optional: the model or experiment arm that served the list
//   });
"use strict";

const { createHmac } = require("node:crypto");

const VERSION = "v1";
const MAC_BYTES = 16;
const DEFAULT_TTL = 7 * 24 * 3600;
const MAX_TOKEN_LENGTH = 1024;
const MAX_FIELD_LENGTH = 200; // characters (code points), not UTF-16 units
const MAX_POSITION = 2 ** 31 - 1;
const MAX_TIME = Number.MAX_SAFE_INTEGER; // 2^53 - 1 unix seconds

// msgpack, only what the claims need: strings, non-negative integers, one array.
// Always the shortest form, as the reference encoder writes it.
function msgpackString(text) {
  const utf8 = Buffer.from(text, "utf8");
  const n = utf8.length;
  let head;
  if (n < 32) head = Buffer.from([0xa0 | n]);
  else if (n < 0x100) head = Buffer.from([0xd9, n]);
  else if (n < 0x10000) head = Buffer.from([0xda, n >> 8, n & 0xff]);
  else throw new RangeError("a string this long cannot fit in a token");
  return Buffer.concat([head, utf8]);
}

function msgpackUint(value) {
  if (value < 0x80) return Buffer.from([value]);
  if (value < 0x100) return Buffer.from([0xcc, value]);
  if (value < 0x10000) return Buffer.from([0xcd, value >>> 8, value & 0xff]);
  if (value < 2 ** 32) {
    const out = Buffer.alloc(5, 0xce);
    out.writeUInt32BE(value, 1);
    return out;
  }
  const out = Buffer.alloc(9, 0xcf);
  out.writeBigUInt64BE(BigInt(value), 1);
  return out;
}

function text(name, value) {
  if (typeof value !== "string") throw new TypeError(`${name} must be a string`);
  if (/\p{Surrogate}/u.test(value)) throw new RangeError(`${name} has a lone surrogate`);
  return value;
}

function limitedText(name, value) {
  const length = [...text(name, value)].length;
  if (length < 1 || length > MAX_FIELD_LENGTH) {
    throw new RangeError(`${name} must be 1 to ${MAX_FIELD_LENGTH} characters`);
  }
  return value;
}

function integer(name, value, min, max) {
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${name} must be an integer from ${min} to ${max}`);
  }
  return value;
}

function secretBytes(secret) {
  // The key is the secret's bytes; its hex text as the key would sign with the wrong key.
  if (typeof secret === "string") {
    if (!/^(?:[0-9a-fA-F]{2})+$/.test(secret)) {
      throw new TypeError("secret must be hex, as `clickthru site add` prints it");
    }
    return Buffer.from(secret, "hex");
  }
  if (secret instanceof Uint8Array && secret.length > 0) return secret;
  throw new TypeError("secret must be a hex string or bytes");
}

/**
 * Sign one recommended link.
 * @param {object} claims
 * @param {string} claims.site         the site's name
 * @param {string} claims.keyId        the signing key's id ("k1", ...)
 * @param {string|Uint8Array} claims.secret  the signing secret: hex text, or its bytes
 * @param {string} claims.listId       the recommendation list shown
 * @param {string} claims.item         the recommended item
 * @param {number} claims.position     1-based
 * @param {string} claims.placement    where the list is shown
 * @param {number} [claims.ttl]        seconds the token stays valid (default 7 days)
 * @param {number} [claims.now]        issue time, unix seconds (default: now)
 * @param {string} [claims.variant]    the model or experiment arm that served the list
 * @returns {string} "v1.<payload>.<mac>"
 */
function mintToken({ site, keyId, secret, listId, item, position, placement, ttl, now, variant }) {
  const key = secretBytes(secret);
  ttl = ttl === undefined ? DEFAULT_TTL : integer("ttl", ttl, 1, MAX_TIME);
  if (now !== undefined && typeof now !== "number") throw new TypeError("now must be a number");
  const issued = Math.floor(now === undefined ? Date.now() / 1000 : now);
  if (!(issued >= 0 && issued + ttl <= MAX_TIME)) {
    throw new RangeError(`issue and expiry times must be 0 to ${MAX_TIME} (unix seconds)`);
  }
  const withVariant = variant !== undefined && variant !== null;
  const payload = Buffer.concat([
    Buffer.from([withVariant ? 0x99 : 0x98]), // an array of 9 with a variant, else 8
    msgpackString(text("site", site)),
    msgpackString(text("keyId", keyId)),
    msgpackString(limitedText("listId", listId)),
    msgpackString(limitedText("item", item)),
    msgpackUint(integer("position", position, 1, MAX_POSITION)),
    msgpackString(limitedText("placement", placement)),
    msgpackUint(issued),
    msgpackUint(issued + ttl),
    ...(withVariant ? [msgpackString(limitedText("variant", variant))] : []),
  ]);
  const signed = `${VERSION}.${payload.toString("base64url")}`;
  const mac = createHmac("sha256", key).update(signed, "ascii").digest();
  const token = `${signed}.${mac.subarray(0, MAC_BYTES).toString("base64url")}`;
  if (token.length > MAX_TOKEN_LENGTH) {
    throw new RangeError(
      `the token would be ${token.length} characters, over ${MAX_TOKEN_LENGTH}:` +
        " shorten listId, item, placement or variant",
    );
  }
  return token;
}

module.exports = { mintToken, DEFAULT_TTL };
