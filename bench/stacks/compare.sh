#!/usr/bin/env bash
# Measures each candidate stack against the instant nginx mock on :9001 (bench/run.py starts
# it; or `nginx -p DIR -c bench/mock/nginx.conf`). Usage: bench/stacks/compare.sh [ROUNDS] [SECONDS]
set -u
cd "$(dirname "$0")"
ROUNDS=${1:-3}; D=${2:-5}; PY=${PY:-python3}
WRK_LUA=${WRK_LUA:-../wrk/chat.lua}
for r in $(seq 1 "$ROUNDS"); do
  for stack in aiohttp uvicorn-aiohttp uvicorn-httpx granian-aiohttp; do
    setsid "$PY" candidates.py "$stack" 4300 http://127.0.0.1:9001/v1/chat/completions > /tmp/stack-$stack.log 2>&1 &
    pid=$!
    for i in $(seq 1 50); do curl -s -o /dev/null -XPOST localhost:4300/v1/chat/completions && break; sleep 0.1; done
    t0=$(awk '{print $14+$15}' /proc/$pid/stat)
    kids=$(pgrep -g $pid | tr '\n' ' ')
    out=$(BENCH_KEY=sk-bench-1234 BENCH_MODEL=gpt-4o-mini timeout $((D+20)) wrk -t1 -c50 -d${D}s --latency -s "$WRK_LUA" http://127.0.0.1:4300/v1/chat/completions 2>&1)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p99=$(echo "$out" | awk '$1=="99%" {print $2}')
    cpu=0; for k in $kids; do c=$(awk '{print $14+$15}' /proc/$k/stat 2>/dev/null || echo 0); cpu=$((cpu + c)); done
    echo "round=$r stack=$stack rps=$rps p99=$p99 cpu_ticks=$cpu"
    kill -TERM -- -$pid 2>/dev/null; wait $pid 2>/dev/null; sleep 0.5
  done
done
