#!/usr/bin/env bash
# The last step of the MLOps scenario (README, check_kiln_ct_story.cmake): serve
# digits@production from the registry the pipeline promoted into, ask it about eight shifted
# held-out rows over HTTP, check that the answer names the production version and gives the
# classes `kiln predict` gives with that version's file, then stop the server with SIGTERM
# (it finishes what it has and exits 0). Needs only bash (its /dev/tcp), no curl.
#   serve_story.sh KILN WORK
set -euo pipefail
kiln=$1
work=$2
port_file="$work/serve.port"
rm -f "$port_file"
"$kiln" serve digits@production --registry "$work/models" --port 0 --port-file "$port_file" \
  >"$work/serve.log" 2>&1 &
pid=$!
trap 'kill -KILL "$pid" 2>/dev/null || true' EXIT
for _ in $(seq 1 600); do
  [ -s "$port_file" ] && break
  kill -0 "$pid" 2>/dev/null || { cat "$work/serve.log"; echo "kiln serve exited"; exit 1; }
  sleep 0.05
done
[ -s "$port_file" ] || { cat "$work/serve.log"; echo "kiln serve did not start"; exit 1; }
port=$(cat "$port_file")
head -n 1 "$work/serve.log"

# {"instances": [[64 pixels], ...]}: rows 1-8 of the shifted holdout, without the label.
body=$(sed -n '2,9p' "$work/data/holdout_shifted.csv" |
  awk -F, 'BEGIN { printf "{\"instances\": [" }
           { printf "%s[", (NR > 1 ? ", " : ""); for (i = 1; i < NF; ++i) printf "%s%s", (i > 1 ? "," : ""), $i; printf "]" }
           END { printf "]}" }')
exec 3<>"/dev/tcp/127.0.0.1/$port"
printf 'POST /v1/models/digits:predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s' \
  "${#body}" "$body" >&3
answer=$(cat <&3)
exec 3<&-
json=${answer#*$'\r\n\r\n'}
echo "POST /v1/models/digits:predict -> $json" | cut -c1-400

production=$("$kiln" registry --registry "$work/models" path digits@production)
version=$("$kiln" registry --registry "$work/models" show digits@production --json |
  sed -n 's/.*"version": *\([0-9]*\).*/\1/p' | head -n 1)
expected=$("$kiln" predict "$production" --data "$work/data/holdout_shifted.csv" | sed -n '2,9p' |
  cut -d, -f1 | awk '{ printf "%s\"%s\"", (NR > 1 ? "," : ""), $0 }')
served=$(printf '%s' "$json" | grep -o '"classes":\[[^]]*\]' | sed 's/"classes":\[\(.*\)\]/\1/')
[ "$served" = "$expected" ] || { echo "served classes [$served] != kiln predict [$expected]"; exit 1; }
printf '%s' "$json" | grep -q "\"version\":\"$version\"" ||
  { echo "the answer does not name version $version"; exit 1; }
echo "served by digits:$version, classes [$served] = kiln predict"

kill -TERM "$pid"
rc=0
wait "$pid" || rc=$?
trap - EXIT
[ "$rc" -eq 0 ] || { cat "$work/serve.log"; echo "kiln serve exited with $rc after SIGTERM"; exit 1; }
echo "kiln serve stopped cleanly"
