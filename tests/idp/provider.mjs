// A real OpenID provider (npm's oidc-provider, OpenID Certified) for stepgate's tests.
// Loopback only. Configured by environment:
//   PORT, CLIENT_ID, CLIENT_SECRET, REDIRECT_URI (the gateway's callback),
//   KEY_FILE (a JWKS of private keys; made if missing: another file = rotated keys),
//   BACKCHANNEL_URI (optional: the gateway's back-channel logout endpoint).
// Users: alice / alice-pw (groups finance), bob / bob-pw (groups ops). The one-time code of
// the second step is 123456: with it the login proves amr [pwd, otp] and acr aal2, without it
// amr [pwd] and acr aal1.
// The interaction form (GET/POST /interaction/:uid) is plain HTML a test drives over HTTP;
// it shows the authorization request's acr_values, max_age and prompt in <pre id="params">.
// POST /__test/lax?on=1 makes the provider ignore max_age and acr_values (a lax IdP: the
// gateway must refuse what comes back).
// POST /__test/logout_token?sub=..&sid=.. answers a logout token signed by the provider, made
// as its own back-channel logout makes them, without sending it (a test sends, replays and
// tampers with it). POST_LOGOUT_URI registers the client's post_logout_redirect_uri.
import Provider from 'oidc-provider';
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';

const port = Number(process.env.PORT || 0);
const issuer = `http://127.0.0.1:${port}`;
const users = {
  alice: { password: 'alice-pw', groups: ['finance'], department: 'payments' },
  bob: { password: 'bob-pw', groups: ['ops'], department: 'it' },
};
let lax = false;

function keys() {
  const file = process.env.KEY_FILE;
  if (file && fs.existsSync(file)) return JSON.parse(fs.readFileSync(file, 'utf8'));
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = { ...privateKey.export({ format: 'jwk' }), kid: crypto.randomUUID(), use: 'sig', alg: 'RS256' };
  const jwks = { keys: [jwk] };
  if (file) fs.writeFileSync(file, JSON.stringify(jwks));
  return jwks;
}

// oidc-provider's default policy, plus: a step-up (acr_values the session does not meet)
// asks to log in again.
import { interactionPolicy } from 'oidc-provider';
const { Check, base } = interactionPolicy;
const policy = base();
const login = policy.get('login');
login.checks.add(new Check('acr_step_up', 'a stronger authentication was requested', (ctx) => {
  if (lax) return Check.NO_NEED_TO_PROMPT;
  const asked = (ctx.oidc.params.acr_values || '').split(' ').filter(Boolean);
  if (asked.length && !asked.includes(ctx.oidc.session.acr)) return Check.REQUEST_PROMPT;
  return Check.NO_NEED_TO_PROMPT;
}));
const maxAge = login.checks.get('max_age');
const maxAgeCheck = maxAge.check;
maxAge.check = (ctx) => (lax ? Check.NO_NEED_TO_PROMPT : maxAgeCheck(ctx));

const client = {
  client_id: process.env.CLIENT_ID || 'stepgate',
  client_secret: process.env.CLIENT_SECRET || 'stepgate-secret',
  redirect_uris: [process.env.REDIRECT_URI],
  response_types: ['code'],
  grant_types: ['authorization_code'],
  post_logout_redirect_uris: process.env.POST_LOGOUT_URI ? [process.env.POST_LOGOUT_URI] : [],
};
if (process.env.BACKCHANNEL_URI) {
  client.backchannel_logout_uri = process.env.BACKCHANNEL_URI;
  client.backchannel_logout_session_required = true;
}

const provider = new Provider(issuer, {
  clients: [client],
  jwks: keys(),
  acrValues: ['aal1', 'aal2'],
  claims: { openid: ['sub'], profile: ['preferred_username', 'department'], groups: ['groups'] },
  scopes: ['openid', 'profile', 'groups'],
  conformIdTokenClaims: false,
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  cookies: { keys: ['test-only-cookie-key'] },
  interactions: { policy, url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  async findAccount(ctx, id) {
    const u = users[id];
    if (!u) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, preferred_username: id, groups: u.groups, department: u.department };
      },
    };
  },
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) {
      const g = await ctx.oidc.provider.Grant.find(grantId);
      if (g) return g;
    }
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid profile groups');
    await grant.save();
    ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId, grant.jti);
    return grant;
  },
  pkce: { required: () => true },
  // oidc-provider refuses outgoing requests to special-use addresses (SSRF protection); this
  // test IdP sends its back-channel logouts to a gateway on 127.0.0.1, so it goes without.
  fetch: (url, options) => {
    delete options.dispatcher;
    return globalThis.fetch(url, options);
  },
  ttl: { AccessToken: 600, AuthorizationCode: 60, IdToken: 600, Interaction: 600, Session: 3600, Grant: 3600 },
});
provider.proxy = false;

const esc = (s) => String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' }[c]));

async function readForm(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return Object.fromEntries(new URLSearchParams(body));
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/__test/lax' && ctx.method === 'POST') {
    lax = ctx.query.on === '1';
    ctx.body = `lax=${lax}\n`;
    return;
  }
  if (ctx.path === '/__test/logout_token' && ctx.method === 'POST') {
    const c = await provider.Client.find(client.client_id);
    const token = new provider.IdToken({ sub: ctx.query.sub }, { client: c, ctx: undefined });
    token.mask = { sub: null };
    token.set('events', { 'http://schemas.openid.net/event/backchannel-logout': {} });
    token.set('jti', crypto.randomUUID());
    if (ctx.query.sid) token.set('sid', ctx.query.sid);
    ctx.type = 'text';
    ctx.body = await token.issue({ use: 'logout' });
    return;
  }
  const m = ctx.path.match(/^\/interaction\/([^/]+)$/);
  if (!m) return next();
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  if (ctx.method === 'GET') {
    const p = details.params;
    const shown = { acr_values: p.acr_values, max_age: p.max_age, prompt: p.prompt, reasons: details.prompt.reasons };
    ctx.type = 'html';
    ctx.body = `<!doctype html><title>Test IdP sign-in</title><h1>Test IdP</h1>
<pre id="params">${esc(JSON.stringify(shown))}</pre>
<form method="post" action="/interaction/${esc(details.uid)}">
<label>User <input name="login" id="login"></label>
<label>Password <input name="password" id="password" type="password"></label>
<label>One-time code (second step) <input name="otp" id="otp"></label>
<button type="submit" id="submit">Sign in</button></form>`;
    return;
  }
  const form = await readForm(ctx.req);
  const u = users[form.login];
  if (!u || u.password !== form.password) {
    ctx.status = 401;
    ctx.type = 'html';
    ctx.body = '<p id="error">wrong user or password</p>';
    return;
  }
  const mfa = form.otp === '123456';
  const result = { login: { accountId: form.login, acr: mfa ? 'aal2' : 'aal1', amr: mfa ? ['pwd', 'otp'] : ['pwd'] } };
  await provider.interactionFinished(ctx.req, ctx.res, result, { mergeWithLastSubmission: false });
  ctx.respond = false;
});

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`listening ${issuer}`);
});
server.on('error', (e) => { console.error(e); process.exit(1); });
