{{/* Common labels of every object (the selector labels add name and instance). */}}
{{- define "rdmesh.labels" -}}
app.kubernetes.io/part-of: rdmesh
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end }}

{{/* Selector labels of one component (argument: dict "ctx" . "name" "rdmesh-xds"). */}}
{{- define "rdmesh.selector" -}}
app.kubernetes.io/name: {{ .name }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
{{- end }}

{{- define "rdmesh.image" -}}
{{ .ctx.Values.images.registry }}/{{ .name }}:{{ .ctx.Values.images.tag | default .ctx.Chart.AppVersion }}
{{- end }}

{{/* The Service name sidecars and the API server reach rdmesh-xds by. */}}
{{- define "rdmesh.xdsHost" -}}
rdmesh-xds.{{ .Release.Namespace }}.svc
{{- end }}

{{- define "rdmesh.checkValues" -}}
{{- if and (gt (int .Values.xds.replicas) 1) (empty .Values.xds.etcd.endpoints) -}}
{{- fail "xds.replicas > 1 needs xds.etcd.endpoints: replicas share the registry through etcd (or set xds.replicas: 1 for the embedded single replica)" -}}
{{- end -}}
{{- end }}
