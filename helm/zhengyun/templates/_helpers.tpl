{{/* Names, labels and shared fragments of the zhengyun chart. */}}

{{- define "zhengyun.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* The release's base name: the release name, or <release>-zhengyun when it lacks the chart name. */}}
{{- define "zhengyun.fullname" -}}
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

{{- define "zhengyun.operator.fullname" -}}
{{- printf "%s-operator" (include "zhengyun.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zhengyun.api.fullname" -}}
{{- printf "%s-api" (include "zhengyun.fullname" .) | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "zhengyun.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/name: {{ include "zhengyun.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: zhengyun
{{- end }}

{{/* Selector labels of one component: (dict "ctx" $ "component" "operator"). */}}
{{- define "zhengyun.selectorLabels" -}}
app.kubernetes.io/name: {{ include "zhengyun.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "zhengyun.componentLabels" -}}
{{ include "zhengyun.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "zhengyun.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret and key holding the database URL. */}}
{{- define "zhengyun.database.secretName" -}}
{{- default (printf "%s-database" (include "zhengyun.fullname" .)) .Values.database.existingSecret }}
{{- end }}

{{- define "zhengyun.database.secretKey" -}}
{{- if .Values.database.existingSecret }}{{ .Values.database.existingSecretKey }}{{ else }}url{{ end }}
{{- end }}

{{/* The Secret and key holding the bootstrap token. */}}
{{- define "zhengyun.bootstrapToken.secretName" -}}
{{- default (printf "%s-bootstrap-token" (include "zhengyun.fullname" .)) .Values.bootstrapToken.existingSecret }}
{{- end }}

{{- define "zhengyun.bootstrapToken.secretKey" -}}
{{- if .Values.bootstrapToken.existingSecret }}{{ .Values.bootstrapToken.existingSecretKey }}{{ else }}token{{ end }}
{{- end }}

{{/* Environment shared by both components: the database URL. */}}
{{- define "zhengyun.databaseEnv" -}}
- name: ZHENGYUN_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "zhengyun.database.secretName" . }}
      key: {{ include "zhengyun.database.secretKey" . }}
{{- end }}

{{/* Soft anti-affinity spreading a component's replicas over nodes, unless affinity is given. */}}
{{- define "zhengyun.affinity" -}}
{{- if .values.affinity }}
{{- toYaml .values.affinity }}
{{- else }}
podAntiAffinity:
  preferredDuringSchedulingIgnoredDuringExecution:
    - weight: 100
      podAffinityTerm:
        topologyKey: kubernetes.io/hostname
        labelSelector:
          matchLabels:
            {{- include "zhengyun.selectorLabels" (dict "ctx" .ctx "component" .component) | nindent 12 }}
{{- end }}
{{- end }}
