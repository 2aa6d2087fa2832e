#!/usr/bin/env bash
# make deploy: sam build and sam deploy, keeping the spigot's switch where it was.
#
# The template declares no stage variables (see SpigotApi in template.yaml), so a deploy
# does not touch spigot_state. Read before the deploy, it is put back afterwards only
# where the stage has none: ON on a first deploy, the old value after a deploy that
# removed it. A deploy during Jenkins maintenance never turns the spigot ON.
set -euo pipefail
stack=${STACK:-spigot}
toggle() { cargo run --quiet --release -p toggle_spigot -- --stack "$stack" "$@"; }

before=""
if status=$(toggle status --json 2>/dev/null); then
  before=$(python3 -c 'import json, sys; print(json.load(sys.stdin).get("variable") or "")' <<<"$status")
  echo "==> spigot_state before the deploy: ${before:-(none)}"
else
  echo "==> no stack $stack yet: a first deploy, the spigot starts ON"
fi

sam build
sam deploy --guided --stack-name "$stack"

echo "==> the switch after the deploy"
toggle restore "${before:-ON}"
