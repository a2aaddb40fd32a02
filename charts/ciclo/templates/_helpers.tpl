{{/* The operator's name: <release>-operator, so release "ciclo" gives "ciclo-operator". */}}
{{- define "ciclo.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (.Values.nameOverride | default "operator") | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "ciclo.selectorLabels" -}}
app.kubernetes.io/name: ciclo-operator
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "ciclo.labels" -}}
{{ include "ciclo.selectorLabels" . }}
app.kubernetes.io/part-of: ciclo
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "ciclo.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- .Values.serviceAccount.name | default (include "ciclo.fullname" .) -}}
{{- else -}}
{{- .Values.serviceAccount.name | default "default" -}}
{{- end -}}
{{- end -}}

{{/* The operator's image; the operator also runs it for the Jobs it starts itself. */}}
{{- define "ciclo.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{/*
What the controllers do, and nothing more; each rule says why. The same rules go into one
ClusterRole (all namespaces) or into a Role per watched namespace (watchNamespaces).
*/}}
{{- define "ciclo.rules" -}}
# Watch every ciclo resource: each kind has a controller, and TrainingRuns and
# ModelDeployments are woken by changes to the Datasets, ModelVersions and TrainingRuns they
# refer to.
- apiGroups: [ciclo.dev]
  resources: [datasets, trainingruns, modelversions, modeldeployments]
  verbs: [get, list, watch]
# Register each successful training run as a ModelVersion (created once, never changed:
# its spec is immutable), and recreate a model's versions from the registry's records in the
# artifact store when none is left in the cluster (a cluster rebuilt from git). Delete: a
# TrainingRun's spec.retention removes unblessed versions beyond the newest it keeps, never
# one that serves, is a canary, is pinned or is a kept version's baseline.
- apiGroups: [ciclo.dev]
  resources: [modelversions]
  verbs: [create, delete]
# Write only status (server-side apply), never a user's spec: Argo CD and Flux see no drift.
- apiGroups: [ciclo.dev]
  resources: [datasets/status, trainingruns/status, modelversions/status, modeldeployments/status]
  verbs: [patch]
# A ModelDeployment with `spec.skew.onSkew: Retrain` asks the Datasets made of its capture for
# a new check: one annotation, ciclo.dev/reconcile-requested-at, applied server-side under
# ciclo's own field manager (a GitOps tool's fields stay its own). Nothing else of a spec.
- apiGroups: [ciclo.dev]
  resources: [datasets]
  verbs: [patch]
# Check that the credentials Secret a Dataset names exists, read the push credentials a
# ModelDeployment's spec.gitWriteBack.secretRef names, and the keys of the namespace's
# artifact store (its ConfigMap's secretName, or artifactStore.credentialsSecret) to keep the
# registry's records there and remove what retention removes. Only `get`: the operator never
# lists or watches Secrets, reads only the ones named, and keeps no value.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get]
# A namespace's own artifact store: the one ConfigMap named ciclo-artifact-store in it (its
# URI, endpoint, the name of its keys' Secret, the ServiceAccount of its workloads), watched
# so a change reaches the next Job. resourceNames: list and watch too are allowed only with
# the field selector metadata.name=ciclo-artifact-store; no other ConfigMap is readable.
- apiGroups: [""]
  resources: [configmaps]
  resourceNames: [ciclo-artifact-store]
  verbs: [get, list, watch]
# Check each Dataset's source, and train each TrainingRun, with a Job: create it, learn when
# it finishes (list, watch: the controllers own their Jobs), mark a training Job once its run
# is recorded in the status (patch: the annotation ciclo.dev/recorded, so a run is recorded
# once however short the history), and delete a check Job once its result is recorded and a
# training Job once its run falls out of the TrainingRun's history.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [list, watch, create, patch, delete]
# A distributed training run's headless Service, through which its workers find each other
# (create; deleted with its Job once the run falls out of the history), and a
# ModelDeployment's Service, kept as declared by server-side apply (patch; an apply that
# creates also needs create). Get: after a restart, each ModelDeployment's Service is read
# once, and not applied again if it carries the digest of what would be sent.
- apiGroups: [""]
  resources: [services]
  verbs: [get, create, patch, delete]
# A ModelDeployment serves each version with a Deployment it owns: applied (create, patch),
# watched for readiness (list, watch), removed once a version no longer serves (delete).
- apiGroups: [apps]
  resources: [deployments]
  verbs: [list, watch, create, patch, delete]
# With spec.autoscaling, the stable version's HorizontalPodAutoscaler (garbage-collected with
# its ModelDeployment), applied as the Service is (get: read once after a restart).
- apiGroups: [autoscaling]
  resources: [horizontalpodautoscalers]
  verbs: [get, create, patch]
# With spec.trafficRouting, set the weights of the HTTPRoute's two backendRefs ciclo owns
# (read it, replace it with only those weights changed). Nothing else of the route is touched.
- apiGroups: [gateway.networking.k8s.io]
  resources: [httproutes]
  verbs: [get, update]
# Read a finished check's or run's result, its Pod's termination message, and which serving
# pods are ready (and at which address their metrics are read during a canary); watch the
# check and training Pods (by label) to see a Job's end as its Pod finishes, a second before
# the Job says so. The operator never changes Pods.
- apiGroups: [""]
  resources: [pods]
  verbs: [list, watch]
# A TrainingRun Flux applied names its code in lineage by the revision its Kustomization was
# applying and its GitRepository's URL: read those two objects, by name, when a run starts
# (no list or watch). Without Flux, or in namespaced mode where the Kustomization lives in
# another namespace, runs start without a revision.
- apiGroups: [kustomize.toolkit.fluxcd.io]
  resources: [kustomizations]
  verbs: [get]
- apiGroups: [source.toolkit.fluxcd.io]
  resources: [gitrepositories]
  verbs: [get]
# Record an Event for every transition (events.k8s.io/v1; repeats are patched into a series).
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create, patch]
{{- end -}}
