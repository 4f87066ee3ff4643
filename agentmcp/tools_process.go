package agentmcp

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	ab "github.com/agentbackend/agentbackend"
)

// The background-process tools, named and shaped as pydantic-ai-backend's
// console tools (run_in_background, read_output, kill_shell, list_shells,
// processes named by shell_id), on agentbackend.ProcessStarter: a model
// cannot hold a *Process, so these tools find it by its ID and keep, for
// read_output, where the previous read of it ended. They are offered only
// where the backend can start processes (see CanStartProcesses), and left
// out with exec (Options.NoExec, or permissions that deny exec outright).

var (
	runInBackgroundSpec = &spec{
		name: "run_in_background", title: "Run Command in Background",
		desc: "Start a shell command in the background in the workspace directory and return at once with its shell_id " +
			"(for dev servers, watchers, long builds and test runs). The process keeps running while you do other work: " +
			"read what it printed with read_output, stop it with kill_shell, see every background process with list_shells. " +
			"Output is kept per stream, bounded (the oldest is dropped, with a line saying how much). " +
			"With terminal: true the command runs on a pseudo-terminal (for REPLs, prompts, `npm init`, TUIs, " +
			"anything that wants a terminal): type into it with send_input (text and keys such as Enter, Ctrl-C, Up, Tab), " +
			"and read_output shows what the terminal shows. Without it, a process that waits for input gets none.",
		input: mustSchema(runInBackgroundSchema), output: textOutput,
		ann: Annotations{Destructive: true, OpenWorld: true},
		bg:  true, runs: true,
		run: runInBackground,
	}
	readOutputSpec = &spec{
		name: "read_output", title: "Read Background Output",
		desc: "Return what a background process (shell_id from run_in_background) printed since the previous read_output " +
			"of it, stdout and stderr apart, and its state (running, or how it ended and its exit code). When nothing new " +
			"has come yet, it waits up to wait_seconds (default 0) for some. Once everything an ended process printed has " +
			"been read, it is forgotten.",
		input: mustSchema(readOutputSchema), output: textOutput,
		ann: Annotations{ReadOnly: true}, bg: true,
		run: readOutput,
	}
	killShellSpec = &spec{
		name: "kill_shell", title: "Kill Background Process",
		desc: "Kill a background process (shell_id from run_in_background) and everything it started, and report how it " +
			"ended. Its remaining output can still be read with read_output. Killing a process that already ended only " +
			"reports its end.",
		input: mustSchema(shellIDSchema), output: textOutput,
		ann: Annotations{Destructive: true, Idempotent: true}, bg: true,
		run: killShell,
	}
	sendInputSpec = &spec{
		name: "send_input", title: "Send Input to Background Process",
		desc: "Type into a background process (shell_id from run_in_background, best started with terminal: true): " +
			"first text, exactly as given, then each named key of keys in order (Enter, Tab, Backspace, Escape, Space, " +
			"Up, Down, Left, Right, Home, End, PageUp, PageDown, Delete, F1-F12, Ctrl-C, Ctrl-D, any Ctrl-<letter>). " +
			"On a terminal a line is submitted with the Enter key, not with \n in text. Returns what the process printed " +
			"in answer, waiting up to wait_seconds (default 2) for its output to pause.",
		input: mustSchema(sendInputSchema), output: textOutput,
		ann: Annotations{Destructive: true, OpenWorld: true}, bg: true,
		run: sendInput,
	}
	listShellsSpec = &spec{
		name: "list_shells", title: "List Background Processes",
		desc: "List the background processes: running ones, and ended ones whose output has not all been read, " +
			"oldest first, one line each: shell_id, state, command.",
		input: mustSchema(noArgsSchema), output: textOutput,
		ann: Annotations{ReadOnly: true, Idempotent: true}, bg: true,
		run: listShells,
	}
)

// CanStartProcesses reports whether b can run commands in the background
// in its workspace, so that the background-process tools are worth
// offering: whether the backend that runs its commands (scopes looked
// through, a composite's default backend) implements
// agentbackend.ProcessStarter.
func CanStartProcesses(b ab.FileBackend) bool {
	_, ok := runner(b).(ab.ProcessStarter)
	return ok
}

// withBackground reports whether to serve the background-process tools
// for b: where exec is served and b can start processes.
func withBackground(b ab.FileBackend, opts *Options) bool {
	return withExec(b, opts) && CanStartProcesses(b)
}

// execOptions returns the options of exec and run_in_background: env and
// timeout (seconds).
func execOptions(args map[string]any) *ab.ExecOptions {
	o := &ab.ExecOptions{}
	if m, ok := args["env"].(map[string]any); ok && len(m) > 0 {
		o.Env = make(map[string]string, len(m))
		for k, v := range m {
			o.Env[k], _ = v.(string)
		}
	}
	if s, ok := num(args, "timeout"); ok && s > 0 {
		o.Timeout = time.Duration(s * float64(time.Second))
	}
	if boolean(args, "terminal") {
		rows, _ := num(args, "rows")
		cols, _ := num(args, "cols")
		o.Terminal = &ab.Terminal{Rows: int(rows), Cols: int(cols)}
	}
	return o
}

func runInBackground(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	return startBackground(ctx, t, "run_in_background", str(args, "command"), execOptions(args))
}

// startBackground starts a background process for run_in_background or
// exec with background: true.
func startBackground(ctx context.Context, t *toolset, tool, command string, o *ab.ExecOptions) (*Result, error) {
	if !t.filter.bg {
		return nil, toolError(tool, "Background processes are not available here: "+
			"the backend cannot start them, or it does not outlive this request. Run the command without background.", nil)
	}
	s, ok := t.b.(ab.ProcessStarter)
	if !ok {
		return nil, toolError(tool, "Background processes are not available here: the backend cannot start them.", nil)
	}
	p, err := s.Start(ctx, command, o)
	if err != nil {
		return nil, toolError(tool, err.Error(), err)
	}
	return text(fmt.Sprintf("Started %s in the background (shell_id %s): %s\n"+
		"Read its output with read_output, stop it with kill_shell.", p.ID(), p.ID(), p.Command())), nil
}

func readOutput(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	var wait time.Duration
	if s, ok := num(args, "wait_seconds"); ok && s > 0 {
		wait = time.Duration(min(s, maxReadWait) * float64(time.Second))
	}
	p, err := findProcess(t.b, "read_output", str(args, "shell_id"))
	if err != nil {
		return nil, toolError("read_output", err.Error(), err)
	}
	return text(strings.TrimRight(readNew(ctx, p, wait).String(), "\n")), nil
}

// sendInputWait is send_input's default wait_seconds.
const sendInputWait = 2 * time.Second

func sendInput(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	wait := sendInputWait
	if s, ok := num(args, "wait_seconds"); ok {
		wait = time.Duration(min(max(s, 0), maxReadWait) * float64(time.Second))
	}
	out, err := sendKeys(ctx, t.b, str(args, "shell_id"), str(args, "text"), strs(args, "keys"), wait)
	if err != nil {
		return nil, toolError("send_input", err.Error(), err)
	}
	return text(strings.TrimRight(out.String(), "\n")), nil
}

// killWait bounds how long kill_shell waits for a killed process to end.
const killWait = 5 * time.Second

// maxReadWait bounds read_output's wait_seconds (a client's request
// timeout is often a minute).
const maxReadWait = 50

func killShell(ctx context.Context, t *toolset, args map[string]any) (*Result, error) {
	p, err := findProcess(t.b, "kill_shell", str(args, "shell_id"))
	if err != nil {
		return nil, toolError("kill_shell", err.Error(), err)
	}
	if err := p.Kill(); err != nil && err != os.ErrProcessDone {
		return nil, toolError("kill_shell", err.Error(), err)
	}
	// Wait (briefly, and within ctx) for it to end, to report how it did.
	timer := time.NewTimer(killWait)
	defer timer.Stop()
	select {
	case <-p.Done():
	case <-timer.C:
	case <-ctx.Done():
	}
	return text(p.Info().String()), nil
}

func listShells(ctx context.Context, t *toolset, _ map[string]any) (*Result, error) {
	s, ok := t.b.(ab.ProcessStarter)
	if !ok {
		return nil, toolError("list_shells", "Background processes are not available here: the backend cannot start them.", nil)
	}
	if err := ctx.Err(); err != nil {
		return nil, toolError("list_shells", err.Error(), err)
	}
	list := s.Processes()
	if len(list) == 0 {
		return text("No background processes."), nil
	}
	lines := make([]string, len(list))
	for i, info := range list {
		lines[i] = info.String()
	}
	return text(strings.Join(lines, "\n")), nil
}

const runInBackgroundSchema = `{
  "type": "object",
  "properties": {
    "command": {"type": "string", "description": "Shell command to run in the background"},
    "env": {"type": "object", "additionalProperties": {"type": "string"}, "description": "Optional environment variables to set for this command"},
    "timeout": {"type": "number", "minimum": 0, "description": "Optional: kill the process after this many seconds (default: runs until it exits or is killed)"},
    "terminal": {"type": "boolean", "description": "Run it on a pseudo-terminal (REPLs, prompts, TUIs); type into it with send_input"},
    "rows": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Terminal height in lines (default 24)"},
    "cols": {"type": "integer", "minimum": 1, "maximum": 1000, "description": "Terminal width in columns (default 80)"}
  },
  "required": ["command"]
}`

const sendInputSchema = `{
  "type": "object",
  "properties": {
    "shell_id": {"type": "string", "description": "The shell_id run_in_background returned"},
    "text": {"type": "string", "maxLength": 65536, "description": "Text to type, as is"},
    "keys": {"type": "array", "items": {"type": "string"}, "maxItems": 256, "description": "Named keys to press after the text, in order: Enter, Tab, Ctrl-C, Up, ..."},
    "wait_seconds": {"type": "number", "minimum": 0, "maximum": 50, "description": "Wait up to this many seconds for the output to pause (default 2)"}
  },
  "required": ["shell_id"]
}`

const readOutputSchema = `{
  "type": "object",
  "properties": {
    "shell_id": {"type": "string", "description": "The shell_id run_in_background returned"},
    "wait_seconds": {"type": "number", "minimum": 0, "maximum": 50, "description": "When there is no new output yet, wait up to this many seconds for some (default 0)"}
  },
  "required": ["shell_id"]
}`

const shellIDSchema = `{
  "type": "object",
  "properties": {
    "shell_id": {"type": "string", "description": "The shell_id run_in_background returned"}
  },
  "required": ["shell_id"]
}`
