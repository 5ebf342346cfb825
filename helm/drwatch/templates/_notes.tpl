{{/* The release notes; NOTES.txt prints them, and the chart tests render them too. */}}
{{- define "drwatch.notes" -}}
drwatch {{ .Chart.AppVersion }} is deployed as {{ include "drwatch.fullname" . }} in namespace {{ .Release.Namespace }}.

1. Reach /health from your machine:

     kubectl --namespace {{ .Release.Namespace }} port-forward service/{{ include "drwatch.fullname" . }} 8080:{{ .Values.service.port }}
     curl -i http://127.0.0.1:8080/health           # 200 pass/warn, 503 fail
     curl http://127.0.0.1:8080/health?verbose      # one line per check
{{- if .Values.ingress.enabled }}
{{- range .Values.ingress.hosts }}

   From outside: {{ if $.Values.ingress.tls }}https{{ else }}http{{ end }}://{{ .host }}/health
{{- end }}
{{- else if eq .Values.service.type "LoadBalancer" }}

   From outside, once the load balancer has an address:
     kubectl --namespace {{ .Release.Namespace }} get service {{ include "drwatch.fullname" . }} -o jsonpath='{.status.loadBalancer.ingress[0]}'
{{- else }}

   Route 53 needs /health reachable from the internet: enable ingress or set service.type=LoadBalancer.
{{- end }}

2. Point a Route 53 health check at it (DNS failover to the DR region):
{{- $host := "<drwatch host of this region>" }}
{{- if and .Values.ingress.enabled .Values.ingress.hosts }}
{{- $host = (first .Values.ingress.hosts).host }}
{{- end }}

     aws route53 create-health-check --caller-reference drwatch-$(date +%s) \
       --health-check-config 'Type=HTTPS,FullyQualifiedDomainName={{ $host }},Port=443,ResourcePath=/health,RequestInterval=30,FailureThreshold=3'

   RequestInterval=10 detects a failure faster (at a higher price); use Type=HTTP,Port=80 without
   TLS. No string match is needed: /health answers 503 when this region should lose its traffic.
   To fail over on chosen checks only, create one health check per ResourcePath=/health/<check>
   and combine them: --health-check-config 'Type=CALCULATED,ChildHealthChecks=[<id>,<id>],HealthThreshold=2'

3. Secrets: {{ if .Values.secrets.existingSecret }}read from Secret {{ .Values.secrets.existingSecret }}{{ else }}none configured; create a Secret and set secrets.existingSecret{{ end }}.
   State store: {{ if include "drwatch.statePostgres" . }}PostgreSQL{{ else }}embedded SQLite on an emptyDir (history is lost when the pod is replaced){{ end }}.
{{- if .Values.serviceMonitor.enabled }}
   Prometheus scrapes /metrics as job="{{ .Values.serviceMonitor.jobName }}".
{{- end }}
{{- end }}
