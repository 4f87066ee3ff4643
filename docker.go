package agentbackend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"path"
	"strings"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/filters"
	"github.com/docker/docker/client"
)

// dockerAPI is the part of the Docker Engine API client the backend uses.
type dockerAPI = client.APIClient

// Labels every container this package creates carries, so that containers
// left behind by a crashed process can be found (RemoveDockerOrphans).
const (
	// DockerLabelManaged marks a container as created by this package.
	DockerLabelManaged = "io.agentbackend.managed"
	// DockerLabelSession names the SessionManager session a container serves.
	DockerLabelSession = "io.agentbackend.session"
	// DockerLabelManager names the SessionManager that created a container.
	DockerLabelManager = "io.agentbackend.manager"
)

// DefaultDockerWorkspace is the workspace directory inside the container
// when neither DockerConfig.WorkspaceDir nor the runtime names one.
const DefaultDockerWorkspace = "/workspace"

// DockerConfig configures a DockerBackend. Exactly one of Image, Runtime
// and ContainerID says where the workspace lives.
type DockerConfig struct {
	// Image is the image to create the container from. It must contain
	// /bin/sh and the POSIX tools of busybox or coreutils/findutils (sh,
	// stat, find, mkdir, mv, rm, rmdir, touch, sed, base64, dd, readlink).
	Image string
	// Runtime describes an image to build (or reuse) and run; see
	// RuntimeConfig. Its WorkDir is the default workspace directory.
	Runtime *RuntimeConfig
	// ContainerID attaches to a running container instead of creating one
	// (an ID or a name). Close leaves such a container running; the
	// container settings below (Volumes, limits, Labels, ...) do not apply.
	ContainerID string

	// Name, if set, names the created container.
	Name string
	// WorkspaceDir is the workspace root inside the container, created if
	// missing. Default: Runtime.WorkDir, else /workspace.
	WorkspaceDir string
	// Volumes binds host paths (keys, absolute, on the engine's host) to
	// container paths (values, absolute). A volume at WorkspaceDir makes
	// the workspace outlive the container; the engine creates a missing host
	// directory.
	Volumes map[string]string
	// Env is given to every command, under ExecOptions.Env and the scope's.
	Env map[string]string
	// User runs the container's commands as this user ("uid[:gid]" or a
	// name known to the image). Empty means the image's user.
	User string

	// The container is locked down unless told otherwise: no network but
	// loopback, no new privileges, only DefaultDockerCapabilities, and the
	// limits below. Each setting can be relaxed on its own.

	// MemoryLimit caps the container's memory in bytes (swap included).
	// Zero means DefaultDockerMemoryLimit; negative means no limit.
	MemoryLimit int64
	// CPUs caps the container's CPU time, in cores (1.5 = one and a half).
	// Zero means DefaultDockerCPUs (or the engine's core count, when it has
	// fewer); negative means no limit.
	CPUs float64
	// PidsLimit caps the number of processes and threads in the container,
	// which contains fork bombs. Zero means DefaultDockerPidsLimit; negative
	// means no limit. Under gVisor (OCIRuntime "runsc") it counts the
	// sandbox's threads on the host: a fork bomb may then bring down the
	// whole sandbox instead of failing one fork (the host is unharmed).
	PidsLimit int64
	// Network is the network the container joins: "bridge", a network
	// created with `docker network create`, or "host" (the host's own
	// network stack, services on its loopback interface included). Empty
	// means none: the container has a loopback interface and no route out.
	//
	// An allow-list, "allow:" and host entries as for LocalConfig.Network
	// (see Network), creates the container without a network and binds a
	// filtering proxy inside its network namespace, at 127.0.0.1:3128,
	// for the container's life; HTTP_PROXY, HTTPS_PROXY and ALL_PROXY (and
	// their lower-case forms) in the container's environment point there.
	// The proxy decides as LocalBackend's does, except that every command
	// of the container shares it, so a scope whose Permissions have
	// network rules is refused (INVALID_CONFIGURATION: the proxy cannot
	// tell its commands from the others), as it is under any network but
	// none; decisions go to Logger. It needs the engine on this host (the proxy enters the
	// container's namespace from here: a remote DOCKER_HOST is
	// MISSING_UTILITIES), root (CAP_SYS_ADMIN), a container the backend
	// creates (not ContainerID) and a runtime that uses the kernel's
	// network namespaces (not gVisor: OCIRuntime "runsc" is
	// INVALID_CONFIGURATION).
	Network string
	// Capabilities are the Linux capabilities the container's processes may
	// hold ("CHOWN" or "CAP_CHOWN"); every other one is dropped. Nil means
	// DefaultDockerCapabilities(); an empty, non-nil slice keeps none.
	Capabilities []string
	// AllowNewPrivileges lets setuid programs and file capabilities raise
	// a process's privileges. The zero value sets no-new-privileges.
	AllowNewPrivileges bool
	// OCIRuntime names the engine runtime that runs the container, as
	// registered with dockerd (--add-runtime or daemon.json): "runsc" runs
	// it under gVisor, a kernel in user space, so a kernel exploit from the
	// workspace meets gVisor instead of the host kernel (Debian's runsc
	// package; register it with runtimeArgs ["--network=none"] on an engine
	// without a bridge). Empty means the engine's default (usually runc).
	OCIRuntime string
	// Labels are added to the container's labels (DockerLabelManaged is
	// always set).
	Labels map[string]string
	// NoInit runs without the engine's init process (docker-init). By
	// default it runs as PID 1 and reaps the processes that commands leave
	// behind, so killed commands do not linger as zombies.
	NoInit bool

	// MaxOutputLength caps the bytes kept of each of a command's stdout and
	// stderr; longer output is cut and ends with a line giving its length.
	// Zero means 10 MiB; negative means no limit.
	MaxOutputLength int
	// AllowDangerous turns off dangerous-command blocking (see
	// CheckCommand). The container is what contains a command; the check
	// only catches mistakes early.
	AllowDangerous bool
	// Safety is the policy commands are checked against; nil means
	// DefaultSafety.
	Safety *SafetyPolicy
	// Background bounds what the backend keeps of its background processes
	// (see Start); the zero value means the defaults.
	Background ProcessConfig

	// Logger receives the decisions of an allow-list Network's proxy
	// (refusals at Info); nil means slog.Default().
	Logger *slog.Logger

	// Client is the Engine API client to use; Close does not close it. Nil
	// makes one from the environment (DOCKER_HOST, DOCKER_TLS_VERIFY, ...)
	// with API version negotiation, closed by Close.
	Client client.APIClient
}

// DockerBackend is a workspace inside a Docker container: files under
// WorkspaceDir and commands run in the container, all through the Docker
// Engine API, so DOCKER_HOST may name a local or a remote engine. It is a
// ContainerBackend whose transport is the engine's exec: see there for how
// commands run (the workspace, or a scope, as working directory and HOME;
// a Timeout or a cancelled context kills the command's process group in the
// container) and how files move (a few long-lived shells in the container,
// every argument single-quoted; files over 1 MiB over an exec stream of
// their own, checked for length on arrival).
//
// Paths are jailed to the workspace by the package's path rule. Symbolic
// links are followed inside the container: they can lead to container
// paths outside the workspace, never to the host. The container is the
// sandbox; the path rule decides what a path means. A scope of a
// DockerBackend is checked in the container too: see ScopedBackend.
//
// A DockerBackend is safe for concurrent use. Close removes the container
// it created (not one it attached to).
type DockerBackend struct {
	*ContainerBackend
	t *dockerTransport
}

// NewDocker creates and starts a container (or attaches to a running one)
// and returns the backend for its workspace, connected. It fails with
// INVALID_CONFIGURATION for a bad configuration and EXEC_ERROR when the
// engine cannot create, start or run the container; a container it created
// is removed again on failure.
func NewDocker(ctx context.Context, cfg DockerConfig) (*DockerBackend, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	root := cfg.WorkspaceDir
	if root == "" && cfg.Runtime != nil {
		root = cfg.Runtime.WorkDir
	}
	if root == "" {
		root = DefaultDockerWorkspace
	}
	network, err := newDockerNetwork(&cfg)
	if err != nil {
		return nil, err
	}
	ccfg := ContainerConfig{
		Type:            TypeDocker,
		WorkspaceDir:    root,
		Env:             maps.Clone(cfg.Env),
		MaxOutputLength: cfg.MaxOutputLength,
		AllowDangerous:  cfg.AllowDangerous,
		Safety:          cfg.Safety,
		Background:      cfg.Background,
		envOver:         network.proxyEnv(),
	}
	if err := ccfg.validate(); err != nil {
		return nil, err // before any container exists
	}
	t := &dockerTransport{cli: cfg.Client, user: cfg.User, network: network}
	if t.cli == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, dockerErr("connect to the Docker engine", err)
		}
		t.cli, t.ownClient = cli, true
	}
	if err := t.setUp(ctx, cfg, cleanRoot(root)); err != nil {
		return nil, errors.Join(err, t.Close())
	}
	cb, err := NewContainer(ctx, t, ccfg)
	if err != nil {
		return nil, err
	}
	return &DockerBackend{ContainerBackend: cb, t: t}, nil
}

func (cfg *DockerConfig) validate() error {
	sources := 0
	for _, set := range []bool{cfg.Image != "", cfg.Runtime != nil, cfg.ContainerID != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return errConfig("DockerConfig: set exactly one of Image, Runtime and ContainerID")
	}
	if cfg.WorkspaceDir != "" && !path.IsAbs(cfg.WorkspaceDir) {
		return errConfig("DockerConfig.WorkspaceDir must be an absolute path: %q", cfg.WorkspaceDir)
	}
	if cleanRoot(cfg.WorkspaceDir) == "/" && cfg.WorkspaceDir != "" {
		return errConfig("DockerConfig.WorkspaceDir must not be the container's root directory")
	}
	for host, ctr := range cfg.Volumes {
		if !path.IsAbs(host) || !path.IsAbs(ctr) || strings.ContainsAny(host+ctr, ":\x00") {
			return errConfig("DockerConfig.Volumes: %q -> %q: both paths must be absolute, without ':'", host, ctr)
		}
	}
	for _, c := range cfg.Capabilities {
		if !dockerCapabilityRe.MatchString(c) {
			return errConfig("DockerConfig.Capabilities: %q is not a capability name (CHOWN, CAP_NET_RAW, ...)", c)
		}
	}
	return ValidateEnv(cfg.Env)
}

// setUp creates and starts the container (or checks the one to attach to).
func (t *dockerTransport) setUp(ctx context.Context, cfg DockerConfig, root string) error {
	if cfg.ContainerID != "" {
		info, err := t.cli.ContainerInspect(ctx, cfg.ContainerID)
		if err != nil {
			return dockerErr("inspect container "+cfg.ContainerID, err)
		}
		if info.State == nil || !info.State.Running {
			return &Error{Code: CodeExecError, Op: "connect",
				Message: fmt.Sprintf("docker: container %s is not running", cfg.ContainerID)}
		}
		t.id = info.ID
		if info.HostConfig != nil {
			t.netMode = string(info.HostConfig.NetworkMode)
		}
		return nil
	}
	image := cfg.Image
	if cfg.Runtime != nil {
		var err error
		if image, err = cfg.Runtime.Image(ctx, t.cli); err != nil {
			return err
		}
	}
	if err := t.createContainer(ctx, cfg, image, root); err != nil {
		return err
	}
	if t.network != nil {
		return t.network.attach(ctx, t.cli, t.id)
	}
	return nil
}

// dockerErr reports a failure of the engine.
func dockerErr(what string, err error) *Error {
	return &Error{Code: CodeExecError, Op: "docker", Err: err, Message: "docker: " + what + ": " + err.Error()}
}

// ContainerID returns the ID of the backend's container.
func (b *DockerBackend) ContainerID() string { return b.t.id }

// Scope returns a view of the subdirectory path of the workspace, whose
// file operations are checked in the container against links leading out
// of it; see ScopedBackend. (Its Unwrap returns this DockerBackend.)
func (b *DockerBackend) Scope(path string, cfg *ScopeConfig) (*ScopedBackend, error) {
	return NewScope(b, path, cfg)
}

// RemoveDockerOrphans removes (forcibly, with their anonymous volumes) the
// containers that carry DockerLabelManaged and every label in labels, and
// returns their IDs. Run it at startup to clean up after a process that
// died without closing its backends. With no labels it removes every
// container this package created on the engine, in use or not; pass
// {DockerLabelManager: id} to limit it to one SessionManager's. A nil cli
// uses a client made from the environment.
func RemoveDockerOrphans(ctx context.Context, cli client.APIClient, labels map[string]string) ([]string, error) {
	if cli == nil {
		c, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, dockerErr("connect to the Docker engine", err)
		}
		defer c.Close()
		cli = c
	}
	f := filters.NewArgs(filters.Arg("label", DockerLabelManaged+"=true"))
	for k, v := range labels {
		f.Add("label", k+"="+v)
	}
	list, err := cli.ContainerList(ctx, container.ListOptions{All: true, Filters: f})
	if err != nil {
		return nil, dockerErr("list containers", err)
	}
	var removed []string
	var errs []error
	for _, c := range list {
		err := cli.ContainerRemove(ctx, c.ID, container.RemoveOptions{Force: true, RemoveVolumes: true})
		switch {
		case err == nil:
			removed = append(removed, c.ID)
		case !cerrdefs.IsNotFound(err):
			errs = append(errs, dockerErr("remove container "+c.ID, err))
		}
	}
	return removed, errors.Join(errs...)
}
