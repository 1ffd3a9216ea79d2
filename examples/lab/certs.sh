#!/usr/bin/env bash
# certs.sh DIR: a throwaway CA and a certificate for httpbin.org signed by it,
# for the lab's fake httpbin.org. Writes DIR/ca.crt (give it to curl with
# --cacert), DIR/httpbin.crt and DIR/httpbin.key. Keeps existing files.
set -euo pipefail

dir=${1:?usage: certs.sh DIR}
mkdir -p "$dir"
cd "$dir"
trap 'echo "certs.sh: openssl failed, see $dir/openssl.log" >&2' ERR

if [[ -s ca.crt && -s httpbin.crt && -s httpbin.key ]]; then
  exit 0
fi

cat > ca.ext <<'EXT'
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EXT
cat > httpbin.ext <<'EXT'
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature, keyEncipherment
extendedKeyUsage = serverAuth
subjectAltName = DNS:httpbin.org
authorityKeyIdentifier = keyid
EXT

openssl req -new -newkey rsa:2048 -nodes -subj "/CN=chokepoint lab CA" \
  -keyout ca.key -out ca.csr 2>>openssl.log
openssl x509 -req -in ca.csr -signkey ca.key -days 30 -sha256 \
  -extfile ca.ext -out ca.crt 2>>openssl.log
openssl req -new -newkey rsa:2048 -nodes -subj "/CN=httpbin.org" \
  -keyout httpbin.key -out httpbin.csr 2>>openssl.log
openssl x509 -req -in httpbin.csr -CA ca.crt -CAkey ca.key -CAcreateserial \
  -days 30 -sha256 -extfile httpbin.ext -out httpbin.crt 2>>openssl.log

rm -f ca.csr httpbin.csr ca.ext httpbin.ext ca.srl openssl.log
chmod 0644 ca.crt httpbin.crt
chmod 0600 ca.key httpbin.key
