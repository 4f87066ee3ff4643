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
)

// runDaemon runs the daemon cfg describes until its input closes or ctx
// ends.
func runDaemon(ctx context.Context, cfg *daemonConfig, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) error {
	if !cfg.LocalOnly {
		return runHTTP(ctx, cfg, stderr)
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
	var b ab.FileBackend = local
	if cfg.ScopePath != "" || cfg.Permissions != nil {
		// Standard input carries MCP, so nobody can answer an Ask here: it
		// is denied, or APPROVAL_REQUIRED with askFallback "error".
		scope, err := local.Scope(cmp.Or(cfg.ScopePath, "."), &ab.ScopeConfig{Permissions: cfg.Permissions})
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
	fmt.Fprintf(stderr, "agent-backend daemon: serving %s over MCP on stdio (isolation %s%s)\n", b.RootDir(), local.Isolation(), policy)
	return agentmcp.ServeStdio(ctx, b, nil, stdin, stdout)
}

// runHTTP runs the full daemon (GET /health, POST /mcp, WS /ssh) on
// cfg.Bind and cfg.Port until ctx ends or the process gets SIGTERM or
// SIGINT, then shuts it down gracefully. Dangerous-command blocking is
// always on in this mode. Without a token it listens on loopback only, and
// refuses a public --bind unless --insecure-no-auth-public (daemon.Run).
func runHTTP(ctx context.Context, cfg *daemonConfig, stderr io.Writer) error {
	log := slog.New(slog.NewTextHandler(stderr, nil))
	if cfg.TokenInArgs {
		log.Warn("the --auth-token is on the command line, where every user of this host can read it (ps, /proc/PID/cmdline); prefer --auth-token-file")
	}
	return daemon.Run(ctx, daemon.Config{
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
