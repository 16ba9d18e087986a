{{/* The chart's name, at most 63 characters (a DNS label). */}}
{{- define "sluice.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The objects' name: the release's, with the chart's name unless it holds it already. */}}
{{- define "sluice.fullname" -}}
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

{{/* The labels that select the pods; never change them on an installed release. */}}
{{- define "sluice.selectorLabels" -}}
app.kubernetes.io/name: {{ include "sluice.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: rate-limit
{{- end -}}

{{/* Every object's labels. */}}
{{- define "sluice.labels" -}}
{{ include "sluice.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: sluice
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{- define "sluice.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "sluice.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "sluice.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "sluice.ownSecret" -}}
{{- if or (and .Values.redis.url (not .Values.redis.existingSecret)) (and .Values.auth.enabled (not .Values.auth.existingSecret)) -}}
true
{{- end -}}
{{- end -}}

{{/*
The Redis URL sluice serve takes (--redis), built from topology and addresses; the
password, when a Secret holds it, is the variable REDIS_PASSWORD, which Kubernetes
expands in SLUICE_REDIS's value.
*/}}
{{- define "sluice.redisURL" -}}
{{- $r := .Values.redis -}}
{{- $scheme := dict "single" "" "sentinel" "+sentinel" "cluster" "+cluster" -}}
{{- if not (hasKey $scheme $r.topology) -}}
{{- fail (printf "redis.topology: %q is not single, sentinel, cluster or embedded" $r.topology) -}}
{{- end -}}
{{- if not $r.addresses -}}
{{- fail (printf "redis.addresses: give the host:port of the Redis %s" (ternary "Sentinels" "nodes" (eq $r.topology "sentinel"))) -}}
{{- end -}}
{{- if and (eq $r.topology "single") (gt (len $r.addresses) 1) -}}
{{- fail "redis.addresses: topology single takes one address (use sentinel or cluster for several)" -}}
{{- end -}}
{{- $userinfo := "" -}}
{{- if $r.passwordSecret.name -}}
{{- $userinfo = printf "%s:$(REDIS_PASSWORD)@" $r.username -}}
{{- else if $r.username -}}
{{- $userinfo = printf "%s@" $r.username -}}
{{- end -}}
{{- printf "redis%s%s://%s%s" (ternary "s" "" (eq (toString $r.tls) "true")) (get $scheme $r.topology) $userinfo (join "," $r.addresses) -}}
{{- if eq $r.topology "single" -}}
{{- printf "/%v" $r.db -}}
{{- else if eq $r.topology "sentinel" -}}
{{- printf "/%s" (required "redis.sentinelMaster: the Sentinel master's name is required" $r.sentinelMaster) -}}
{{- if $r.db -}}{{- printf "?db=%v" $r.db -}}{{- end -}}
{{- end -}}
{{- end -}}

{{/* The port the probes and Prometheus use: the health port, else the HTTP port. */}}
{{- define "sluice.metricsPort" -}}
{{- if .Values.health.enabled -}}health{{- else -}}http{{- end -}}
{{- end -}}
