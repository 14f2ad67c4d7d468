{{- define "kubecapture.name" -}}kubecapture{{- end -}}

{{- define "kubecapture.fullname" -}}
{{- if contains "kubecapture" .Release.Name -}}{{ .Release.Name | trunc 63 | trimSuffix "-" }}{{- else -}}{{ printf "%s-kubecapture" .Release.Name | trunc 63 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "kubecapture.labels" -}}
app.kubernetes.io/name: kubecapture
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "kubecapture.selectorLabels" -}}
app.kubernetes.io/name: kubecapture
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
