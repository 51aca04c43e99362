"""keygate from Python (requests): create a key, use it, rotate it with a grace period.

    KG_URL=https://127.0.0.1:8443 KG_CA=.run/tls/cert.pem KG_ADMIN_KEY=$(cat .run/admin.key) \
        python3 docs/examples/python_example.py
"""
import os
import sys

import requests

url = os.environ.get("KG_URL", "https://127.0.0.1:8443")
session = requests.Session()
session.verify = os.environ.get("KG_CA", ".run/tls/cert.pem")
session.trust_env = False  # REQUESTS_CA_BUNDLE would otherwise replace verify
admin = {"X-API-Key": os.environ["KG_ADMIN_KEY"]}


def check(response, expected):
    if response.status_code != expected:
        # Errors are RFC 9457 problem details: type, title, status, detail, request_id.
        problem = response.json()
        sys.exit(f"{response.request.method} {response.url}: {problem['status']} {problem['detail']} (request {problem['request_id']})")
    return response.json() if response.content else None


created = check(session.post(f"{url}/api/v1/admin/api-keys", headers=admin,
                             json={"name": "python example", "scopes": ["self"], "rate_limit_per_minute": 120}), 201)
key = created["key"]  # shown once: store it now
me = check(session.get(f"{url}/api/v1/auth/key", headers={"Authorization": f"Bearer {key}"}), 200)
assert me["id"] == created["id"] and me["status"] == "active"

rotated = check(session.post(f"{url}/api/v1/admin/api-keys/{created['id']}/rotate", headers=admin,
                             json={"grace_period_seconds": 60}), 201)
old_still_works = session.get(f"{url}/api/v1/auth/key", headers={"X-API-Key": key}).status_code == 200
new_works = session.get(f"{url}/api/v1/auth/key", headers={"X-API-Key": rotated["key"]}).status_code == 200
print(f"rotated {created['id']} -> {rotated['id']}; old key during grace: {old_still_works}; new key: {new_works}")
sys.exit(0 if old_still_works and new_works else 1)
