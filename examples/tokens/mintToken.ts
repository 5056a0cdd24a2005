// Mint a jobwire token (HS256 JWT) for one of your users' tenants, in a Node
// backend, with no dependency beyond node:crypto.
import { createHmac } from "node:crypto";

const b64url = (data: string | Buffer): string => Buffer.from(data).toString("base64url");

export function jobwireToken(secret: string, tenant: string, ttlSeconds = 3600): string {
  const now = Math.floor(Date.now() / 1000);
  const header = b64url(JSON.stringify({ alg: "HS256", typ: "JWT" }));
  const claims = b64url(JSON.stringify({ tenant, iat: now, exp: now + ttlSeconds }));
  const signature = createHmac("sha256", secret).update(`${header}.${claims}`).digest("base64url");
  return `${header}.${claims}.${signature}`;
}

// e.g. in a route handler, after your own sign-in:
//   res.json({ token: jobwireToken(process.env.JOBWIRE_JWT_SECRET!, user.tenantId, 900) });
