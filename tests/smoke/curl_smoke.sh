#!/usr/bin/env bash
# curl against a live `sdhrnet run` (or any deployment): every endpoint, including error cases, by status code.
# Usage: tests/smoke/curl_smoke.sh [BASE_URL] [API_KEY]   (defaults: http://127.0.0.1:8000 and $SDHRNET_SMOKE_KEY)
# Needs a champion for 300w (sdhrnet run registers the bundled default) and no model for wflw.
set -u
BASE="${1:-http://127.0.0.1:8000}"
KEY="${2:-${SDHRNET_SMOKE_KEY:-}}"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
FAILS=0
PASSES=0

# a 96x96 PNG with a disc, small enough to inline
echo "iVBORw0KGgoAAAANSUhEUgAAAGAAAABgCAIAAABt+uBvAAAC3ElEQVR4Ae3BC60lUQhFwY0RNKEEMShBxtKBklFwkunffd3JqTJA25oB2tYM0LZmgLY1A7StGaBtzQBtawZoWzNA25oB2tYM0LZmgLY1A7StGaBtzQBtawZoWzNA25oB2tYM0JtMl0fqNQzQH5ku/TeP1F8wQL81XbrAI/VDBugnpku38kg9zwA9b7r0AI/UwwzQk6ZLD/NIPcYAPWO69EMeqQcYoAdMl37OI3U3A3S36dIf8UjdygDdarr0pzxS9zFA95kuvYBH6iYG6CbTpdfwSN3BAN1huvQyHqnLDNAdpksv45G6zABdNl16JY/UNQbosunSK3mkrjFA10yXXswjdYEBumC69HoeqbMM0AXTpdfzSJ1lgC6YLr2eR+osA3TWdOkjPFKnGKCzpksf4ZE6xQCdNV36CI/UKQbolOnSp3ikjjNAp0yXPsUjdZwBOmW69CkeqeMM0CnTpU/xSB1ngE6ZLn2KR+o4A3TKdOlTPFLHGaBTpkuf4pE6zgAdN136II/UQQbolOnSp3ikjjNAp0yXPsUjdZwBOmW69CkeqeMM0CnTpU/xSB1ngE6ZLn2KR+o4A3TKdOlTPFLHGaBTpkuf4pE6zgCdNV36CI/UKQborOnSR3ikTjFAZ02XPsIjdYoBumC69HoeqbMM0AXTpdfzSJ1lgC6YLr2eR+osA3TNdOnFPFIXGKDLpkuv5JG6xgBdNl16JY/UNQboDtOll/FIXWaA7jBdehmP1GUG6CbTpdfwSN3BAN1nuvQCHqmbGKBbTZf+lEfqPgbobtOlP+KRupUBesB06ec8UnczQM+YLv2QR+oBBuhJ06WHeaQeY4CeN116gEfqYQboJ6ZLt/JIPc8A/dZ06QKP1A8ZoD8yXfpvHqm/YIDeZLo8Uq9hgLY1A7StGaBtzQBtawZoWzNA25oB2tYM0LZmgLY1A7StGaBtzQBtawZoWzNA25oB2tYM0LZmgLa1f4N9mHA/6zAIAAAAAElFTkSuQmCC" \
  | base64 -d > "$WORK/face.png"
IMAGE_B64="$(base64 -w0 "$WORK/face.png")"
AUTH=()
[ -n "$KEY" ] && AUTH=(-H "X-API-Key: $KEY")

# check NAME EXPECTED_STATUS(regex, e.g. 200|422) curl-args... ; the body is kept in $WORK/body for follow-up checks
check() {
  local name="$1" expected="$2"
  shift 2
  local status
  status="$(curl -sS -o "$WORK/body" -D "$WORK/headers" -w '%{http_code}' --max-time 60 "$@")" || status="curl-error"
  if [[ "$status" =~ ^($expected)$ ]]; then
    PASSES=$((PASSES + 1))
    echo "ok    $status $name"
  else
    FAILS=$((FAILS + 1))
    echo "FAIL  $status (expected $expected) $name: $(head -c 300 "$WORK/body")"
  fi
}

json_field() {  # json_field FIELD < file
  python3 -c "import json,sys; print(json.load(sys.stdin)$1)"
}

for _ in $(seq 1 120); do  # the model may still be loading
  [ "$(curl -s -o /dev/null -w '%{http_code}' "$BASE/readyz")" = "200" ] && break
  sleep 1
done

check "GET /livez" 200 "$BASE/livez"
check "HEAD /livez (load balancer probe)" 200 -I "$BASE/livez"
check "GET /readyz" 200 "$BASE/readyz"
check "GET / (web page)" 200 "$BASE/"
check "GET /docs" 200 "$BASE/docs"
check "GET /openapi.json" 200 "$BASE/openapi.json"

BOX='[[18, 18, 78, 78]]'
check "POST /align multipart" 200 -X POST "$BASE/align" -F "image=@$WORK/face.png;type=image/png" -F "boxes=$BOX"
grep -q '"num_landmarks"' "$WORK/body" || { FAILS=$((FAILS + 1)); echo "FAIL  /align body has no model"; }
printf '{"image": "%s", "boxes": %s}' "$IMAGE_B64" "$BOX" > "$WORK/align.json"
check "POST /align JSON" 200 -X POST "$BASE/align?dataset=300w" -H 'Content-Type: application/json' --data-binary "@$WORK/align.json"
check "POST /align without boxes (faces detected)" 200 -X POST "$BASE/align?max_faces=2&flip=true" -F "image=@$WORK/face.png"
grep -q '"faces"' "$WORK/body" || { FAILS=$((FAILS + 1)); echo "FAIL  /align without boxes has no faces list"; }
check "POST /align max_faces=0 -> 422" 422 -X POST "$BASE/align?max_faces=0" -F "image=@$WORK/face.png"
printf 'GIF89a not an image' > "$WORK/bad.gif"
check "POST /align unsupported image -> 415" 415 -X POST "$BASE/align" -F "image=@$WORK/bad.gif;type=image/gif" -F "boxes=$BOX"
check "POST /align text body -> 415" 415 -X POST "$BASE/align" -H 'Content-Type: text/plain' --data 'hello'
check "POST /align degenerate box -> 422" 422 -X POST "$BASE/align" -F "image=@$WORK/face.png" -F 'boxes=[[50, 50, 40, 40]]'
check "POST /align box outside -> 422" 422 -X POST "$BASE/align" -F "image=@$WORK/face.png" -F 'boxes=[[500, 500, 600, 600]]'
check "POST /align NaN box -> 422" 422 -X POST "$BASE/align" -H 'Content-Type: application/json' \
  --data "{\"image\": \"$IMAGE_B64\", \"boxes\": [[NaN, 1, 50, 50]]}"
MANY="[$(for i in $(seq 1 200); do printf '[18,18,78,78],'; done)[18,18,78,78]]"
check "POST /align too many faces -> 422" 422 -X POST "$BASE/align" -F "image=@$WORK/face.png" -F "boxes=$MANY"
check "POST /align dataset without model -> 503" 503 -X POST "$BASE/align?dataset=wflw" -F "image=@$WORK/face.png" -F "boxes=$BOX"
head -c 17000000 /dev/zero > "$WORK/huge.bin"
check "POST /align too large -> 413" 413 -X POST "$BASE/align" -F "image=@$WORK/huge.bin;type=image/png" -F "boxes=$BOX"
grep -qi 'application/problem+json' "$WORK/headers" || { FAILS=$((FAILS + 1)); echo "FAIL  413 is not problem+json"; }

check "GET /models" 200 "$BASE/models"
VERSION="$(json_field '["served"]["300w"]["version"]' < "$WORK/body" 2>/dev/null || echo 1)"
if [ -n "$KEY" ]; then
  check "POST /models/300w/promote without key -> 401" 401 -X POST "$BASE/models/300w/promote" -H 'Content-Type: application/json' --data "{\"version\": $VERSION}"
  check "POST /jobs/slim without key -> 401" 401 -X POST "$BASE/jobs/slim" -H 'Content-Type: application/json' --data '{"dataset": "300w", "data_root": "/nonexistent"}'
fi
check "POST /models/300w/promote" 200 -X POST "$BASE/models/300w/promote" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"version\": $VERSION}"
check "POST /models/300w/promote unknown version -> 404" 404 -X POST "$BASE/models/300w/promote" "${AUTH[@]}" -H 'Content-Type: application/json' --data '{"version": 9999}'
check "POST /models/300w/promote version beyond MLflow's range -> 422" 422 -X POST "$BASE/models/300w/promote" "${AUTH[@]}" -H 'Content-Type: application/json' --data '{"version": 99999999999999999999999999}'
check "GET /readyz after it: registry still reachable" 200 "$BASE/readyz"
[ "$(json_field '["registry"]' < "$WORK/body" 2>/dev/null)" = reachable ] || { FAILS=$((FAILS + 1)); echo "FAIL  /readyz: $(head -c 300 "$WORK/body")"; }
check "POST /models/300w/rollback (409 without an earlier champion)" "200|409" -X POST "$BASE/models/300w/rollback" "${AUTH[@]}"

check "POST /evaluate JSON items" 200 -X POST "$BASE/evaluate" "${AUTH[@]}" -H 'Content-Type: application/json' --data "{\"items\": [{\"image\": \"$IMAGE_B64\", \"box\": [18, 18, 78, 78], \"landmarks\": $(python3 -c 'import json; print(json.dumps([[20 + i * 0.8, 30 + (i % 17) * 2.0] for i in range(68)]))')}]}"
check "POST /evaluate empty -> 422" 422 -X POST "$BASE/evaluate" "${AUTH[@]}" -H 'Content-Type: application/json' --data '{"items": []}'

check "POST /jobs/slim -> 202" 202 -X POST "$BASE/jobs/slim" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data '{"dataset": "300w", "data_root": "/nonexistent/300w", "preset": "tiny"}'
LOCATION="$(grep -i '^location:' "$WORK/headers" | tr -d '\r' | cut -d' ' -f2)"
[ -n "$LOCATION" ] || { FAILS=$((FAILS + 1)); echo "FAIL  202 without Location"; LOCATION=/jobs/missing; }
check "POST /jobs/distill missing inputs -> 422" 422 -X POST "$BASE/jobs/distill" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data '{"dataset": "300w", "data_root": "/nonexistent/300w"}'
check "POST /jobs/teacher bad preset -> 422" 422 -X POST "$BASE/jobs/teacher" "${AUTH[@]}" -H 'Content-Type: application/json' \
  --data '{"dataset": "300w", "data_root": "/d", "preset": "huge"}'
check "GET /jobs" 200 "$BASE/jobs" "${AUTH[@]}"
check "GET $LOCATION" 200 "$BASE$LOCATION" "${AUTH[@]}"
check "DELETE $LOCATION -> 202 (409 once the worker has failed the job)" "202|409" -X DELETE "$BASE$LOCATION" "${AUTH[@]}"
check "GET /jobs/unknown -> 404" 404 "$BASE/jobs/no-such-job" "${AUTH[@]}"
check "GET /metrics" 200 "$BASE/metrics"
grep -q 'sdhrnet_faces_aligned_total' "$WORK/body" || { FAILS=$((FAILS + 1)); echo "FAIL  /metrics lacks faces aligned"; }
grep -q 'sdhrnet_face_detection_seconds_count 1.0' "$WORK/body" || { FAILS=$((FAILS + 1)); echo "FAIL  /metrics lacks detection time"; }

echo "$PASSES passed, $FAILS failed"
[ "$FAILS" -eq 0 ]
