// Command agent-backend is the agent-backend CLI.
//
//	agent-backend daemon --rootDir DIR [--scopePath P] [--isolation auto|bwrap|software|none]
//	                     [--network none|host|allow:<hosts>] [--shell bash|sh|auto] [--permissions FILE] --local-only
//	agent-backend daemon --kubernetes FILE [--scopePath P] [--permissions FILE] --local-only
//
// serves the workspace DIR as MCP tools (the MCP filesystem server's tools
// plus exec and grep; see package agentmcp) on standard input and output,
// for an MCP client that starts it as a subprocess. It opens no listener,
// and because it trusts the local user who started it, dangerous-command
// blocking is off (isolation still applies). It runs until its input
// closes or it gets SIGINT or SIGTERM.
//
// --permissions FILE applies a permission policy (agentbackend.Permissions
// as JSON) to every tool call: tools it denies outright are not offered,
// and refused calls are tool errors saying why. A bad file stops the
// daemon at startup with a message naming the field. Ask rules are denied
// (nobody can answer on stdio), or reported as needing approval with
// "askFallback": "error".
//
// Without --local-only the daemon serves HTTP on --port (package daemon):
// GET /health, POST /mcp (the same tools, dangerous-command blocking on) and
// WS /ssh (SSH over WebSocket: exec, shell and SFTP for RemoteBackend and
// agent-backend's RemoteFilesystemBackend), guarded by --auth-token. With a
// token it listens on every interface (or --bind); without one, on
// loopback only (127.0.0.1 and ::1), and a --bind address other hosts can
// reach is refused unless --insecure-no-auth-public says the daemon is
// meant to be open to them. It stops gracefully on SIGINT or SIGTERM.
// There --permissions applies to POST /mcp and requires --disable-ssh-ws
// (an SSH client could run anything).
//
// With --kubernetes FILE instead of --rootDir the workspace is a pod
// (package kubernetes): the file holds a kubernetes.Config in YAML or JSON,
// with the pod template, and $KUBECONFIG says which cluster. The daemon
// deletes the pod it created when it stops. In HTTP mode only POST /mcp is
// served (--disable-ssh-ws is required).
//
// Other commands: `agent-backend version` and `agent-backend help`.
// Install with
//
//	go install github.com/agentbackend/agentbackend/cmd/agent-backend@latest
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/agentbackend/agentbackend/agentmcp"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the CLI: it returns the exit status.
func run(ctx context.Context, args []string, stdin io.ReadCloser, stdout io.WriteCloser, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 1
	}
	switch args[0] {
	case "daemon":
		if len(args) > 1 && (args[1] == "--help" || args[1] == "-h" || args[1] == "help") {
			fmt.Fprint(stdout, daemonUsage)
			return 0
		}
		cfg, err := parseDaemonArgs(args[1:])
		if err != nil {
			fmt.Fprintf(stderr, "agent-backend daemon: %v\nRun \"agent-backend daemon --help\" for usage.\n", err)
			return 1
		}
		if err := runDaemon(ctx, cfg, stdin, stdout, stderr); err != nil {
			fmt.Fprintf(stderr, "agent-backend daemon: %s\n", flagNames.Replace(strings.TrimPrefix(err.Error(), "daemon: ")))
			return 1
		}
		return 0
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "agent-backend %s (speaks agent-backend %s)\n", agentmcp.Version(), agentmcp.ReferenceVersion)
		return 0
	case "help", "--help", "-h":
		fmt.Fprint(stdout, usage)
		return 0
	default:
		fmt.Fprintf(stderr, "agent-backend: unknown command %q\nRun \"agent-backend help\" for usage.\n", args[0])
		return 1
	}
}

const usage = `agent-backend: one safe interface to an AI agent's workspace.

Usage:
  agent-backend <command> [options]

Commands:
  daemon     serve a workspace (HTTP: /health, /mcp, /ssh; or MCP over stdio with --local-only)
  version    print the version (and the agent-backend release it speaks)
  help       print this help

Run "agent-backend daemon --help" for the daemon's options.
`

const daemonUsage = `Usage:
  agent-backend daemon --rootDir <path> [options]

Serves the workspace <path> as MCP tools: the tools of the MCP filesystem
server (read_text_file, write_file, edit_file, list_directory, search_files,
...) plus grep and exec.

Required, one of:
  --rootDir <path>           the workspace directory (created if missing)
  --kubernetes <file>        the workspace is a Kubernetes pod, created from
                             the template in the YAML or JSON file (or an
                             existing pod it names), reached through
                             $KUBECONFIG; deleted again when the daemon
                             stops if it created it. HTTP mode needs
                             --disable-ssh-ws. Example file:
                               namespace: agents
                               template:
                                 image: python:3.13-slim
                                 runtimeClassName: gvisor

Mode:
  (default)                  serve HTTP on --port: GET /health, POST /mcp,
                             WS /ssh (SSH and SFTP over WebSocket), with
                             dangerous-command blocking on
  --local-only               serve MCP on standard input and output: no
                             listener, dangerous-command blocking off (the
                             local user is trusted); isolation still applies

Workspace:
  --scopePath <path>         confine every operation to this subdirectory
  --isolation <mode>         auto|bwrap|software|none (default auto: bwrap
                             when it works here, else software, with a
                             warning); software isolation is a heuristic
                             command filter that a determined command
                             defeats, not a sandbox
  --network <mode>           none|host|allow:<hosts>: what bwrap-sandboxed
                             commands reach (default none: a loopback of
                             their own; host: the host's network, its local
                             services too; allow:github.com,*.pypi.org,...:
                             only those hosts (ports 80 and 443 unless
                             host:port or host:*), through a filtering HTTP
                             proxy the daemon runs for each command; needs
                             root)
  --shell <shell>            bash|sh|auto (default auto: bash if present)
  --permissions <file>       a JSON permission policy: per access (read,
                             list, search, write, delete, exec, network) a
                             default and rules {"pattern", "action",
                             "reason"} with
                             actions allow|deny|ask, e.g.
                             {"write": {"default": "deny", "rules":
                               [{"pattern": "src/**", "action": "allow"}]},
                              "exec": {"default": "deny"}}
                             Tools it denies outright are not offered; ask
                             is denied here (nobody can answer on stdio)

HTTP daemon (without --local-only):
  --port <port>              1024-65535 (default 3001)
  --auth-token <token>       bearer token required by /mcp and /ssh; commands
                             the daemon runs do not inherit it (nor
                             AUTH_TOKEN), but every local user can read a
                             command line: prefer --auth-token-file
  --auth-token-file <path>   read the token from the file's first line
  --bind <address>           the address to listen on (default: every
                             interface with a token; 127.0.0.1 and ::1
                             without one)
  --insecure-no-auth-public  serve a --bind address other hosts can reach
                             WITHOUT a token: anyone who reaches it can run
                             commands as this user
  --disable-ssh-ws           do not serve SSH over WebSocket at /ssh
  --ssh-host-key <path>      SSH host key file
  --max-connections <n>      SSH-WS clients served at once (default 1024);
                             one more is answered 503, which clients report
                             as RESOURCE_LIMIT
  --max-sessions-per-conn <n>
                             SSH sessions (commands, SFTP, background
                             processes) open at once on one connection
                             (default 64); one more is refused, and this
                             module's client opens another connection
  --max-execs-per-conn <n>   commands running at once on one connection
                             (default 16); more wait for one to end

Flags are written exactly as above, each value after a space. Invalid values
and unknown flags exit with status 1.
`

// flagNames turns the configuration fields an SDK error names into the
// flags that set them: the CLI's user knows --rootDir, not
// LocalConfig.RootDir.
var flagNames = strings.NewReplacer(
	"LocalConfig.RootDir", "--rootDir",
	"LocalConfig.Isolation", "--isolation",
	"LocalConfig.Network", "--network",
	"LocalConfig.Shell", "--shell",
)
