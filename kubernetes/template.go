package kubernetes

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	ab "github.com/agentbackend/agentbackend"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
)

// ContainerName is the name of the workspace container in the pods this
// package creates.
const ContainerName = "workspace"

// DefaultUser is the user (and group) a pod's commands run as unless the
// template says otherwise: nobody.
const DefaultUser = 65534

// PodTemplate describes the pod New creates. The zero value of every
// security setting is the locked-down one; the fields that loosen it say
// so in their names.
type PodTemplate struct {
	// Image is the container image. It must hold /bin/sh and the POSIX
	// tools of busybox or coreutils/findutils (see
	// agentbackend.ContainerBackend). Its entrypoint is replaced by a shell
	// that only waits: commands come through exec.
	Image string `json:"image"`
	// ImagePullPolicy is the container's; empty means the cluster's default.
	ImagePullPolicy corev1.PullPolicy `json:"imagePullPolicy,omitempty"`
	// Name names the pod; empty means a generated "agentbe-xxxxx".
	Name string `json:"name,omitempty"`
	// Labels and Annotations are added to the pod's (LabelManaged is
	// always set).
	Labels      map[string]string `json:"labels,omitempty"`
	Annotations map[string]string `json:"annotations,omitempty"`
	// Env is the container's environment.
	Env map[string]string `json:"env,omitempty"`
	// Resources are the container's requests and limits.
	Resources corev1.ResourceRequirements `json:"resources,omitzero"`
	// RuntimeClassName selects a runtime class, such as gVisor's "gvisor"
	// or Kata's, for a sandbox stronger than a container.
	RuntimeClassName string `json:"runtimeClassName,omitempty"`
	// NodeSelector, NodeName and Tolerations place the pod.
	NodeSelector map[string]string   `json:"nodeSelector,omitempty"`
	NodeName     string              `json:"nodeName,omitempty"`
	Tolerations  []corev1.Toleration `json:"tolerations,omitempty"`
	// ServiceAccountName is the pod's service account; its token is still
	// not mounted unless MountServiceAccountToken is set.
	ServiceAccountName string `json:"serviceAccountName,omitempty"`
	// MountServiceAccountToken mounts the service account's API token into
	// the pod, where every command can read it and act on the cluster as
	// that account. Off by default.
	MountServiceAccountToken bool `json:"mountServiceAccountToken,omitempty"`
	// RunAsUser and RunAsGroup are the user and group commands run as;
	// zero means DefaultUser (nobody). The workspace volume belongs to
	// RunAsGroup.
	RunAsUser  int64 `json:"runAsUser,omitempty"`
	RunAsGroup int64 `json:"runAsGroup,omitempty"`
	// RunAsRoot runs commands as root (uid 0) instead, for images that
	// need it. They still hold no capabilities and cannot gain privileges.
	RunAsRoot bool `json:"runAsRoot,omitempty"`
	// ReadOnlyRootFilesystem makes everything but the workspace (and /tmp,
	// a volume then) read-only.
	ReadOnlyRootFilesystem bool `json:"readOnlyRootFilesystem,omitempty"`
	// WorkspaceClaim, if set, names a PersistentVolumeClaim to mount as the
	// workspace, so that the files outlive the pod. Empty means an
	// emptyDir volume, gone with the pod.
	WorkspaceClaim string `json:"workspaceClaim,omitempty"`
	// WorkspaceSizeLimit caps an emptyDir workspace ("1Gi"); empty means
	// no limit but the node's.
	WorkspaceSizeLimit string `json:"workspaceSizeLimit,omitempty"`
	// TerminationGracePeriodSeconds is how long the pod's processes get to
	// end after SIGTERM when it is deleted; zero means 2.
	TerminationGracePeriodSeconds int64 `json:"terminationGracePeriodSeconds,omitempty"`
}

func (tpl *PodTemplate) validate() error {
	if tpl.Image == "" {
		return configErr("kubernetes.PodTemplate.Image is required")
	}
	if tpl.Name != "" {
		if errs := validation.IsDNS1123Subdomain(tpl.Name); len(errs) > 0 {
			return configErr("kubernetes.PodTemplate.Name %q: %s", tpl.Name, strings.Join(errs, "; "))
		}
	}
	if tpl.RunAsUser < 0 || tpl.RunAsGroup < 0 || tpl.TerminationGracePeriodSeconds < 0 {
		return configErr("kubernetes.PodTemplate: RunAsUser, RunAsGroup and TerminationGracePeriodSeconds must not be negative")
	}
	if tpl.RunAsRoot && (tpl.RunAsUser != 0 || tpl.RunAsGroup != 0) {
		return configErr("kubernetes.PodTemplate: RunAsRoot excludes RunAsUser and RunAsGroup")
	}
	if tpl.WorkspaceSizeLimit != "" {
		if _, err := resource.ParseQuantity(tpl.WorkspaceSizeLimit); err != nil {
			return configErr("kubernetes.PodTemplate.WorkspaceSizeLimit %q: %v", tpl.WorkspaceSizeLimit, err)
		}
	}
	for k, v := range tpl.Labels {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return configErr("kubernetes.PodTemplate.Labels: %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return configErr("kubernetes.PodTemplate.Labels: %q=%q: %s", k, v, strings.Join(errs, "; "))
		}
	}
	return ab.ValidateEnv(tpl.Env)
}

// waitForever is the container's command: it only waits, ends at SIGTERM,
// and as the container's PID 1 reaps the orphans commands leave behind.
const waitForever = `trap 'exit 0' TERM INT; while :; do sleep 3600 & wait $!; done`

// pod returns the pod the template describes, locked down, with the
// workspace volume at workspace and labels added to the template's.
func (tpl *PodTemplate) pod(ns, workspace string, labels map[string]string) *corev1.Pod {
	uid, gid := int64(DefaultUser), int64(DefaultUser)
	if tpl.RunAsUser != 0 {
		uid = tpl.RunAsUser
	}
	if tpl.RunAsGroup != 0 {
		gid = tpl.RunAsGroup
	}
	nonRoot := true
	if tpl.RunAsRoot {
		uid, gid, nonRoot = 0, 0, false
	}
	grace := tpl.TerminationGracePeriodSeconds
	if grace == 0 {
		grace = 2
	}
	podLabels := maps.Clone(tpl.Labels)
	if podLabels == nil {
		podLabels = map[string]string{}
	}
	maps.Copy(podLabels, labels)
	podLabels[LabelManaged] = "true"

	workspaceVol := corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}
	if tpl.WorkspaceSizeLimit != "" {
		q := resource.MustParse(tpl.WorkspaceSizeLimit)
		workspaceVol.EmptyDir.SizeLimit = &q
	}
	if tpl.WorkspaceClaim != "" {
		workspaceVol = corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: tpl.WorkspaceClaim}}
	}
	volumes := []corev1.Volume{{Name: "workspace", VolumeSource: workspaceVol}}
	mounts := []corev1.VolumeMount{{Name: "workspace", MountPath: path.Clean(workspace)}}
	if tpl.ReadOnlyRootFilesystem {
		volumes = append(volumes, corev1.Volume{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}})
		mounts = append(mounts, corev1.VolumeMount{Name: "tmp", MountPath: "/tmp"})
	}
	var env []corev1.EnvVar
	for _, k := range slices.Sorted(maps.Keys(tpl.Env)) {
		env = append(env, corev1.EnvVar{Name: k, Value: tpl.Env[k]})
	}
	seccomp := &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{
			Namespace:   ns,
			Name:        tpl.Name,
			Labels:      podLabels,
			Annotations: maps.Clone(tpl.Annotations),
		},
		Spec: corev1.PodSpec{
			RestartPolicy:                 corev1.RestartPolicyNever,
			AutomountServiceAccountToken:  &tpl.MountServiceAccountToken,
			ServiceAccountName:            tpl.ServiceAccountName,
			EnableServiceLinks:            new(false),
			TerminationGracePeriodSeconds: &grace,
			NodeSelector:                  maps.Clone(tpl.NodeSelector),
			NodeName:                      tpl.NodeName,
			Tolerations:                   slices.Clone(tpl.Tolerations),
			Volumes:                       volumes,
			SecurityContext: &corev1.PodSecurityContext{
				RunAsUser:      &uid,
				RunAsGroup:     &gid,
				RunAsNonRoot:   &nonRoot,
				FSGroup:        &gid,
				SeccompProfile: seccomp,
			},
			Containers: []corev1.Container{{
				Name:            ContainerName,
				Image:           tpl.Image,
				ImagePullPolicy: tpl.ImagePullPolicy,
				Command:         []string{"/bin/sh", "-c", waitForever},
				WorkingDir:      path.Clean(workspace),
				Env:             env,
				Resources:       tpl.Resources,
				VolumeMounts:    mounts,
				SecurityContext: &corev1.SecurityContext{
					Privileged:               new(false),
					AllowPrivilegeEscalation: new(false),
					Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					ReadOnlyRootFilesystem:   &tpl.ReadOnlyRootFilesystem,
					SeccompProfile:           seccomp,
				},
			}},
		},
	}
	if tpl.Name == "" {
		p.GenerateName = "agentbe-"
	}
	if tpl.RuntimeClassName != "" {
		rc := tpl.RuntimeClassName
		p.Spec.RuntimeClassName = &rc
	}
	return p
}

// digest is a short, stable digest of the template and workspace: pods of
// a warm pool made from one template carry it, so a session takes only a
// pod that matches its template.
func (tpl *PodTemplate) digest(workspace string) string {
	data, _ := json.Marshal(struct {
		T PodTemplate
		W string
	}{*tpl, workspace})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])[:40]
}

// selector renders labels as a label selector, sorted.
func selector(labels map[string]string) string {
	parts := make([]string, 0, len(labels))
	for k, v := range labels {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return strings.Join(parts, ",")
}
