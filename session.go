package agentbackend

import (
	"context"
	"errors"
	"maps"
	"path"
	"sync"
	"time"

	"github.com/agentbackend/agentbackend/internal/sessionid"
	"github.com/docker/docker/client"
)

// SessionConfig configures a SessionManager.
type SessionConfig struct {
	// Docker is the configuration every session's container starts from:
	// an Image or a Runtime, limits, Env, ... Its ContainerID must be empty.
	// Nil Docker.Runtime and empty Docker.Image mean the built-in
	// python-minimal runtime.
	Docker DockerConfig
	// WorkspaceRoot, if set, is a directory on the engine's host under which
	// each session gets WorkspaceRoot/<session id>, bound to the container's
	// workspace: a session whose container was closed (idle, Shutdown, a
	// restart of this process) finds its files again. Empty means a
	// session's files live only as long as its container.
	WorkspaceRoot string
	// IdleTimeout is how long a session nobody has asked for stays alive
	// before CleanupIdle removes its container. Zero means
	// DefaultIdleTimeout.
	IdleTimeout time.Duration
	// CleanupInterval, if positive, runs CleanupIdle periodically until
	// Shutdown.
	CleanupInterval time.Duration
	// WarmContainers is how many containers of Docker the manager keeps
	// created, started and ready (their shell running, the workspace
	// made), so that a new session's first operation does not wait for a
	// container to start: GetOrCreate of a new session takes one, and
	// another is started in the background (see PoolConfig.Warm). Zero
	// means none. It excludes WorkspaceRoot, since a container's volumes
	// are fixed when it is created; for the same reason a container taken
	// from the warm pool has no session label (DockerLabelManager it has,
	// so Shutdown and RemoveDockerOrphans remove it).
	WarmContainers int
}

// SessionManager gives each session (a user, a conversation) its own
// DockerBackend, the equivalent of pydantic-ai-backend's SessionManager:
// GetOrCreate returns the session's running container, creating it on first
// use, and concurrent calls for one session create one container. Sessions
// unused for the idle timeout are closed by CleanupIdle; with a
// WorkspaceRoot their files stay on the host for the next GetOrCreate.
//
// It is built on PoolManager with the session ID as key. Every container
// carries DockerLabelManager with the manager's ID, so RemoveDockerOrphans
// can remove what a crashed manager left behind.
type SessionManager struct {
	pool      *PoolManager[DockerConfig]
	cli       client.APIClient
	ownClient bool
	id        string
	root      string
	warm      bool // new sessions take warm containers (SessionConfig.WarmContainers)

	shutdownOnce sync.Once
	shutdownErr  error
}

// NewSessionManager returns a manager; it fails with INVALID_CONFIGURATION
// for a bad configuration. The containers are created on demand.
func NewSessionManager(cfg SessionConfig) (*SessionManager, error) {
	d := cfg.Docker
	if d.ContainerID != "" {
		return nil, errConfig("SessionConfig.Docker.ContainerID must be empty: sessions create their containers")
	}
	if d.Image == "" && d.Runtime == nil {
		rt, _ := BuiltinRuntime("python-minimal")
		d.Runtime = &rt
	}
	if cfg.WorkspaceRoot != "" && !path.IsAbs(cfg.WorkspaceRoot) {
		return nil, errConfig("SessionConfig.WorkspaceRoot must be an absolute path: %q", cfg.WorkspaceRoot)
	}
	if cfg.WarmContainers < 0 {
		return nil, errConfig("SessionConfig.WarmContainers must not be negative")
	}
	if cfg.WarmContainers > 0 && cfg.WorkspaceRoot != "" {
		return nil, errConfig("SessionConfig: WarmContainers and WorkspaceRoot exclude each other: a container's volumes are fixed when it is created")
	}
	m := &SessionManager{cli: d.Client, id: randomHex(8), root: path.Clean(cfg.WorkspaceRoot), warm: cfg.WarmContainers > 0}
	if cfg.WorkspaceRoot == "" {
		m.root = ""
	}
	if m.cli == nil {
		cli, err := client.NewClientWithOpts(client.FromEnv, client.WithAPIVersionNegotiation())
		if err != nil {
			return nil, dockerErr("connect to the Docker engine", err)
		}
		m.cli, m.ownClient = cli, true
	}
	d.Client = m.cli // one client, one connection pool, for every session
	d.Labels = maps.Clone(d.Labels)
	if d.Labels == nil {
		d.Labels = map[string]string{}
	}
	d.Labels[DockerLabelManager] = m.id // warm containers too
	pool, err := NewPool(PoolConfig[DockerConfig]{
		Defaults:        d,
		New:             func(ctx context.Context, c DockerConfig) (FileBackend, error) { return NewDocker(ctx, c) },
		IdleTimeout:     cfg.IdleTimeout,
		CleanupInterval: cfg.CleanupInterval,
		Warm:            cfg.WarmContainers,
	})
	if err != nil {
		return nil, errors.Join(err, m.closeClient())
	}
	m.pool = pool
	return m, nil
}

// ID returns the manager's ID, the value of DockerLabelManager on its
// containers.
func (m *SessionManager) ID() string { return m.id }

// GetOrCreate returns the backend of session sessionID, creating its
// container when it has none or the one it had was closed. The call counts
// as activity for the idle timeout. Use Acquire instead to keep a session
// from being reaped while a long task runs.
func (m *SessionManager) GetOrCreate(ctx context.Context, sessionID string) (*DockerBackend, error) {
	lease, err := m.Acquire(ctx, sessionID)
	if err != nil {
		return nil, err
	}
	lease.Release()
	return lease.Backend.(*DockerBackend), nil
}

// Acquire is GetOrCreate that also marks the session in use until the
// lease is released: CleanupIdle leaves it alone meanwhile.
func (m *SessionManager) Acquire(ctx context.Context, sessionID string) (Lease, error) {
	if !sessionid.Valid(sessionID) {
		return Lease{}, errConfig("invalid session ID %q: use 1 to 128 letters, digits, '.', '_' and '-'", sessionID)
	}
	if m.warm {
		return m.pool.Acquire(ctx, sessionID, nil) // a warm container, made from the defaults
	}
	return m.pool.Acquire(ctx, sessionID, func(c *DockerConfig) {
		c.Labels = maps.Clone(c.Labels)
		c.Labels[dockerLabelSession] = sessionID
		if m.root != "" {
			ws := c.WorkspaceDir
			if ws == "" && c.Runtime != nil {
				ws = c.Runtime.WorkDir
			}
			if ws == "" {
				ws = DefaultDockerWorkspace
			}
			c.WorkspaceDir = ws
			c.Volumes = maps.Clone(c.Volumes)
			if c.Volumes == nil {
				c.Volumes = map[string]string{}
			}
			c.Volumes[m.root+"/"+sessionID] = ws
		}
	})
}

// CleanupIdle closes the sessions nobody has used for the idle timeout
// (removing their containers) and reports how many it closed.
func (m *SessionManager) CleanupIdle() int { return m.pool.CleanupIdle() }

// Stats counts the live sessions, and the warm containers ready for new
// ones.
func (m *SessionManager) Stats() PoolStats { return m.pool.Stats() }

// Shutdown closes every session, in use or not, removing their containers,
// then removes any container of this manager still left (one whose creation
// was interrupted, say); later GetOrCreate calls fail. Idempotent.
func (m *SessionManager) Shutdown(ctx context.Context) error {
	m.shutdownOnce.Do(func() {
		err := m.pool.Close()
		if _, rerr := RemoveDockerOrphans(ctx, m.cli, map[string]string{DockerLabelManager: m.id}); rerr != nil {
			err = errors.Join(err, rerr)
		}
		m.shutdownErr = errors.Join(err, m.closeClient())
	})
	return m.shutdownErr
}

func (m *SessionManager) closeClient() error {
	if !m.ownClient {
		return nil
	}
	m.ownClient = false
	return m.cli.Close()
}
