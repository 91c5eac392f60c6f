#!/bin/bash
# Runs once at InfluxDB 2.x setup: the ledger bucket (kept forever) and the InfluxQL
# mappings Grafana and the reports use: database "hashwatt", retention policy "autogen" =
# raw bucket, "ledger" = energy ledger bucket.
set -euo pipefail
influx bucket create --name hashwatt-ledger --org "$DOCKER_INFLUXDB_INIT_ORG" --retention 0
raw=$(influx bucket list --name hashwatt --org "$DOCKER_INFLUXDB_INIT_ORG" --hide-headers | cut -f1)
ledger=$(influx bucket list --name hashwatt-ledger --org "$DOCKER_INFLUXDB_INIT_ORG" --hide-headers | cut -f1)
influx v1 dbrp create --db hashwatt --rp autogen --bucket-id "$raw" --default --org "$DOCKER_INFLUXDB_INIT_ORG"
influx v1 dbrp create --db hashwatt --rp ledger --bucket-id "$ledger" --org "$DOCKER_INFLUXDB_INIT_ORG"
