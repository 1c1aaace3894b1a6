{{- define "glideslope.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "glideslope.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "glideslope.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "glideslope.labels" -}}
app.kubernetes.io/name: {{ include "glideslope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "glideslope.selectorLabels" -}}
app.kubernetes.io/name: {{ include "glideslope.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "glideslope.serviceAccountName" -}}
{{- default (include "glideslope.fullname" .) .Values.serviceAccount.name -}}
{{- end -}}

{{- define "glideslope.secretNamespaces" -}}
{{- $ns := .Values.secretNamespaces | default .Values.watchNamespaces -}}
{{- toJson $ns -}}
{{- end -}}
