package main

import (
	"cmp"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/agentmcp"
	"github.com/agentbackend/agentbackend/daemon"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// runDaemon runs the daemon cfg describes until its input closes or ctx
// ends.
func runDaemon(ctx context.Context, cfg *daemonConfig, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	if cfg.Kubernetes != nil {
		return runKubernetes(ctx, cfg, stdin, stdout, stderr)
	}
	if !cfg.LocalOnly {
		return runHTTP(ctx, cfg, nil, stderr)
	}
	local, err := ab.NewLocal(ab.LocalConfig{
		RootDir:        cfg.RootDir,
		Isolation:      cfg.Isolation,
		Network:        cfg.Network,
		Shell:          cfg.Shell,
		AllowDangerous: true, // local-only trusts the local user (spec/daemon.md)
	})
	if err != nil {
		return err
	}
	defer local.Close()
	return serveStdio(ctx, cfg, local, "isolation "+string(local.Isolation()), stdin, stdout, stderr)
}

// runKubernetes runs the daemon on a pod made (or attached to) as the
// --kubernetes file says, and deletes a pod it made when it stops.
func runKubernetes(ctx context.Context, cfg *daemonConfig, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	kcfg := *cfg.Kubernetes
	// Blocking follows the mode, as for a directory: off for the trusted
	// local user of --local-only, on for HTTP clients.
	kcfg.AllowDangerous = cfg.LocalOnly
	pod, err := kubernetes.New(ctx, kcfg)
	if err != nil {
		return err
	}
	defer pod.Close()
	if !cfg.LocalOnly {
		return runHTTP(ctx, cfg, pod, stderr)
	}
	return serveStdio(ctx, cfg, pod, "pod "+pod.Namespace()+"/"+pod.Pod(), stdin, stdout, stderr)
}

// serveStdio serves b (through a scope when cfg asks for one) as MCP over
// standard input and output until the input closes or ctx ends.
func serveStdio(ctx context.Context, cfg *daemonConfig, b ab.FileBackend, where string, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	if cfg.ScopePath != "" || cfg.Permissions != nil {
		// Standard input carries MCP, so nobody can answer an Ask here: it
		// is denied, or APPROVAL_REQUIRED with askFallback "error".
		scope, err := b.Scope(cmp.Or(cfg.ScopePath, "."), &ab.ScopeConfig{Permissions: cfg.Permissions})
		if err != nil {
			return err
		}
		defer scope.Close()
		b = scope
	}
	policy := ""
	if cfg.Permissions != nil {
		policy = ", with permissions"
	}
	fmt.Fprintf(stderr, "agent-backend daemon: serving %s over MCP on stdio (%s%s)\n", b.RootDir(), where, policy)
	return agentmcp.ServeStdio(ctx, b, nil, stdin, stdout)
}

// runHTTP runs the full daemon (GET /health, POST /mcp, WS /ssh) on
// cfg.Bind and cfg.Port, serving workspace (nil: cfg.RootDir), until ctx
// ends or the process gets SIGTERM or SIGINT, then shuts it down
// gracefully. Dangerous-command blocking is always on in this mode. Without
// a token it listens on loopback only, and refuses a public --bind unless
// --insecure-no-auth-public (daemon.Run).
func runHTTP(ctx context.Context, cfg *daemonConfig, workspace ab.FileBackend, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.TokenInArgs {
		log.Warn("the --auth-token is on the command line, where every user of this host can read it (ps, /proc/PID/cmdline); prefer --auth-token-file")
	}
	return daemon.Run(ctx, daemon.Config{
		Workspace:            workspace,
		RootDir:              cfg.RootDir,
		ScopePath:            cfg.ScopePath,
		Isolation:            cfg.Isolation,
		Network:              cfg.Network,
		Shell:                cfg.Shell,
		AuthToken:            cfg.AuthToken,
		InsecureNoAuthPublic: cfg.InsecureNoAuthPublic,
		DisableSSHWS:         cfg.DisableSSHWS,
		Permissions:          cfg.Permissions,
		HostKeyPath:          cfg.SSHHostKey,
		MaxConnections:       cfg.MaxConnections,
		MaxSessionsPerConn:   cfg.MaxSessionsPerConn,
		MaxExecsPerConn:      cfg.MaxExecsPerConn,
		Logger:               log,
	}, net.JoinHostPort(cfg.Bind, strconv.Itoa(cfg.Port)))
}
