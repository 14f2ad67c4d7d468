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

{{/* Non-empty when the operator serves HTTPS (the extension API, or the ingest over TLS) with its serving certificate. */}}
{{- define "kubecapture.ingestScheme" -}}{{ .Values.ingest.tls.enabled | ternary "https" "http" }}{{- end -}}

{{/* The serving certificate's DNS names (Managed mode), as a JSON array: the Services it is reached by. */}}
{{- define "kubecapture.servingDnsNames" -}}
{{- $names := list -}}
{{- $fullname := include "kubecapture.fullname" . -}}
{{- $names = append $names (printf "%s-webhook.%s.svc" $fullname .Release.Namespace) -}}
{{- $names = append $names (printf "%s-webhook.%s.svc.cluster.local" $fullname .Release.Namespace) -}}
{{- if .Values.subresources.enabled -}}
{{- $names = append $names (printf "%s-subresources.%s.svc" $fullname .Release.Namespace) -}}
{{- $names = append $names (printf "%s-subresources.%s.svc.cluster.local" $fullname .Release.Namespace) -}}
{{- end -}}
{{- if .Values.ingest.tls.enabled -}}
{{- $names = append $names (printf "%s-ingest.%s.svc" $fullname .Release.Namespace) -}}
{{- $names = append $names (printf "%s-ingest.%s.svc.cluster.local" $fullname .Release.Namespace) -}}
{{- end -}}
{{- toJson $names -}}
{{- end -}}

{{/* The serving certificate comes from files of a Secret (Mounted, or CertManager's Certificate). */}}
{{- define "kubecapture.certificateMounted" -}}
{{- if has .Values.subresources.certificate.mode (list "Mounted" "CertManager") -}}true{{- end -}}
{{- end -}}

{{/* The Secret the serving certificate is mounted from. */}}
{{- define "kubecapture.certificateSecret" -}}
{{- if eq .Values.subresources.certificate.mode "CertManager" -}}
{{ include "kubecapture.fullname" . }}-serving-tls
{{- else -}}
{{ required "subresources.certificate.secretName is required in Mounted mode" .Values.subresources.certificate.secretName }}
{{- end -}}
{{- end -}}

{{/* The Secret with the alert receiver's bearer token (entry token): existingSecret, or the chart's own, which the operator creates when missing. */}}
{{- define "kubecapture.alertReceiverSecret" -}}
{{- .Values.alertReceiver.existingSecret | default (printf "%s-alert-receiver" (include "kubecapture.fullname" .)) -}}
{{- end -}}

{{/* The Secret with the ingest token key (the operator creates it when missing). */}}
{{- define "kubecapture.tokenKeySecret" -}}
{{- .Values.ingest.tokenKey.secretName | default (printf "%s-ingest-token" (include "kubecapture.fullname" .)) -}}
{{- end -}}

{{/*
The operator's replicas: .Values.replicas with S3 storage; one with local storage (a volume is not
shared between pods).
*/}}
{{- define "kubecapture.replicas" -}}
{{- if .Values.storage.endpoint }}{{ .Values.replicas }}{{ else }}1{{ end }}
{{- end }}
