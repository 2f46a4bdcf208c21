{{/* Names and labels, as `helm create` spells them. */}}
{{- define "ctwin.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ctwin.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "ctwin.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "ctwin.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ctwin.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ctwin.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ctwin.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "ctwin.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "ctwin.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{- define "ctwin.tokensSecret" -}}
{{- required "tokens.existingSecret is required: ctwin refuses to serve beyond loopback without a token. Create one with `ctwin token create admin --scope admin --data-dir ./ctwin-tokens` and `kubectl create secret generic ctwin-tokens --from-file=tokens.json=./ctwin-tokens/tokens.json`, then set tokens.existingSecret=ctwin-tokens" .Values.tokens.existingSecret -}}
{{- end -}}

{{/* The service's in-cluster URL (the dispatcher and the agents use it). */}}
{{- define "ctwin.url" -}}
{{- printf "http://%s.%s.svc:%v" (include "ctwin.fullname" .) .Release.Namespace .Values.service.port -}}
{{- end -}}

{{/*
ctwin's config: .Values.config with the keys the pod layout decides set over it. ctwin refuses
unknown keys, so only keys of service/config.py appear here.
*/}}
{{- define "ctwin.config" -}}
{{- $cfg := deepCopy .Values.config -}}
{{- if hasKey $cfg "data_dir" -}}{{- fail "config.data_dir is set by the chart (/var/lib/ctwin, the data volume): remove it (persistence.* chooses the volume)" -}}{{- end -}}
{{- $_ := set $cfg "data_dir" "/var/lib/ctwin" -}}
{{- $serve := deepCopy (default (dict) (index $cfg "serve")) -}}
{{- if or (hasKey $serve "listen") (hasKey $serve "port") -}}{{- fail "config.serve.listen and config.serve.port are set by the chart (0.0.0.0 and serve.port): remove them" -}}{{- end -}}
{{- $_ = set $serve "listen" "0.0.0.0" -}}
{{- $_ = set $serve "port" (int .Values.serve.port) -}}
{{- $_ = set $cfg "serve" $serve -}}
{{- $auth := deepCopy (default (dict) (index $cfg "auth")) -}}
{{- if hasKey $auth "tokens_file" -}}{{- fail "config.auth.tokens_file is set by the chart (the tokens.existingSecret mount): remove it" -}}{{- end -}}
{{- $_ = set $auth "tokens_file" (printf "/etc/ctwin/tokens/%s" .Values.tokens.key) -}}
{{- $_ = set $cfg "auth" $auth -}}
{{- $schedulers := deepCopy (default (dict) (index $cfg "schedulers")) -}}
{{- if .Values.extender.enabled -}}
{{- $k := deepCopy (default (dict) .Values.extender.kubernetes) -}}
{{- if not (hasKey $k "api") -}}{{- $_ = set $k "api" (dict "timeout" "5s") -}}{{- end -}}
{{- $_ = set $k "enabled" true -}}
{{- $_ = set $k "scheduler_name" .Values.extender.scheduler.schedulerName -}}
{{- $_ = set $schedulers "kubernetes" $k -}}
{{- end -}}
{{- if .Values.dispatcher.enabled -}}
{{- $m := deepCopy (default (dict) .Values.dispatcher.multikueue) -}}
{{- if not (hasKey $m "api") -}}{{- $_ = set $m "api" (dict "timeout" "5s") -}}{{- end -}}
{{- $_ = set $m "enabled" true -}}
{{- $_ = set $m "service_url" (include "ctwin.url" .) -}}
{{- $_ = set $m "token_file" (printf "/etc/ctwin/dispatcher/%s" .Values.dispatcher.tokenSecret.key) -}}
{{- $kueue := deepCopy (default (dict) (index $m "kueue_config")) -}}
{{- if not (hasKey $kueue "namespace") -}}{{- $_ = set $kueue "namespace" .Values.dispatcher.kueueNamespace -}}{{- end -}}
{{- $_ = set $m "kueue_config" $kueue -}}
{{- $_ = set $schedulers "multikueue" $m -}}
{{- end -}}
{{- if $schedulers -}}{{- $_ = set $cfg "schedulers" $schedulers -}}{{- end -}}
{{- toYaml $cfg -}}
{{- end -}}

{{/* The agent's config: .Values.agent.config with its target and spool set by the chart. */}}
{{- define "ctwin.agentConfig" -}}
{{- $cfg := deepCopy .Values.agent.config -}}
{{- $_ := set $cfg "data_dir" "/var/lib/ctwin-agent" -}}
{{- $target := deepCopy (default (dict) (index $cfg "target")) -}}
{{- $_ = set $target "url" (include "ctwin.url" .) -}}
{{- $_ = set $target "token_file" (printf "/etc/ctwin-agent/token/%s" .Values.agent.tokenSecret.key) -}}
{{- $_ = set $cfg "target" $target -}}
{{- toYaml $cfg -}}
{{- end -}}
