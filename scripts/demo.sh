#!/usr/bin/env bash
# demo.sh - the README's first command: installs the build dependencies,
# builds Postern into build/, and runs it in the foreground on the demo
# configuration (examples/demo): SMTP on 127.0.0.1:2525, mail for
# @demo.test into Maildirs under the demo directory. Stop it with Ctrl-C.
#
# Postern runs as an ordinary user here, so everything runs as that user.
# Started by root, the demo runs as the unprivileged `postern` user in
# /var/tmp/postern-demo (with a copy of build/bin that user can reach: a
# checkout under /root is out of its reach); otherwise as you, in ./demo.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTERN_SANITIZE=OFF >/dev/null
cmake --build build -j"$(nproc)"

if [ "$(id -u)" -eq 0 ]; then
  demo=/var/tmp/postern-demo
  rm -rf "$demo/bin"
  mkdir -p "$demo/conf" "$demo/mail"
  cp -r build/bin "$demo/bin"
  run=(setpriv --reuid=postern --regid=postern --clear-groups --)
  user=postern
else
  demo="$top/demo"
  mkdir -p "$demo/conf" "$demo/mail"
  ln -sfn "$top/build/bin" "$demo/bin"
  run=()
  user=$(id -un)
fi
cp examples/demo/main.cf examples/demo/master.cf examples/demo/vmailbox "$demo/conf/"
sed -i -e "s|^demo_root = .*|demo_root = $demo|" -e "s|^demo_uid = .*|demo_uid = $(id -u "$user")|" \
  "$demo/conf/main.cf"
[ "$(id -u)" -eq 0 ] && chown -R postern:postern "$demo"
"${run[@]}" "$demo/bin/postern" -c "$demo/conf" check

cat <<MSG

Postern is starting on 127.0.0.1:2525 as user $user
(configuration: $demo/conf, log: $demo/maillog).
Send a first message from another terminal:

  swaks --server 127.0.0.1:2525 --from you@example.org --to alice@demo.test

then look at $demo/mail/alice/Maildir/new/ and $demo/maillog, or run
  $demo/bin/postern -c $demo/conf queue
Stop with Ctrl-C.

MSG
exec "${run[@]}" "$demo/bin/postern" -c "$demo/conf" start-fg
