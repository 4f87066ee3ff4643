package agentbackend_test

import (
	"archive/tar"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/docker/docker/api/types/network"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/backendtest"
	"github.com/agentbackend/agentbackend/internal/testenv"
)

// defaultCapMask is the capability bit set /proc/<pid>/status prints for the
// default capabilities: CHOWN 0, DAC_OVERRIDE 1, FOWNER 3, KILL 5,
// SETGID 6, SETUID 7.
const defaultCapMask = 1<<0 | 1<<1 | 1<<3 | 1<<5 | 1<<6 | 1<<7

// procStatus runs `cat /proc/self/status` through the backend (Exec, or
// Start when background) and returns the fields asked for.
func procStatus(t *testing.T, b *ab.DockerBackend, background bool) map[string]string {
	t.Helper()
	ctx := dockerCtx(t)
	var res *ab.ExecResult
	var err error
	if background {
		p, serr := b.Start(ctx, "cat /proc/self/status", nil)
		require.NoError(t, serr)
		res, err = p.Wait(ctx)
	} else {
		res, err = b.Exec(ctx, "cat /proc/self/status", nil)
	}
	require.NoError(t, err)
	fields := map[string]string{}
	for line := range strings.SplitSeq(string(res.Stdout), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	return fields
}

func capBits(t *testing.T, hex string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(hex, 16, 64)
	require.NoError(t, err, "capability mask %q", hex)
	return v
}

// assertLockedDown checks that the engine was told to lock container id
// down as a default DockerConfig says.
func assertLockedDown(t *testing.T, id string) {
	t.Helper()
	cli := needDocker(t)
	ctx := dockerCtx(t)
	info, err := cli.ContainerInspect(ctx, id)
	require.NoError(t, err)
	engine, err := cli.Info(ctx)
	require.NoError(t, err)
	hc := info.HostConfig
	assert.Equal(t, "none", string(hc.NetworkMode))
	assert.True(t, info.Config.NetworkDisabled)
	assert.Equal(t, []string{"no-new-privileges"}, hc.SecurityOpt)
	assert.Equal(t, []string{"ALL"}, []string(hc.CapDrop))
	assert.ElementsMatch(t, ab.DefaultDockerCapabilities(), []string(hc.CapAdd))
	if assert.NotNil(t, hc.PidsLimit) {
		assert.EqualValues(t, ab.DefaultDockerPidsLimit, *hc.PidsLimit)
	}
	assert.EqualValues(t, ab.DefaultDockerMemoryLimit, hc.Memory)
	assert.EqualValues(t, ab.DefaultDockerMemoryLimit, hc.MemorySwap)
	assert.EqualValues(t, min(ab.DefaultDockerCPUs, float64(engine.NCPU))*1e9, hc.NanoCPUs)
	assert.Equal(t, engine.DefaultRuntime, hc.Runtime)
}

// TestDockerLockedDownByDefault creates a container with a default
// DockerConfig and checks what the engine was told and what a command in
// it holds: network none, no-new-privileges, every capability dropped but
// the default few, and the default limits.
func TestDockerLockedDownByDefault(t *testing.T) {
	needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{})
	assertLockedDown(t, b.ContainerID())
	for _, background := range []bool{false, true} {
		st := procStatus(t, b, background)
		assert.Equal(t, "1", st["NoNewPrivs"], "background %v", background)
		// The bounding set too: nothing run in the container can ever
		// gain a capability outside it.
		assert.Equal(t, uint64(defaultCapMask), capBits(t, st["CapBnd"]), "background %v", background)
		assert.Equal(t, uint64(defaultCapMask), capBits(t, st["CapEff"]), "background %v", background)
	}
}

// TestDockerAttacksFail tries, as root in a default container, what a
// hostile agent would: mounting, device nodes, chroot, user namespaces,
// raw sockets and reaching anything off the container.
func TestDockerAttacksFail(t *testing.T) {
	needDocker(t)
	t.Parallel()
	// AllowDangerous: the attacks are not on the dangerous-command list's
	// terms anyway; the container is what must refuse them.
	b := newDockerBackend(t, ab.DockerConfig{AllowDangerous: true})
	ctx := dockerCtx(t)
	for _, c := range []struct{ name, cmd, want string }{
		{"mount tmpfs", "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m", "permission denied"},
		{"bind mount", "mkdir -p /tmp/m && mount -o bind / /tmp/m", "permission denied"},
		{"remount root", "mount -o remount,rw /", "permission denied"},
		{"device node", "mknod /tmp/sda b 8 0", "not permitted"},
		{"chroot", "chroot / true", "not permitted"},
		{"user namespace", "unshare -U -r true", "not permitted"},
		{"raw socket", "ping -c 1 -W 1 127.0.0.1", "permission denied"},
		{"route off the container", "nc -w 2 192.0.2.1 80 </dev/null", "unreachable"},
	} {
		res, err := b.Exec(ctx, c.cmd, &ab.ExecOptions{Timeout: 30 * time.Second})
		if assert.Error(t, err, "%s succeeded: %s", c.name, c.cmd) {
			assert.Contains(t, strings.ToLower(string(res.Stderr)), c.want, c.name)
		}
	}
	// No interface but loopback, and no route at all.
	res, err := b.Exec(ctx, "cat /proc/net/dev; echo ROUTES; tail -n +2 /proc/net/route", nil)
	require.NoError(t, err)
	dev, routes, _ := strings.Cut(string(res.Stdout), "ROUTES\n")
	var ifaces []string
	for line := range strings.SplitSeq(dev, "\n") {
		if name, _, ok := strings.Cut(line, ":"); ok {
			ifaces = append(ifaces, strings.TrimSpace(name))
		}
	}
	assert.Equal(t, []string{"lo"}, ifaces)
	assert.Empty(t, strings.TrimSpace(routes))
}

// TestDockerForkBombBounded forks until the kernel refuses, in a container
// with the default process limit: the count stays within the limit and the
// container stays usable.
func TestDockerForkBombBounded(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{AllowDangerous: true})
	ctx := dockerCtx(t)
	res, err := b.Exec(ctx, "cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max", nil)
	require.NoError(t, err)
	assert.Equal(t, strconv.Itoa(ab.DefaultDockerPidsLimit), strings.TrimSpace(string(res.Stdout)), "the kernel's limit")

	// Each child notes itself, then becomes a short sleep. The loop is
	// bounded at twice the limit; ash exits when it cannot fork.
	bound := 2 * ab.DefaultDockerPidsLimit
	bomb := fmt.Sprintf(`i=0; while [ $i -lt %d ]; do (echo x >> /tmp/forks; exec sleep 8) >/dev/null 2>&1 & i=$((i+1)); done; echo bound reached`, bound)
	res, err = b.Exec(ctx, bomb, &ab.ExecOptions{Timeout: 2 * time.Minute})
	require.Error(t, err, "the fork bomb ran to its bound: %+v", res)
	assert.Contains(t, string(res.Stderr), "can't fork")
	assert.NotContains(t, string(res.Stdout), "bound reached")

	// While the limit is full nothing can start in the container, not even
	// the engine's exec: read the count through the engine's copy.
	rc, _, err := cli.CopyFromContainer(ctx, b.ContainerID(), "/tmp/forks")
	require.NoError(t, err)
	tr := tar.NewReader(rc)
	_, err = tr.Next()
	require.NoError(t, err)
	data, err := io.ReadAll(tr)
	rc.Close()
	require.NoError(t, err)
	forks := strings.Count(string(data), "x\n")
	assert.Positive(t, forks)
	assert.LessOrEqual(t, forks, ab.DefaultDockerPidsLimit)
	t.Logf("forks before the kernel refused: %d (limit %d)", forks, ab.DefaultDockerPidsLimit)
	waitNoProc(t, b.ContainerID(), "sleep 8")

	res, err = b.Exec(ctx, "echo alive", nil)
	require.NoError(t, err)
	assert.Equal(t, "alive\n", string(res.Stdout))
	require.NoError(t, b.Write(ctx, "after.txt", []byte("still works")))
}

// TestDockerDefaultCapabilitiesAreUsed shows what each default capability
// is for, as root in a container whose workspace is bound from the host
// and owned by another user (as a user's checkout is): each step works
// with the default set and fails in a container without that one
// capability, so the set is no wider than the work.
func TestDockerDefaultCapabilitiesAreUsed(t *testing.T) {
	needDocker(t)
	t.Parallel()
	// AllowDangerous: su is on the dangerous-command list; here it only
	// drops privileges. kill signals a process of another user (nobody), once su has
	// switched to it.
	const kill = `su -s /bin/sh -c 'exec sleep 30' nobody >/dev/null 2>&1 & p=$!
i=0; until [ "$(stat -c %u /proc/$p)" = 65534 ]; do i=$((i+1)); [ $i -gt 200 ] && exit 3; sleep 0.05; done
kill $p`
	steps := map[string]string{
		"CAP_DAC_OVERRIDE": "echo data > new.txt && cat theirs.txt",
		"CAP_CHOWN":        "echo x > /tmp/own && chown 1000:1000 /tmp/own",
		"CAP_FOWNER":       "chmod 640 theirs.txt && touch -d 2001-01-01 theirs.txt",
		"CAP_SETUID":       "su -s /bin/sh -c 'id -u' nobody",
		"CAP_SETGID":       "su -s /bin/sh -c 'id -g' nobody",
		"CAP_KILL":         kill,
	}
	require.ElementsMatch(t, ab.DefaultDockerCapabilities(), slices.Collect(maps.Keys(steps)))
	workspace := func(t *testing.T) map[string]string {
		host := t.TempDir()
		require.NoError(t, os.WriteFile(filepath.Join(host, "theirs.txt"), []byte("theirs\n"), 0o600))
		require.NoError(t, os.Chown(filepath.Join(host, "theirs.txt"), 1000, 1000))
		require.NoError(t, os.Chown(host, 1000, 1000))
		require.NoError(t, os.Chmod(host, 0o755))
		return map[string]string{host: "/workspace"}
	}
	t.Run("all", func(t *testing.T) {
		t.Parallel()
		b := newDockerBackend(t, ab.DockerConfig{Volumes: workspace(t), AllowDangerous: true})
		for cap, step := range steps {
			res, err := b.Exec(dockerCtx(t), step, &ab.ExecOptions{Timeout: time.Minute})
			assert.NoError(t, err, "%s: %s: %+v", cap, step, res)
		}
	})
	for cap, step := range steps {
		t.Run("without "+cap, func(t *testing.T) {
			t.Parallel()
			others := slices.DeleteFunc(ab.DefaultDockerCapabilities(), func(c string) bool { return c == cap })
			b := newDockerBackend(t, ab.DockerConfig{Volumes: workspace(t), Capabilities: others, AllowDangerous: true})
			res, err := b.Exec(dockerCtx(t), step, &ab.ExecOptions{Timeout: time.Minute})
			require.ErrorIs(t, err, ab.ErrExecFailed, "%s is not needed for %s: %+v", cap, step, res)
			stderr := strings.ToLower(string(res.Stderr))
			assert.True(t, strings.Contains(stderr, "not permitted") || strings.Contains(stderr, "permission denied"),
				"%s: %s", cap, res.Stderr)
		})
	}
}

// TestDockerRelaxed checks that each lock can be opened on its own: a
// network, capabilities, new privileges and no limits.
func TestDockerRelaxed(t *testing.T) {
	cli := needDocker(t)
	t.Parallel()
	ctx := dockerCtx(t)
	// An internal network: an interface, but no way beyond this machine.
	name := "agentbackend-test-" + strconv.FormatInt(time.Now().UnixNano(), 36)
	_, err := cli.NetworkCreate(ctx, name, network.CreateOptions{Internal: true, Labels: map[string]string{"io.agentbackend.test": "1"}})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cli.NetworkRemove(context.Background(), name) })

	b := newDockerBackend(t, ab.DockerConfig{
		Network:            name,
		Capabilities:       []string{"cap_net_raw", "CHOWN"},
		AllowNewPrivileges: true,
		MemoryLimit:        -1,
		CPUs:               -1,
		PidsLimit:          -1,
	})
	info, err := cli.ContainerInspect(ctx, b.ContainerID())
	require.NoError(t, err)
	hc := info.HostConfig
	assert.Equal(t, name, string(hc.NetworkMode))
	assert.False(t, info.Config.NetworkDisabled)
	assert.Empty(t, hc.SecurityOpt)
	assert.ElementsMatch(t, []string{"CAP_NET_RAW", "CAP_CHOWN"}, []string(hc.CapAdd))
	assert.Zero(t, hc.Memory)
	assert.Zero(t, hc.NanoCPUs)
	assert.True(t, hc.PidsLimit == nil || *hc.PidsLimit <= 0, "pids limit %v", hc.PidsLimit)

	st := procStatus(t, b, false)
	assert.Equal(t, "0", st["NoNewPrivs"])
	assert.Equal(t, uint64(1<<0|1<<13), capBits(t, st["CapBnd"])) // CHOWN, NET_RAW
	res, err := b.Exec(ctx, "cat /proc/net/dev", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res.Stdout), "eth0")

	none := newDockerBackend(t, ab.DockerConfig{Capabilities: []string{}})
	assert.Zero(t, capBits(t, procStatus(t, none, false)["CapBnd"]))
}

// needRuntime skips (or, when AGENTBE_REQUIRE names it, fails) t unless
// the engine has the OCI runtime name registered.
func needRuntime(t *testing.T, name string) {
	t.Helper()
	info, err := needDocker(t).Info(dockerCtx(t))
	require.NoError(t, err)
	_, ok := info.Runtimes[name]
	testenv.Need(t, name, ok, fmt.Sprintf("the Docker engine has no %q runtime (runtimes: %v); register it with dockerd --add-runtime or daemon.json, as .ci/run does", name, slices.Sorted(maps.Keys(info.Runtimes))))
}

// TestDockerGVisor runs the backend's conformance suite and the lockdown
// checks in containers run by gVisor (OCIRuntime "runsc").
func TestDockerGVisor(t *testing.T) {
	needRuntime(t, "runsc")
	t.Parallel()
	b := newDockerBackend(t, ab.DockerConfig{OCIRuntime: "runsc", AllowDangerous: true})
	ctx := dockerCtx(t)
	info, err := needDocker(t).ContainerInspect(ctx, b.ContainerID())
	require.NoError(t, err)
	assert.Equal(t, "runsc", info.HostConfig.Runtime)
	res, err := b.Exec(ctx, "dmesg", nil)
	require.NoError(t, err)
	assert.Contains(t, string(res.Stdout), "gVisor", "the kernel the workspace sees")
	st := procStatus(t, b, false)
	assert.Equal(t, uint64(defaultCapMask), capBits(t, st["CapBnd"]))
	for _, cmd := range []string{"mount -t tmpfs none /tmp", "nc -w 2 192.0.2.1 80 </dev/null"} {
		_, err := b.Exec(ctx, cmd, &ab.ExecOptions{Timeout: 30 * time.Second})
		assert.Error(t, err, cmd)
	}
	backendtest.Run(t, func(t *testing.T) ab.FileBackend {
		return newDockerBackend(t, ab.DockerConfig{OCIRuntime: "runsc"})
	})
}
