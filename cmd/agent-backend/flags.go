package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/kubernetes"
)

// daemonConfig is everything `agent-backend daemon` accepts, parsed and
// checked. It holds what a daemon.Config needs for the full HTTP mode, so
// that mode can be wired in by filling one from it.
type daemonConfig struct {
	RootDir   string       // --rootDir (required)
	ScopePath string       // --scopePath, leading slashes stripped
	Isolation ab.Isolation // --isolation (auto is the zero value)
	Network   ab.Network   // --network (none is the zero value)
	Shell     ab.Shell     // --shell (auto is the zero value)
	Port      int          // --port, 1024-65535, default 3001
	Bind      string       // --bind: the address to listen on ("" is loopback without a token, every interface with one)
	AuthToken string       // --auth-token, or the contents of --auth-token-file
	// TokenInArgs says the token came on the command line (--auth-token),
	// where every local user can read it: the daemon warns.
	TokenInArgs bool
	// InsecureNoAuthPublic is --insecure-no-auth-public: serve a
	// non-loopback --bind without a token.
	InsecureNoAuthPublic bool
	LocalOnly            bool   // --local-only
	DisableSSHWS         bool   // --disable-ssh-ws
	SSHHostKey           string // --ssh-host-key
	// Permissions are read from the JSON file --permissions names (see
	// agentbackend.PermissionsFromJSON); nil when it is not given.
	Permissions *ab.Permissions
	// Kubernetes is read from the YAML or JSON file --kubernetes names (see
	// kubernetes.ParseConfig): the workspace is then a pod, not --rootDir.
	Kubernetes *kubernetes.Config
	// The daemon's limits (daemon.Config); 0 is its default.
	MaxConnections     int // --max-connections
	MaxSessionsPerConn int // --max-sessions-per-conn
	MaxExecsPerConn    int // --max-execs-per-conn
}

// defaultPort is the daemon's HTTP port when --port is not given.
const defaultPort = 3001

// usageError is a bad command line: the message is printed and the exit
// status is 1.
type usageError struct{ msg string }

// Error returns the message.
func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

// conventionalSSHFlags are the reference's flags for running a
// conventional sshd, which this implementation does not offer; they are
// refused by name instead of as unknown.
var conventionalSSHFlags = map[string]bool{
	"--conventional-ssh": true, "--ssh-port": true, "--ssh-users": true,
	"--ssh-public-key": true, "--ssh-authorized-keys": true,
}

// parseDaemonArgs parses the arguments after `daemon`. Flags are spelled
// exactly as the specification writes them (camel or kebab case), each
// value in the next argument.
func parseDaemonArgs(args []string) (*daemonConfig, error) {
	cfg := &daemonConfig{Port: defaultPort}
	for i := 0; i < len(args); i++ {
		arg := args[i]
		value := func() (string, error) {
			if i+1 >= len(args) || strings.HasPrefix(args[i+1], "--") {
				return "", usagef("%s requires a value", arg)
			}
			i++
			return args[i], nil
		}
		var err error
		switch arg {
		case "--rootDir":
			cfg.RootDir, err = value()
			if err == nil && strings.TrimSpace(cfg.RootDir) == "" {
				err = usagef("--rootDir must not be empty")
			}
		case "--scopePath":
			var v string
			if v, err = value(); err == nil {
				cfg.ScopePath, err = checkScopePath(v)
			}
		case "--isolation":
			var v string
			if v, err = value(); err == nil {
				switch v {
				case "auto", "bwrap", "software", "none":
					cfg.Isolation = ab.Isolation(strings.TrimPrefix(v, "auto"))
				default:
					err = usagef("invalid isolation mode %q (valid modes: auto, bwrap, software, none)", v)
				}
			}
		case "--network":
			var v string
			if v, err = value(); err == nil {
				n, perr := ab.ParseNetwork(v)
				switch {
				case strings.TrimSpace(v) == "":
					err = usagef("invalid network mode %q (valid modes: none, host, allow:<host>,<host>,...)", v)
				case perr != nil:
					err = usagef("invalid network mode %q: %v", v, perr)
				default:
					cfg.Network = n
				}
			}
		case "--shell":
			var v string
			if v, err = value(); err == nil {
				switch v {
				case "auto", "bash", "sh":
					cfg.Shell = ab.Shell(strings.TrimPrefix(v, "auto"))
				default:
					err = usagef("invalid shell %q (valid shells: bash, sh, auto)", v)
				}
			}
		case "--port":
			var v string
			if v, err = value(); err == nil {
				p, perr := strconv.Atoi(v)
				if perr != nil || p < 1024 || p > 65535 {
					err = usagef("--port must be between 1024-65535, got %q", v)
				}
				cfg.Port = p
			}
		case "--bind":
			var v string
			if v, err = value(); err == nil {
				cfg.Bind, err = checkBind(v)
			}
		case "--auth-token":
			cfg.AuthToken, err = value()
			cfg.TokenInArgs = true
		case "--auth-token-file":
			var v string
			if v, err = value(); err == nil {
				cfg.AuthToken, err = readToken(v)
			}
		case "--insecure-no-auth-public":
			cfg.InsecureNoAuthPublic = true
		case "--local-only":
			cfg.LocalOnly = true
		case "--disable-ssh-ws":
			cfg.DisableSSHWS = true
		case "--ssh-host-key":
			cfg.SSHHostKey, err = value()
		case "--max-connections":
			cfg.MaxConnections, err = limitValue(arg, value)
		case "--max-sessions-per-conn":
			cfg.MaxSessionsPerConn, err = limitValue(arg, value)
		case "--max-execs-per-conn":
			cfg.MaxExecsPerConn, err = limitValue(arg, value)
		case "--permissions":
			var v string
			if v, err = value(); err == nil {
				cfg.Permissions, err = loadPermissions(v)
			}
		case "--kubernetes":
			var v string
			if v, err = value(); err == nil {
				var k kubernetes.Config
				if k, err = kubernetes.LoadConfig(v); err != nil {
					err = usagef("--kubernetes %v", err)
				}
				cfg.Kubernetes = &k
			}
		default:
			switch {
			case conventionalSSHFlags[arg]:
				err = usagef("%s is not supported: this implementation has no conventional sshd mode; SSH is served over WebSocket at /ssh (see --disable-ssh-ws)", arg)
			case strings.HasPrefix(arg, "--") && strings.Contains(arg, "="):
				err = usagef("unrecognized option: %s (give the value after a space: %s %s)", arg, arg[:strings.IndexByte(arg, '=')], arg[strings.IndexByte(arg, '=')+1:])
			case strings.HasPrefix(arg, "-"):
				err = usagef("unrecognized option: %s", arg)
			default:
				err = usagef("unexpected argument: %s", arg)
			}
		}
		if err != nil {
			return nil, err
		}
	}
	if cfg.Kubernetes != nil {
		switch {
		case cfg.RootDir != "":
			return nil, usagef("--rootDir and --kubernetes exclude each other: the workspace is the pod's (workspaceDir in the file)")
		case cfg.Isolation != "" || cfg.Shell != "":
			return nil, usagef("--isolation and --shell do not apply to --kubernetes: the pod is the sandbox, /bin/sh its shell")
		case cfg.Network != "":
			return nil, usagef("--network does not apply to --kubernetes: the pod's network is the cluster's (limit it with a NetworkPolicy)")
		case !cfg.LocalOnly && !cfg.DisableSSHWS:
			return nil, usagef("--kubernetes serves POST /mcp only: SSH over WebSocket serves a directory of this host; add --disable-ssh-ws")
		}
	} else if cfg.RootDir == "" {
		return nil, usagef("--rootDir is required")
	}
	if cfg.TokenInArgs && slices.Contains(args, "--auth-token-file") {
		return nil, usagef("--auth-token and --auth-token-file: give the token one way")
	}
	return cfg, nil
}

// readToken reads the token of --auth-token-file: the file's first line,
// which may not be blank. A token there stays out of the process list,
// where every local user reads command lines.
func readToken(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", usagef("--auth-token-file: %v", err)
	}
	token, _, _ := strings.Cut(string(data), "\n")
	token = strings.TrimSpace(token)
	if token == "" {
		return "", usagef("--auth-token-file: %s holds no token", path)
	}
	return token, nil
}

// limitValue reads the value of a limit flag: a whole number from 1.
func limitValue(flag string, value func() (string, error)) (int, error) {
	v, err := value()
	if err != nil {
		return 0, err
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return 0, usagef("%s must be a whole number from 1, got %q", flag, v)
	}
	return n, nil
}

// checkBind checks a --bind address: an IP address (brackets around an IPv6
// one are dropped) or a host name, without a port (that is --port).
func checkBind(v string) (string, error) {
	host := strings.TrimSuffix(strings.TrimPrefix(v, "["), "]")
	if net.ParseIP(host) != nil {
		return host, nil
	}
	if host == "" || strings.ContainsAny(host, ":/[] \t") {
		return "", usagef("--bind must be an IP address or a host name without a port (e.g. 127.0.0.1, ::, 0.0.0.0; the port is --port), got %q", v)
	}
	return host, nil
}

// checkScopePath strips leading slashes and refuses traversal, as the
// reference daemon does for --scopePath and X-Scope-Path.
func checkScopePath(p string) (string, error) {
	s := strings.TrimLeft(p, "/")
	if strings.Contains(s, "..") {
		return "", usagef("--scopePath must not contain path traversal sequences (..): %q", p)
	}
	if s == "" {
		return "", usagef("--scopePath must name a directory below --rootDir, got %q", p)
	}
	return s, nil
}

// loadPermissions reads a permissions file. Every failure names the file
// and, for a bad policy, the field ("write.rules[2].action: ...").
func loadPermissions(file string) (*ab.Permissions, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, usagef("--permissions %s: %v", file, errors.Unwrap(err))
	}
	p, err := ab.PermissionsFromJSON(data)
	if err != nil {
		reason := err.Error()
		var e *ab.Error
		if errors.As(err, &e) {
			reason = e.Reason() // the flag names what the code would
		}
		return nil, usagef("--permissions %s: %s", file, strings.TrimPrefix(reason, "permissions: "))
	}
	return p, nil
}
