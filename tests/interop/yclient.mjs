#!/usr/bin/env node
// A scriptable, real Yjs client for interop tests and benchmarks.
//
// One Y.Doc is connected to a y-websocket server with the stock `WebsocketProvider` (the same code
// a browser editor runs), and the process is driven by newline-delimited JSON on stdin. Every
// command may carry an "id"; its reply echoes it: {"id": .., "ok": true, ...} on success,
// {"id": .., "error": "..."} on failure. Unsolicited events carry an "event" key. See README.md.

import { parseArgs } from 'node:util'
import { createInterface } from 'node:readline'
import WebSocket from 'ws'
import * as Y from 'yjs'
import { WebsocketProvider } from 'y-websocket'

const DEFAULT_TIMEOUT_MS = 10000
const CLOSE_FLUSH_TIMEOUT_MS = 2000

const usage = `usage: node yclient.mjs --url ws://127.0.0.1:PORT/ws --room SHARE_TOKEN [options]
  --param key=value       query parameter sent with every connection (repeatable), e.g. token=...
  --no-text-events        do not emit {"event":"text"} on every change (for load tests)
  --no-awareness-events   do not emit {"event":"awareness"} on awareness changes
  --no-reconnect          treat every server close as final (default: y-websocket reconnects,
                          except after close codes 4400-4499)
  --no-connect            start disconnected; send {"cmd":"connect"} to connect
  --max-backoff-ms N      longest reconnect delay (y-websocket default 2500)`

/** @param {string} message */
const die = (message) => {
  process.stderr.write(`yclient: ${message}\n${usage}\n`)
  process.exit(2)
}

let args
try {
  args = parseArgs({
    options: {
      url: { type: 'string' },
      room: { type: 'string' },
      param: { type: 'string', multiple: true, default: [] },
      'no-text-events': { type: 'boolean', default: false },
      'no-awareness-events': { type: 'boolean', default: false },
      'no-reconnect': { type: 'boolean', default: false },
      'no-connect': { type: 'boolean', default: false },
      'max-backoff-ms': { type: 'string', default: '2500' }
    },
    strict: true,
    allowPositionals: false
  }).values
} catch (err) {
  die(err.message)
}
if (!args.url) die('--url is required')
if (args.room === undefined) die('--room is required')

/** @type {Record<string, string>} */
const params = {}
for (const pair of args.param) {
  const eq = pair.indexOf('=')
  if (eq <= 0) die(`--param expects key=value, got ${JSON.stringify(pair)}`)
  params[pair.slice(0, eq)] = pair.slice(eq + 1)
}
const maxBackoffTime = Number.parseInt(args['max-backoff-ms'], 10)
if (!Number.isFinite(maxBackoffTime) || maxBackoffTime < 0) die('--max-backoff-ms expects a number')

// ---------------------------------------------------------------------------------------------
// output

/** @param {object} message */
const send = (message) => {
  process.stdout.write(JSON.stringify(message) + '\n')
}

/** @param {unknown} err */
const errorText = (err) => (err instanceof Error ? err.message : String(err))

// ---------------------------------------------------------------------------------------------
// the document and the provider

const doc = new Y.Doc()
const ytext = doc.getText('content')

const provider = new WebsocketProvider(args.url, args.room, doc, {
  WebSocketPolyfill: WebSocket,
  params,
  connect: !args['no-connect'],
  // Every byte goes through the server: no BroadcastChannel shortcut between clients.
  disableBc: true,
  maxBackoffTime,
  ...(args['no-reconnect'] ? { shouldReconnect: () => false } : {})
})
const awareness = provider.awareness

// Waiters for state-based commands (wait_text, wait_awareness, wait_synced); re-checked after
// every change that could satisfy them.
/** @type {Set<{check: () => object | null, resolve: (result: object) => void}>} */
const waiters = new Set()

const pokeWaiters = () => {
  for (const waiter of waiters) {
    const result = waiter.check()
    if (result !== null) {
      waiters.delete(waiter)
      waiter.resolve(result)
    }
  }
}

/**
 * Resolve with `check()`'s first non-null result, or reject after `timeoutMs`.
 * @param {() => object | null} check
 * @param {number} timeoutMs
 * @param {() => string} describe what was seen instead, for the timeout error
 * @return {Promise<object>}
 */
const waitUntil = (check, timeoutMs, describe) => {
  const now = check()
  if (now !== null) return Promise.resolve(now)
  return new Promise((resolve, reject) => {
    const waiter = {
      check,
      resolve: (result) => {
        clearTimeout(timer)
        resolve(result)
      }
    }
    const timer = setTimeout(() => {
      waiters.delete(waiter)
      reject(new Error(`timed out after ${timeoutMs} ms; ${describe()}`))
    }, timeoutMs)
    waiters.add(waiter)
  })
}

ytext.observe((_event, transaction) => {
  if (!args['no-text-events']) {
    send({ event: 'text', text: ytext.toString(), local: transaction.local })
  }
  pokeWaiters()
})

const awarenessStates = () => {
  /** @type {Record<string, unknown>} */
  const states = {}
  for (const [clientID, state] of awareness.getStates()) states[clientID] = state
  return states
}

awareness.on('change', ({ added, updated, removed }, origin) => {
  if (!args['no-awareness-events']) {
    send({ event: 'awareness', added, updated, removed, local: origin === 'local' })
  }
  pokeWaiters()
})

provider.on('status', ({ status }) => {
  send({ event: 'status', status })
  pokeWaiters()
})

provider.on('sync', (synced) => {
  send({ event: 'synced', synced })
  pokeWaiters()
})

provider.on('connection-close', (event) => {
  // `event` is null when the close was ours (disconnect(), destroy(), the idle watchdog).
  if (event == null) {
    send({ event: 'connection-close', code: null, reason: null, local: true })
  } else {
    send({ event: 'connection-close', code: event.code, reason: String(event.reason ?? ''), local: false })
  }
  pokeWaiters()
})

provider.on('closed', ({ code, reason }) => {
  // y-websocket gave up reconnecting (4400-4499, or any code with --no-reconnect).
  send({ event: 'closed', code, reason: String(reason ?? '') })
})

provider.on('connection-error', (event) => {
  send({ event: 'connection-error', message: errorText(event?.error ?? event?.message ?? event?.type) })
})

// ---------------------------------------------------------------------------------------------
// commands

/**
 * @param {unknown} value
 * @param {string} name
 * @return {number}
 */
const nonNegativeInt = (value, name) => {
  if (!Number.isInteger(value) || value < 0) {
    throw new Error(`"${name}" must be a non-negative integer, got ${JSON.stringify(value)}`)
  }
  return value
}

/**
 * JSON with object keys sorted, so that two states compare equal regardless of key order.
 * @param {unknown} value
 * @return {string}
 */
const canonicalJson = (value) => JSON.stringify(value, (_key, v) =>
  v !== null && typeof v === 'object' && !Array.isArray(v)
    ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, v[k]]))
    : v)

/** @param {{timeout_ms?: unknown}} command */
const timeoutOf = (command) =>
  command.timeout_ms === undefined ? DEFAULT_TIMEOUT_MS : nonNegativeInt(command.timeout_ms, 'timeout_ms')

let closing = false

/** Destroy the provider, give the close frame a bounded moment to go out, reply, exit 0. */
const shutdown = async (id) => {
  if (closing) return
  closing = true
  const ws = provider.ws
  const closed = ws === null || ws.readyState === WebSocket.CLOSED
    ? Promise.resolve()
    : new Promise((resolve) => {
      const timer = setTimeout(resolve, CLOSE_FLUSH_TIMEOUT_MS)
      ws.once('close', () => {
        clearTimeout(timer)
        resolve()
      })
    })
  // destroy() -> disconnect(): announces our awareness state as removed, then closes the socket.
  provider.destroy()
  doc.destroy()
  await closed
  if (id !== undefined) send({ id, ok: true })
  process.stdout.write('', () => process.exit(0))
}

/** @type {Record<string, (command: any) => object | Promise<object>>} */
const handlers = {
  ping: () => ({ client_id: doc.clientID }),

  insert: (command) => {
    const index = nonNegativeInt(command.index, 'index')
    if (typeof command.text !== 'string') throw new Error('"text" must be a string')
    ytext.insert(index, command.text)
    return { length: ytext.length }
  },

  delete: (command) => {
    const index = nonNegativeInt(command.index, 'index')
    const length = nonNegativeInt(command.length, 'length')
    ytext.delete(index, length)
    return { length: ytext.length }
  },

  text: () => ({ text: ytext.toString() }),

  wait_text: async (command) => {
    if (typeof command.equals !== 'string') throw new Error('"equals" must be a string')
    const expected = command.equals
    return waitUntil(
      () => {
        const text = ytext.toString()
        return text === expected ? { text } : null
      },
      timeoutOf(command),
      () => `text is ${JSON.stringify(ytext.toString())}, expected ${JSON.stringify(expected)}`
    )
  },

  set_awareness: (command) => {
    if (command.state !== null && (typeof command.state !== 'object' || Array.isArray(command.state))) {
      throw new Error('"state" must be an object or null')
    }
    awareness.setLocalState(command.state)
    return { client_id: doc.clientID }
  },

  awareness: () => ({ client_id: doc.clientID, states: awarenessStates() }),

  wait_awareness: async (command) => {
    // Resolves when every given condition holds: "count" = number of known states (ours
    // included); "client_id" + "state" = that client's state deep-equals "state" (null: absent).
    const count = command.count === undefined ? null : nonNegativeInt(command.count, 'count')
    const clientID = command.client_id === undefined ? null : nonNegativeInt(command.client_id, 'client_id')
    if (clientID !== null && !Object.hasOwn(command, 'state')) {
      throw new Error('"client_id" needs "state" (an object, or null for "absent")')
    }
    if (count === null && clientID === null) throw new Error('give "count" and/or "client_id" + "state"')
    const expected = clientID === null ? null : canonicalJson(command.state ?? null)
    const stateOf = () => canonicalJson(awareness.getStates().get(clientID) ?? null)
    return waitUntil(
      () => ((count === null || awareness.getStates().size === count) &&
        (clientID === null || stateOf() === expected)
        ? { client_id: doc.clientID, states: awarenessStates() }
        : null),
      timeoutOf(command),
      () => `${awareness.getStates().size} awareness state(s) known` +
        (count === null ? '' : `, expected ${count}`) +
        (clientID === null ? '' : `; state of ${clientID} is ${stateOf()}, expected ${expected}`)
    )
  },

  wait_synced: async (command) =>
    waitUntil(
      () => (provider.synced ? { synced: true } : null),
      timeoutOf(command),
      () => `not synced (connected: ${provider.wsconnected}, connecting: ${provider.wsconnecting})`
    ),

  state: () => ({ update_b64: Buffer.from(Y.encodeStateAsUpdate(doc)).toString('base64') }),

  status: () => ({
    client_id: doc.clientID,
    connected: provider.wsconnected,
    connecting: provider.wsconnecting,
    synced: provider.synced,
    should_connect: provider.shouldConnect,
    url: provider.url
  }),

  disconnect: () => {
    provider.disconnect()
    return {}
  },

  connect: () => {
    provider.connect()
    return {}
  }
}

/** @param {string} line */
const handleLine = async (line) => {
  if (line.trim() === '') return
  let command
  try {
    command = JSON.parse(line)
  } catch (err) {
    send({ error: `invalid JSON: ${errorText(err)}` })
    return
  }
  if (command === null || typeof command !== 'object' || Array.isArray(command)) {
    send({ error: 'a command must be a JSON object' })
    return
  }
  const id = command.id
  if (command.cmd === 'close') {
    await shutdown(id)
    return
  }
  const handler = Object.hasOwn(handlers, command.cmd) ? handlers[command.cmd] : undefined
  if (handler === undefined) {
    send({ ...(id === undefined ? {} : { id }), error: `unknown command ${JSON.stringify(command.cmd)}` })
    return
  }
  try {
    const result = await handler(command)
    if (!closing) send({ ...(id === undefined ? {} : { id }), ok: true, ...result })
  } catch (err) {
    if (!closing) send({ ...(id === undefined ? {} : { id }), error: errorText(err) })
  }
}

process.on('uncaughtException', (err) => {
  process.stderr.write(`yclient: uncaught exception: ${err?.stack ?? err}\n`)
  send({ error: `uncaught exception: ${errorText(err)}` })
  process.exit(1)
})

const input = createInterface({ input: process.stdin, crlfDelay: Infinity })
input.on('line', (line) => {
  handleLine(line)
})
// The driver went away (or closed our stdin): leave cleanly instead of lingering.
input.on('close', () => {
  shutdown(undefined)
})

send({ event: 'ready', client_id: doc.clientID, url: provider.url })
