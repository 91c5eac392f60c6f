#!/bin/sh
# Write the password file from the environment (hashed by mosquitto_passwd), then start.
set -eu
umask 077
: "${MQTT_COLLECTOR_USER:?}" "${MQTT_COLLECTOR_PASSWORD:?}" "${MQTT_BRIDGE_PASSWORD:?}"
passwd=/mosquitto/data/passwd
mosquitto_passwd -b -c "$passwd" "$MQTT_COLLECTOR_USER" "$MQTT_COLLECTOR_PASSWORD"
mosquitto_passwd -b "$passwd" hashwatt-bridge "$MQTT_BRIDGE_PASSWORD"
sed "s#/mosquitto/config/passwd#$passwd#" /mosquitto/config/mosquitto.conf > /mosquitto/data/mosquitto.conf
exec mosquitto -c /mosquitto/data/mosquitto.conf
