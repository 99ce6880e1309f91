// Shared helpers for the client scripts: argument handling, assertions,
// a recording fetch and a runner that reports each step and exits non-zero
// on the first failure.

import { isDeepStrictEqual, inspect } from 'node:util'

// baseURL returns the site origin given as the first argument
// (http://127.0.0.1:<port>), without a trailing slash.
export function baseURL() {
  const raw = process.argv[2]
  if (!raw) {
    console.error(`usage: node ${process.argv[1]} <base URL, e.g. http://127.0.0.1:8080>`)
    process.exit(2)
  }
  return new URL(raw).origin
}

export class CheckError extends Error {}

export function check(cond, msg) {
  if (!cond) throw new CheckError(msg)
}

export function eq(actual, expected, what) {
  if (!isDeepStrictEqual(actual, expected)) {
    throw new CheckError(`${what}: expected ${show(expected)}, got ${show(actual)}`)
  }
}

export function show(v) {
  return inspect(v, { depth: 6, breakLength: Infinity })
}

// rejects runs fn, which must throw; it returns the error.
export async function rejects(fn, what) {
  try {
    await fn()
  } catch (err) {
    if (err instanceof CheckError) throw err
    return err
  }
  throw new CheckError(`${what}: expected the call to fail, but it succeeded`)
}

let seq = 0
export function uniqueName(prefix) {
  seq += 1
  return `${prefix} ${process.pid}-${seq}`
}

// recorder wraps fetch and keeps every request and the status it got.
// intercept(url, init) may return a Response to answer a request itself
// (used only for endpoints the plugin does not serve, such as /token).
export function recorder(intercept) {
  const log = []
  const fn = async (input, init = {}) => {
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url
    const headers = new Headers(init.headers ?? (input instanceof Request ? input.headers : undefined))
    const entry = {
      method: (init.method ?? 'GET').toUpperCase(),
      url,
      headers: Object.fromEntries(headers.entries()),
      body: typeof init.body === 'string' ? init.body : init.body instanceof URLSearchParams ? init.body.toString() : undefined,
    }
    log.push(entry)
    const own = intercept ? await intercept(entry) : undefined
    const res = own ?? (await fetch(input, init))
    entry.status = res.status
    return res
  }
  return { fetch: fn, log, last: () => log[log.length - 1], clear: () => log.splice(0) }
}

// describeError renders an error with the details client libraries attach.
export function describeError(err) {
  if (!(err instanceof Error)) return show(err)
  const extra = {}
  for (const k of ['code', 'error', 'error_description', 'status', 'errorCode', 'body', 'cause', 'response']) {
    if (err[k] !== undefined && k !== 'response') extra[k] = err[k]
  }
  if (err.response?.statusCode !== undefined) extra.statusCode = err.response.statusCode
  if (err.response?.body !== undefined) extra.responseBody = err.response.body
  const tail = Object.keys(extra).length ? ` ${show(extra)}` : ''
  return `${err.name}: ${err.message}${tail}${err instanceof CheckError ? '' : `\n${err.stack}`}`
}

// run executes the named steps in order; it prints one line per step and
// exits 1 at the first failure with the step's name and the error.
export async function run(script, steps) {
  for (const [name, fn] of steps) {
    try {
      await fn()
      console.log(`ok   ${script}: ${name}`)
    } catch (err) {
      console.error(`FAIL ${script}: ${name}\n     ${describeError(err)}`)
      process.exit(1)
    }
  }
  console.log(`${script}: ${steps.length} steps passed`)
}
