package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"

	ab "github.com/agentbackend/agentbackend"
	"github.com/agentbackend/agentbackend/internal/searchwire"
)

// serveSearch runs one search of the SearchSubsystem: it reads a request,
// runs Grep or Glob on the daemon's workspace backend (the same code every
// backend's search runs, next to the data) and writes the answer. The
// search is cancelled when the client closes the channel.
func (s *session) serveSearch() {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-s.done:
			cancel()
		case <-ctx.Done():
		}
	}()
	var req searchwire.Request
	var resp searchwire.Response
	if err := json.NewDecoder(io.LimitReader(s.ch, 1<<20)).Decode(&req); err != nil {
		resp.Error = &searchwire.Error{Code: string(ab.CodeInvalidArgument), Message: "bad search request: " + err.Error()}
	} else {
		resp = s.d.search(ctx, req)
	}
	_ = json.NewEncoder(s.ch).Encode(&resp)
	s.exit(0)
}

// search answers a search request on the workspace backend.
func (d *Daemon) search(ctx context.Context, req searchwire.Request) searchwire.Response {
	resp := searchwire.Response{Root: d.jail.abs(".")}
	var err error
	switch req.Op {
	case searchwire.OpGrep:
		var opts ab.GrepOptions
		if err = json.Unmarshal(req.Grep, &opts); err != nil {
			err = &ab.Error{Code: ab.CodeInvalidArgument, Op: "grep", Message: "bad grep options: " + err.Error()}
			break
		}
		var res *ab.GrepResult
		if res, err = ab.Grep(ctx, d.local, opts); err == nil {
			resp.Grep, err = json.Marshal(res)
		}
	case searchwire.OpGlob:
		resp.Glob, err = ab.Glob(ctx, d.local, req.Pattern, req.Dir)
		if resp.Glob == nil && err == nil {
			resp.Glob = []string{}
		}
	default:
		err = &ab.Error{Code: ab.CodeInvalidArgument, Op: "search", Message: "unknown search operation " + req.Op}
	}
	if err != nil {
		resp.Error = wireError(err)
		resp.Grep, resp.Glob = nil, nil
	}
	return resp
}

// wireError describes err for the client.
func wireError(err error) *searchwire.Error {
	e := &searchwire.Error{Code: string(ab.ErrorCode(err)), Message: err.Error(), NotExist: errors.Is(err, fs.ErrNotExist)}
	var abe *ab.Error
	if errors.As(err, &abe) {
		e.Path = abe.Path
	}
	if e.Code == "" {
		e.Code = string(ab.CodeReadFailed)
	}
	return e
}
