#!/bin/sh
# hashwatt Grafana entrypoint: provisions alerting receivers only for what is configured, then
# runs the image's own /run.sh.
#
# Why: Grafana validates every provisioned contact point at start-up and refuses to start
# when a required setting is empty after ${VAR} expansion (grafana/alerting receivers:
# pagerduty ValidateConfig "could not find integration key property in settings", telegram
# "could not find Bot Token in settings" / "could not find Chat Id in settings", email
# "could not find addresses in settings", webhook "required field 'url' is not specified").
# So a receiver is written only when its variables are set, and the notification policy
# routes only to contact points that exist.
#
# The files written here hold ${VAR} references, never the secrets: Grafana expands them from
# its own environment when it reads the provisioning files (pkg/services/provisioning/values).
#
# Routing (Alertmanager dispatch/route.go Route.Match): a child route with `continue: true`
# lets the search go on to its later *siblings*; the parent's receiver is used only when no
# child matched. So pages reach on-call (continue) and then a sibling route to site-ops;
# warnings go to site-ops, muted in the maintenance window.
#
# Timezone: every dashboard and the maintenance mute timing get the site's timezone, from
# HASHWATT_SITE_TIMEZONE or else `[site] timezone` of the hashwatt config at HASHWATT_CONFIG
# (default /etc/hashwatt/hashwatt.toml; hashwatt's own default is UTC). Grafana rounds
# now/d and now/M in the dashboard's timezone ("browser" = the viewer's clock, what the
# committed JSON says), and the mute timing's `location` decides when Tuesday 06:00 is.
# Neither file is expanded by Grafana: dashboard JSON is read as is, and a mute timing is a
# plain definitions.MuteTimeInterval (provisioning/alerting MuteTimeV1: no values.* type, so
# no ${VAR}); so the values are written here, into copies: the dashboards from
# HASHWATT_DASHBOARDS_SRC into HASHWATT_DASHBOARDS (the provider's path).
# Used by both Grafanas; the wall screen's provisioning has no alerting folder, so no
# receivers are written there.
set -eu
src="${HASHWATT_PROVISIONING_SRC:-/etc/hashwatt/grafana/provisioning}"
# GF_PATHS_PROVISIONING is what the image's /run.sh hands to grafana server
# (cfg:default.paths.provisioning); compose points it at a folder of this script's own in the
# data volume, rebuilt at every start from the read-only copy in the repository
out="${GF_PATHS_PROVISIONING:?GF_PATHS_PROVISIONING must name a writable directory}"
rm -rf "$out"
mkdir -p "$out"
cp -R "$src/." "$out/"

# the site's timezone: the environment, else the config's [site] table
site_tz() {
  if [ -n "${HASHWATT_SITE_TIMEZONE:-}" ]; then printf '%s\n' "$HASHWATT_SITE_TIMEZONE"; return 0; fi
  cfg="${HASHWATT_CONFIG:-/etc/hashwatt/hashwatt.toml}"
  [ -r "$cfg" ] || return 0
  awk '
    /^[ \t]*\[/ { in_site = ($0 ~ /^[ \t]*\[site\][ \t]*(#.*)?$/); if (in_site) seen = 1; next }
    in_site && /^[ \t]*timezone[ \t]*=/ {
      v = $0; sub(/^[^=]*=[ \t]*/, "", v)
      if (match(v, /^"[^"]*"/) || match(v, /^\047[^\047]*\047/)) {
        print substr(v, 2, RLENGTH - 2); found = 1; exit
      }
    }
    END { if (seen && !found) print "UTC" }' "$cfg"
}
tz="$(site_tz)"
case "$tz" in
  "") echo "hashwatt: no site timezone (HASHWATT_SITE_TIMEZONE, or [site] timezone in ${HASHWATT_CONFIG:-/etc/hashwatt/hashwatt.toml}): dashboards keep the viewer's browser time, the maintenance window UTC" >&2 ;;
  *[!A-Za-z0-9_+/-]*)
    echo "hashwatt: site timezone '$tz' is not an IANA name like Europe/Berlin: dashboards keep the viewer's browser time, the maintenance window UTC" >&2
    tz="" ;;
esac

dash_src="${HASHWATT_DASHBOARDS_SRC:-/etc/hashwatt/grafana/dashboards}"
dash_out="${HASHWATT_DASHBOARDS:-/var/lib/grafana/dashboards/hashwatt}"
if [ -d "$dash_src" ]; then
  rm -rf "$dash_out"
  mkdir -p "$dash_out"
  for f in "$dash_src"/*.json; do
    [ -e "$f" ] || continue
    # the dashboard's own "timezone" is its only key at two spaces' indent (sorted JSON,
    # dashboards/build.py render)
    if [ -n "$tz" ]; then
      sed "s#^  \"timezone\": \"[^\"]*\"#  \"timezone\": \"$tz\"#" "$f" > "$dash_out/${f##*/}"
    else
      cp "$f" "$dash_out/"
    fi
  done
fi
mute="$out/alerting/mute-timings.json"
if [ -n "$tz" ] && [ -f "$mute" ]; then
  sed "s#\"location\": \"[^\"]*\"#\"location\": \"$tz\"#" "$mute" > "$mute.new"
  mv "$mute.new" "$mute"
fi

if [ ! -d "$src/alerting" ]; then  # the wall screen: no alerting here
  if [ "$#" -eq 0 ]; then set -- /run.sh; fi
  exec "$@"
fi
mkdir -p "$out/alerting"

set_() { eval "[ -n \"\${$1:-}\" ]"; }

oncall=""; siteops=""
if set_ HASHWATT_PAGERDUTY_KEY; then oncall="$oncall pagerduty"; fi
if set_ HASHWATT_TELEGRAM_BOT_TOKEN && set_ HASHWATT_TELEGRAM_CHAT_ID; then
  oncall="$oncall telegram"
elif set_ HASHWATT_TELEGRAM_BOT_TOKEN || set_ HASHWATT_TELEGRAM_CHAT_ID; then
  echo "hashwatt: Telegram needs both HASHWATT_TELEGRAM_BOT_TOKEN and HASHWATT_TELEGRAM_CHAT_ID: not provisioned" >&2
fi
if set_ HASHWATT_ALERT_EMAILS; then
  siteops="$siteops email"
  [ "${GF_SMTP_ENABLED:-false}" = "true" ] || echo "hashwatt: HASHWATT_ALERT_EMAILS is set but GF_SMTP_ENABLED is not true: e-mails cannot be sent" >&2
fi
if set_ HASHWATT_ALERT_WEBHOOK_URL; then siteops="$siteops webhook"; fi

receiver() {  # $1 contact point, $2 integration
  echo "      - uid: hw-$1-$2"
  echo "        type: $2"
  echo "        disableResolveMessage: false"
  echo "        settings:"
  case "$2" in
    pagerduty) echo '          integrationKey: ${HASHWATT_PAGERDUTY_KEY}'
               echo '          severity: critical' ;;
    telegram)  echo '          bottoken: ${HASHWATT_TELEGRAM_BOT_TOKEN}'
               echo '          chatid: ${HASHWATT_TELEGRAM_CHAT_ID}' ;;
    email)     echo '          addresses: ${HASHWATT_ALERT_EMAILS}' ;;
    webhook)   echo '          url: ${HASHWATT_ALERT_WEBHOOK_URL}'
               echo '          httpMethod: POST' ;;
  esac
}

contact_point() {  # $1 name, $2.. integrations
  name=$1; shift
  echo "  - orgId: 1"
  echo "    name: $name"
  echo "    receivers:"
  for kind in "$@"; do receiver "$name" "$kind"; done
}

route() {  # $1 receiver, $2 severity, $3 continue, $4 mute
  echo "      - receiver: $1"
  echo "        object_matchers: [[\"severity\", \"=\", \"$2\"]]"
  [ "$3" = "continue" ] && echo "        continue: true"
  [ "$4" = "mute" ] && echo "        mute_time_intervals: [maintenance]"
  return 0
}

if [ -z "$oncall$siteops" ]; then
  echo "hashwatt: no alert receiver configured (see deploy/.env.example): alerts show in Grafana only" >&2
else
  {
    echo "apiVersion: 1"
    echo "contactPoints:"
    # shellcheck disable=SC2086 # word splitting of the lists is intended
    [ -n "$oncall" ] && contact_point on-call $oncall
    # shellcheck disable=SC2086
    [ -n "$siteops" ] && contact_point site-ops $siteops
    true
  } > "$out/alerting/contact-points.yaml"
  root=site-ops; [ -n "$siteops" ] || root=on-call
  {
    echo "apiVersion: 1"
    echo "policies:"
    echo "  - orgId: 1"
    echo "    receiver: $root"
    echo "    group_by: [alertname, site, rack]"
    echo "    group_wait: 30s"
    echo "    group_interval: 5m"
    echo "    repeat_interval: 4h"
    echo "    routes:"
    if [ -n "$oncall" ] && [ -n "$siteops" ]; then
      route on-call page continue ""
      route site-ops warning "" mute
      route site-ops page "" ""
    else
      route "$root" warning "" mute
      route "$root" page "" ""
    fi
  } > "$out/alerting/policies.yaml"
fi

if [ "$#" -eq 0 ]; then set -- /run.sh; fi
exec "$@"
