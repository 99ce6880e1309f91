// openid-client 5.7.1 (legacy CommonJS API, installed as "openid-client-v5"),
// used unmodified: Issuer.discover on the RFC 8414 well-known URL,
// Client.register (RFC 7591, expects 201) and Client.fromUri (RFC 7592 read
// with the registration access token, expects 200).
//
// usage: node openid-client-v5.mjs http://127.0.0.1:<port>

import v5 from 'openid-client-v5'
import { baseURL, check, eq, rejects, run, uniqueName } from './lib.mjs'

const { Issuer, custom, errors } = v5
custom.setHttpOptionsDefaults({ timeout: 10000 })

const base = baseURL()
let issuer

// Members left out of the comparison with the read response (RFC 7592
// section 3): the secret is only returned when issued (the plugin keeps its
// hash only), and the read repeats the token it was given, which a PUT
// replaces.
const issuedOnly = new Set(['client_secret', 'registration_access_token'])

// registerAndRead registers metadata, reads the client back with fromUri and
// checks that both views agree.
async function registerAndRead(metadata) {
  const c = await issuer.Client.register(metadata)
  check(typeof c.client_id === 'string' && c.client_id.length > 0, 'client_id missing')
  check(typeof c.registration_access_token === 'string' && c.registration_access_token.length > 0, 'registration_access_token missing')
  eq(c.registration_client_uri, `${base}/register/${encodeURIComponent(c.client_id)}`, 'registration_client_uri')
  eq(c.redirect_uris, metadata.redirect_uris, 'echoed redirect_uris')

  const again = await issuer.Client.fromUri(c.registration_client_uri, c.registration_access_token)
  eq(again.client_id, c.client_id, 'client_id read back with fromUri')
  const registered = Object.fromEntries(Object.entries(c.metadata).filter(([k]) => !issuedOnly.has(k)))
  const read = Object.fromEntries(Object.entries(again.metadata).filter(([k]) => !issuedOnly.has(k)))
  eq(read, registered, 'metadata read back with fromUri (less client_secret and registration_access_token)')
  return { c, again }
}

await run('openid-client-v5', [
  ['Issuer.discover(<base>/.well-known/oauth-authorization-server)', async () => {
    issuer = await Issuer.discover(`${base}/.well-known/oauth-authorization-server`)
    eq(issuer.issuer, base, 'issuer')
    eq(issuer.registration_endpoint, `${base}/register`, 'registration_endpoint')
    eq(issuer.token_endpoint, `${base}/token`, 'token_endpoint')
    check(issuer.code_challenge_methods_supported?.includes('S256'), 'code_challenge_methods_supported lacks S256')
  }],

  ['confidential client: Client.register then Client.fromUri returns the same client', async () => {
    const metadata = {
      client_name: uniqueName('oidc5 confidential'),
      redirect_uris: ['https://app.example/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
      contacts: ['ops@app.example'],
      client_uri: 'https://app.example/',
      scope: 'openid profile',
    }
    const { c, again } = await registerAndRead(metadata)
    check(typeof c.client_secret === 'string' && c.client_secret.length >= 32, 'client_secret missing or short')
    eq(typeof c.client_secret_expires_at, 'number', 'type of client_secret_expires_at')
    eq(c.token_endpoint_auth_method, 'client_secret_basic', 'token_endpoint_auth_method')
    for (const k of ['client_name', 'grant_types', 'response_types', 'contacts', 'client_uri', 'scope']) {
      eq(again[k], metadata[k], `${k} read back`)
    }
  }],

  ['public client: Client.register then Client.fromUri', async () => {
    const metadata = {
      client_name: uniqueName('oidc5 public'),
      redirect_uris: ['http://127.0.0.1:33418/callback', 'http://localhost:33418/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }
    const { c, again } = await registerAndRead(metadata)
    eq(c.client_secret, undefined, 'client_secret of a public client')
    eq(again.token_endpoint_auth_method, 'none', 'token_endpoint_auth_method read back')
  }],

  ['fromUri with a wrong registration access token fails with OPError invalid_token (401)', async () => {
    const c = await issuer.Client.register({ redirect_uris: ['https://app.example/cb3'] })
    const err = await rejects(() => issuer.Client.fromUri(c.registration_client_uri, 'not-the-token'), 'fromUri with a wrong token')
    check(err instanceof errors.OPError, `expected OPError, got ${err?.name}: ${err?.message}`)
    eq(err.error, 'invalid_token', 'OAuth error (from the body or the WWW-Authenticate challenge)')
    eq(err.response?.statusCode, 401, 'HTTP status')
  }],

  ['Client.register with a fragment in a redirect URI fails with OPError invalid_redirect_uri', async () => {
    const err = await rejects(() => issuer.Client.register({ redirect_uris: ['https://c.example/cb#frag'] }), 'register with a fragment')
    check(err instanceof errors.OPError, `expected OPError, got ${err?.name}: ${err?.message}`)
    eq(err.error, 'invalid_redirect_uri', 'OAuth error')
    eq(err.response?.statusCode, 400, 'HTTP status')
  }],
])
