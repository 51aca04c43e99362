#!/usr/bin/env bash
# keygate from the shell: create a user and a read-only key for it, use the key, revoke it.
#   KG_URL=https://127.0.0.1:8443 KG_CA=.run/tls/cert.pem KG_ADMIN_KEY=$(cat .run/admin.key) docs/examples/curl.sh
set -euo pipefail
url=${KG_URL:-https://127.0.0.1:8443}
ca=(--cacert "${KG_CA:-.run/tls/cert.pem}")
admin=(-H "X-API-Key: ${KG_ADMIN_KEY:?set KG_ADMIN_KEY}")
json=(-H "Content-Type: application/json")
field() { python3 -c "import json,sys; print(json.load(sys.stdin)[sys.argv[1]])" "$1"; }

user=$(curl -fsS "${ca[@]}" "${admin[@]}" "${json[@]}" -X POST "$url/api/v1/admin/users" \
  -d "{\"email\": \"curl-$RANDOM$RANDOM@example.com\", \"plan_tier\": \"pro\"}" | field id)
created=$(curl -fsS "${ca[@]}" "${admin[@]}" "${json[@]}" -X POST "$url/api/v1/admin/api-keys" \
  -d "{\"name\": \"curl example\", \"user_id\": \"$user\", \"scopes\": [\"self\", \"symbols:read\"], \"expires_in_days\": 1}")
id=$(field id <<<"$created")
key=$(field key <<<"$created")   # shown once: store it now

curl -fsS "${ca[@]}" -H "Authorization: Bearer $key" "$url/api/v1/admin/symbols?asset_class=crypto&limit=3" >/dev/null
curl -fsS "${ca[@]}" "${admin[@]}" "${json[@]}" -X PATCH "$url/api/v1/admin/api-keys/$id" -d '{"active": false}' >/dev/null
status=$(curl -sS -o /dev/null -w '%{http_code}' "${ca[@]}" -H "X-API-Key: $key" "$url/api/v1/auth/key")
echo "created $id for user $user; after revocation the key gets $status"
[[ $status == 401 ]]
