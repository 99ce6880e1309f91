// @modelcontextprotocol/sdk 1.x (the TypeScript MCP SDK used by Claude Code,
// the MCP Inspector and most TypeScript MCP clients), used unmodified:
// discoverAuthorizationServerMetadata, registerClient (which zod-parses the
// response and requires redirect_uris in it) and the whole auth() flow up to
// the redirect to the authorization endpoint.
//
// usage: node mcp-sdk.mjs http://127.0.0.1:<port>

import { auth, discoverAuthorizationServerMetadata, registerClient } from '@modelcontextprotocol/sdk/client/auth.js'
import { InvalidClientMetadataError, OAuthError, ServerError } from '@modelcontextprotocol/sdk/server/auth/errors.js'
import { baseURL, check, eq, rejects, recorder, run, uniqueName } from './lib.mjs'

const base = baseURL()
let metadata

// What an MCP client such as Claude Code registers: a public client with a
// loopback redirect, refresh tokens, and no application_type.
function typicalClient() {
  return {
    client_name: uniqueName('MCP CLI'),
    redirect_uris: ['http://localhost:33418/callback'],
    grant_types: ['authorization_code', 'refresh_token'],
    response_types: ['code'],
    token_endpoint_auth_method: 'none',
  }
}

function checkRegistered(info, sent) {
  check(typeof info.client_id === 'string' && info.client_id.length > 0, 'client_id missing')
  eq(info.redirect_uris, sent.redirect_uris, 'redirect_uris in the parsed response')
  eq(info.token_endpoint_auth_method, sent.token_endpoint_auth_method ?? 'client_secret_basic', 'token_endpoint_auth_method')
  if (sent.grant_types) eq(info.grant_types, sent.grant_types, 'grant_types')
  if (sent.client_name) eq(info.client_name, sent.client_name, 'client_name')
  eq(typeof info.client_id_issued_at, 'number', 'type of client_id_issued_at')
}

await run('mcp-sdk', [
  ['discoverAuthorizationServerMetadata finds issuer, registration_endpoint and S256', async () => {
    const rec = recorder()
    metadata = await discoverAuthorizationServerMetadata(base, { fetchFn: rec.fetch })
    check(metadata, 'no metadata discovered')
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`),
      [`GET ${base}/.well-known/oauth-authorization-server 200`], 'discovery requests')
    eq(metadata.issuer, base, 'issuer')
    eq(metadata.registration_endpoint, `${base}/register`, 'registration_endpoint')
    check(metadata.code_challenge_methods_supported?.includes('S256'), 'code_challenge_methods_supported lacks S256 (auth() would refuse this server)')
    check(metadata.response_types_supported.includes('code'), 'response_types_supported lacks code')
  }],

  ['registerClient with typical MCP client metadata (public, loopback redirect)', async () => {
    const rec = recorder()
    const sent = typicalClient()
    const info = await registerClient(base, { metadata, clientMetadata: sent, fetchFn: rec.fetch })
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`), [`POST ${base}/register 201`], 'registration requests')
    eq(rec.log[0].headers['content-type'], 'application/json', 'request Content-Type')
    checkRegistered(info, sent)
    eq(info.client_secret, undefined, 'client_secret of a public client')
    eq(info.response_types, ['code'], 'response_types')
  }],

  ['registerClient without metadata POSTs to /register at the origin', async () => {
    const rec = recorder()
    const sent = typicalClient()
    const info = await registerClient(`${base}/some/mcp/path`, { clientMetadata: sent, fetchFn: rec.fetch })
    eq(rec.log.map((r) => `${r.method} ${r.url} ${r.status}`), [`POST ${base}/register 201`], 'registration requests')
    checkRegistered(info, sent)
  }],

  ['registerClient with a claude.ai-like web redirect, a resource member and a scope', async () => {
    const rec = recorder()
    const sent = {
      client_name: 'claudeai',
      redirect_uris: ['https://claude.ai/api/mcp/auth_callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
      resource: `${base}/mcp`,
    }
    const info = await registerClient(base, { metadata, clientMetadata: sent, scope: 'mcp:tools offline_access', fetchFn: rec.fetch })
    const body = JSON.parse(rec.log[0].body)
    eq(body.resource, sent.resource, 'resource member sent by the SDK')
    eq(body.scope, 'mcp:tools offline_access', 'scope merged into the body by the SDK')
    checkRegistered(info, sent)
    eq(info.scope, 'mcp:tools offline_access', 'scope')
  }],

  ['registerClient for a confidential client (client_secret_post)', async () => {
    const sent = {
      client_name: uniqueName('MCP web app'),
      redirect_uris: ['https://mcp-app.example/oauth/callback'],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_post',
      client_uri: 'https://mcp-app.example/',
      logo_uri: 'https://mcp-app.example/logo.png',
    }
    const info = await registerClient(base, { metadata, clientMetadata: sent })
    checkRegistered(info, sent)
    check(typeof info.client_secret === 'string' && info.client_secret.length > 0, 'client_secret missing')
    eq(typeof info.client_secret_expires_at, 'number', 'type of client_secret_expires_at')
    eq(info.client_uri, sent.client_uri, 'client_uri')
    eq(info.logo_uri, sent.logo_uri, 'logo_uri')
  }],

  ['errors: invalid_client_metadata maps to InvalidClientMetadataError, invalid_redirect_uri to a generic OAuthError', async () => {
    let err = await rejects(() => registerClient(base, {
      metadata, clientMetadata: { ...typicalClient(), token_endpoint_auth_method: 'no_such_method' },
    }), 'registration with an unknown method')
    check(err instanceof InvalidClientMetadataError, `expected InvalidClientMetadataError, got ${err?.name}: ${err?.message}`)
    check(err.message.length > 0, 'error_description not carried in the message')

    err = await rejects(() => registerClient(base, {
      metadata, clientMetadata: { ...typicalClient(), redirect_uris: ['https://c.example/cb#frag'] },
    }), 'registration with a fragment')
    // The SDK has no class for invalid_redirect_uri: it becomes a ServerError
    // carrying the server's error_description.
    check(err instanceof OAuthError, `expected an OAuthError, got ${err?.name}: ${err?.message}`)
    check(err instanceof ServerError, `expected ServerError (SDK fallback for unmapped codes), got ${err?.name}`)
    check(/fragment/i.test(err.message), `error_description not carried: ${err.message}`)
  }],

  ['auth() flow: discovery, dynamic registration, redirect to the authorization endpoint', async () => {
    const rec = recorder()
    const stored = {}
    const provider = {
      get redirectUrl() { return 'http://localhost:33418/callback' },
      get clientMetadata() {
        return {
          client_name: uniqueName('MCP auth() client'),
          redirect_uris: ['http://localhost:33418/callback'],
          grant_types: ['authorization_code', 'refresh_token'],
          response_types: ['code'],
          token_endpoint_auth_method: 'none',
        }
      },
      clientInformation() { return stored.client },
      saveClientInformation(info) { stored.client = info },
      tokens() { return stored.tokens },
      saveTokens(t) { stored.tokens = t },
      redirectToAuthorization(url) { stored.redirect = url },
      saveCodeVerifier(v) { stored.verifier = v },
      codeVerifier() { return stored.verifier },
    }
    const result = await auth(provider, { serverUrl: `${base}/mcp`, fetchFn: rec.fetch })
    eq(result, 'REDIRECT', 'auth() result')
    const posts = rec.log.filter((r) => r.method === 'POST')
    eq(posts.map((r) => `${r.url} ${r.status}`), [`${base}/register 201`], 'registration requests made by auth()')
    check(stored.client?.client_id, `no client information saved: ${JSON.stringify(stored.client)}`)
    eq(stored.client.redirect_uris, ['http://localhost:33418/callback'], 'saved redirect_uris')
    const url = stored.redirect
    check(url instanceof URL, 'redirectToAuthorization was not called with a URL')
    eq(url.origin + url.pathname, `${base}/authorize`, 'authorization URL')
    eq(url.searchParams.get('client_id'), stored.client.client_id, 'client_id in the authorization URL')
    eq(url.searchParams.get('response_type'), 'code', 'response_type')
    eq(url.searchParams.get('code_challenge_method'), 'S256', 'code_challenge_method')
    eq(url.searchParams.get('redirect_uri'), 'http://localhost:33418/callback', 'redirect_uri')
    check(typeof stored.verifier === 'string' && stored.verifier.length >= 43, 'PKCE code verifier not saved')
  }],
])
