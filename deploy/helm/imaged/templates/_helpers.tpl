{{/* Object names: <release>-imaged, or the release name when it already holds the chart's. */}}
{{- define "imaged.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "imaged.fullname" -}}
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

{{/* Labels of every object; "imaged.selector" takes the component (api, worker-<pool>, migrate). */}}
{{- define "imaged.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: imaged
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end -}}

{{- define "imaged.selector" -}}
app.kubernetes.io/name: {{ include "imaged.name" .root }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "imaged.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Every task type imaged runs: a pool with no types runs these. */}}
{{- define "imaged.taskTypes" -}}
transform,ocr,detect
{{- end -}}

{{- define "imaged.poolTypes" -}}
{{- if .types -}}{{ join "," .types }}{{- else -}}{{ include "imaged.taskTypes" . }}{{- end -}}
{{- end -}}

{{/* The settings `secrets` can take from keys of existing Secrets. */}}
{{- define "imaged.secretSettings" -}}
databaseURL: IMAGED_DATABASE_URL
queueURL: IMAGED_QUEUE_URL
storageURL: IMAGED_STORAGE_URL
redisURL: IMAGED_REDIS_URL
signingKey: IMAGED_SIGNING_KEY
signingSalt: IMAGED_SIGNING_SALT
webhookSecret: IMAGED_WEBHOOK_SECRET
urlSecret: IMAGED_URL_SECRET
bootstrapAPIKey: IMAGED_BOOTSTRAP_API_KEY
{{- end -}}

{{/* Whether the migration Job runs (and the pods leave migrations to it). */}}
{{- define "imaged.migrationJob" -}}
{{- if and .Values.migrations.enabled .Values.secrets.databaseURL.existingSecret -}}true{{- end -}}
{{- end -}}

{{/* env entries every imaged pod gets: the settings from Secrets. */}}
{{- define "imaged.secretEnv" -}}
{{- $s := .Values.secrets -}}
{{- range $field, $name := include "imaged.secretSettings" . | fromYaml }}
{{- $ref := index $s $field }}
{{- if $ref.existingSecret }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ $ref.existingSecret }}
      key: {{ $ref.key }}
{{- end }}
{{- end }}
{{- end -}}

{{/* The pod spec of an imaged Deployment. Takes root, component, args, env (a map), resources,
     pod (the component's values: nodeSelector, …), ports (list of port names) and probes. */}}
{{- define "imaged.podTemplate" -}}
{{- $root := .root -}}
{{- $v := $root.Values -}}
metadata:
  labels:
    {{- include "imaged.selector" (dict "root" $root "component" .component) | nindent 4 }}
    {{- include "imaged.labels" $root | nindent 4 }}
  annotations:
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    {{- with merge (deepCopy (.pod.podAnnotations | default dict)) $v.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  automountServiceAccountToken: false
  terminationGracePeriodSeconds: {{ $v.terminationGracePeriodSeconds }}
  securityContext:
    {{- toYaml $v.podSecurityContext | nindent 4 }}
  {{- with $v.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .pod.nodeSelector | default $v.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .pod.tolerations | default $v.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .pod.affinity | default $v.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .pod.topologySpreadConstraints }}
  topologySpreadConstraints:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  containers:
    - name: imaged
      image: {{ include "imaged.image" $root }}
      imagePullPolicy: {{ $v.image.pullPolicy }}
      args: {{ toJson .args }}
      ports:
        {{- range .ports }}
        - name: {{ . }}
          containerPort: {{ index $v.ports . }}
          protocol: TCP
        {{- end }}
      envFrom:
        - configMapRef:
            name: {{ include "imaged.fullname" $root }}-config
        {{- with $v.secrets.existingSecret }}
        - secretRef:
            name: {{ . }}
            {{- if $v.secrets.optional }}
            optional: true
            {{- end }}
        {{- end }}
      env:
        {{- range $k, $val := .env }}
        - name: {{ $k }}
          value: {{ $val | toString | quote }}
        {{- end }}
        {{- if include "imaged.migrationJob" $root }}
        - name: IMAGED_NO_MIGRATE
          value: "true"
        {{- end }}
        {{- include "imaged.secretEnv" $root | nindent 8 }}
      resources:
        {{- toYaml .resources | nindent 8 }}
      {{- with .livenessProbe }}
      livenessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with .readinessProbe }}
      readinessProbe:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      securityContext:
        {{- toYaml $v.containerSecurityContext | nindent 8 }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        - name: data
          mountPath: {{ $v.config.IMAGED_DATA_DIR | default "/data" }}
  volumes:
    - name: tmp
      emptyDir:
        sizeLimit: {{ $v.volumes.tmpSizeLimit }}
    - name: data
      emptyDir:
        sizeLimit: {{ $v.volumes.dataSizeLimit }}
{{- end -}}
