{{/* Chart name, overridable. */}}
{{- define "dagster.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Release-based full name; the release name alone when it already contains the chart name. */}}
{{- define "dagster.fullname" -}}
{{- $global := .Values.global | default dict -}}
{{- $override := $global.fullnameOverride | default .Values.fullnameOverride -}}
{{- if $override -}}
{{- $override | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name ($global.nameOverride | default .Values.nameOverride) -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "dagster.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "dagster.selectorLabels" -}}
app.kubernetes.io/name: {{ include "dagster.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "dagster.labels" -}}
helm.sh/chart: {{ include "dagster.chart" . }}
{{ include "dagster.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{/* "repository:tag", the tag defaulting to the chart version; numeric tags kept as written. */}}
{{- define "dagster.dagsterImage.name" -}}
{{- $ := index . 0 -}}
{{- $image := index . 1 -}}
{{- $tag := $image.tag | default $.Chart.Version | toYaml | trimAll "\"" -}}
{{- printf "%s:%s" $image.repository $tag -}}
{{- end -}}

{{- define "dagsterUserDeployments.serviceAccountName" -}}
{{- $global := .Values.global | default dict -}}
{{- $sa := .Values.serviceAccount | default dict -}}
{{- $global.serviceAccountName | default $sa.name | default (printf "%s-user-deployments" (include "dagster.fullname" .)) -}}
{{- end -}}

{{- define "dagsterUserDeployments.postgresql.secretName" -}}
{{- $global := .Values.global | default dict -}}
{{- $global.postgresqlSecretName | default .Values.postgresqlSecretName -}}
{{- end -}}

{{/* The deployments as one JSON object per line; accepts a list or a map keyed by name. */}}
{{- define "dagster-user-deployments.deployments" -}}
{{- if kindIs "map" .Values.deployments -}}
{{- range $name := keys .Values.deployments | sortAlpha }}
{{ index $.Values.deployments $name | merge (dict "name" $name) | toJson }}
{{- end -}}
{{- else -}}
{{- range $deployment := .Values.deployments }}
{{ $deployment | toJson }}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* Dagster's k8s container context for the gRPC server (JSON). */}}
{{- define "dagsterUserDeployments.k8sContainerContext" -}}
{{- $ := index . 0 -}}
{{- $d := index . 1 -}}
{{- $image := $d.image | default dict -}}
{{- $configMaps := list (printf "%s-%s-user-env" (include "dagster.fullname" $) $d.name) -}}
{{- range $cm := $d.envConfigMaps | default list }}{{ if hasKey $cm "name" }}{{ $configMaps = append $configMaps $cm.name }}{{ end }}{{ end -}}
{{- $k8s := dict "env_config_maps" $configMaps "namespace" $.Release.Namespace "service_account_name" (include "dagsterUserDeployments.serviceAccountName" $) -}}
{{- if $image.pullPolicy }}{{ $_ := set $k8s "image_pull_policy" $image.pullPolicy }}{{ end -}}
{{- if $.Values.imagePullSecrets }}{{ $_ := set $k8s "image_pull_secrets" $.Values.imagePullSecrets }}{{ end -}}
{{- if $d.envSecrets -}}
{{- $secrets := list -}}
{{- range $s := $d.envSecrets }}{{ if hasKey $s "name" }}{{ $secrets = append $secrets $s.name }}{{ end }}{{ end -}}
{{- $_ := set $k8s "env_secrets" $secrets -}}
{{- end -}}
{{- if $d.labels }}{{ $_ := set $k8s "labels" $d.labels }}{{ end -}}
{{- if $d.resources }}{{ $_ := set $k8s "resources" $d.resources }}{{ end -}}
{{- if $d.volumeMounts }}{{ $_ := set $k8s "volume_mounts" $d.volumeMounts }}{{ end -}}
{{- if $d.volumes }}{{ $_ := set $k8s "volumes" $d.volumes }}{{ end -}}
{{- if and $d.env (kindIs "slice" $d.env) }}{{ $_ := set $k8s "env" $d.env }}{{ end -}}
{{- dict "k8s" $k8s | toJson -}}
{{- end -}}

{{/* The readiness probe: Dagster's gRPC health check unless disabled or given explicitly. */}}
{{- define "dagsterUserDeployments.readinessProbe" -}}
{{- $d := . -}}
{{- $probe := $d.readinessProbe | default dict -}}
{{- if ne (toString (index $probe "enabled")) "false" -}}
{{- if $probe.exec -}}
{{- omit $probe "enabled" | toYaml -}}
{{- else if not $probe -}}
exec:
  command: ["dagster", "api", "grpc-health-check", "-p", "{{ $d.port }}"]
periodSeconds: 20
timeoutSeconds: 10
successThreshold: 1
failureThreshold: 15
{{- else -}}
exec:
  command: ["dagster", "api", "grpc-health-check", "-p", "{{ $d.port }}"]
{{- with pick $probe "initialDelaySeconds" "periodSeconds" "timeoutSeconds" "successThreshold" "failureThreshold" }}
{{ toYaml . }}
{{- end -}}
{{- end -}}
{{- end -}}
{{- end -}}
