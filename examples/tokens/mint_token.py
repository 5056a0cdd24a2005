"""Mint a jobwire token (HS256 JWT) for one of your users' tenants.

Standard library only. Usage: JOBWIRE_JWT_SECRET=... python3 mint_token.py acme [ttl_seconds]
"""

import base64
import hashlib
import hmac
import json
import os
import sys
import time


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jobwire_token(secret: str, tenant: str, ttl_seconds: int = 3600) -> str:
    now = int(time.time())
    header = b64url(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
    claims = b64url(json.dumps({"tenant": tenant, "iat": now, "exp": now + ttl_seconds}).encode())
    signing_input = f"{header}.{claims}".encode()
    signature = hmac.new(secret.encode(), signing_input, hashlib.sha256).digest()
    return f"{header}.{claims}.{b64url(signature)}"


if __name__ == "__main__":
    ttl = int(sys.argv[2]) if len(sys.argv) > 2 else 3600
    print(jobwire_token(os.environ["JOBWIRE_JWT_SECRET"], sys.argv[1], ttl))
