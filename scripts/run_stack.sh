#!/usr/bin/env bash
# Run the assistant in the foreground: the action server (loopback only) and Rasa with
# the REST channel and the embedded SQLite tracker store. Ctrl-C or SIGTERM stops
# every process this script started.
#   RASA_PORT (5005), ACTIONS_PORT (5055), TRACKER_DB (.data/tracker.db), MODEL (models/omt.tar.gz)
set -euo pipefail
cd "$(dirname "$0")/.."
: "${RASA_PORT:=5005}" "${ACTIONS_PORT:=5055}" "${TRACKER_DB:=.data/tracker.db}" "${MODEL:=models/omt.tar.gz}"
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SANIC_HOST=127.0.0.1
# Development defaults for the SMS line's secrets (production mode refuses them).
: "${TWILIO_AUTH_TOKEN:=dev-twilio-token}" "${SMS_SENDER_KEY:=dev-sender-key}"
: "${SMS_WEBHOOK_URL:=http://127.0.0.1:${RASA_PORT}/webhooks/sms/webhook}"
export TWILIO_AUTH_TOKEN SMS_SENDER_KEY SMS_WEBHOOK_URL
export ACTION_ENDPOINT_URL="http://127.0.0.1:${ACTIONS_PORT}/webhook" TRACKER_DB
mkdir -p "$(dirname "$TRACKER_DB")" logs
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
.venv/bin/rasa run actions --actions actions --port "$ACTIONS_PORT" &
pids+=($!)
.venv/bin/rasa run --model "$MODEL" --interface 127.0.0.1 --port "$RASA_PORT" \
  --credentials credentials.yml --endpoints endpoints.yml ${RASA_EXTRA_ARGS:-} &
pids+=($!)
echo "Starting: Rasa on http://127.0.0.1:${RASA_PORT} (REST: /webhooks/rest/webhook), actions on 127.0.0.1:${ACTIONS_PORT}. Ctrl-C stops both."
wait -n
