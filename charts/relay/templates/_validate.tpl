{{/*
relay.validate fails the render, with a message saying why, on values the
relay would refuse at start or that would misbehave in a cluster.
*/}}
{{- define "relay.validate" -}}
{{- $v := .Values }}
{{- if not (index $v.config "RELAY_CHATWOOT_URL") }}
{{- fail "config.RELAY_CHATWOOT_URL is required: the base URL of Chatwoot, such as https://chat.example.com" }}
{{- end }}
{{- $secretEnv := splitList " " (include "relay.secretEnvNames" .) }}
{{- range $name, $_ := $v.config }}
{{- if not (regexMatch "^RELAY_[A-Z0-9_]+$" $name) }}
{{- fail (printf "config.%s: config holds RELAY_* variables only; use extraEnv for others" $name) }}
{{- end }}
{{- if has $name $secretEnv }}
{{- fail (printf "config.%s holds a credential: set it under secrets (or existingSecret with secretKeys), never in plain config" $name) }}
{{- end }}
{{- end }}
{{- range $v.extraEnv }}
{{- if and (has .name $secretEnv) (hasKey . "value") }}
{{- fail (printf "extraEnv %s holds a credential as a plain value: use valueFrom.secretKeyRef or secrets" .name) }}
{{- end }}
{{- end }}
{{- include "relay.validateSecrets" . }}
{{- if not (or (include "relay.isSet" (list . "RELAY_API_TOKENS")) (include "relay.isSet" (list . "RELAY_API_TOKENS_FILE"))) }}
{{- fail "no API token: in a pod the relay listens beyond loopback (RELAY_HTTP_ADDR 0.0.0.0:8080) and refuses to start without tokens. Set secrets.apiTokens or secrets.apiTokensFile, or existingSecret with secretKeys.apiTokens or secretKeys.apiTokensFile" }}
{{- end }}
{{- if not (regexMatch "^[0-9]+$" (include "relay.httpPort" .)) }}
{{- fail (printf "config.RELAY_HTTP_ADDR %q: want host:port, such as 0.0.0.0:8080" (index $v.config "RELAY_HTTP_ADDR")) }}
{{- end }}
{{- include "relay.validateScale" . }}
{{- include "relay.validateNATS" . }}
{{- end }}

{{/* relay.validateSecrets: one source of credentials, and each credential once. */}}
{{- define "relay.validateSecrets" -}}
{{- $root := . }}
{{- range (include "relay.credentials" . | fromYamlArray) }}
{{- if and $root.Values.existingSecret (include "relay.secretValue" (list $root .name)) }}
{{- fail (printf "secrets.%s is set but existingSecret %q is used: put it in that Secret and name its key in secretKeys.%s" .name $root.Values.existingSecret .name) }}
{{- end }}
{{- if and (not $root.Values.existingSecret) (index $root.Values.secretKeys .name) }}
{{- fail (printf "secretKeys.%s names a key of existingSecret, which is not set" .name) }}
{{- end }}
{{- if and (include "relay.secretKey" (list $root .)) (index $root.Values.config .env) }}
{{- fail (printf "config.%s and the credential %s are both set: keep one" .env .name) }}
{{- end }}
{{- end }}
{{- end }}

{{/*
relay.validateScale: several pods need shared state (Redis) and a shared NATS.
*/}}
{{- define "relay.validateScale" -}}
{{- $max := include "relay.maxReplicas" . | int }}
{{- if gt $max 1 }}
{{- if not (include "relay.isSet" (list . "RELAY_REDIS_URL")) }}
{{- fail (printf "%d replicas without Redis: every replica would subscribe every pubsub_token on its own local state (Chatwoot sees each subscription %d times) and the API would answer from different state per pod. Horizontal scaling needs shared state: set secrets.redisUrl (or secretKeys.redisUrl), or run one replica" $max $max) }}
{{- end }}
{{- if not (include "relay.isSet" (list . "RELAY_NATS_URL")) }}
{{- fail (printf "%d replicas without config.RELAY_NATS_URL: each pod would publish into its own embedded NATS, and a consumer would see only the events of the pod it reached. Point the replicas at a shared NATS, or run one replica" $max) }}
{{- end }}
{{- if and .Values.persistence.enabled (has "ReadWriteOnce" .Values.persistence.accessModes) }}
{{- fail (printf "persistence with %d replicas: one ReadWriteOnce claim cannot be mounted by every pod. With Redis and an external NATS, /data holds nothing durable: turn persistence off" $max) }}
{{- end }}
{{- end }}
{{- if and .Values.autoscaling.enabled (gt (int .Values.autoscaling.minReplicas) (int .Values.autoscaling.maxReplicas)) }}
{{- fail "autoscaling.minReplicas exceeds autoscaling.maxReplicas" }}
{{- end }}
{{- end }}

{{/* relay.validateNATS: an exposed embedded NATS requires authentication. */}}
{{- define "relay.validateNATS" -}}
{{- if include "relay.exposeNATS" . }}
{{- if include "relay.isSet" (list . "RELAY_NATS_URL") }}
{{- fail "service.nats.enabled exposes the embedded NATS, which does not run with config.RELAY_NATS_URL: turn one off" }}
{{- end }}
{{- $userPass := and (include "relay.isSet" (list . "RELAY_NATS_USER")) (include "relay.isSet" (list . "RELAY_NATS_PASSWORD")) }}
{{- if not (or $userPass (include "relay.isSet" (list . "RELAY_NATS_TOKEN")) (include "relay.isSet" (list . "RELAY_NATS_NKEY_SEED_FILE"))) }}
{{- fail "service.nats.enabled makes the embedded NATS reachable from other pods: it then needs authentication. Set config.RELAY_NATS_USER with secrets.natsPassword, secrets.natsToken or secrets.natsNkeySeed" }}
{{- end }}
{{- end }}
{{- end }}
