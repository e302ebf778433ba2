#!/usr/bin/env bash
# deps.sh - installs Debian 12 packages for Postern (sourced or run).
#   scripts/deps.sh build   what building and running Postern needs
#   scripts/deps.sh test    that plus every real peer the tests start
# One list per purpose; add a package where its first user is named.
set -euo pipefail

BUILD_PKGS=(
  build-essential cmake pkg-config
  libevent-dev libssl-dev libc-ares-dev liblmdb-dev libpcre2-dev
  libmilter-dev libspf2-dev libopendkim-dev libopendmarc-dev libidn2-dev
  libcmocka-dev
  swaks                             # the demo prints a swaks command to send a first message
)

TEST_PKGS=(
  clang libclang-rt-14-dev          # fuzz targets (POSTERN_FUZZ), LeakSanitizer runtime
  python3 python3-pytest            # integration and interop tests
  swaks libnet-ssleay-perl          # SMTP client peer (+ its STARTTLS support)
  postfix postfix-lmdb postfix-pcre # Postfix as sender, receiver, smtp-source/smtp-sink
  dovecot-core dovecot-imapd dovecot-pop3d dovecot-lmtpd  # mailbox readers
  pflogsumm                         # log compatibility
  opendkim opendkim-tools opendmarc miltertest spfquery publicsuffix openssl  # milter peers; PSL for postern-dmarc
  dnsmasq-base                      # DNS on loopback
  python3-milter                    # scriptable milters in tests
  clamav-daemon clamav-milter spamd spamass-milter rspamd  # antivirus/antispam milter peers (tests/pylib/milterpeers.py)
  lmdb-utils iproute2 procps psmisc util-linux e2fsprogs
)

deps_install() {
  local want=("$@") missing=()
  for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" -ne 0 ]; then
    echo "deps.sh: missing packages (run as root to install): ${missing[*]}" >&2
    return 1
  fi
  # Postfix asks a question at install time; the tests configure their own.
  echo 'postfix postfix/main_mailer_type select No configuration' | debconf-set-selections
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
}

# mail_owner for a root-started Postern, and an ordinary user that the tests
# (and postern-lda, which refuses root) run as when started by root.
deps_users() {
  [ "$(id -u)" -eq 0 ] || return 0
  getent group postern >/dev/null || groupadd --system postern
  getent passwd postern >/dev/null || useradd --system -g postern -d /nonexistent -s /usr/sbin/nologin postern
  getent passwd posterntest >/dev/null || useradd -m -s /bin/sh posterntest
}

deps_main() {
  case "${1:-build}" in
    build) deps_install "${BUILD_PKGS[@]}"; deps_users ;;
    test)  deps_install "${BUILD_PKGS[@]}" "${TEST_PKGS[@]}"; deps_users ;;
    *) echo "usage: deps.sh build|test" >&2; return 64 ;;
  esac
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
  deps_main "$@"
fi
