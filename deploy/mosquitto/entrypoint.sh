#!/bin/sh
# Write the password file from the environment (hashed by mosquitto_passwd), then start.
# Passwords reach mosquitto_passwd on stdin (printf is a shell builtin), never on a command
# line that `ps` shows, and no child process inherits them from the environment.
set -eu
umask 077
: "${MQTT_COLLECTOR_USER:?}" "${MQTT_COLLECTOR_PASSWORD:?}" "${MQTT_BRIDGE_PASSWORD:?}"
collector_pw=$MQTT_COLLECTOR_PASSWORD
bridge_pw=$MQTT_BRIDGE_PASSWORD
unset MQTT_COLLECTOR_PASSWORD MQTT_BRIDGE_PASSWORD
passwd=/mosquitto/data/passwd
printf '%s\n%s\n' "$collector_pw" "$collector_pw" \
  | mosquitto_passwd -c "$passwd" "$MQTT_COLLECTOR_USER" >/dev/null
printf '%s\n%s\n' "$bridge_pw" "$bridge_pw" | mosquitto_passwd "$passwd" hashwatt-bridge >/dev/null
unset collector_pw bridge_pw
sed "s#/mosquitto/config/passwd#$passwd#" /mosquitto/config/mosquitto.conf > /mosquitto/data/mosquitto.conf
exec mosquitto -c /mosquitto/data/mosquitto.conf
