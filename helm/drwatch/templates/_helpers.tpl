{{/* Chart name, truncated to the 63 characters a label value may hold. */}}
{{- define "drwatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Fully qualified app name: the release name, unless it already contains the chart name. */}}
{{- define "drwatch.fullname" -}}
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

{{- define "drwatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drwatch.selectorLabels" -}}
app.kubernetes.io/name: {{ include "drwatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "drwatch.labels" -}}
helm.sh/chart: {{ include "drwatch.chart" . }}
{{ include "drwatch.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "drwatch.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "drwatch.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "drwatch.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* "true" when the state store is PostgreSQL (a URL or a Secret holding one), else "". */}}
{{- define "drwatch.statePostgres" -}}
{{- if or .Values.state.url .Values.state.existingSecret.name }}true{{ end }}
{{- end }}

{{/* job | initContainer | none, with auto resolved by the state store. */}}
{{- define "drwatch.migrationMode" -}}
{{- if eq .Values.migrations.mode "auto" }}
{{- if include "drwatch.statePostgres" . }}job{{ else }}initContainer{{ end }}
{{- else }}
{{- .Values.migrations.mode }}
{{- end }}
{{- end }}

{{/* Environment shared by the drwatch container, its init container and the migration Job. */}}
{{- define "drwatch.env" -}}
- name: DRWATCH_PORT
  value: {{ .Values.port | quote }}
- name: DRWATCH_LOG_FORMAT
  value: {{ .Values.logFormat | quote }}
- name: DRWATCH_LOG_LEVEL
  value: {{ .Values.logLevel | quote }}
{{- if .Values.config }}
- name: DRWATCH_CONFIG
  value: /etc/drwatch/drwatch.yaml
{{- end }}
{{- if .Values.state.existingSecret.name }}
- name: DRWATCH_STATE_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.state.existingSecret.name }}
      key: {{ .Values.state.existingSecret.key }}
{{- else if .Values.state.url }}
- name: DRWATCH_STATE_URL
  value: {{ .Values.state.url | quote }}
{{- else }}
- name: DRWATCH_STATE_URL
  value: "sqlite+aiosqlite:////var/lib/drwatch/drwatch-state.db"
{{- end }}
{{- range $name, $key := .Values.secrets.files }}
- name: {{ $name }}_FILE
  value: /run/secrets/drwatch/{{ $key }}
{{- end }}
- name: DRWATCH_DRILL_WORK_DIR
  value: /var/lib/drwatch-drills
{{- range $name, $value := .Values.extraEnv }}
- name: {{ $name }}
  value: {{ $value | quote }}
{{- end }}
{{- end }}

{{- define "drwatch.envFrom" -}}
{{- if and .Values.secrets.existingSecret .Values.secrets.envFrom -}}
envFrom:
  - secretRef:
      name: {{ .Values.secrets.existingSecret }}
{{- end }}
{{- end }}

{{/* Volume mounts shared by the drwatch container and its init container. */}}
{{- define "drwatch.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: drill-work
  mountPath: /var/lib/drwatch-drills
{{- if not (include "drwatch.statePostgres" .) }}
- name: state
  mountPath: /var/lib/drwatch
{{- end }}
{{- if .Values.config }}
- name: config
  mountPath: /etc/drwatch
  readOnly: true
{{- end }}
{{- if .Values.secrets.files }}
- name: secret-files
  mountPath: /run/secrets/drwatch
  readOnly: true
{{- end }}
{{- end }}

{{/*
Paths the Ingress routes to drwatch. "public": what must be reachable from outside (Route 53 and
uptime monitors: /health*; people: /status and the Statuspage JSON; backup jobs: their pings),
plus ingress.extraPaths; "all": everything, including /api/checks and /metrics.
*/}}
{{- define "drwatch.ingressPaths" -}}
{{- if eq .Values.ingress.expose "all" -}}
- /
{{- else -}}
- /health
- /status
- /api/v2
- /api/backups
{{- range .Values.ingress.extraPaths }}
- {{ . }}
{{- end }}
{{- end }}
{{- end }}
