// Third-party OAuth authorization servers plus an MCP resource server, on
// loopback, for mcpgate's client tests. Usage:
//   node oauth-peers.mjs '{"as":"oidc"|"sdk", "issuerPath":"/t1", "prm":"path"|"root"|"custom",
//                          "ttl":3600, "keyFile":"/tmp/k.pem", "redirectPort":12345}'
// Prints one JSON line {"issuer", "mcp", "stats"} when ready; runs until killed.
//   as=oidc: panva's oidc-provider (certified OpenID provider; OpenID-only metadata, DCR, PKCE,
//            resource indicators with JWT access tokens, refresh rotation, revocation,
//            client credentials, private_key_jwt). Interactions are approved automatically.
//   as=sdk:  the MCP TypeScript SDK's auth router with its demo in-memory provider (auto-approves,
//            opaque tokens checked through its introspection endpoint).
// The resource server is the MCP TypeScript SDK's McpServer over Streamable HTTP, behind a
// bearer check that answers 401/403 challenges the MCP way.
import http from 'node:http';
import crypto from 'node:crypto';
import fs from 'node:fs';
import express from 'express';
import * as jose from 'jose';
import Provider from 'oidc-provider';
import { McpServer } from '@modelcontextprotocol/sdk/server/mcp.js';
import { StreamableHTTPServerTransport } from '@modelcontextprotocol/sdk/server/streamableHttp.js';
import { setupAuthServer } from '@modelcontextprotocol/sdk/examples/server/demoInMemoryOAuthProvider.js';

const opts = JSON.parse(process.argv[2] || '{}');
const stats = { authorizations: 0, grants: 0, refreshes: 0, registrations: 0, forbidden: 0, mcpCalls: 0 };

function listen(app) {
  return new Promise((resolve) => {
    const server = http.createServer(app);
    server.listen(0, '127.0.0.1', () => resolve(server.address().port));
  });
}

const rsApp = express();
const rsPort = await listen(rsApp);
const mcpUrl = `http://127.0.0.1:${rsPort}/mcp`;
const resource = mcpUrl;

let issuer;
let verify; // token -> {scopes: string[]} or throws

if ((opts.as || 'oidc') === 'oidc') {
  const asApp = express();
  const asPort = await listen(asApp);
  const path = opts.issuerPath || '';
  issuer = `http://127.0.0.1:${asPort}${path}`;
  const ttl = opts.ttl || 3600;
  const clients = [];
  const redirect = `http://127.0.0.1:${opts.redirectPort || 1}/callback`;
  const common = { redirect_uris: [redirect], grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
    response_types: ['code'], application_type: 'native', scope: 'mcp admin offline_access' };
  clients.push({ ...common, client_id: 'pre-public', token_endpoint_auth_method: 'none', grant_types: ['authorization_code', 'refresh_token'] });
  clients.push({ ...common, client_id: 'pre-basic', client_secret: 'pre-basic-secret-0123456789abcdef', token_endpoint_auth_method: 'client_secret_basic' });
  clients.push({ ...common, client_id: 'pre-post', client_secret: 'pre-post-secret-0123456789abcdefg', token_endpoint_auth_method: 'client_secret_post' });
  if (opts.keyFile) {
    const { publicKey, privateKey } = crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' });
    fs.writeFileSync(opts.keyFile, privateKey.export({ type: 'pkcs8', format: 'pem' }), { mode: 0o600 });
    const jwk = { ...publicKey.export({ format: 'jwk' }), use: 'sig', alg: 'ES256' };
    clients.push({ ...common, client_id: 'pre-jwt', token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'ES256', jwks: { keys: [jwk] } });
  }
  const provider = new Provider(issuer, {
    clients,
    scopes: ['openid', 'offline_access', 'mcp', 'admin'],
    clientDefaults: { grant_types: ['authorization_code', 'refresh_token'], response_types: ['code'], token_endpoint_auth_method: 'none' },
    features: {
      devInteractions: { enabled: false },
      registration: { enabled: true },
      revocation: { enabled: true },
      introspection: { enabled: true },
      clientCredentials: { enabled: true },
      deviceFlow: { enabled: true },
      resourceIndicators: {
        enabled: true,
        defaultResource: () => resource,
        useGrantedResource: () => true,
        getResourceServerInfo: () => ({ scope: 'mcp admin', audience: resource, accessTokenFormat: 'jwt', accessTokenTTL: ttl }),
      },
    },
    pkce: { required: () => true },
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    rotateRefreshToken: true,
    ttl: { AccessToken: ttl, ClientCredentials: ttl, RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600, AuthorizationCode: 60, DeviceCode: 600 },
    findAccount: async (ctx, id) => ({ accountId: id, claims: async () => ({ sub: id }) }),
    interactions: { url: (ctx, interaction) => `${path}/interaction/${interaction.uid}` },
  });
  provider.on('authorization.success', () => { stats.authorizations += 1; });
  provider.on('grant.success', (ctx) => {
    stats.grants += 1;
    if (ctx.oidc.params.grant_type === 'refresh_token') stats.refreshes += 1;
  });
  provider.on('registration_create.success', () => { stats.registrations += 1; });
  // Approve every interaction as "alice", granting what was asked for.
  asApp.get(`${path}/interaction/:uid`, async (req, res, next) => {
    try {
      const details = await provider.interactionDetails(req, res);
      const { params } = details;
      if (process.env.PEER_DEBUG) console.error(JSON.stringify(details.prompt), JSON.stringify(params));
      const grant = new provider.Grant({ accountId: 'alice', clientId: params.client_id });
      const scope = params.scope || '';
      grant.addOIDCScope(scope || 'openid');
      grant.addResourceScope(params.resource || resource, scope.split(' ').filter((s) => ['mcp', 'admin'].includes(s)).join(' '));
      const grantId = await grant.save();
      await provider.interactionFinished(req, res, { login: { accountId: 'alice' }, consent: { grantId } }, { mergeWithLastSubmission: false });
    } catch (e) { next(e); }
  });
  asApp.use(path || '/', provider.callback());
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks`));
  verify = async (token) => {
    const { payload } = await jose.jwtVerify(token, jwks, { issuer, audience: resource });
    return { scopes: String(payload.scope || '').split(' ').filter(Boolean) };
  };
} else {
  // The SDK example listens by itself: find a free port for it first.
  const probe = http.createServer();
  const port = await new Promise((r) => probe.listen(0, '127.0.0.1', () => r(probe.address().port)));
  await new Promise((r) => probe.close(r));
  const meta = setupAuthServer({ authServerUrl: new URL(`http://127.0.0.1:${port}/`), mcpServerUrl: new URL(mcpUrl), strictResource: true });
  issuer = meta.issuer;
  for (let i = 0; i < 100; i += 1) {
    try { await fetch(`${issuer}.well-known/oauth-authorization-server`); break; } catch { await new Promise((r) => setTimeout(r, 50)); }
  }
  verify = async (token) => {
    const r = await fetch(meta.introspection_endpoint, { method: 'POST', headers: { 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token }) });
    const j = await r.json();
    if (!j.active) throw new Error('inactive');
    if (j.aud !== resource) throw new Error('wrong audience');
    return { scopes: String(j.scope || '').split(' ').filter(Boolean) };
  };
}

// ---- resource server --------------------------------------------------------
const prmDoc = { resource, authorization_servers: [issuer], scopes_supported: ['mcp', 'admin'] };
const prmPath = { path: '/.well-known/oauth-protected-resource/mcp', root: '/.well-known/oauth-protected-resource', custom: '/meta/custom-prm.json' }[opts.prm || 'path'];
rsApp.get(prmPath, (req, res) => res.json(prmDoc));
const challengeBase = (opts.prm === 'custom') ? `, resource_metadata="http://127.0.0.1:${rsPort}${prmPath}"` : '';
rsApp.get('/_stats', (req, res) => res.json(stats));
rsApp.use(express.json());
rsApp.post('/mcp', async (req, res) => {
  const auth = req.headers.authorization || '';
  const m = /^Bearer (.+)$/.exec(auth);
  let info;
  try {
    if (!m) throw new Error('no token');
    info = await verify(m[1]);
  } catch (e) {
    res.set('WWW-Authenticate', `Bearer scope="mcp"${challengeBase}`).status(401).json({ error: 'invalid_token' });
    return;
  }
  stats.mcpCalls += 1;
  const body = req.body || {};
  const name = body.method === 'tools/call' ? body.params?.name : undefined;
  const need = name === 'admin_op' ? ['mcp', 'admin'] : ['mcp'];
  if (name === 'always_forbidden' || !need.every((s) => info.scopes.includes(s))) {
    stats.forbidden += 1;
    res.set('WWW-Authenticate', `Bearer error="insufficient_scope", scope="${name === 'always_forbidden' ? 'mcp superuser' : need.join(' ')}"${challengeBase}`)
      .status(403).json({ error: 'insufficient_scope' });
    return;
  }
  const server = new McpServer({ name: 'peer', version: '1.0.0' });
  server.tool('whoami', 'scopes of the caller', async () => ({ content: [{ type: 'text', text: info.scopes.join(' ') }] }));
  server.tool('admin_op', 'needs admin', async () => ({ content: [{ type: 'text', text: 'admin ok' }] }));
  server.tool('always_forbidden', 'never allowed', async () => ({ content: [{ type: 'text', text: 'no' }] }));
  const transport = new StreamableHTTPServerTransport({ sessionIdGenerator: undefined, enableJsonResponse: true });
  res.on('close', () => { transport.close(); server.close(); });
  await server.connect(transport);
  await transport.handleRequest(req, res, body);
});

process.stdout.write(JSON.stringify({ issuer, mcp: mcpUrl, stats: `http://127.0.0.1:${rsPort}/_stats` }) + '\n');
