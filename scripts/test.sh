#!/usr/bin/env bash
# test.sh - the README's second command: installs what the tests need, builds
# everything with AddressSanitizer + UndefinedBehaviorSanitizer into build/,
# and runs every test (unit, fuzz corpus replays, integration, interop)
# through CTest. Extra arguments go to ctest (e.g. -R smtpd).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh test
cmake -S . -B build -DCMAKE_BUILD_TYPE=Debug -DPOSTERN_SANITIZE=ON -DPOSTERN_WERROR=ON >/dev/null
cmake --build build -j"$(nproc)"
cd build
ctest --output-on-failure -j2 "$@"
