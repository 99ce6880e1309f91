// openid-client 6.x (panva), used unmodified: RFC 8414 discovery with
// algorithm 'oauth2' and RFC 7591 registration through
// dynamicClientRegistration (which validates the response with oauth4webapi:
// status 201, client_id, client_secret_expires_at when a secret is issued).
//
// usage: node openid-client-v6.mjs http://127.0.0.1:<port>

import * as client from 'openid-client'
import { baseURL, check, eq, rejects, recorder, run, uniqueName } from './lib.mjs'

const base = baseURL()
const server = new URL(base)

// Only the token endpoint is answered locally (the plugin does not serve
// it): that shows which client authentication the library derived from the
// registration response.
const token = recorder((req) => {
  if (req.url === `${base}/token`) {
    return Response.json({ access_token: 'at-test', token_type: 'Bearer', expires_in: 60 })
  }
})

function options(rec) {
  return {
    algorithm: 'oauth2',
    execute: [client.allowInsecureRequests],
    [client.customFetch]: rec.fetch,
    timeout: 10,
  }
}

// register runs dynamicClientRegistration and checks the exchange.
async function register(metadata, clientAuthentication) {
  const rec = recorder()
  const config = await client.dynamicClientRegistration(server, metadata, clientAuthentication, options(rec))
  eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`), [
    `GET ${base}/.well-known/oauth-authorization-server 200`,
    `POST ${base}/register 201`,
  ], 'requests made by dynamicClientRegistration')
  const post = rec.log[1]
  eq(post.headers['content-type'], 'application/json', 'registration request Content-Type')
  eq(post.headers.accept, 'application/json', 'registration request Accept')
  const c = config.clientMetadata()
  check(typeof c.client_id === 'string' && c.client_id.length > 0, `client_id missing: ${JSON.stringify(c)}`)
  eq(typeof c.client_id_issued_at, 'number', 'type of client_id_issued_at')
  check(typeof c.registration_access_token === 'string' && c.registration_access_token.length > 0, 'registration_access_token missing')
  eq(c.registration_client_uri, `${base}/register/${encodeURIComponent(c.client_id)}`, 'registration_client_uri')
  eq(c.redirect_uris, metadata.redirect_uris, 'echoed redirect_uris')
  if (metadata.client_name) eq(c.client_name, metadata.client_name, 'echoed client_name')
  if (metadata.grant_types) eq(c.grant_types, metadata.grant_types, 'echoed grant_types')
  return { config, c }
}

// tokenRequest makes a refresh_token grant (the registered clients have that
// grant type) and returns the request the library sent.
async function tokenRequest(config) {
  config[client.customFetch] = token.fetch
  token.clear()
  const tokens = await client.refreshTokenGrant(config, 'rt-test')
  eq(tokens.access_token, 'at-test', 'access_token from the stubbed token endpoint')
  eq(token.log.length, 1, 'token requests')
  const req = token.log[0]
  eq(req.url, `${base}/token`, 'token request URL (token_endpoint from the metadata)')
  return { body: new URLSearchParams(req.body), headers: req.headers }
}

let meta

await run('openid-client-v6', [
  ['discovery (algorithm oauth2) finds the RFC 8414 metadata', async () => {
    const rec = recorder()
    const config = await client.discovery(server, 'not-registered-yet', undefined, undefined, options(rec))
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`),
      [`GET ${base}/.well-known/oauth-authorization-server 200`], 'discovery requests')
    meta = config.serverMetadata()
    eq(meta.issuer, base, 'issuer')
    eq(meta.registration_endpoint, `${base}/register`, 'registration_endpoint')
    eq(meta.authorization_endpoint, `${base}/authorize`, 'authorization_endpoint')
    eq(meta.token_endpoint, `${base}/token`, 'token_endpoint')
    check(meta.supportsPKCE('S256'), `supportsPKCE('S256') is false; code_challenge_methods_supported=${JSON.stringify(meta.code_challenge_methods_supported)}`)
    check(meta.response_types_supported?.includes('code'), 'response_types_supported lacks code')
  }],

  ['confidential client (client_secret_post): secret issued, ClientSecretPost used by default', async () => {
    const metadata = {
      client_name: uniqueName('oidc6 confidential'),
      redirect_uris: ['https://app.example/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
    }
    const { config, c } = await register(metadata)
    check(typeof c.client_secret === 'string' && c.client_secret.length >= 32, `client_secret missing or short: ${JSON.stringify(c.client_secret)}`)
    eq(typeof c.client_secret_expires_at, 'number', 'type of client_secret_expires_at')
    check(c.client_secret_expires_at >= 0, 'client_secret_expires_at is negative')
    eq(c.token_endpoint_auth_method, 'client_secret_post', 'echoed token_endpoint_auth_method')
    const { body, headers } = await tokenRequest(config)
    eq(body.get('client_id'), c.client_id, 'client_id in the token request body')
    eq(body.get('client_secret'), c.client_secret, 'client_secret in the token request body')
    eq(headers.authorization, undefined, 'Authorization header of the token request')
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: metadata.redirect_uris[0],
      code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
      code_challenge_method: 'S256',
    })
    eq(url.origin + url.pathname, `${base}/authorize`, 'authorization URL')
    eq(url.searchParams.get('client_id'), c.client_id, 'client_id in the authorization URL')
  }],

  ['confidential client without a method: server default client_secret_basic works with ClientSecretBasic', async () => {
    const metadata = { client_name: uniqueName('oidc6 basic'), redirect_uris: ['https://app.example/cb2'] }
    const { config, c } = await register(metadata, client.ClientSecretBasic())
    check(typeof c.client_secret === 'string' && c.client_secret.length > 0, 'client_secret missing')
    eq(c.token_endpoint_auth_method, 'client_secret_basic', 'token_endpoint_auth_method defaulted by the server (RFC 7591 section 2)')
    eq(c.grant_types, ['authorization_code'], 'grant_types defaulted by the server')
    eq(c.response_types, ['code'], 'response_types defaulted by the server')
    const { body, headers } = await tokenRequest(config)
    // RFC 6749 section 2.3.1: Basic with form-urlencoded id and secret.
    const [scheme, b64] = (headers.authorization ?? '').split(' ')
    eq(scheme, 'Basic', 'Authorization scheme of the token request')
    const [id, secret] = Buffer.from(b64, 'base64').toString().split(':').map((s) => decodeURIComponent(s.replaceAll('+', ' ')))
    eq([id, secret], [c.client_id, c.client_secret], 'credentials in the Basic Authorization header')
    eq(body.get('client_secret'), null, 'client_secret in the token request body')
  }],

  ['public client (token_endpoint_auth_method none): no secret, None auth', async () => {
    const metadata = {
      client_name: uniqueName('oidc6 public'),
      redirect_uris: ['http://127.0.0.1:33418/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    }
    const { config, c } = await register(metadata)
    eq(c.client_secret, undefined, 'client_secret of a public client')
    eq(c.client_secret_expires_at, undefined, 'client_secret_expires_at of a public client')
    eq(c.token_endpoint_auth_method, 'none', 'echoed token_endpoint_auth_method')
    const { body, headers } = await tokenRequest(config)
    eq(body.get('client_id'), c.client_id, 'client_id in the token request body')
    eq(body.get('client_secret'), null, 'client_secret in the token request body')
    eq(headers.authorization, undefined, 'Authorization header of the token request')
  }],

  ['a redirect URI with a fragment surfaces as ResponseBodyError invalid_redirect_uri', async () => {
    const err = await rejects(() => client.dynamicClientRegistration(server,
      { redirect_uris: ['https://c.example/cb#frag'] }, undefined, options(recorder())), 'registration with a fragment')
    check(err instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${err?.name}: ${err?.message}`)
    eq(err.code, 'OAUTH_RESPONSE_BODY_ERROR', 'error code')
    eq(err.status, 400, 'HTTP status')
    eq(err.error, 'invalid_redirect_uri', 'OAuth error')
    check(typeof err.error_description === 'string' && err.error_description.length > 0, 'error_description missing')
  }],

  ['invalid metadata surfaces as ResponseBodyError invalid_client_metadata', async () => {
    const err = await rejects(() => client.dynamicClientRegistration(server,
      { redirect_uris: ['https://c.example/cb'], token_endpoint_auth_method: 'no_such_method' }, undefined, options(recorder())),
    'registration with an unknown token_endpoint_auth_method')
    check(err instanceof client.ResponseBodyError, `expected ResponseBodyError, got ${err?.name}: ${err?.message}`)
    eq(err.status, 400, 'HTTP status')
    eq(err.error, 'invalid_client_metadata', 'OAuth error')
  }],
])
