package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"slices"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/searchwire"
)

// serveSearch runs one search of the sshext.SearchSubsystem: it reads a request,
// runs Grep, Glob or RealPath on the daemon's workspace backend or the
// session's scope of it (the same code every backend's search runs, next
// to the data) and writes the answer. The search is cancelled when the
// client closes the channel.
func (s *session) serveSearch() {
	ctx, cancel := s.context()
	defer cancel()
	var req searchwire.Request
	var resp searchwire.Response
	if err := json.NewDecoder(io.LimitReader(s.ch, 1<<20)).Decode(&req); err != nil {
		resp.Error = &searchwire.Error{Code: string(ab.CodeInvalidArgument), Message: "bad search request: " + err.Error()}
	} else {
		resp = s.d.search(ctx, req, s.jail)
	}
	_ = json.NewEncoder(s.ch).Encode(&resp)
	s.exit(0)
}

// search answers a search request in the jail j: on the workspace
// backend, or on a scope of it made for the request (each level beneath
// the one before, as the jail's), so that the search is jailed where the
// SFTP session of the same scope is.
func (d *Daemon) search(ctx context.Context, req searchwire.Request, j *jail) searchwire.Response {
	resp := searchwire.Response{Root: j.abs(".")}
	b, done, err := d.jailBackend(j)
	if err != nil {
		resp.Error = wireError(err)
		return resp
	}
	defer done()
	switch req.Op {
	case searchwire.OpGrep:
		var opts ab.GrepOptions
		if err = json.Unmarshal(req.Grep, &opts); err != nil {
			err = &ab.Error{Code: ab.CodeInvalidArgument, Op: "grep", Message: "bad grep options: " + err.Error()}
			break
		}
		if opts.Path, err = jailPath(j, "grep", opts.Path); err != nil {
			break
		}
		var res *ab.GrepResult
		if res, err = ab.Grep(ctx, b, opts); err == nil {
			resp.Grep, err = json.Marshal(res)
		}
	case searchwire.OpGlob:
		var dir string
		if dir, err = jailPath(j, "glob", req.Dir); err != nil {
			break
		}
		resp.Glob, err = ab.Glob(ctx, b, req.Pattern, dir)
		if resp.Glob == nil && err == nil {
			resp.Glob = []string{}
		}
	case searchwire.OpRealPath:
		var p string
		if p, err = jailPath(j, "realpath", req.Dir); err != nil {
			break
		}
		resp.Path, err = b.(ab.LinkResolver).RealPath(ctx, p)
	default:
		err = &ab.Error{Code: ab.CodeInvalidArgument, Op: "search", Message: "unknown search operation " + req.Op}
	}
	if err != nil {
		resp.Error = wireError(err)
		resp.Grep, resp.Glob = nil, nil
	}
	return resp
}

// jailBackend returns the backend of the jail j: the workspace's, or a
// scope of it, closed by done.
func (d *Daemon) jailBackend(j *jail) (ab.FileBackend, func(), error) {
	var b ab.FileBackend = d.local
	var scopes []*ab.ScopedBackend
	done := func() {
		for _, s := range slices.Backward(scopes) {
			s.Close()
		}
	}
	for _, level := range j.levels {
		s, err := b.Scope(level, nil)
		if err != nil {
			done()
			return nil, nil, err
		}
		scopes = append(scopes, s)
		b = s
	}
	return b, done, nil
}

// jailPath resolves a client's path in the jail j, for the jail's backend.
func jailPath(j *jail, op, p string) (string, error) {
	rel, err := j.rel(p)
	if err != nil {
		return "", &ab.Error{Code: ab.CodePathEscape, Op: op, Path: p}
	}
	return rel, nil
}

// wireError describes err for the client.
func wireError(err error) *searchwire.Error {
	e := &searchwire.Error{Code: string(ab.ErrorCode(err)), Message: err.Error(), NotExist: errors.Is(err, fs.ErrNotExist)}
	var abe *ab.Error
	if errors.As(err, &abe) {
		e.Path, e.Message = abe.Path, abe.Reason() // the client puts its own code, op and path before it
	}
	if e.Code == "" {
		e.Code = string(ab.CodeReadFailed)
	}
	return e
}
