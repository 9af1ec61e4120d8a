// A real OpenID provider for the login tests: panva's certified `oidc-provider`, on loopback,
// with a test client and kinés whose claims mimic Pro Santé Connect's (`SubjectNameID` = "8" +
// RPPS, `SubjectRefPro`, `acr` "eidas1", the `scope_all` scope).
//
//   node provider.js            listens on 127.0.0.1, a free port; prints {"issuer": ...} once ready
//
// Environment: OIDC_PORT (default 0), OIDC_CLIENT_SECRET (default "telesoin-test-secret"),
// OIDC_ACCOUNTS (JSON [{login, password, rpps, given_name, family_name, acr}]).
//
// Test-only admin routes (loopback, for the failure cases the tests need from a real provider):
//   POST /__admin/setup   {redirect_uris, post_logout_redirect_uris, pkjwt_jwks}  the telesoin
//                         servers' URLs; with pkjwt_jwks, a second client `telesoin-pkjwt` that
//                         authenticates with private_key_jwt (ES256) under those public keys
//   POST /__admin/rotate  a new signing key with a new kid; the old one is gone from the JWKS
//   POST /__admin/mode    {clock_offset_seconds, foreign_issuer}: the provider's clock runs
//                         behind (its ID tokens are expired), or it signs tokens under another
//                         issuer than its discovery document names
// The login page is ours (not oidc-provider's dev interactions): a form with "Identifiant",
// "Mot de passe" and "Se connecter"; consent is granted for what the client asked.

import { createServer } from 'node:http';
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';

const realNow = Date.now.bind(Date);
let clockOffsetMs = 0;
Date.now = () => realNow() + clockOffsetMs;

const port = Number(process.env.OIDC_PORT ?? 0);
const secret = process.env.OIDC_CLIENT_SECRET ?? 'telesoin-test-secret';
const accounts = JSON.parse(
  process.env.OIDC_ACCOUNTS ??
    JSON.stringify([{ login: 'kine', password: 'cps-1234', rpps: '10001234567', given_name: 'Claire', family_name: 'Martin', acr: 'eidas1' }]),
);

let redirectUris = ['https://localhost/api/login/oidc/callback'];
let postLogoutUris = ['https://localhost/app/'];
let foreignIssuer = false;
/** The public JWKS of a second client, `telesoin-pkjwt`, that authenticates with private_key_jwt. */
let pkjwtJwks = null;
let base = '';

function newKey() {
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };
}
let signingKey = newKey();

/** PSC-like claims of an account. */
function claimsOf(a) {
  const idNat = `8${a.rpps}`;
  return {
    sub: `f:${a.login}:${idNat}`,
    given_name: a.given_name,
    family_name: a.family_name,
    preferred_username: idNat,
    SubjectNameID: idNat,
    SubjectRefPro: {
      codeCivilite: 'M',
      exercices: [{ codeProfession: '70', nomDexercice: a.family_name, prenomDexercice: a.given_name }],
    },
  };
}

function build() {
  const issuer = foreignIssuer ? `${base}/foreign` : base;
  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'telesoin',
        client_secret: secret,
        redirect_uris: redirectUris,
        post_logout_redirect_uris: postLogoutUris,
        grant_types: ['authorization_code'],
        response_types: ['code'],
        token_endpoint_auth_method: 'client_secret_basic',
      },
      ...(pkjwtJwks
        ? [
            {
              client_id: 'telesoin-pkjwt',
              redirect_uris: redirectUris,
              post_logout_redirect_uris: postLogoutUris,
              grant_types: ['authorization_code'],
              response_types: ['code'],
              token_endpoint_auth_method: 'private_key_jwt',
              token_endpoint_auth_signing_alg: 'ES256',
              jwks: pkjwtJwks,
            },
          ]
        : []),
    ],
    clientAuthMethods: ['client_secret_basic', 'private_key_jwt'],
    jwks: { keys: [signingKey] },
    cookies: { keys: ['telesoin-oidc-test-cookie-key'] },
    scopes: ['openid', 'scope_all'],
    claims: {
      openid: ['sub'],
      scope_all: ['given_name', 'family_name', 'preferred_username', 'SubjectNameID', 'SubjectRefPro'],
    },
    acrValues: ['eidas1', 'eidas0'],
    pkce: { required: () => true },
    features: { devInteractions: { enabled: false }, rpInitiatedLogout: { enabled: true } },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    // Long enough that a clock running hours behind still sees its own interaction alive.
    ttl: { Interaction: 86400, Session: 86400, Grant: 86400, IdToken: 3600, AccessToken: 3600, AuthorizationCode: 60 },
    findAccount: async (ctx, id) => {
      const a = accounts.find((x) => claimsOf(x).sub === id);
      if (!a) return undefined;
      return { accountId: id, claims: async () => claimsOf(a) };
    },
  });
  if (foreignIssuer) {
    // A provider that lies: its discovery names the issuer the client expects, its tokens don't.
    provider.use(async (ctx, next) => {
      await next();
      if (ctx.path === '/.well-known/openid-configuration' && ctx.body && typeof ctx.body === 'object') {
        ctx.body = { ...ctx.body, issuer: base };
      }
    });
  }
  provider.proxy = false;
  return provider;
}

let provider;

function escape(s) {
  return String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

async function readBody(req) {
  const chunks = [];
  for await (const c of req) chunks.push(c);
  return Buffer.concat(chunks).toString('utf8');
}

async function interaction(req, res, uid) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'GET') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(`<!doctype html><html lang="fr"><head><meta charset="utf-8"><title>Pro Santé Connect (test)</title></head>
<body><h1>Pro Santé Connect — fournisseur de test</h1>
<form method="post" action="/interaction/${escape(uid)}">
<label>Identifiant <input name="login" autocomplete="username"></label>
<label>Mot de passe <input name="password" type="password" autocomplete="current-password"></label>
<button type="submit">Se connecter</button></form></body></html>`);
    return;
  }
  const form = new URLSearchParams(await readBody(req));
  const a = accounts.find((x) => x.login === form.get('login') && x.password === form.get('password'));
  if (!a) {
    res.statusCode = 401;
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end('<!doctype html><p>Identifiant ou mot de passe incorrect.</p>');
    return;
  }
  const accountId = claimsOf(a).sub;
  const grant = new provider.Grant({ accountId, clientId: details.params.client_id });
  grant.addOIDCScope(String(details.params.scope ?? 'openid'));
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { login: { accountId, acr: a.acr }, consent: { grantId } }, { mergeWithLastSubmission: false });
}

async function admin(req, res, what) {
  const body = JSON.parse((await readBody(req)) || '{}');
  if (what === 'setup') {
    redirectUris = body.redirect_uris ?? redirectUris;
    postLogoutUris = body.post_logout_redirect_uris ?? postLogoutUris;
    pkjwtJwks = body.pkjwt_jwks ?? pkjwtJwks;
  } else if (what === 'rotate') {
    signingKey = newKey();
  } else if (what === 'mode') {
    clockOffsetMs = Number(body.clock_offset_seconds ?? 0) * 1000;
    foreignIssuer = Boolean(body.foreign_issuer);
  } else {
    res.statusCode = 404;
    res.end();
    return;
  }
  provider = build();
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ kid: signingKey.kid }));
}

const server = createServer((req, res) => {
  const url = new URL(req.url ?? '/', base);
  const m = url.pathname.match(/^\/interaction\/([^/]+)$/);
  const a = url.pathname.match(/^\/__admin\/(\w+)$/);
  const handle = a && req.method === 'POST' ? admin(req, res, a[1]) : m ? interaction(req, res, m[1]) : null;
  if (handle) {
    handle.catch((e) => {
      res.statusCode = 500;
      res.end(String(e?.message ?? e));
    });
    return;
  }
  provider.callback()(req, res);
});

server.listen(port, '127.0.0.1', () => {
  const addr = server.address();
  base = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : port}`;
  provider = build();
  process.stdout.write(`${JSON.stringify({ issuer: base })}\n`);
});

process.on('SIGTERM', () => server.close(() => process.exit(0)));
