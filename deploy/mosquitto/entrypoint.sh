#!/bin/sh
# hashwatt broker entrypoint: replaces eclipse-mosquitto's /docker-entrypoint.sh (which only
# chowns /mosquitto and execs mosquitto). It writes the password file and the ACL from the
# environment and the mounted config, then starts mosquitto.
#
# Why the ownership matters: mosquitto reads mosquitto.conf as root, then drops to the user
# `mosquitto` (src/mosquitto.c: drop_privileges() runs before the security plugins load),
# and only then opens password_file and acl_file. A root-owned 0600 file fails with
# "Error: Unable to open pwfile". lib/misc_mosq.c mosquitto__fopen(restrict_read) also warns
# "Future versions will refuse to load this file" unless the file is owned by that user and
# not readable by others. So both files are mosquitto:mosquitto 0600.
#
# Passwords never appear on a command line (visible in /proc to every process): `printf` is a
# shell builtin in busybox ash (the image) and dash, and `mosquitto_passwd -U` hashes the
# plain-text file in place (PBKDF2-SHA512, "$7$").
#
# MOSQUITTO_ROOT stands in for /mosquitto in tests (tests/test_deploy_mosquitto.py runs this
# script as root with Debian's mosquitto, which drops privileges the same way).
set -eu
root="${MOSQUITTO_ROOT:-/mosquitto}"
: "${MQTT_COLLECTOR_USER:?set MQTT_COLLECTOR_USER (the site name) in .env}"
: "${MQTT_COLLECTOR_PASSWORD:?set MQTT_COLLECTOR_PASSWORD in .env}"
: "${MQTT_BRIDGE_PASSWORD:?set MQTT_BRIDGE_PASSWORD in .env}"
bridge_user="${MQTT_BRIDGE_USER:-hashwatt-bridge}"
for value in "$MQTT_COLLECTOR_USER" "$bridge_user"; do
  case "$value" in
    *:* | *" "* | "") echo "mosquitto entrypoint: user name '$value' must not contain ':' or spaces" >&2; exit 2 ;;
  esac
done

umask 077
auth="$root/auth"   # container-local (not a volume): rewritten at every start
mkdir -p "$auth" "$root/data"
tmp="$auth/passwd.new"
rm -f "$tmp"
printf '%s:%s\n%s:%s\n' "$MQTT_COLLECTOR_USER" "$MQTT_COLLECTOR_PASSWORD" \
  "$bridge_user" "$MQTT_BRIDGE_PASSWORD" > "$tmp"
# no child (mosquitto_passwd, chown, mosquitto itself) needs them in its environment
unset MQTT_COLLECTOR_PASSWORD MQTT_BRIDGE_PASSWORD
mosquitto_passwd -U "$tmp" >/dev/null
mv -f "$tmp" "$auth/passwd"
# the bridge's name in the ACL follows MQTT_BRIDGE_USER
sed "s/^user hashwatt-bridge\$/user $bridge_user/" "$root/config/acl" > "$auth/acl"

chown mosquitto:mosquitto "$auth" "$auth/passwd" "$auth/acl"
chmod 0700 "$auth"
chmod 0600 "$auth/passwd" "$auth/acl"
# persistence (mosquitto.db) is written after the privilege drop, as the upstream entrypoint
# arranges with its chown of /mosquitto
chown -R mosquitto:mosquitto "$root/data"

exec mosquitto -c "${MOSQUITTO_CONF:-$root/config/mosquitto.conf}"
