#!/usr/bin/env node
// Drives the npm package sm-crypto (an independent SM2/SM3 implementation) for the
// interop tests in tests/integration/test_sm2_interop.py.
//
// Input (stdin): {"ops": [op, ...]}; output (stdout): {"version": "...", "results": [...]},
// one result per op, in order. Every byte string crosses the boundary as hex so that
// nothing is re-encoded on the way.
//
// sm-crypto's conventions, which this driver pins down (checked in its src/sm2/index.js):
//   * msg: a JS string is hashed as its UTF-8 bytes; anything else goes through
//     arrayToHex(), which only works for a plain Array of byte values (a Uint8Array or
//     Buffer is silently mangled, because Uint8Array.map cannot hold hex strings).
//     So bytes are passed as Array.from(Buffer) unless an op asks for a string.
//   * userId: always a JS string, hashed as its UTF-8 bytes; undefined means
//     "1234567812345678"; "" is used as an empty ID, without complaint.
//   * keys: private key as 64 hex digits; public key as "04" || x || y in hex.
//   * signatures: DER as hex when {der: true}, else r || s as 128 hex digits.
//
// Ops:
//   {"op": "sign", "msg_hex", "priv_hex", "pub_hex", "user_id"?, "der"?, "msg_as"?}
//       -> {"sig_hex"}
//   {"op": "verify", "msg_hex", "sig_hex", "pub_hex", "user_id"?, "der"?, "msg_as"?}
//       -> {"valid": bool}
//   {"op": "sm3", "msg_hex"} -> {"digest_hex"}
//   {"op": "pub_from_priv", "priv_hex"} -> {"pub_hex"}
// "msg_as": "bytes" (default: a plain Array of the bytes) or "string" (the bytes are
// decoded as UTF-8 and handed over as a JS string, as most callers of sm-crypto do).
'use strict'

const path = require('path')
const { sm2, sm3 } = require('sm-crypto')
const version = require(path.join(path.dirname(require.resolve('sm-crypto')), '..', 'package.json')).version

function message(op) {
  const buf = Buffer.from(op.msg_hex, 'hex')
  if (op.msg_as === 'string') return buf.toString('utf8')
  return Array.from(buf)
}

function options(op) {
  const opts = { hash: true, der: op.der !== false }
  // only set userId when given: sm-crypto's default applies to undefined alone
  if (Object.prototype.hasOwnProperty.call(op, 'user_id')) opts.userId = op.user_id
  return opts
}

function run(op) {
  switch (op.op) {
    case 'sign': {
      const opts = options(op)
      // pass the public key so sm-crypto does not re-derive it for Z_A
      if (op.pub_hex) opts.publicKey = op.pub_hex
      return { sig_hex: sm2.doSignature(message(op), op.priv_hex, opts) }
    }
    case 'verify':
      return { valid: sm2.doVerifySignature(message(op), op.sig_hex, op.pub_hex, options(op)) }
    case 'sm3':
      return { digest_hex: sm3(Array.from(Buffer.from(op.msg_hex, 'hex'))) }
    case 'pub_from_priv':
      return { pub_hex: sm2.getPublicKeyFromPrivateKey(op.priv_hex) }
    default:
      throw new Error(`unknown op ${op.op}`)
  }
}

function main() {
  const chunks = []
  process.stdin.on('data', (c) => chunks.push(c))
  process.stdin.on('end', () => {
    const request = JSON.parse(Buffer.concat(chunks).toString('utf8'))
    const results = request.ops.map(run)
    process.stdout.write(JSON.stringify({ version, results }))
  })
}

main()
