#!/usr/bin/env bash
# Quick start: install the build dependencies, build ferry, start two demo HTTP backends on
# 127.0.0.1:9001 and 127.0.0.1:9002, and run ferry in the foreground on config/ferry.yaml
# (route "web" on 127.0.0.1:8080). Ctrl-C stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build -j"$(nproc)" --target ferry ferry_demo_backend >/dev/null
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT
build/ferry_demo_backend backend-1 127.0.0.1:9001 & pids+=($!)
build/ferry_demo_backend backend-2 127.0.0.1:9002 & pids+=($!)
cat >&2 <<'MSG'

ferry is starting on config/ferry.yaml. In another terminal, see traffic pass:
    curl -s http://127.0.0.1:8080/        # answers "backend-1", then "backend-2", ...
    printf 'hello\n\n' | nc -q1 127.0.0.1 8080
Edit config/ferry.yaml while it runs: routes reload live. Ctrl-C drains and stops.

MSG
build/ferry -c config/ferry.yaml
