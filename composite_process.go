package agentbackend

import (
	"context"
	"slices"
)

var _ ProcessStarter = (*CompositeBackend)(nil)

// Start runs a command in the background on the backend its working
// directory routes to, as Exec does: the default backend when opts.Cwd is
// empty, else the routed backend with the prefix removed from the Cwd. It
// fails with NOT_IMPLEMENTED when that backend cannot start processes.
func (c *CompositeBackend) Start(ctx context.Context, command string, opts *ExecOptions) (*Process, error) {
	if err := c.checkOpen("start"); err != nil {
		return nil, err
	}
	t := target{b: c.def}
	if opts != nil && opts.Cwd != "" {
		var err error
		if t, _, err = c.resolve("start", opts.Cwd); err != nil {
			return nil, err
		}
	}
	starter, ok := t.b.(ProcessStarter)
	if !ok {
		return nil, errNotImplemented("start", t.b.Type())
	}
	if opts == nil || opts.Cwd == "" {
		return starter.Start(ctx, command, opts)
	}
	o := *opts
	o.Cwd = t.inner
	p, err := starter.Start(ctx, command, &o)
	return p, withPath(err, t.inner, opts.Cwd)
}

// Processes lists the background processes of the default backend and of
// every routed backend that has them, oldest first.
func (c *CompositeBackend) Processes() []ProcessInfo {
	var infos []ProcessInfo
	seen := map[string]bool{}
	for _, s := range c.starters() {
		for _, info := range s.Processes() {
			if !seen[info.ID] { // one backend may be mounted twice
				seen[info.ID] = true
				infos = append(infos, info)
			}
		}
	}
	slices.SortStableFunc(infos, func(a, b ProcessInfo) int {
		if c := a.StartedAt.Compare(b.StartedAt); c != 0 {
			return c
		}
		return cmpID(a.ID, b.ID)
	})
	return infos
}

// Process finds a listed background process of the default backend or of
// a routed backend. IDs are unique within the program, so at most one
// backend has it.
func (c *CompositeBackend) Process(id string) (*Process, bool) {
	for _, s := range c.starters() {
		if p, ok := s.Process(id); ok {
			return p, true
		}
	}
	return nil, false
}

// startsProcesses reports whether any backend of the composite can start
// processes.
func (c *CompositeBackend) startsProcesses() bool { return len(c.starters()) > 0 }

// starters returns the distinct backends that can start processes.
func (c *CompositeBackend) starters() []ProcessStarter {
	var out []ProcessStarter
	seen := map[FileBackend]bool{}
	for _, b := range append([]FileBackend{c.def}, c.backends()...) {
		if s, ok := processStarter(b); ok && !seen[b] {
			seen[b] = true
			out = append(out, s)
		}
	}
	return out
}
