package agentbackend

import (
	"context"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// The commands of a scope: Exec, and background processes (Start).

var _ ProcessStarter = (*ScopedBackend)(nil)

// Start runs a command in the background through the scope, with exactly
// the treatment Exec gets (prepareExec): the scope root (or opts.Cwd inside
// the scope) as working directory and HOME, the scope's environment under
// opts.Env, the base backend's safety checks and isolation. The start is
// logged as OpStart. It fails with NOT_IMPLEMENTED when the backend below
// cannot start processes.
//
// The process is the scope's: Processes and Process of this scope see it,
// other scopes do not (the backend itself lists every process). Closing the
// scope kills it if it still runs.
func (s *ScopedBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	start := s.begin(OpStart)
	var check opCheck
	p, err := s.start(ctx, command, opts, &check)
	if !start.IsZero() || check.rec.Access != "" {
		s.log(start, OperationEntry{Operation: OpStart, Command: command, Permission: check.rec}, err)
	}
	return p, err
}

func (s *ScopedBackend) start(ctx context.Context, command string, opts *ExecOptions, check *opCheck) (*Process, error) {
	starter, ok := s.fs.(ProcessStarter)
	if !ok {
		return nil, errNotImplemented("start", s.base.Type())
	}
	o, err := s.prepareExec(ctx, "start", command, opts, check)
	if err != nil {
		return nil, err
	}
	p, err := starter.Start(ctx, command, o)
	if err != nil {
		return nil, err
	}
	s.procMu.Lock()
	if s.procs == nil {
		s.procs = map[string]*Process{}
	}
	for id, old := range s.procs {
		if !old.isListed() {
			delete(s.procs, id) // collected or expired: nobody can look it up
		}
	}
	s.procs[p.ID()] = p
	s.procMu.Unlock()
	if s.closed.Load() {
		// Close ran meanwhile and did not see it.
		_ = p.Kill()
	}
	return p, nil
}

// startsProcesses reports whether the backend below can start processes.
func (s *ScopedBackend) startsProcesses() bool {
	_, ok := processStarter(s.fs)
	return ok
}

// Processes lists the background processes started through this scope
// that the backend still lists, oldest first.
func (s *ScopedBackend) Processes() []ProcessInfo { return processInfos(s.own()) }

// Process returns a background process started through this scope and
// still listed by the backend.
func (s *ScopedBackend) Process(id string) (*Process, bool) {
	s.procMu.Lock()
	p, ok := s.procs[id]
	s.procMu.Unlock()
	if !ok || !p.isListed() {
		return nil, false
	}
	return p, true
}

// own returns the scope's processes that are still listed, and forgets the
// others.
func (s *ScopedBackend) own() []*Process {
	s.procMu.Lock()
	defer s.procMu.Unlock()
	procs := make([]*Process, 0, len(s.procs))
	for id, p := range s.procs {
		if p.isListed() {
			procs = append(procs, p)
		} else {
			delete(s.procs, id)
		}
	}
	return procs
}

// killProcesses kills the scope's processes that still run.
func (s *ScopedBackend) killProcesses() {
	s.procMu.Lock()
	procs := make([]*Process, 0, len(s.procs))
	for _, p := range s.procs {
		procs = append(procs, p)
	}
	s.procMu.Unlock()
	for _, p := range procs {
		_ = p.Kill() // os.ErrProcessDone for those that ended
	}
}

// Exec runs a command with the scope root (or opts.Cwd inside the scope) as
// working directory and HOME, and the scope's environment under opts.Env.
func (s *ScopedBackend) Exec(ctx context.Context, command string, opts *ExecOptions) (*ExecResult, error) {
	start := s.begin(OpExec)
	var o opCheck
	res, err := s.exec(ctx, command, opts, &o)
	if !start.IsZero() || o.rec.Access != "" {
		e := OperationEntry{Operation: OpExec, Command: command, Permission: o.rec}
		if res != nil {
			e.Stdout, e.Stderr, e.ExitCode = string(res.Stdout), string(res.Stderr), res.ExitCode
		}
		s.log(start, e, err)
	}
	return res, err
}

func (s *ScopedBackend) exec(ctx context.Context, command string, opts *ExecOptions, o *opCheck) (*ExecResult, error) {
	eo, err := s.prepareExec(ctx, "exec", command, opts, o)
	if err != nil {
		return nil, err
	}
	return s.fs.Exec(ctx, command, eo)
}

// prepareExec is what Exec and Start share, so a command gets the same
// treatment whichever way it runs: the scope must be open, the permission
// policy must allow it, opts.Env must be valid, opts.Cwd inside the scope
// (translated for the base), the scope's environment under opts.Env, and
// the scope directory created. It returns the options to pass down.
func (s *ScopedBackend) prepareExec(ctx context.Context, op, command string, opts *ExecOptions, o *opCheck) (*ExecOptions, error) {
	if err := s.checkOpen(op); err != nil {
		return nil, err
	}
	if err := s.checkExec(ctx, op, command, opts, o); err != nil {
		return nil, err
	}
	var eo ExecOptions
	if opts != nil {
		eo = *opts
	}
	if err := ValidateEnv(eo.Env); err != nil {
		return nil, err
	}
	cwd := s.at
	if eo.Cwd != "" {
		rel, err := resolve(s.root, op, eo.Cwd)
		if err != nil {
			return nil, err
		}
		cwd = pathjail.JoinRel(s.at, rel)
	}
	eo.Cwd = cwd
	eo.Env = mergeEnv(s.env, eo.Env)
	if s.base.Type() == TypeMemory {
		// Nothing runs there: say so before creating the scope directory.
		return nil, errNotImplemented(op, TypeMemory)
	}
	if err := s.ensureRoot(ctx); err != nil {
		return nil, err
	}
	s.maskExec(&eo)
	s.netExec(&eo, command)
	return &eo, nil
}
