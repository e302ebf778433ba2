#!/usr/bin/env bash
# demo.sh - the README's first command: installs the build dependencies,
# builds Postern into build/, and runs it in the foreground on the demo
# configuration (examples/demo, copied to demo/conf): SMTP on
# 127.0.0.1:2525, mail for @demo.test into demo/mail/<user>/Maildir/.
# Stop it with Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
bash scripts/deps.sh build
cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DPOSTERN_SANITIZE=OFF >/dev/null
cmake --build build -j"$(nproc)"

demo="$top/demo"
mkdir -p "$demo/conf" "$demo/mail"
cp examples/demo/main.cf examples/demo/master.cf examples/demo/vmailbox "$demo/conf/"
if [ "$(id -u)" -eq 0 ]; then
  uid=$(id -u postern)         # as root, deliveries run as this uid
  chown postern:postern "$demo/mail"
  chmod 755 "$demo"
else
  uid=$(id -u)
fi
sed -i -e "s|^demo_root = .*|demo_root = $demo|" -e "s|^demo_uid = .*|demo_uid = $uid|" "$demo/conf/main.cf"
build/bin/postern -c "$demo/conf" check

cat <<MSG

Postern is starting on 127.0.0.1:2525 (configuration: demo/conf, log: demo/maillog).
Send a first message from another terminal:

  swaks --server 127.0.0.1:2525 --from you@example.org --to alice@demo.test
  # or: printf 'Subject: hi\n\nhello\n' | curl -s smtp://127.0.0.1:2525 --mail-from you@example.org --mail-rcpt alice@demo.test -T -

then look at demo/mail/alice/Maildir/new/ and demo/maillog, or run
  build/bin/postern -c demo/conf queue
Stop with Ctrl-C.

MSG
exec build/bin/postern -c "$demo/conf" start-fg
