{{/*
Names and labels, in the usual Helm shape.
*/}}
{{- define "relay.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relay.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "relay.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "relay.selectorLabels" -}}
app.kubernetes.io/name: {{ include "relay.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "relay.labels" -}}
helm.sh/chart: {{ include "relay.chart" . }}
{{ include "relay.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{- define "relay.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "relay.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "relay.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag }}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository $tag }}
{{- end }}
{{- end }}

{{- define "relay.secretName" -}}
{{- default (include "relay.fullname" .) .Values.existingSecret }}
{{- end }}

{{/*
relay.credentials: every credential the chart feeds from a Secret. name is the
key under .Values.secrets and .Values.secretKeys, key the key in the chart's
own Secret, file the file name under /etc/relay/secrets for those the relay
reads from a file.
*/}}
{{- define "relay.credentials" -}}
- {name: apiTokens, env: RELAY_API_TOKENS, key: api-tokens}
- {name: apiTokensFile, env: RELAY_API_TOKENS_FILE, key: api-tokens-file, file: tokens.jsonl}
- {name: accountFeeds, env: RELAY_ACCOUNT_FEEDS, key: account-feeds}
- {name: inboxHmacTokens, env: RELAY_INBOX_HMAC_TOKENS, key: inbox-hmac-tokens}
- {name: natsPassword, env: RELAY_NATS_PASSWORD, key: nats-password}
- {name: natsToken, env: RELAY_NATS_TOKEN, key: nats-token}
- {name: natsCreds, env: RELAY_NATS_CREDS_FILE, key: nats-creds, file: nats.creds}
- {name: natsNkeySeed, env: RELAY_NATS_NKEY_SEED_FILE, key: nats-nkey-seed, file: nats.nk}
- {name: redisUrl, env: RELAY_REDIS_URL, key: redis-url}
- {name: subscriptions, env: RELAY_SUBSCRIPTIONS_FILE, key: subscriptions, file: subscriptions.txt}
{{- end }}

{{/* relay.secretEnvNames: the variables that hold a credential themselves. */}}
{{- define "relay.secretEnvNames" -}}
RELAY_API_TOKENS RELAY_INBOX_HMAC_TOKENS RELAY_NATS_PASSWORD RELAY_NATS_TOKEN RELAY_REDIS_URL RELAY_ACCOUNT_FEEDS
{{- end }}

{{/*
relay.secretValue renders the inline value of one credential as the string
stored in the chart's Secret ("" when unset). Args: (list $ name).
*/}}
{{- define "relay.secretValue" -}}
{{- $root := index . 0 }}{{ $name := index . 1 }}
{{- $v := index $root.Values.secrets $name }}
{{- if or (eq $name "apiTokens") (eq $name "accountFeeds") }}
{{- join "," (default list $v) }}
{{- else if eq $name "inboxHmacTokens" }}
{{- $pairs := list }}
{{- range $id, $tok := (default dict $v) }}{{ $pairs = append $pairs (printf "%s=%s" $id $tok) }}{{ end }}
{{- join "," $pairs }}
{{- else }}
{{- default "" $v }}
{{- end }}
{{- end }}

{{/*
relay.secretKey: the key a credential is read from, "" when it is not set.
Args: (list $ credential).
*/}}
{{- define "relay.secretKey" -}}
{{- $root := index . 0 }}{{ $c := index . 1 }}
{{- if $root.Values.existingSecret }}
{{- index $root.Values.secretKeys $c.name }}
{{- else if include "relay.secretValue" (list $root $c.name) }}
{{- $c.key }}
{{- end }}
{{- end }}

{{/*
relay.isSet: "true" when the variable reaches the pod through a credential,
config or extraEnv. Args: (list $ "RELAY_...").
*/}}
{{- define "relay.isSet" -}}
{{- $root := index . 0 }}{{ $env := index . 1 }}
{{- $set := false }}
{{- range (include "relay.credentials" $root | fromYamlArray) }}
{{- if and (eq .env $env) (include "relay.secretKey" (list $root .)) }}{{ $set = true }}{{ end }}
{{- end }}
{{- if ne (toString (index $root.Values.config $env | default "")) "" }}{{ $set = true }}{{ end }}
{{- range $root.Values.extraEnv }}{{ if eq .name $env }}{{ $set = true }}{{ end }}{{ end }}
{{- if $set }}true{{ end }}
{{- end }}

{{/* relay.httpPort: the port of RELAY_HTTP_ADDR. */}}
{{- define "relay.httpPort" -}}
{{- $addr := toString (index .Values.config "RELAY_HTTP_ADDR" | default "0.0.0.0:8080") }}
{{- regexReplaceAll "^.*:" $addr "" }}
{{- end }}

{{/* relay.metricsPort: the port of RELAY_METRICS_ADDR, "" when metrics share the API's. */}}
{{- define "relay.metricsPort" -}}
{{- with index .Values.config "RELAY_METRICS_ADDR" }}{{ regexReplaceAll "^.*:" (toString .) "" }}{{ end }}
{{- end }}

{{/* relay.natsListen: whether the pod exposes its embedded NATS. */}}
{{- define "relay.exposeNATS" -}}
{{- if .Values.service.nats.enabled }}true{{ end }}
{{- end }}

{{/*
relay.shutdownSeconds: RELAY_SHUTDOWN_TIMEOUT (a Go duration such as 15s,
1m30s or 2500ms) in whole seconds, rounded up.
*/}}
{{- define "relay.shutdownSeconds" -}}
{{- $d := toString (index .Values.config "RELAY_SHUTDOWN_TIMEOUT" | default "15s") }}
{{- if not (regexMatch "^([0-9]+(\\.[0-9]+)?(h|m|s|ms|us|µs|ns))+$" $d) }}
{{- fail (printf "config.RELAY_SHUTDOWN_TIMEOUT %q: want a Go duration such as 15s or 1m30s" $d) }}
{{- end }}
{{- $secs := 0.0 }}
{{- range regexFindAll "[0-9.]+(h|ms|us|µs|ns|m|s)" $d -1 }}
{{- $n := float64 (regexFind "^[0-9.]+" .) }}
{{- $unit := regexReplaceAll "^[0-9.]+" . "" }}
{{- $mult := dict "h" 3600.0 "m" 60.0 "s" 1.0 "ms" 0.001 "us" 0.000001 "µs" 0.000001 "ns" 0.000000001 }}
{{- $secs = addf $secs (mulf $n (index $mult $unit)) }}
{{- end }}
{{- ceil $secs | int }}
{{- end }}

{{/* relay.terminationGracePeriodSeconds: set or computed, always above the shutdown bound. */}}
{{- define "relay.terminationGracePeriodSeconds" -}}
{{- $shutdown := include "relay.shutdownSeconds" . | int }}
{{- if kindIs "invalid" .Values.terminationGracePeriodSeconds }}
{{- add $shutdown (int .Values.terminationGraceMarginSeconds) }}
{{- else }}
{{- $set := int .Values.terminationGracePeriodSeconds }}
{{- if le $set $shutdown }}
{{- fail (printf "terminationGracePeriodSeconds (%d) must exceed config.RELAY_SHUTDOWN_TIMEOUT (%ds): Kubernetes would kill the relay in the middle of its ordered shutdown (buffered events, cursors)" $set $shutdown) }}
{{- end }}
{{- $set }}
{{- end }}
{{- end }}

{{/* relay.maxReplicas: the most pods that can run at once. */}}
{{- define "relay.maxReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.maxReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* relay.minReplicas: the fewest pods that run. */}}
{{- define "relay.minReplicas" -}}
{{- if .Values.autoscaling.enabled }}{{ .Values.autoscaling.minReplicas }}{{ else }}{{ .Values.replicaCount }}{{ end }}
{{- end }}

{{/* relay.pdbEnabled: "true" when the PodDisruptionBudget is rendered. */}}
{{- define "relay.pdbEnabled" -}}
{{- $on := .Values.podDisruptionBudget.enabled }}
{{- if kindIs "invalid" $on }}{{ $on = gt (include "relay.minReplicas" . | int) 1 }}{{ end }}
{{- if $on }}true{{ end }}
{{- end }}
