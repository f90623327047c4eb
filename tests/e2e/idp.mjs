// A real OpenID provider for opsboard's sign-in tests: the certified `oidc-provider` package
// with one test client and its development sign-in pages (any login name signs in). Accounts
// are `<name>@example.com`; their groups and email come from POST /test/accounts
// (`"email_verified": "omit"` leaves that claim out, as some providers do).
//
// Started by the tests: `node idp.mjs` prints one JSON line {"issuer": …} once listening.
// The client is a native one (RFC 8252): its loopback redirect URIs match on any port, so the
// provider can start before the opsboard server whose port the test does not know yet.
//
// So that the sign-in tests can check each refusal for real, the next ID token can be
// changed before it leaves (POST /test/tamper {"claims": {...}, "sign": "same"|"rogue"|"next"}):
// claims are overwritten, then the token is signed again — with the provider's own key
// ("same": a valid signature over wrong claims), with a key the provider never published but
// under the same key id ("rogue"), or with a newly published key ("next": key rotation — the
// JWKS lists it from then on).

import * as http from 'node:http';
import { generateKeyPair, exportJWK, SignJWT, decodeJwt, decodeProtectedHeader } from 'jose';
import Provider from 'oidc-provider';

const CLIENT_ID = 'opsboard-test';
const CLIENT_SECRET = 'opsboard-test-secret';

async function rsaKey(kid) {
  const { privateKey } = await generateKeyPair('RS256', { extractable: true });
  const jwk = await exportJWK(privateKey);
  return { ...jwk, kid, alg: 'RS256', use: 'sig' };
}

function publicPart(jwk) {
  const { d, p, q, dp, dq, qi, ...pub } = jwk;
  return pub;
}

const current = await rsaKey('key-1');
const next = await rsaKey('key-2');
const rogue = await rsaKey('key-1');
let rotated = false;
let tamper = null;
const accounts = new Map();

function account(id) {
  const a = accounts.get(id) || {};
  const claims = {
    sub: a.sub || `sub-${id}`,
    email: a.email || `${id}@example.com`,
    email_verified: a.email_verified ?? true,
    name: a.name || id,
    groups: a.groups || [],
  };
  // Some providers do not send email_verified at all.
  if (a.email_verified === 'omit') delete claims.email_verified;
  return claims;
}

const server = http.createServer();
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  clients: [{
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
    application_type: 'native',
    redirect_uris: ['http://127.0.0.1/login/oidc/test/callback'],
    post_logout_redirect_uris: ['http://127.0.0.1/login'],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [current] },
  cookies: { keys: ['opsboard-test-cookie-key'] },
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  conformIdTokenClaims: false,
  features: { devInteractions: { enabled: true }, rpInitiatedLogout: { enabled: true } },
  async findAccount(ctx, id) {
    const claims = account(id);
    return { accountId: id, async claims() { return { ...claims, sub: claims.sub }; } };
  },
});
provider.on('server_error', (ctx, err) => console.error('idp server_error', err));

async function resign(idToken) {
  const header = decodeProtectedHeader(idToken);
  const claims = { ...decodeJwt(idToken), ...tamper.claims };
  const key = { same: current, rogue, next }[tamper.sign || 'same'];
  const { importJWK } = await import('jose');
  const signingKey = await importJWK(key, 'RS256');
  return new SignJWT(claims)
    .setProtectedHeader({ ...header, alg: 'RS256', kid: key.kid })
    .sign(signingKey);
}

provider.use(async (ctx, nextMiddleware) => {
  await nextMiddleware();
  if (ctx.path === '/jwks' && rotated && ctx.body && ctx.body.keys) {
    ctx.body = { keys: [...ctx.body.keys, publicPart(next)] };
  }
  if (ctx.path === '/token' && ctx.status === 200 && tamper) {
    const body = typeof ctx.body === 'string' ? JSON.parse(ctx.body) : { ...ctx.body };
    if (tamper.sign === 'next') rotated = true;
    body.id_token = await resign(body.id_token);
    tamper = null;
    ctx.body = body;
  }
});

const callback = provider.callback();
server.on('request', (req, res) => {
  if (req.method === 'POST' && req.url.startsWith('/test/')) {
    let text = '';
    req.on('data', (c) => { text += c; });
    req.on('end', () => {
      const body = text ? JSON.parse(text) : {};
      if (req.url === '/test/accounts') {
        for (const [id, a] of Object.entries(body)) accounts.set(id, a);
      } else if (req.url === '/test/tamper') {
        tamper = body;
      }
      res.writeHead(204).end();
    });
    return;
  }
  callback(req, res);
});

process.stdout.write(`${JSON.stringify({ issuer, client_id: CLIENT_ID, client_secret: CLIENT_SECRET })}\n`);
// The test reads that one line and closes the pipe: everything else goes to stderr.
console.log = console.info = (...args) => console.error(...args);
