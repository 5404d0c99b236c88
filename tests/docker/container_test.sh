#!/usr/bin/env bash
# The container image, for real: build docker/Dockerfile, start a container with a configuration
# directory mounted from the host, pass traffic through it to backends on the host, edit the
# mounted configuration (in place, by rename, and wrongly) and see the routes follow, then stop
# it with SIGTERM and check a clean exit (code 0, the "stopped" log line).
#
#   container_test.sh SOURCE_DIR DEMO_BACKEND_BINARY
#
# Engine: docker when `docker info` answers, otherwise podman (with runc, as set up by
# tools/container-setup.sh). Environment:
#   FERRY_DOCKER_TEST=require   a skip is a failure (CI); =skip skips; unset: skip when no engine
#   FERRY_CONTAINER_ENGINE=...  force docker or podman
#   FERRY_DOCKER_KEEP_IMAGE=1   keep the built image (tag ferry-test:PID) after the test
# Exit: 0 pass, 1 fail, 77 skip (ctest SKIP_RETURN_CODE).
# Networking: the container shares the host's network (--network host), so ferry listens on
# 127.0.0.1 and reaches the test's backends there; nothing leaves the loopback interface.
set -uo pipefail

SRC=${1:?usage: container_test.sh SOURCE_DIR DEMO_BACKEND}
DEMO=${2:?usage: container_test.sh SOURCE_DIR DEMO_BACKEND}
MODE=${FERRY_DOCKER_TEST:-auto}
BASE_IMAGE=docker.io/library/debian:bookworm-slim
IMAGE=ferry-test:$$
CNAME=ferry-test-$$
T0=$SECONDS

say() { printf '[%4ds] %s\n' "$((SECONDS - T0))" "$*"; }

skip() {
    if [ "$MODE" = require ]; then
        say "FAIL: cannot run the container test and FERRY_DOCKER_TEST=require: $*"
        exit 1
    fi
    say "SKIP: $*"
    exit 77
}

WORK=
ENGINE=()
CONTAINER_STARTED=
IMAGE_BUILT=
BACKEND_PIDS=()

cleanup() {
    local rc=$?
    trap - EXIT INT TERM
    if [ -n "$CONTAINER_STARTED" ]; then
        if [ "$rc" -ne 0 ] && [ "$rc" -ne 77 ]; then
            say "container log (last 40 lines):"
            timeout 30 "${ENGINE[@]}" logs "$CNAME" 2>&1 | tail -n 40 | sed 's/^/    /'
        fi
        timeout 60 "${ENGINE[@]}" rm -f "$CNAME" >/dev/null 2>&1
    fi
    if [ -n "$IMAGE_BUILT" ] && [ "${FERRY_DOCKER_KEEP_IMAGE:-0}" != 1 ]; then
        timeout 60 "${ENGINE[@]}" rmi -f "$IMAGE" >/dev/null 2>&1
        # podman leaves the build stage as an untagged image per build: remove this run's, i.e.
        # untagged images that are new since the build and that the build log names (not those
        # of another build running beside this one). Removing one also removes its untagged
        # parents, up to the tagged toolchain cache.
        grep -ohE '^--> (Using cache )?[0-9a-f]{11,}' "$WORK"/build*.log 2>/dev/null |
            grep -oE '[0-9a-f]{11,}$' | cut -c1-11 | sort -u >"$WORK/ours"
        dangling_images | comm -13 "$WORK/dangling.before" - | while read -r id; do
            short=${id#sha256:}
            grep -qx "${short:0:11}" "$WORK/ours" && echo "$id"
        done | xargs -r timeout 60 "${ENGINE[@]}" rmi >/dev/null 2>&1
    fi
    for pid in "${BACKEND_PIDS[@]}"; do
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    [ -n "$WORK" ] && rm -rf "$WORK"
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 1' INT TERM

fail() {
    say "FAIL: $*"
    exit 1
}

# wait_for SECONDS DESCRIPTION COMMAND...: poll COMMAND every 0.1 s until it succeeds.
wait_for() {
    local limit=$1 what=$2 deadline
    shift 2
    deadline=$((SECONDS + limit))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${limit}s waiting for $what"
        sleep 0.1
    done
}

case "$MODE" in
auto | require) ;;
skip | 0 | off | no) skip "FERRY_DOCKER_TEST=$MODE" ;;
*) fail "FERRY_DOCKER_TEST must be require, skip or unset (is '$MODE')" ;;
esac

# ---- choose an engine -------------------------------------------------------------------------
engine_answers() { timeout 30 "$@" info >/dev/null 2>&1; }
if [ -n "${FERRY_CONTAINER_ENGINE:-}" ]; then
    ENGINE=("$FERRY_CONTAINER_ENGINE")
elif command -v docker >/dev/null && engine_answers docker; then
    ENGINE=(docker)
    # podman-docker's `docker` is podman under another name: treat it as podman.
    if docker --version 2>/dev/null | grep -qi podman; then ENGINE=(podman); fi
elif command -v podman >/dev/null && engine_answers podman; then
    ENGINE=(podman)
else
    skip "neither docker nor podman answers (no engine running; on Debian run tools/container-setup.sh as root)"
fi
if [ "${ENGINE[0]}" = podman ] && command -v runc >/dev/null; then
    ENGINE+=(--runtime runc) # crun fails on hybrid cgroup hosts
fi
engine_answers "${ENGINE[@]}" || skip "'${ENGINE[*]} info' fails"
BUILD_OPTS=()
if [ "${ENGINE[0]}" = podman ]; then
    BUILD_OPTS+=(--network host) # apt-get in the build stage reaches the archive through the host
fi
say "engine: ${ENGINE[*]} ($("${ENGINE[@]}" --version 2>/dev/null | head -n1))"

[ -x "$DEMO" ] || fail "demo backend '$DEMO' is not built"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/ferry-docker-test.XXXXXX") || fail "mktemp"

# The build stage's base image: present, or pullable, or made by tools/container-setup.sh.
if ! timeout 60 "${ENGINE[@]}" image inspect "$BASE_IMAGE" >/dev/null 2>&1 &&
    ! timeout 180 "${ENGINE[@]}" pull "$BASE_IMAGE" >"$WORK/pull.log" 2>&1; then
    skip "base image $BASE_IMAGE is missing and cannot be pulled (run tools/container-setup.sh as root)"
fi

# ---- build --------------------------------------------------------------------------------------
dangling_images() { timeout 60 "${ENGINE[@]}" images -q --no-trunc --filter dangling=true 2>/dev/null | sort -u; }
dangling_images >"$WORK/dangling.before"
say "building $IMAGE from $SRC/docker/Dockerfile"
t=$SECONDS
IMAGE_BUILT=1
if [ "${ENGINE[0]}" = podman ]; then
    # Keep the toolchain stage (apt-get install) tagged, so that removing this run's build-stage
    # images does not also remove it and the next run does not reinstall the toolchain.
    timeout 1500 "${ENGINE[@]}" build "${BUILD_OPTS[@]}" -f "$SRC/docker/Dockerfile" \
        --target toolchain -t ferry-test-toolchain:cache "$SRC" >"$WORK/build-toolchain.log" 2>&1 || {
        tail -n 40 "$WORK/build-toolchain.log" | sed 's/^/    /'
        fail "toolchain stage build failed"
    }
fi
if ! timeout 1500 "${ENGINE[@]}" build "${BUILD_OPTS[@]}" -f "$SRC/docker/Dockerfile" \
    --target ferry -t "$IMAGE" "$SRC" >"$WORK/build.log" 2>&1; then
    tail -n 40 "$WORK/build.log" | sed 's/^/    /'
    fail "image build failed"
fi
say "built in $((SECONDS - t))s"

size=$("${ENGINE[@]}" image inspect -f '{{.Size}}' "$IMAGE") || fail "image inspect"
user=$("${ENGINE[@]}" image inspect -f '{{.Config.User}}' "$IMAGE")
stopsig=$("${ENGINE[@]}" image inspect -f '{{.Config.StopSignal}}' "$IMAGE")
say "image size: $size bytes ($(((size + 524288) / 1048576)) MiB), user '$user', stop signal '$stopsig'"
[[ "$user" =~ ^[0-9]+(:[0-9]+)?$ ]] || fail "image user '$user' is not numeric"
[ "${user%%:*}" != 0 ] || fail "image runs as root"
[[ "$stopsig" = SIGTERM || "$stopsig" = 15 || "$stopsig" = TERM ]] || fail "stop signal is '$stopsig'"
[ "$size" -lt $((20 * 1024 * 1024)) ] || fail "image is larger than 20 MiB"

# The default configuration is in the image, readable by the image's user, and valid.
out=$(timeout 60 "${ENGINE[@]}" run --rm --network host "$IMAGE" --check -c /etc/ferry/ferry.yaml 2>&1) ||
    fail "ferry --check of the image's default configuration failed: $out"
# No shell in the final image.
if timeout 60 "${ENGINE[@]}" run --rm --network host --entrypoint /bin/sh "$IMAGE" -c true >/dev/null 2>&1; then
    fail "the image has a shell"
fi

# ---- backends on the host --------------------------------------------------------------------
start_backend() { # start_backend NAME -> sets BACKEND_PORT
    local name=$1 log="$WORK/backend-$1.log"
    "$DEMO" "$name" 127.0.0.1:0 2>"$log" &
    BACKEND_PIDS+=($!)
    wait_for 10 "backend $name" grep -q 'listening on' "$log"
    BACKEND_PORT=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$log")
    [ -n "$BACKEND_PORT" ] || fail "backend $name: no port in '$(cat "$log")'"
}
start_backend alpha
PORT_ALPHA=$BACKEND_PORT
start_backend beta
PORT_BETA=$BACKEND_PORT

# A port nothing listens on (20000-32767: below the usual ephemeral range).
free_port() {
    local p hex i
    for i in $(seq 1 200); do
        p=$((20000 + RANDOM % 12768))
        printf -v hex ':%04X ' "$p"
        grep -qi "$hex" /proc/net/tcp /proc/net/tcp6 2>/dev/null || {
            echo "$p"
            return 0
        }
    done
    return 1
}
PORT_WEB=$(free_port) || fail "no free port"
PORT_EXTRA=$(free_port) || fail "no free port"
[ "$PORT_WEB" != "$PORT_EXTRA" ] || PORT_EXTRA=$(free_port)
say "backends: alpha 127.0.0.1:$PORT_ALPHA, beta 127.0.0.1:$PORT_BETA; ferry ports $PORT_WEB, $PORT_EXTRA"

# ask PORT: one HTTP request through ferry; prints the body (the backend's name), or nothing.
ask() {
    timeout 5 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
        printf "GET / HTTP/1.0\r\nHost: ferry-test\r\n\r\n" >&3
        cat <&3' _ "$1" 2>/dev/null | tail -n 1 | tr -d '\r'
}
answers() { [ "$(ask "$1")" = "$2" ]; }

# ---- the configuration directory, mounted over /etc/ferry ------------------------------------
CFG="$WORK/etc-ferry"
mkdir -m 0755 "$CFG"
write_config() { # write_config FILE WEB_BACKEND_PORT [EXTRA_ROUTE_PORT]
    {
        cat <<EOF
# written by tests/docker/container_test.sh
workers: 1
shutdown_timeout: 5s
reload: {watch: true}
log: {level: info, format: text, access: true}
routes:
  - name: web
    listen: 127.0.0.1:$PORT_WEB
    backends:
      - 127.0.0.1:$2
EOF
        if [ -n "${3:-}" ]; then
            cat <<EOF
  - name: extra
    listen: 127.0.0.1:$PORT_EXTRA
    backends:
      - 127.0.0.1:$3
EOF
        fi
    } >"$1"
    chmod 0644 "$1"
}
write_config "$CFG/ferry.yaml" "$PORT_ALPHA"

# ---- run ------------------------------------------------------------------------------------------
container_logs() { timeout 30 "${ENGINE[@]}" logs "$CNAME" 2>&1; }
# Not `logs | grep -q`: grep quitting early makes the engine's logs fail on SIGPIPE (pipefail).
logs_have() { grep -qE -- "$1" <<<"$(container_logs)"; }
# Exited, as opposed to running or (podman) "stopping" while it drains after SIGTERM.
exited() {
    case "$(timeout 30 "${ENGINE[@]}" inspect -f '{{.State.Status}}' "$CNAME" 2>/dev/null)" in
    exited | stopped | dead) return 0 ;;
    *) return 1 ;;
    esac
}
ready_or_dead() {
    logs_have ' info ready ' && return 0
    exited && fail "container exited before ready"
    return 1
}

CONTAINER_STARTED=1
t=$SECONDS
# --read-only and --cap-drop ALL: what docker/kubernetes/deployment.yaml asks for.
timeout 60 "${ENGINE[@]}" run -d --name "$CNAME" --network host --read-only --cap-drop ALL \
    -v "$CFG:/etc/ferry:ro" "$IMAGE" >"$WORK/run.log" 2>&1 || {
    cat "$WORK/run.log"
    fail "container did not start"
}
wait_for 30 "the 'ready' log line" ready_or_dead
say "ready after $((SECONDS - t))s"

for i in 1 2 3; do
    got=$(ask "$PORT_WEB")
    [ "$got" = alpha ] || fail "request $i through 127.0.0.1:$PORT_WEB answered '$got', expected alpha"
done
say "traffic passes: 3 requests answered by alpha"

# Edit 1, in place (truncate and write, like `cat >` or a bind-mounted file edited on the host):
# the web route moves to beta.
t=$SECONDS
write_config "$CFG/ferry.yaml" "$PORT_BETA"
wait_for 10 "route web to move to beta" answers "$PORT_WEB" beta
say "in-place edit applied in <= $((SECONDS - t + 1))s: web answers beta"

# Edit 2, editor style (write a new file, rename it over the old one): a new route appears.
t=$SECONDS
write_config "$CFG/.ferry.yaml.tmp" "$PORT_BETA" "$PORT_ALPHA"
mv -f "$CFG/.ferry.yaml.tmp" "$CFG/ferry.yaml"
wait_for 10 "new route extra on 127.0.0.1:$PORT_EXTRA" answers "$PORT_EXTRA" alpha
answers "$PORT_WEB" beta || fail "route web stopped answering beta after adding route extra"
say "rename edit applied in <= $((SECONDS - t + 1))s: extra answers alpha, web still beta"

# Edit 3, a mistake: rejected with its position, the running routes are unchanged.
sed 's/^routes:/routez:/' "$CFG/ferry.yaml" >"$CFG/.ferry.yaml.tmp"
chmod 0644 "$CFG/.ferry.yaml.tmp"
mv -f "$CFG/.ferry.yaml.tmp" "$CFG/ferry.yaml"
# (Matched on its position and key, not just "rejected": an in-place edit may be seen half-written.)
wait_for 10 "the 'reload rejected' log line" logs_have 'error reload rejected.*ferry\.yaml:6:1: .*routez'
answers "$PORT_WEB" beta || fail "route web changed after a rejected edit"
answers "$PORT_EXTRA" alpha || fail "route extra changed after a rejected edit"
say "invalid edit rejected: $(grep 'routez' <<<"$(container_logs)" | head -n 1 | cut -d' ' -f3-)"

logs_have ' info reload generation=[0-9]+' || fail "no 'reload generation=' log line"
logs_have " info access route=web client=127\.0\.0\.1:[0-9]+ backend=127\.0\.0\.1:$PORT_BETA " ||
    fail "no access line for route web via beta"

# ---- stop with SIGTERM, draining a connection in flight -------------------------------------------
# A client connects through route web and waits for $WORK/go before it sends its request, so
# its connection is open (ferry connected to beta) when SIGTERM arrives; ferry must let it finish.
established_to_beta() { # ferry's connection to beta, seen from the host (shared network)
    local hex
    printf -v hex '%04X' "$PORT_BETA"
    awk -v h=":$hex" '$4 == "01" && substr($3, length($3) - 4) == h { found = 1 } END { exit !found }' \
        /proc/net/tcp
}
timeout 30 bash -c 'exec 3<>"/dev/tcp/127.0.0.1/$1" || exit 1
    for i in $(seq 1 200); do [ -e "$2" ] && break; sleep 0.1; done
    printf "GET / HTTP/1.0\r\nHost: ferry-test\r\n\r\n" >&3
    cat <&3' _ "$PORT_WEB" "$WORK/go" >"$WORK/drain.out" 2>&1 &
DRAIN_CLIENT=$!
wait_for 10 "a connection in flight to beta" established_to_beta

t=$SECONDS
timeout 90 "${ENGINE[@]}" stop -t 30 "$CNAME" >"$WORK/stop.log" 2>&1 &
STOPPER=$!
wait_for 10 "the 'shutdown signal=SIGTERM' log line" logs_have ' info shutdown signal=SIGTERM connections=1 '
exited && fail "ferry exited at SIGTERM while a connection was in flight"
touch "$WORK/go"
wait "$DRAIN_CLIENT" || fail "the connection in flight failed during shutdown: $(cat "$WORK/drain.out")"
[ "$(tail -n 1 "$WORK/drain.out" | tr -d '\r')" = beta ] ||
    fail "the connection in flight got '$(cat "$WORK/drain.out")', expected beta's answer"
wait "$STOPPER" || fail "'${ENGINE[*]} stop' failed: $(cat "$WORK/stop.log")"
wait_for 30 "the container to exit" exited
code=$(timeout 30 "${ENGINE[@]}" inspect -f '{{.State.ExitCode}}' "$CNAME")
say "stopped in $((SECONDS - t))s with exit code $code, after draining a connection in flight"
[ "$code" = 0 ] || fail "exit code $code after SIGTERM, expected 0"
logs_have ' info stopped$' || fail "no 'stopped' log line"
logs_have " info access route=web .* cause=backend_fin" || fail "no access line for the drained connection"

say "PASS: engine ${ENGINE[0]}, image $size bytes, $((SECONDS - T0))s"
exit 0
