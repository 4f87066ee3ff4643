package agentbackend

import (
	"context"
	"slices"

	"github.com/agentbackend/agentbackend/internal/pathjail"
)

// The scope's search tools: Glob and Grep pass through to the backend's
// fast paths (Globber, Grepper), with the scope's paths and permissions.

// Glob matches a pattern below dir in the scope, with the backend's own
// fast path when it has one. Paths are relative to dir, as for Glob; the
// entries the scope's permissions hide are left out.
func (s *ScopedBackend) Glob(ctx context.Context, pattern, dir string) ([]string, error) {
	start := s.begin(OpGlob)
	var o opCheck
	names, err := s.glob(ctx, pattern, dir, &o)
	s.log(start, OperationEntry{Operation: OpGlob, Path: dir, Permission: o.rec}, err)
	return names, err
}

func (s *ScopedBackend) glob(ctx context.Context, pattern, dir string, o *opCheck) ([]string, error) {
	in, err := s.inner("glob", dir)
	if err != nil {
		return nil, err
	}
	real, err := s.check(ctx, "glob", AccessList, in, dir, o)
	if err != nil {
		return nil, err
	}
	names, err := Glob(ctx, s.fs, pattern, in)
	if err != nil {
		return nil, withPath(err, in, dir)
	}
	if f := s.newEntryFilter(false); !f.noCheck {
		names = slices.DeleteFunc(names, func(name string) bool { return !f.keep(pathjail.JoinRel(real, name)) })
	}
	return names, nil
}

// Grep searches the scope, with the backend's own fast path when it has
// one. Paths in the result are relative to the scope root; files the
// scope's permissions do not let it read and search outright are left out
// (and HeadLimit counts only what is left).
func (s *ScopedBackend) Grep(ctx context.Context, opts GrepOptions) (*GrepResult, error) {
	start := s.begin(OpGrep)
	var o opCheck
	res, err := s.grep(ctx, opts, &o)
	s.log(start, OperationEntry{Operation: OpGrep, Path: opts.Path, Permission: o.rec}, err)
	return res, err
}

func (s *ScopedBackend) grep(ctx context.Context, opts GrepOptions, o *opCheck) (*GrepResult, error) {
	in, err := s.inner("grep", opts.Path)
	if err != nil {
		return nil, err
	}
	real, err := s.check(ctx, "grep", AccessSearch, in, opts.Path, o)
	if err != nil {
		return nil, err
	}
	f := s.newEntryFilter(true)
	q := opts
	q.Path = in
	if !f.noCheck {
		q.HeadLimit = 0 // applied after filtering
	}
	res, err := Grep(ctx, s.fs, q)
	if err != nil {
		return nil, withPath(err, in, opts.Path)
	}
	if !f.noCheck {
		spelled := s.baseRel(in)
		res.filter(func(p string) bool { return f.keep(realBelow(spelled, real, s.baseRel(p))) })
		res.limit(opts.HeadLimit)
	}
	if s.at == "." {
		return res, nil
	}
	strip := func(p string) string { below, _ := belowOrSame(s.at, p); return below }
	for i := range res.Files {
		res.Files[i] = strip(res.Files[i])
	}
	for i := range res.Counts {
		res.Counts[i].Path = strip(res.Counts[i].Path)
	}
	for i := range res.Lines {
		res.Lines[i].Path = strip(res.Lines[i].Path)
	}
	return res, nil
}
