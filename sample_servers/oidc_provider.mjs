// A real OpenID Provider for the sign-in tests: panva's `oidc-provider` (npm, pinned in ./dev), which
// is OpenID Certified — nobody here wrote the protocol side. Started by sample_servers/launch.py:
//
//   SAMPLE_SERVER_INFO_FILE   where to write {origin, url, issuer, ports, client_id, users}
//   OIDC_CLIENT_SECRET        the confidential client's secret (from the environment, never argv)
//   OIDC_REDIRECT_URIS        comma-separated redirect URIs of the client (the dashboard's callback)
//   OIDC_PROVIDER_MODULE      the package's entry file (ESM ignores NODE_PATH; the package lives in .cache)
//
// It binds 127.0.0.1 on an ephemeral port first, then names itself `http://127.0.0.1:PORT` as issuer.
// Two users in different groups, whose `groups` claim goes into the ID token: alice (operators) and
// victor (viewers). Signing in uses the provider's own development screens: any password, the user
// name is the account; then a consent screen ("Continue").
import { createServer } from 'node:http';
import { randomBytes } from 'node:crypto';
import { renameSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const { default: Provider } = await import(pathToFileURL(process.env.OIDC_PROVIDER_MODULE).href);

const USERS = {
  alice: { email: 'alice@example.com', groups: ['switchboard-operators'] },
  victor: { email: 'victor@example.com', groups: ['switchboard-viewers'] },
};
const CLIENT_ID = 'switchboard-dashboard';

const server = createServer();
server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  const provider = new Provider(issuer, {
    clients: [{
      client_id: CLIENT_ID,
      client_secret: process.env.OIDC_CLIENT_SECRET,
      redirect_uris: (process.env.OIDC_REDIRECT_URIS || '').split(',').filter(Boolean),
      grant_types: ['authorization_code'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    async findAccount(ctx, id) {
      const user = USERS[id];
      if (!user) return undefined;
      return {
        accountId: id,
        async claims() {
          return { sub: id, email: user.email, email_verified: true, groups: user.groups };
        },
      };
    },
    claims: { openid: ['sub'], email: ['email', 'email_verified'], groups: ['groups'] },
    scopes: ['openid', 'email', 'groups'],
    conformIdTokenClaims: false, // the scopes' claims go into the ID token, where Switchboard reads them
    pkce: { required: () => true },
    cookies: { keys: [randomBytes(32).toString('hex')] },
    features: { devInteractions: { enabled: true } },
  });
  provider.proxy = false;
  const callback = provider.callback();
  server.on('request', (req, res) => {
    if (req.url.startsWith('/_control/')) { // launch.py's readiness check and per-test reset
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end('{}');
      return;
    }
    callback(req, res);
  });
  const infoFile = process.env.SAMPLE_SERVER_INFO_FILE;
  writeFileSync(`${infoFile}.partial`, JSON.stringify({
    origin: issuer,
    url: issuer,
    issuer,
    ports: [port],
    client_id: CLIENT_ID,
    users: USERS,
  }));
  renameSync(`${infoFile}.partial`, infoFile); // launch.py reads it as soon as it exists
});
