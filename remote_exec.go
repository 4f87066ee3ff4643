package agentbackend

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// Exec runs command on the daemon host in the workspace, over an SSH exec
// session.
//
// Before anything is sent: an empty command is EMPTY_COMMAND; unless
// AllowDangerous, a command matching the dangerous patterns is
// DANGEROUS_OPERATION; opts.Env (and RemoteConfig.Env) are checked with
// ValidateEnv; opts.Cwd must resolve inside the workspace
// (PATH_ESCAPE_ATTEMPT).
//
// The daemon runs `<shell> -c <script>`, where the script changes to the
// working directory, sets HOME to it and exports the variables, with the
// directory and every value single-quoted (names are identifiers, checked)
// — no value can inject a command — and then runs command as given:
//
//	cd -- '/ws/sub' || exit 1
//	export HOME='/ws/sub' GREETING='it'\''s'
//	<command>
//
// A missing working directory makes the command fail (cd's message on
// stderr, exit 1, EXEC_FAILED). stdout and stderr stream to opts.Stdout and
// opts.Stderr while the command runs and are kept up to MaxOutputLength as
// for LocalBackend; opts.Stdin is sent as the command's input. On
// opts.Timeout or ctx cancellation the remote command is sent SIGKILL and
// the session is closed (the daemon kills the command's process group with
// the session); the error wraps context.DeadlineExceeded or ctx.Err(). A
// non-zero exit returns the result AND EXEC_FAILED; a lost connection is
// CONNECTION_CLOSED.
//
// As with LocalBackend, an opts.Stdin whose Read blocks holds Exec until it
// returns.
func (b *RemoteBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	var o ExecOptions
	if opts != nil {
		o = *opts
	}
	cwd, err := b.prepareExec("exec", command, &o)
	if err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, &Error{Code: CodeExecError, Op: "exec", Command: command, Err: err,
			Message: "Command not started: " + err.Error()}
	}
	c, err := b.connection(ctx, "exec")
	if err != nil {
		return nil, err
	}
	sess, release, err := c.newSession(ctx)
	if err != nil {
		return nil, b.execErr(c, command, err)
	}
	defer release()
	defer sess.Close()
	if err := b.jailSession(c, sess.SendRequest); err != nil {
		return nil, b.execErr(c, command, err)
	}

	stdout := &execCapture{limit: b.maxOutput, live: o.Stdout}
	stderr := &execCapture{limit: b.maxOutput, live: o.Stderr}
	if o.Stdout != nil && sameWriter(o.Stdout, o.Stderr) {
		mu := new(sync.Mutex)
		stdout.mu, stderr.mu = mu, mu
	}
	sess.Stdout, sess.Stderr, sess.Stdin = stdout, stderr, o.Stdin

	start := time.Now()
	if err := sess.Start(execScript(cwd, mergeEnv(b.cfg.Env, o.Env), command)); err != nil {
		return nil, b.execErr(c, command, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- sess.Wait() }()
	var timeout <-chan time.Time
	if o.Timeout > 0 {
		t := time.NewTimer(o.Timeout)
		defer t.Stop()
		timeout = t.C
	}
	var killCause error
	select {
	case err = <-waited:
	case <-timeout:
		killCause = errTimeout
	case <-ctx.Done():
		killCause = ctx.Err()
	}
	if killCause != nil {
		_ = sess.Signal(ssh.SIGKILL) // the daemon kills the process group...
		_ = sess.Close()             // ...and so does closing the session
		err = <-waited
	}

	res := &ExecResult{ExitCode: exitCodeOf(err), Duration: time.Since(start)}
	var cut1, cut2 bool
	res.Stdout, cut1 = stdout.result()
	res.Stderr, cut2 = stderr.result()
	res.Truncated = cut1 || cut2
	switch {
	case killCause != nil:
		if res.ExitCode < 0 {
			res.ExitCode = 137 // 128 + SIGKILL, as LocalBackend reports
		}
		return res, killedErr(TypeRemote, command, res.ExitCode, killCause, o.Timeout)
	case res.ExitCode < 0:
		return res, b.execErr(c, command, err)
	case res.ExitCode != 0:
		return res, errExecFailed(command, res.ExitCode, res.Stdout, res.Stderr)
	}
	return res, nil
}

// exitCodeOf returns a finished session's exit status, 128+signal for a
// command killed by a signal, or -1 when the session ended without one.
func exitCodeOf(err error) int {
	var ee *ssh.ExitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		if sig := ee.Signal(); sig != "" {
			if n, ok := signalNumbers[sig]; ok {
				return 128 + n
			}
		}
		return ee.ExitStatus()
	default:
		return -1
	}
}

// signalNumbers are the Linux numbers of the signals an exit-signal names.
var signalNumbers = map[string]int{"HUP": 1, "INT": 2, "QUIT": 3, "ILL": 4, "ABRT": 6, "FPE": 8, "KILL": 9,
	"USR1": 10, "SEGV": 11, "USR2": 12, "PIPE": 13, "ALRM": 14, "TERM": 15}

// execErr is the error of an exec session that failed to run.
func (b *RemoteBackend) execErr(c *remoteConn, command string, err error) error {
	var e *Error
	if errors.As(err, &e) { // RESOURCE_LIMIT, or a new link's connection error
		e.Op, e.Command = "exec", command
		return e
	}
	if b.destroyed.Load() || c.lost(err) {
		cause := err
		if c.dead() {
			cause = c.err
		}
		if b.destroyed.Load() {
			cause = errRemoteDestroyed
		}
		e := connClosed("exec", "", cause)
		e.Command = command
		return e
	}
	return &Error{Code: CodeExecError, Op: "exec", Command: command, Err: err,
		Message: "Failed to execute command: " + err.Error()}
}

// execScript builds the script the daemon's shell runs for a command: cd
// to cwd, HOME and the variables exported, all values single-quoted, then
// the command itself on its own line. Names must have passed ValidateEnv.
func execScript(cwd string, env map[string]string, command string) string {
	var s strings.Builder
	s.Grow(len(command) + 2*len(cwd) + 64)
	s.WriteString("cd -- ")
	s.WriteString(shellQuote(cwd))
	s.WriteString(" || exit 1\nexport HOME=")
	s.WriteString(shellQuote(cwd))
	for _, k := range slices.Sorted(maps.Keys(env)) {
		s.WriteByte(' ')
		s.WriteString(k)
		s.WriteByte('=')
		s.WriteString(shellQuote(env[k]))
	}
	s.WriteByte('\n')
	s.WriteString(command)
	return s.String()
}

// shellQuote quotes s for a POSIX shell: single quotes, each ' written as
// '\”. Everything between single quotes is literal.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
