#!/usr/bin/env bash
# How fast `smartzone up` serves the fleet and how fast it stops on Ctrl-C, with each embedded broker.
# usage: bench/up_start_stop.sh [PORT] [SECONDS_RUNNING]   (run inside the project's venv, from an empty folder)
set -euo pipefail
port=${1:-8151}
running=${2:-20}
vehicles() {  # how many vehicles the API lists (0 until it answers)
  curl -s "http://127.0.0.1:$port/api/v1/vehicles" |
    python3 -c 'import json, sys; print(len(json.load(sys.stdin)["items"]))' 2>/dev/null || echo 0
}
for broker in mosquitto amqtt; do
  rm -rf data
  t0=$(date +%s.%N)
  SMARTZONE_EMBEDDED_BROKER=$broker smartzone up --port "$port" >"up-$broker.log" 2>&1 &
  pid=$!
  n=0
  for _ in $(seq 1 300); do
    n=$(vehicles)
    [ "$n" -gt 0 ] && break
    sleep 0.1
  done
  t1=$(date +%s.%N)
  echo "$broker: $n vehicles served $(python3 -c "print(round($t1 - $t0, 2))") s after start"
  echo "$broker: GET / -> $(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/")"
  echo "$broker: running ${running} s ..."
  sleep "$running"
  echo "$broker: stats $(curl -s "http://127.0.0.1:$port/api/v1/stats")"
  t2=$(date +%s.%N)
  kill -INT "$pid"
  rc=0
  wait "$pid" || rc=$?
  t3=$(date +%s.%N)
  echo "$broker: exit $rc, $(python3 -c "print(round($t3 - $t2, 2))") s after SIGINT; last line: $(tail -n 1 "up-$broker.log")"
done
