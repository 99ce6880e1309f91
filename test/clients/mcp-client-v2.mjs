// @modelcontextprotocol/client 2.x (the split TypeScript MCP SDK), used
// unmodified. Compared with 1.x it checks the metadata's issuer against the
// URL it was discovered from, adds application_type (native for loopback and
// custom-scheme redirects, web otherwise) through resolveClientMetadata, and
// throws RegistrationRejectedError on a non-2xx registration.
//
// usage: node mcp-client-v2.mjs http://127.0.0.1:<port>

import {
  auth,
  discoverAuthorizationServerMetadata,
  registerClient,
  RegistrationRejectedError,
  resolveClientMetadata,
} from '@modelcontextprotocol/client'
import { baseURL, check, eq, rejects, recorder, run, uniqueName } from './lib.mjs'

const base = baseURL()
let metadata

function provider(redirectUrl, extra = {}) {
  const stored = {}
  return {
    stored,
    redirectUrl,
    clientMetadata: {
      client_name: uniqueName('MCP v2 client'),
      redirect_uris: [redirectUrl],
      token_endpoint_auth_method: 'none',
      ...extra,
    },
    clientInformation() { return stored.client },
    saveClientInformation(info) { stored.client = info },
    tokens() { return stored.tokens },
    saveTokens(t) { stored.tokens = t },
    redirectToAuthorization(url) { stored.redirect = url },
    saveCodeVerifier(v) { stored.verifier = v },
    codeVerifier() { return stored.verifier },
  }
}

await run('mcp-client-v2', [
  ['discoverAuthorizationServerMetadata with issuer validation (string and URL forms)', async () => {
    metadata = await discoverAuthorizationServerMetadata(base)
    eq(metadata.issuer, base, 'issuer')
    eq(metadata.registration_endpoint, `${base}/register`, 'registration_endpoint')
    check(metadata.code_challenge_methods_supported?.includes('S256'), 'code_challenge_methods_supported lacks S256')
    const viaURL = await discoverAuthorizationServerMetadata(new URL(base))
    eq(viaURL.issuer, base, 'issuer discovered from a URL object (href has a trailing slash)')
  }],

  ['registerClient with resolveClientMetadata defaults: loopback redirect -> application_type native', async () => {
    const rec = recorder()
    const p = provider('http://localhost:33418/callback')
    const sent = resolveClientMetadata(p)
    eq(sent.application_type, 'native', 'application_type derived by the SDK')
    eq(sent.grant_types, ['authorization_code', 'refresh_token'], 'grant_types defaulted by the SDK')
    const info = await registerClient(base, { metadata, clientMetadata: sent, fetchFn: rec.fetch })
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`), [`POST ${base}/register 201`], 'registration requests')
    check(info.client_id, 'client_id missing')
    eq(info.redirect_uris, sent.redirect_uris, 'redirect_uris')
    eq(info.application_type, 'native', 'application_type')
    eq(info.token_endpoint_auth_method, 'none', 'token_endpoint_auth_method')
    eq(info.grant_types, sent.grant_types, 'grant_types')
    eq(info.client_secret, undefined, 'client_secret of a public client')
  }],

  ['registerClient with a claude.ai-like web redirect and a resource member -> application_type web', async () => {
    const p = provider('https://claude.ai/api/mcp/auth_callback', { resource: `${base}/mcp` })
    const sent = resolveClientMetadata(p)
    eq(sent.application_type, 'web', 'application_type derived by the SDK')
    const info = await registerClient(base, { metadata, clientMetadata: sent })
    eq(info.redirect_uris, ['https://claude.ai/api/mcp/auth_callback'], 'redirect_uris')
    eq(info.application_type, 'web', 'application_type')
  }],

  ['registerClient without metadata POSTs to /register at the origin', async () => {
    const rec = recorder()
    const sent = resolveClientMetadata(provider('http://127.0.0.1:33418/callback'))
    const info = await registerClient(`${base}/mcp`, { clientMetadata: sent, fetchFn: rec.fetch })
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`), [`POST ${base}/register 201`], 'registration requests')
    eq(info.redirect_uris, sent.redirect_uris, 'redirect_uris')
  }],

  ['a rejected registration throws RegistrationRejectedError with the RFC 7591 error body', async () => {
    const sent = resolveClientMetadata(provider('https://c.example/cb#frag'))
    const err = await rejects(() => registerClient(base, { metadata, clientMetadata: sent }), 'registration with a fragment')
    check(err instanceof RegistrationRejectedError, `expected RegistrationRejectedError, got ${err?.name}: ${err?.message}`)
    eq(err.status, 400, 'status')
    eq(JSON.parse(err.body).error, 'invalid_redirect_uri', 'error in the body')
  }],

  ['auth() flow: discovery, registration, redirect to the authorization endpoint', async () => {
    const rec = recorder()
    const p = provider('http://localhost:33418/callback')
    const result = await auth(p, { serverUrl: `${base}/mcp`, fetchFn: rec.fetch })
    eq(result, 'REDIRECT', 'auth() result')
    const posts = rec.log.filter((r) => r.method === 'POST')
    eq(posts.map((r) => `${r.url} ${r.status}`), [`${base}/register 201`], 'registration requests made by auth()')
    const body = JSON.parse(posts[0].body)
    eq(body.application_type, 'native', 'application_type sent by auth()')
    const { stored } = p
    check(stored.client?.client_id, `no client information saved: ${JSON.stringify(stored.client)}`)
    const url = stored.redirect
    check(url instanceof URL, 'redirectToAuthorization was not called with a URL')
    eq(url.origin + url.pathname, `${base}/authorize`, 'authorization URL')
    eq(url.searchParams.get('client_id'), stored.client.client_id, 'client_id in the authorization URL')
    eq(url.searchParams.get('code_challenge_method'), 'S256', 'code_challenge_method')
    eq(url.searchParams.get('redirect_uri'), 'http://localhost:33418/callback', 'redirect_uri')
  }],
])
