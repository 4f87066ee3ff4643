package agentbackend

import (
	"context"
	"maps"
	"math"
	"regexp"
	"slices"
	"strings"

	"github.com/docker/docker/api/types/container"
)

// Defaults of the limits in DockerConfig: enough for a workspace that
// builds and tests code, small enough that one runaway workspace leaves the
// engine's host usable.
const (
	// DefaultDockerMemoryLimit is the memory (swap included) a container
	// may use when DockerConfig.MemoryLimit is zero: 2 GiB.
	DefaultDockerMemoryLimit = 2 << 30
	// DefaultDockerCPUs is the CPU time, in cores, a container may use when
	// DockerConfig.CPUs is zero (capped at the engine's core count).
	DefaultDockerCPUs = 2.0
	// DefaultDockerPidsLimit is how many processes and threads a container
	// may have at once when DockerConfig.PidsLimit is zero.
	DefaultDockerPidsLimit = 1024
)

// DefaultDockerCapabilities returns the capabilities a container keeps when
// DockerConfig.Capabilities is nil: what a shell working as root on a
// workspace it does not own needs, and nothing more. DAC_OVERRIDE reads and
// writes files whatever their mode, CHOWN gives files to other users,
// FOWNER changes the mode and times of others' files, SETUID and SETGID
// switch to another user (su, a package manager dropping root), KILL
// signals that user's processes. Everything else Docker grants by default
// is dropped: MKNOD, NET_RAW (raw packets, spoofing), NET_BIND_SERVICE,
// SYS_CHROOT, SETFCAP, SETPCAP, FSETID and AUDIT_WRITE.
func DefaultDockerCapabilities() []string {
	return []string{"CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FOWNER", "CAP_KILL", "CAP_SETGID", "CAP_SETUID"}
}

// dockerCapabilityRe is what a capability name looks like; the engine
// checks that it exists.
var dockerCapabilityRe = regexp.MustCompile(`^[A-Za-z][A-Za-z_]*$`)

// createContainer creates and starts the backend's container from image,
// locked down as cfg says (see dockerHostConfig).
func (t *dockerTransport) createContainer(ctx context.Context, cfg DockerConfig, image, root string) error {
	labels := maps.Clone(cfg.Labels)
	if labels == nil {
		labels = map[string]string{}
	}
	labels[DockerLabelManaged] = "true"
	var netEnv []string
	if t.network != nil {
		netEnv = t.network.env()
	}
	env := make([]string, 0, len(cfg.Env)+len(netEnv))
	for _, k := range slices.Sorted(maps.Keys(cfg.Env)) {
		if !slices.ContainsFunc(netEnv, func(kv string) bool { return strings.HasPrefix(kv, k+"=") }) {
			env = append(env, k+"="+cfg.Env[k]) // the proxy's variables win: a process sees the first of repeated names
		}
	}
	env = append(env, netEnv...)
	engineCPUs := 0
	if cfg.CPUs == 0 {
		info, err := t.cli.Info(ctx)
		if err != nil {
			return dockerErr("ask the engine for its CPU count", err)
		}
		engineCPUs = info.NCPU
	}
	hc := dockerHostConfig(cfg, engineCPUs)
	t.netMode = string(hc.NetworkMode)
	created, err := t.cli.ContainerCreate(ctx, &container.Config{
		Image:           image,
		User:            cfg.User,
		Env:             env,
		Labels:          labels,
		WorkingDir:      root,
		NetworkDisabled: cfg.Network == "" || t.network != nil,
		// The container only has to stay up; commands come through exec.
		// Entrypoint is replaced so that images whose entrypoint expects
		// arguments (or a TTY) do not exit at once.
		Entrypoint: []string{"sleep"},
		Cmd:        []string{"infinity"},
	}, hc, nil, nil, cfg.Name)
	if err != nil {
		return dockerErr("create container from "+image, err)
	}
	t.id, t.created = created.ID, true
	if err := t.cli.ContainerStart(ctx, t.id, container.StartOptions{}); err != nil {
		return dockerErr("start container", err)
	}
	return nil
}

// dockerHostConfig is the engine-side configuration of a container cfg
// describes, on an engine with engineCPUs cores (0 when unknown): network
// none, no-new-privileges, every capability dropped but the kept ones, and
// memory, CPU and process limits, each unless cfg relaxes it.
func dockerHostConfig(cfg DockerConfig, engineCPUs int) *container.HostConfig {
	hc := &container.HostConfig{
		NetworkMode: container.NetworkMode(cfg.Network),
		Runtime:     cfg.OCIRuntime,
		CapDrop:     []string{"ALL"},
		CapAdd:      slices.Clone(cfg.Capabilities),
	}
	if hc.NetworkMode == "" || Network(cfg.Network).AllowList() != nil {
		hc.NetworkMode = "none" // an allow-list's only way out is its proxy
	}
	if hc.CapAdd == nil {
		hc.CapAdd = DefaultDockerCapabilities()
	}
	for i, c := range hc.CapAdd {
		// The engine's spelling, so that inspecting the container shows
		// the names given.
		if c = strings.ToUpper(c); c != "ALL" && !strings.HasPrefix(c, "CAP_") {
			c = "CAP_" + c
		}
		hc.CapAdd[i] = c
	}
	if !cfg.AllowNewPrivileges {
		hc.SecurityOpt = []string{"no-new-privileges"}
	}
	if !cfg.NoInit {
		useInit := true
		hc.Init = &useInit
	}
	for _, host := range slices.Sorted(maps.Keys(cfg.Volumes)) {
		hc.Binds = append(hc.Binds, host+":"+cfg.Volumes[host])
	}
	memory := cfg.MemoryLimit
	if memory == 0 {
		memory = DefaultDockerMemoryLimit
	}
	if memory > 0 {
		hc.Memory = memory
		hc.MemorySwap = memory // no swap on top: the limit is the limit
	}
	cpus := cfg.CPUs
	if cpus == 0 {
		cpus = DefaultDockerCPUs
		if engineCPUs > 0 {
			cpus = math.Min(cpus, float64(engineCPUs))
		}
	}
	if cpus > 0 {
		hc.NanoCPUs = int64(cpus * 1e9)
	}
	pids := cfg.PidsLimit
	if pids == 0 {
		pids = DefaultDockerPidsLimit
	}
	if pids > 0 {
		hc.PidsLimit = &pids
	}
	return hc
}
