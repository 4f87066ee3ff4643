package daemon

import (
	"io"
	"log/slog"
	"os"
	"os/exec"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/netproxy"
	"github.com/agentbackend/agentbackend/internal/sandbox"
)

// secretEnv names the variables that carry the daemon's credentials; the
// reference removes them from the environment (scrubSecrets does too),
// and commands get the minimal environment anyway.
var secretEnv = []string{"AUTH_TOKEN", "MCP_AUTH_TOKEN"}

// execEnv is how SSH sessions run commands: the shell, isolation and
// environment of the daemon's LocalBackend, through internal/sandbox like
// LocalBackend.Exec (own process group, killed with the session).
//
// A command runs in its session's jail: the workspace, or a scope of it.
// Under bubblewrap the jail's directory, opened beneath the workspace, is
// bound by descriptor at its own host path (remote clients send commands
// that name host paths, `cd /srv/ws/users/alice && ...`), and it is all
// the sandbox holds of the workspace: a scope's command sees no sibling.
// Without bubblewrap the command runs on the host in that directory, with
// no containment.
//
// The command heuristics of LocalBackend (the dangerous-command list, and
// the workspace-escape list of software isolation) are NOT applied here: a
// remote client checks its commands before sending them, as
// RemoteBackend.Exec does, and wraps them in its own prelude (the reference
// client sends `HOME='/ws' cd "/ws" && ...` and removes files with
// `rm -r -f "/ws/dir"`, both of which the lists would refuse). The SSH
// channel is as trusted as the token that opened it; bubblewrap isolation,
// when the daemon has it, contains the command all the same.
type execEnv struct {
	shell    string
	bwrap    *sandbox.Bwrap // nil: on the host
	env      []string       // the base environment
	netRules netproxy.Rules // an allow-list Network's; nil for none and host
	log      *slog.Logger   // for the decisions of the allow-list's proxies
}

func newExecEnv(local *ab.LocalBackend, cfg Config, log *slog.Logger) (execEnv, error) {
	e := execEnv{log: log}
	switch cfg.Shell {
	case ab.ShellBash:
		e.shell = "/bin/bash"
	case ab.ShellSh:
		e.shell = "/bin/sh"
	default:
		e.shell = "/bin/bash"
		if _, err := os.Stat(e.shell); err != nil {
			e.shell = "/bin/sh"
		}
	}
	if local.Isolation() == ab.IsolationBwrap {
		path, err := exec.LookPath("bwrap")
		if err != nil {
			return e, err
		}
		// The same configuration as the LocalBackend's (its probe is cached).
		bcfg := sandbox.BwrapConfig{HostNetwork: cfg.Network == ab.NetworkHost}
		if list := cfg.Network.AllowList(); list != nil {
			// NewLocal has checked the list, and that the proxy can be bound.
			if e.netRules, err = netproxy.ParseRules(list); err != nil {
				return e, err
			}
			bcfg.ReadOnly = []string{"/etc/ssl/certs"}
		}
		if e.bwrap, err = sandbox.NewBwrap(path, bcfg).Probe(e.shell); err != nil {
			return e, err
		}
	}
	// The minimal environment: the daemon's own (its AUTH_TOKEN and
	// MCP_AUTH_TOKEN among it) never reaches a command.
	e.env = sandbox.BaseEnv(false, e.bwrap != nil)
	return e, nil
}

// command builds a session's command, run with the terminal type term in
// the jail j, and returns it with the jail's directory, opened (created
// for a scope that has none yet), which must stay open until the command
// has started. sandbox.Command sets HOME and PWD to the working directory
// as the command sees it.
func (e *execEnv) command(command, term string, terminal bool, j *jail) (*exec.Cmd, *os.File, error) {
	root, done, err := j.dir(true)
	if err != nil {
		return nil, nil, jailErr(err)
	}
	dir, err := root.OpenFile(".", os.O_RDONLY|oDirectory, 0)
	done()
	if err != nil {
		return nil, nil, err
	}
	env := make([]string, 0, len(e.env)+1)
	env = append(env, e.env...)
	env = append(env, "TERM="+term)
	s := sandbox.Spec{Shell: e.shell, Command: command, Root: j.real, Cwd: ".", Env: env, Bwrap: e.bwrap, Terminal: terminal}
	if e.bwrap != nil {
		s.Mount, s.RootFD = j.abs("."), dir // clients name the configured spelling
		if e.netRules != nil {
			// A filtering proxy of its own, as LocalBackend gives its commands.
			s.Env = append(s.Env, netproxy.Env(netproxy.SandboxAddr)...)
			srv := &netproxy.Server{Rules: e.netRules, Log: func(ev netproxy.Event) { netproxy.LogEvent(e.log, command, ev) }}
			s.Attach = func(ns *os.File) (io.Closer, error) { return srv.ServeIn(ns, netproxy.SandboxPort) }
		}
	}
	return sandbox.Command(s), dir, nil
}

// jailErr words a jail's refusal for a command's stderr.
func jailErr(err error) error {
	if isEscape(err) {
		return errEscape
	}
	return err
}
