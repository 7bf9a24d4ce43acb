{{/* Names: <release>-riskgate unless the release name already says riskgate. */}}
{{- define "riskgate.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "riskgate.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Selector labels never carry the chart or app version: a selector cannot change. */}}
{{- define "riskgate.selectorLabels" -}}
app.kubernetes.io/name: {{ include "riskgate.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* Usage: include "riskgate.labels" (dict "root" $ "component" "api") */}}
{{- define "riskgate.labels" -}}
{{ include "riskgate.selectorLabels" . }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: riskgate
{{- with .root.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "riskgate.image" -}}
{{- $tag := default .Chart.AppVersion .Values.image.tag -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ $tag }}
{{- end -}}
{{- end -}}

{{- define "riskgate.serviceAccountName" -}}
{{ include "riskgate.fullname" . }}
{{- end -}}

{{- define "riskgate.operatorServiceAccountName" -}}
{{ include "riskgate.fullname" . }}-operator
{{- end -}}

{{- define "riskgate.generatedSecretName" -}}
{{ include "riskgate.fullname" . }}-generated
{{- end -}}

{{- define "riskgate.devSecretName" -}}
{{ include "riskgate.fullname" . }}-dev-databases
{{- end -}}

{{- define "riskgate.clientSecretName" -}}
{{- if .existingSecret -}}
{{ .existingSecret }}
{{- else -}}
{{ include "riskgate.fullname" .root }}-client-{{ .name }}
{{- end -}}
{{- end -}}

{{/* Where the database and Redis URLs come from: the user's Secret, or the dev one. */}}
{{- define "riskgate.databaseSecret" -}}
{{- if .Values.inClusterDatabases.enabled -}}
{{ include "riskgate.devSecretName" . }}
{{- else -}}
{{ required "database.existingSecret is required (or inClusterDatabases.enabled=true to try it out)" .Values.database.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "riskgate.redisSecret" -}}
{{- if .Values.inClusterDatabases.enabled -}}
{{ include "riskgate.devSecretName" . }}
{{- else -}}
{{ required "redis.existingSecret is required (or inClusterDatabases.enabled=true to try it out)" .Values.redis.existingSecret }}
{{- end -}}
{{- end -}}

{{- define "riskgate.podSecurityContext" -}}
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{- define "riskgate.containerSecurityContext" -}}
securityContext:
  {{- toYaml .Values.securityContext | nindent 2 }}
{{- end -}}

{{/* Spread a component's pods over nodes (soft by default, so one node still schedules). */}}
{{- define "riskgate.topologySpread" -}}
{{- if .root.Values.topologySpread.enabled }}
topologySpreadConstraints:
  - maxSkew: 1
    topologyKey: {{ .root.Values.topologySpread.topologyKey }}
    whenUnsatisfiable: {{ .root.Values.topologySpread.whenUnsatisfiable }}
    labelSelector:
      matchLabels:
        {{- include "riskgate.selectorLabels" . | nindent 8 }}
{{- end }}
{{- end -}}

{{/* Scheduling knobs of one component: include "riskgate.scheduling" .Values.api */}}
{{- define "riskgate.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "riskgate.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The secrets the API and worker read, by (secret, key), in one place. */}}
{{- define "riskgate.signingKeySecret" -}}
{{- default (include "riskgate.generatedSecretName" .) .Values.auth.signingKey.existingSecret -}}
{{- end -}}

{{- define "riskgate.signingKeyKey" -}}
{{- if .Values.auth.signingKey.existingSecret -}}{{ .Values.auth.signingKey.key }}{{- else -}}signing-key.pem{{- end -}}
{{- end -}}

{{- define "riskgate.encryptionKeysSecret" -}}
{{- default (include "riskgate.generatedSecretName" .) .Values.webhooks.encryptionKeys.existingSecret -}}
{{- end -}}

{{- define "riskgate.encryptionKeysKey" -}}
{{- if .Values.webhooks.encryptionKeys.existingSecret -}}{{ .Values.webhooks.encryptionKeys.key }}{{- else -}}encryption-keys{{- end -}}
{{- end -}}

{{- define "riskgate.secretEnvRef" -}}
valueFrom:
  secretKeyRef:
    name: {{ .name }}
    key: {{ .key }}
{{- end -}}

{{/* Connection settings shared by the API, the worker and the migration hook. */}}
{{- define "riskgate.connectionEnv" -}}
- name: RISKGATE_DATABASE_URL
  {{- include "riskgate.secretEnvRef" (dict "name" (include "riskgate.databaseSecret" .) "key" (ternary "database-url" .Values.database.appUrlKey .Values.inClusterDatabases.enabled)) | nindent 2 }}
{{- if or .Values.inClusterDatabases.enabled .Values.redis.urlKey }}
- name: RISKGATE_REDIS_URL
  {{- include "riskgate.secretEnvRef" (dict "name" (include "riskgate.redisSecret" .) "key" (ternary "redis-url" .Values.redis.urlKey .Values.inClusterDatabases.enabled)) | nindent 2 }}
{{- end }}
{{- if and .Values.redis.sentinel.enabled (not .Values.inClusterDatabases.enabled) }}
- name: RISKGATE_REDIS_SENTINELS
  value: {{ required "redis.sentinel.hosts is required with redis.sentinel.enabled" (join "," .Values.redis.sentinel.hosts) | quote }}
- name: RISKGATE_REDIS_SENTINEL_MASTER
  value: {{ .Values.redis.sentinel.masterName | quote }}
{{- if .Values.redis.sentinel.passwordKey }}
- name: RISKGATE_REDIS_SENTINEL_PASSWORD
  {{- include "riskgate.secretEnvRef" (dict "name" (include "riskgate.redisSecret" .) "key" .Values.redis.sentinel.passwordKey) | nindent 2 }}
{{- end }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Key files: mounted read-only from Secrets, never copied into env. */}}
{{- define "riskgate.keyEnv" -}}
- name: RISKGATE_JWT_SIGNING_KEY_FILE
  value: /var/run/riskgate/signing-key/key.pem
{{- if .Values.auth.previousSigningKey.existingSecret }}
- name: RISKGATE_JWT_PREVIOUS_KEY_FILE
  value: /var/run/riskgate/previous-signing-key/key.pem
{{- end }}
- name: RISKGATE_WEBHOOK_ENCRYPTION_KEYS_FILE
  value: /var/run/riskgate/encryption-keys/keys
{{- end -}}

{{- define "riskgate.keyVolumeMounts" -}}
- name: signing-key
  mountPath: /var/run/riskgate/signing-key
  readOnly: true
{{- if .Values.auth.previousSigningKey.existingSecret }}
- name: previous-signing-key
  mountPath: /var/run/riskgate/previous-signing-key
  readOnly: true
{{- end }}
- name: encryption-keys
  mountPath: /var/run/riskgate/encryption-keys
  readOnly: true
{{- end -}}

{{- define "riskgate.keyVolumes" -}}
- name: signing-key
  secret:
    secretName: {{ include "riskgate.signingKeySecret" . }}
    defaultMode: 0440
    items:
      - {key: {{ include "riskgate.signingKeyKey" . }}, path: key.pem}
{{- if .Values.auth.previousSigningKey.existingSecret }}
- name: previous-signing-key
  secret:
    secretName: {{ .Values.auth.previousSigningKey.existingSecret }}
    defaultMode: 0440
    items:
      - {key: {{ .Values.auth.previousSigningKey.key }}, path: key.pem}
{{- end }}
- name: encryption-keys
  secret:
    secretName: {{ include "riskgate.encryptionKeysSecret" . }}
    defaultMode: 0440
    items:
      - {key: {{ include "riskgate.encryptionKeysKey" . }}, path: keys}
{{- end -}}

{{/*
Rolls the pods when their configuration changes: the ConfigMap and which Secrets (and keys)
they read. Not the generated secrets' content: it is random on the first render and read
back unchanged afterwards, so hashing it would roll every pod on the first upgrade.
*/}}
{{- define "riskgate.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secrets: {{ list .Values.database .Values.redis .Values.auth .Values.webhooks .Values.operator.clientSecret .Values.inClusterDatabases.enabled (include "riskgate.clients" .) | toJson | sha256sum }}
{{- end -}}

{{- define "riskgate.apiUrl" -}}
http://{{ include "riskgate.fullname" . }}-api.{{ .Release.Namespace }}.svc:{{ .Values.api.port }}
{{- end -}}

{{/* Every API client the migration hook ensures, as a YAML list of {name, scopes}. */}}
{{- define "riskgate.clients" -}}
{{- $clients := list -}}
{{- if .Values.operator.enabled -}}
{{- $clients = append $clients (dict "name" .Values.operator.clientName "scopes" "subscriptions:sync clients:admin" "existingSecret" .Values.operator.clientSecret.existingSecret) -}}
{{- end -}}
{{- range .Values.bootstrapClients -}}
{{- $clients = append $clients (dict "name" .name "scopes" .scopes) -}}
{{- end -}}
{{- toYaml $clients -}}
{{- end -}}

{{/* The API from inside the release's namespace (no namespace in it: kustomize may move it). */}}
{{- define "riskgate.localApiUrl" -}}
http://{{ include "riskgate.fullname" . }}-api:{{ .Values.api.port }}
{{- end -}}
