// A tiny, deliberately WRONG OpenID provider for stepgate's refusal tests: it signs whatever
// the test asks for. Loopback only. PORT, CLIENT_ID, REDIRECT_URI from the environment.
// POST /__mode?m=MODE picks the next ID token: good | bad_signature | wrong_aud | wrong_nonce |
// wrong_iss | alg_none | expired | unknown_kid.
import * as http from 'node:http';
import * as crypto from 'node:crypto';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const clientId = process.env.CLIENT_ID || 'stepgate';
const key = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const other = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
const kid = 'k1';
let mode = 'good';
const codes = new Map(); // code -> nonce

const b64 = (b) => Buffer.from(b).toString('base64url');
function sign(claims, { alg = 'RS256', useKey = key.privateKey, k = kid } = {}) {
  const head = b64(JSON.stringify({ alg, kid: k, typ: 'JWT' }));
  const body = b64(JSON.stringify(claims));
  if (alg === 'none') return `${head}.${body}.`;
  const sig = crypto.sign('sha256', Buffer.from(`${head}.${body}`), useKey);
  return `${head}.${body}.${b64(sig)}`;
}

function idToken(nonce) {
  const now = Math.floor(Date.now() / 1000);
  const c = { iss: issuer, aud: clientId, sub: 'mallory', preferred_username: 'mallory', iat: now, exp: now + 300, auth_time: now, nonce, acr: 'aal2' };
  switch (mode) {
    case 'bad_signature': return sign(c, { useKey: other.privateKey });
    case 'wrong_aud': return sign({ ...c, aud: 'someone-else' });
    case 'wrong_nonce': return sign({ ...c, nonce: 'not-the-nonce' });
    case 'wrong_iss': return sign({ ...c, iss: 'http://127.0.0.1:1' });
    case 'alg_none': return sign(c, { alg: 'none' });
    case 'expired': return sign({ ...c, iat: now - 7200, exp: now - 3600 });
    case 'unknown_kid': return sign(c, { useKey: other.privateKey, k: 'k2' });
    default: return sign(c);
  }
}

const json = (res, status, v) => { res.writeHead(status, { 'content-type': 'application/json' }); res.end(JSON.stringify(v)); };

http.createServer(async (req, res) => {
  const url = new URL(req.url, issuer);
  let body = '';
  for await (const chunk of req) body += chunk;
  if (url.pathname === '/.well-known/openid-configuration') {
    return json(res, 200, {
      issuer, authorization_endpoint: `${issuer}/auth`, token_endpoint: `${issuer}/token`, jwks_uri: `${issuer}/jwks`,
      response_types_supported: ['code'], subject_types_supported: ['public'], id_token_signing_alg_values_supported: ['RS256'],
      acr_values_supported: ['aal1', 'aal2'],
    });
  }
  if (url.pathname === '/jwks') {
    return json(res, 200, { keys: [{ ...key.publicKey.export({ format: 'jwk' }), kid, use: 'sig', alg: 'RS256' }] });
  }
  if (url.pathname === '/__mode' && req.method === 'POST') { mode = url.searchParams.get('m'); res.end(`mode=${mode}\n`); return; }
  if (url.pathname === '/auth') {
    const code = crypto.randomBytes(16).toString('hex');
    codes.set(code, url.searchParams.get('nonce'));
    const back = new URL(url.searchParams.get('redirect_uri'));
    back.searchParams.set('code', code);
    back.searchParams.set('state', url.searchParams.get('state'));
    res.writeHead(303, { location: back.toString() });
    res.end();
    return;
  }
  if (url.pathname === '/token' && req.method === 'POST') {
    const code = new URLSearchParams(body).get('code');
    if (!codes.has(code)) return json(res, 400, { error: 'invalid_grant' });
    const nonce = codes.get(code);
    codes.delete(code);
    return json(res, 200, { access_token: 'at', token_type: 'Bearer', expires_in: 300, id_token: idToken(nonce) });
  }
  res.writeHead(404); res.end();
}).listen(port, '127.0.0.1', () => console.log(`listening ${issuer}`));
