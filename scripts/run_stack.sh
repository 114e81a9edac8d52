#!/usr/bin/env bash
# Run the assistant in the foreground: the action server (loopback only) and Rasa with
# the REST channel and the embedded SQLite tracker store. Ctrl-C or SIGTERM stops
# every process this script started.
#   RASA_PORT (5005), ACTIONS_PORT (5055), TRACKER_DB (.data/tracker.db), MODEL (models/omt.tar.gz)
#   WEB_PORT (8080): widget demo page and kiosk (omt/ops/web.py); SOCKET_URL, CLINIC_ORIGINS
#   OMT_ENV (development): `production` refuses to start on missing, default or short secrets
#   (omt/ops/config_check.py). RASA_ENABLE_API=1 turns Rasa's HTTP API on, with RASA_API_TOKEN
#   or RASA_JWT_SECRET (required); it is off otherwise.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m omt.ops.config_check  # first: before any default below fills a secret in
: "${RASA_PORT:=5005}" "${ACTIONS_PORT:=5055}" "${TRACKER_DB:=.data/tracker.db}" "${MODEL:=models/omt.tar.gz}"
export RASA_TELEMETRY_ENABLED=false TF_CPP_MIN_LOG_LEVEL=3 SANIC_HOST=127.0.0.1
# Development defaults for the SMS line's secrets (production mode refuses them).
: "${TWILIO_AUTH_TOKEN:=dev-twilio-token}" "${SMS_SENDER_KEY:=dev-sender-key}"
: "${SMS_WEBHOOK_URL:=http://127.0.0.1:${RASA_PORT}/webhooks/sms/webhook}"
export TWILIO_AUTH_TOKEN SMS_SENDER_KEY SMS_WEBHOOK_URL
# Web pages, and the page origins the socket.io channel accepts (omt/channels/socketio.py).
: "${WEB_PORT:=8080}" "${SOCKET_URL:=http://127.0.0.1:${RASA_PORT}}"
: "${CLINIC_ORIGINS:=http://127.0.0.1:${WEB_PORT},http://localhost:${WEB_PORT}}"
export CLINIC_ORIGINS
# endpoints.yml: TRACKER_DB_URL empty = SQLite at TRACKER_DB; LOCK_STORE_URL empty = locks in memory.
: "${TRACKER_DB_URL:=}" "${LOCK_STORE_URL:=}"
export ACTION_ENDPOINT_URL="http://127.0.0.1:${ACTIONS_PORT}/webhook" TRACKER_DB TRACKER_DB_URL LOCK_STORE_URL
mkdir -p "$(dirname "$TRACKER_DB")" logs
# Rasa's HTTP API (conversations, model, status) only on request, never without a secret.
# (Rasa takes these only as arguments, so other local users can see them in `ps`.)
api_args=()
if [ "${RASA_ENABLE_API:-0}" = "1" ]; then
  api_args+=(--enable-api)
  if [ -n "${RASA_API_TOKEN:-}" ]; then api_args+=(--auth-token "$RASA_API_TOKEN"); fi
  if [ -n "${RASA_JWT_SECRET:-}" ]; then api_args+=(--jwt-secret "$RASA_JWT_SECRET"); fi
fi
pids=()
stop() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop INT TERM EXIT
.venv/bin/python -m omt.rasa.actions_run --actions actions --port "$ACTIONS_PORT" &
pids+=($!)
# Rasa through our launcher: the version check and our patches to Rasa first (omt/rasa/run.py).
.venv/bin/python -m omt.rasa.run run --model "$MODEL" --interface 127.0.0.1 --port "$RASA_PORT" \
  --credentials credentials.yml --endpoints endpoints.yml "${api_args[@]}" ${RASA_EXTRA_ARGS:-} &
pids+=($!)
.venv/bin/python -m omt.ops.web --port "$WEB_PORT" --socket-url "$SOCKET_URL" &
pids+=($!)
echo "Starting: Rasa on http://127.0.0.1:${RASA_PORT} (REST: /webhooks/rest/webhook), actions on 127.0.0.1:${ACTIONS_PORT}. Ctrl-C stops all."
echo "Web pages: widget demo http://127.0.0.1:${WEB_PORT}/ and kiosk http://127.0.0.1:${WEB_PORT}/kiosk"
wait -n
