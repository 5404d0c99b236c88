#!/usr/bin/env bash
# Run ferry's whole test suite: unit tests, end-to-end tests against the real binary, and the
# container test (skipped with a message when neither docker nor podman works).
#   tools/test.sh               normal build in build/
#   FERRY_SANITIZE=1 tools/test.sh   ASan + UBSan build in build-asan/
# Extra arguments go to ctest (e.g. -L unit, -R relay).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/deps.sh
if [ "${FERRY_SANITIZE:-0}" = 1 ]; then
    dir=build-asan
    flags=(-DFERRY_SANITIZE=ON -DCMAKE_BUILD_TYPE=Debug)
    export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
    export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
else
    dir=build
    flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo)
fi
cmake -S . -B "$dir" -DFERRY_WERROR=ON "${flags[@]}" >/dev/null
cmake --build "$dir" -j"$(nproc)"
cd "$dir"
ctest --output-on-failure -j2 "$@"
