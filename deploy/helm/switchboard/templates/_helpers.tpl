{{/*
Names and labels shared by every template.
*/}}

{{/* The chart's name (nameOverride wins), at most 63 characters: a label value. */}}
{{- define "switchboard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' base name: the release's, alone when it names the chart already. */}}
{{- define "switchboard.fullname" -}}
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

{{- define "switchboard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels on every object. */}}
{{- define "switchboard.labels" -}}
helm.sh/chart: {{ include "switchboard.chart" . }}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* What the gateway's Service, PDB and autoscaler select (the kustomization's two, and the release). */}}
{{- define "switchboard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "switchboard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "switchboard.gatewaySelector" -}}
{{ include "switchboard.selectorLabels" . }}
app.kubernetes.io/component: gateway
{{- end -}}

{{- define "switchboard.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The fewest gateway pods there will be: what decides the PDB and anti-affinity. */}}
{{- define "switchboard.minReplicas" -}}
{{- if .Values.autoscaling.enabled -}}
{{- int .Values.autoscaling.minReplicas -}}
{{- else -}}
{{- int .Values.replicaCount -}}
{{- end -}}
{{- end -}}

{{- define "switchboard.policyFile" -}}/etc/switchboard/policy.yaml{{- end -}}

{{- define "switchboard.policyConfigMap" -}}
{{- default (printf "%s-policy" (include "switchboard.fullname" .)) .Values.policy.existingConfigMap -}}
{{- end -}}

{{- define "switchboard.policy" -}}
{{- default (.Files.Get "files/policy.yaml") .Values.policy.content -}}
{{- end -}}

{{- define "switchboard.secretKeySecret" -}}
{{- default (printf "%s-secret-key" (include "switchboard.fullname" .)) .Values.secretKey.existingSecret -}}
{{- end -}}

{{- define "switchboard.postgresql" -}}{{ include "switchboard.fullname" . }}-postgresql{{- end -}}
{{- define "switchboard.redis" -}}{{ include "switchboard.fullname" . }}-redis{{- end -}}

{{/*
The environment the gateway and the migration Job share, beside the
ConfigMap: every secret by reference (secretKeyRef), never a value.
*/}}
{{- define "switchboard.secretEnv" -}}
- name: SWITCHBOARD_SECRET_KEY
  valueFrom:
    secretKeyRef:
      name: {{ include "switchboard.secretKeySecret" . }}
      key: {{ .Values.secretKey.key }}
{{- if .Values.postgresql.enabled }}
# Alphanumeric (secret.yaml), so it needs no escaping in the URL.
- name: POSTGRES_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ include "switchboard.postgresql" . }}
      key: password
- name: SWITCHBOARD_DATABASE_URL
  value: postgresql://switchboard:$(POSTGRES_PASSWORD)@{{ include "switchboard.postgresql" . }}:5432/switchboard
{{- else }}
- name: SWITCHBOARD_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "externalDatabase.existingSecret: the Secret holding the database URL (or postgresql.enabled: true)" .Values.externalDatabase.existingSecret }}
      key: {{ .Values.externalDatabase.key }}
{{- end }}
{{- if not .Values.redis.enabled }}
- name: SWITCHBOARD_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ required "externalRedis.existingSecret: the Secret holding the Redis URL (or redis.enabled: true)" .Values.externalRedis.existingSecret }}
      key: {{ .Values.externalRedis.key }}
{{- end }}
{{- with .Values.console.oidc.clientSecret.existingSecret }}
- name: SWITCHBOARD_CONSOLE__OIDC__CLIENT_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ . }}
      key: {{ $.Values.console.oidc.clientSecret.key }}
{{- end }}
{{- with .Values.gateway.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end -}}
