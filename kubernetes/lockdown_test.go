package kubernetes_test

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// procStatus returns the fields of /proc/self/status as a command sees
// them.
func procStatus(t *testing.T, b ab.FileBackend) map[string]string {
	t.Helper()
	out := run(t, b, "cat /proc/self/status")
	fields := map[string]string{}
	for line := range strings.SplitSeq(out, "\n") {
		k, v, ok := strings.Cut(line, ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

// TestLockdown attacks the pod the way a hostile agent would, as the
// default user and as root (RunAsRoot): no service account token to act on
// the cluster with, no capabilities, no privilege gain, no mounts, no
// writes outside the workspace, no host processes.
func TestLockdown(t *testing.T) {
	for _, tc := range []struct {
		name string
		tpl  func(*kubernetes.PodTemplate)
		uid  string
		// systemWrites: the image's files are safe from writes (file
		// permissions for nobody, a read-only root file system for root).
		// Root in a writable root file system owns its own image's files:
		// its container's, nothing beyond.
		systemWrites bool
	}{
		{"Default", func(*kubernetes.PodTemplate) {}, "65534", true},
		{"RunAsRoot", func(tpl *kubernetes.PodTemplate) { tpl.RunAsRoot = true }, "0", false},
		{"RunAsRootReadOnly", func(tpl *kubernetes.PodTemplate) {
			tpl.RunAsRoot, tpl.ReadOnlyRootFilesystem = true, true
		}, "0", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := newBackend(t, func(c *kubernetes.Config) {
				tc.tpl(&c.Template)
				c.AllowDangerous = true // the attacks use mount and friends; the pod must stop them
			})
			ctx := testCtx(t)
			assert.Equal(t, tc.uid+"\n", run(t, b, "id -u"))

			// No service account token anywhere a client would look.
			res, err := b.Exec(ctx, "ls -la /var/run/secrets /run/secrets 2>&1; cat /var/run/secrets/kubernetes.io/serviceaccount/token", nil)
			require.Error(t, err)
			assert.NotContains(t, string(res.Stdout), "serviceaccount/token")
			assert.NotContains(t, string(res.Stdout)+string(res.Stderr), "eyJ", "a token was readable")

			// No capabilities at all (effective, permitted, bounding,
			// ambient), no way to gain any, seccomp on.
			st := procStatus(t, b)
			for _, k := range []string{"CapInh", "CapPrm", "CapEff", "CapBnd", "CapAmb"} {
				assert.Equal(t, "0000000000000000", st[k], k)
			}
			assert.Equal(t, "1", st["NoNewPrivs"], "NoNewPrivs")
			assert.Equal(t, "2", st["Seccomp"], "Seccomp (2 = filter)")

			// No mounts, no chroot, no raw network, nothing a capability
			// would allow. (The tools are there: the attacks fail on the
			// pod's walls, not for want of a program.)
			run(t, b, "which mount chroot ping renice chown mknod hostname unshare ip sysctl")
			for _, attack := range []string{
				"mkdir -p m && mount -t tmpfs none m",
				"mount -o remount,rw /",
				"mount --bind / m",
				"chroot / true",
				"ping -c 1 127.0.0.1",          // raw sockets: CAP_NET_RAW
				"renice -n -5 $$",              // CAP_SYS_NICE
				"unshare -U -r true",           // a user namespace to regain capabilities in
				"unshare -m true",              // a mount namespace
				"ip link add owned type dummy", // CAP_NET_ADMIN
				"sysctl -w kernel.hostname=owned",
				"touch mine && chown 1:1 mine", // CAP_CHOWN
				"mknod dev c 1 3",              // CAP_MKNOD
				"hostname owned",               // CAP_SYS_ADMIN
			} {
				_, err := b.Exec(ctx, attack, nil)
				assert.Error(t, err, "attack %q succeeded", attack)
			}
			if tc.systemWrites {
				for _, attack := range []string{"echo owned >> /etc/passwd", "touch /bin/owned", "rm /bin/busybox"} {
					_, err := b.Exec(ctx, attack, nil)
					assert.Error(t, err, "attack %q succeeded", attack)
				}
				_, err = b.Exec(ctx, "test -e /bin/owned", nil)
				assert.Error(t, err, "/bin/owned was created")
				assert.NotContains(t, run(t, b, "cat /etc/passwd"), "owned")
			}

			// The pod sees its own processes only, never the node's.
			ps := run(t, b, "ps -o pid,args")
			for _, host := range []string{"kubelet", "containerd", "kube-apiserver", "etcd", "dockerd"} {
				assert.NotContains(t, ps, host)
			}
			// The workspace is writable.
			require.NoError(t, b.Write(ctx, "mine.txt", []byte("ok")))
		})
	}
}

// TestPodSpecLockedDown checks the pod the API server stored: the settings
// the lockdown rests on are there, whatever the cluster's defaults.
func TestPodSpecLockedDown(t *testing.T) {
	b := newBackend(t, nil)
	_, cs, ns := needCluster(t)
	pod, err := cs.CoreV1().Pods(ns).Get(testCtx(t), b.Pod(), metav1.GetOptions{})
	require.NoError(t, err)
	spec := pod.Spec
	require.NotNil(t, spec.AutomountServiceAccountToken)
	assert.False(t, *spec.AutomountServiceAccountToken)
	assert.Equal(t, corev1.RestartPolicyNever, spec.RestartPolicy)
	require.NotNil(t, spec.EnableServiceLinks)
	assert.False(t, *spec.EnableServiceLinks, "service environment variables")
	assert.False(t, spec.HostNetwork || spec.HostPID || spec.HostIPC)
	for _, v := range spec.Volumes {
		assert.Nil(t, v.Projected, "volume %s projects something (a token?)", v.Name)
		assert.Nil(t, v.HostPath, "volume %s is a host path", v.Name)
	}
	c := spec.Containers[0]
	sc := c.SecurityContext
	require.NotNil(t, sc)
	assert.False(t, *sc.AllowPrivilegeEscalation)
	assert.False(t, *sc.Privileged)
	assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop)
	assert.Empty(t, sc.Capabilities.Add)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, sc.SeccompProfile.Type)
	assert.True(t, *spec.SecurityContext.RunAsNonRoot)
	assert.Equal(t, int64(kubernetes.DefaultUser), *spec.SecurityContext.RunAsUser)
	assert.Equal(t, "true", pod.Labels[kubernetes.LabelManaged])
}
